"""ROOT/<concept>/<image>: the folder name is the image's concept.

For visual-anomaly-heatmap, `good` and `normal` folders hold the normal images and every other
folder one kind of defect. Ground-truth defect masks are optional, MVTec-style:
ROOT/ground_truth/<concept>/<stem>_mask.png, or ../ground_truth/... beside ROOT (so that MVTec's
own layout, with ROOT = <category>/train or <category>/test, reads as shipped).
A video file in a concept's folder is a source of frames of that concept (sampled at
spec.dataset.videoFrameRate). Hidden entries and files that are neither images nor videos (by
extension) are ignored.
"""

from __future__ import annotations

import posixpath
from collections.abc import Collection

from .. import uris
from ..errors import DatasetError
from ..images import IMAGE_EXTENSIONS
from ..records import ImageRecord
from ..video import is_video
from .common import require_known_concept

GROUND_TRUTH_DIR = "ground_truth"
MASK_SUFFIX = "_mask"


def _is_image(name: str) -> bool:
    return not name.startswith(".") and posixpath.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _ground_truth_masks(root: str) -> dict[tuple[str, str], str]:
    """(concept, image stem) -> mask URI, from the first ground_truth folder found."""
    for candidate in (uris.join_uri(root, GROUND_TRUTH_DIR), uris.join_uri(uris.parent_uri(root), GROUND_TRUTH_DIR)):
        if not uris.is_dir(candidate):
            continue
        masks: dict[tuple[str, str], str] = {}
        for concept, is_dir in uris.list_dir(candidate):
            if not is_dir:
                continue
            concept_dir = uris.join_uri(candidate, concept)
            for name, name_is_dir in uris.list_dir(concept_dir):
                stem = posixpath.splitext(name)[0]
                if not name_is_dir and _is_image(name) and stem.endswith(MASK_SUFFIX):
                    masks[(concept, stem[: -len(MASK_SUFFIX)])] = uris.join_uri(concept_dir, name)
        return masks
    return {}


def read_imagefolder(uri: str, *, anomaly: bool, concepts: Collection[str] | None) -> list[ImageRecord]:
    root = uris.resolve_uri(uri)
    if not uris.is_dir(root):
        raise DatasetError(root, "not a folder", "imagefolder expects dataset.uri to be a folder ROOT/<concept>/<image>")
    masks = _ground_truth_masks(root) if anomaly else {}
    records: list[ImageRecord] = []
    for concept, is_dir in uris.list_dir(root):
        if not is_dir or concept.startswith(".") or (anomaly and concept == GROUND_TRUTH_DIR):
            continue
        concept_dir = uris.join_uri(root, concept)
        images = [name for name, name_is_dir in uris.list_dir(concept_dir)
                  if not name_is_dir and (_is_image(name) or (is_video(name) and not name.startswith(".")))]
        if images:
            require_known_concept(concept, concepts, concept_dir)
        for name in images:
            stem = posixpath.splitext(name)[0]
            records.append(ImageRecord(uri=uris.join_uri(concept_dir, name), concepts=[concept],
                                       anomaly_mask_uri=masks.get((concept, stem)),
                                       id=f"{concept}/{stem}", source=uris.join_uri(concept_dir, name)))
    if not records:
        raise DatasetError(root, "no images or videos found in ROOT/<concept>/ folders",
                           "put each image or video in a folder named after its concept")
    return records
