"""The job's dataset -> training and validation records, with the concepts the model predicts."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

import numpy as np

from deeptrain_api import catalog
from deeptrain_api.trainer_contract import TrainerConfig

from . import uris
from .errors import DatasetError
from .images import SKIPPED_EXAMPLES_KEPT, ImageLoadStats, check_images
from .readers import read_records
from .records import ImageRecord, Record
from .video_records import expand_videos, video_of

log = logging.getLogger(__name__)

# Used when the job gives neither validation_fraction nor validation_uri.
DEFAULT_VALIDATION_FRACTION = 0.1

RecordT = TypeVar("RecordT", bound=Record)


@dataclass(frozen=True)
class Splits:
    train: list[Record]
    validation: list[Record]
    concepts: list[str]  # model output order: spec.concepts as given, else every concept found, sorted
    image_stats: ImageLoadStats = field(default_factory=ImageLoadStats)  # both splits; empty for text


def record_labels(record: Record, model_type: str) -> list[str]:
    """The concepts a record teaches a model of `model_type`."""
    if isinstance(record, ImageRecord) and model_type == catalog.VISUAL_DETECTOR:
        return record.box_concepts
    if isinstance(record, ImageRecord) and model_type == catalog.VISUAL_SEGMENTER:
        return record.mask_concepts
    return record.concepts


def restrict_to_concepts(records: Sequence[Record], concepts: Collection[str] | None, model_type: str) -> list[Record]:
    """Keep only what teaches `spec.concepts` (every record when it is not given).

    Labels of other concepts are dropped; an input left with no concept at all is dropped for the
    classifying types, while detector and segmenter images keep their pixels as background.
    Anomaly datasets are never filtered: their concepts only say normal or anomalous.
    """
    if not concepts or model_type == catalog.VISUAL_ANOMALY_HEATMAP:
        return list(records)
    allowed = set(concepts)
    kept: list[Record] = []
    for record in records:
        record = replace(record, concepts=[c for c in record.concepts if c in allowed],
                         negative_concepts=[c for c in record.negative_concepts if c in allowed])
        if isinstance(record, ImageRecord):
            boxes = [(box, c, crowd) for box, c, crowd in zip(record.boxes, record.box_concepts, record.crowd_flags,
                                                             strict=True) if c in allowed]
            masks = [(mask, c) for mask, c in zip(record.masks, record.mask_concepts, strict=True) if c in allowed]
            record = replace(record, boxes=[b for b, _, _ in boxes], box_concepts=[c for _, c, _ in boxes],
                             box_crowd=[crowd for _, _, crowd in boxes] if record.box_crowd else [],
                             masks=[m for m, _ in masks], mask_concepts=[c for _, c in masks])
            if model_type in (catalog.VISUAL_DETECTOR, catalog.VISUAL_SEGMENTER):
                kept.append(record)
                continue
        if record.concepts or record.negative_concepts:
            kept.append(record)
    return kept


def _split_units(records: Sequence[Record]) -> list[list[int]]:
    """Record indices that must stay on one side of a split: all frames of one video, else each record alone."""
    units: list[list[int]] = []
    unit_of_video: dict[str, int] = {}
    for index, record in enumerate(records):
        video = video_of(record)
        if video is None:
            units.append([index])
        elif video in unit_of_video:
            units[unit_of_video[video]].append(index)
        else:
            unit_of_video[video] = len(units)
            units.append([index])
    return units


def split_by_fraction(records: Sequence[RecordT], fraction: float, seed: int,
                      model_type: str) -> tuple[list[RecordT], list[RecordT]]:
    """Deterministic split stratified by each record's first label; every label keeps a training example.

    The frames of one video are one unit (stratified by its first frame): neighbouring frames look
    alike, so a video split across training and validation would leak into the held-out metrics.
    """
    units = _split_units(records)
    groups: dict[str, list[int]] = {}
    for unit, members in enumerate(units):
        labels = record_labels(records[members[0]], model_type)
        groups.setdefault(labels[0] if labels else "", []).append(unit)
    rng = np.random.default_rng(seed)
    chosen: set[int] = set()
    for key in sorted(groups):
        members = [groups[key][i] for i in rng.permutation(len(groups[key]))]
        count = min(round(len(members) * fraction), len(members) - 1)
        chosen.update(members[:count])
    if not chosen and len(units) >= 2:
        # Tiny datasets round every group down to nothing; take one from the largest group.
        largest = max(sorted(groups), key=lambda key: len(groups[key]))
        chosen.add(groups[largest][-1])
    held_out = {index for unit in chosen for index in units[unit]}
    train = [record for index, record in enumerate(records) if index not in held_out]
    validation = [record for index, record in enumerate(records) if index in held_out]
    return train, validation


def _drop_undecodable(train: list[Record], validation: list[Record], config: TrainerConfig,
                      stats: ImageLoadStats) -> tuple[list[Record], list[Record], ImageLoadStats]:
    """Drop undecodable images; `stats` already counts the videos that could not be opened."""
    kept_train, train_stats = check_images([r for r in train if isinstance(r, ImageRecord)])
    kept_validation, validation_stats = check_images([r for r in validation if isinstance(r, ImageRecord)])
    stats.add(train_stats)
    stats.add(validation_stats)
    tolerance = config.dataset.invalid_data_tolerance_percent
    if stats.skipped_fraction() * 100 > tolerance:
        raise DatasetError(uris.resolve_uri(config.dataset.uri),
                           f"{stats.summary()}: {stats.skipped_fraction() * 100:.1f}% is over the tolerated {tolerance:g}%",
                           "replace or remove those files, or raise the invalid-data tolerance")
    return list(kept_train), list(kept_validation), stats


def _require_labels(records: Sequence[Record], model_type: str, logreg: bool) -> None:
    """Softmax classifiers and embedders learn from each input's concept; an unlabelled input is a mistake."""
    if model_type not in (catalog.VISUAL_CLASSIFIER, catalog.VISUAL_EMBEDDER, catalog.TEXT_CLASSIFIER):
        return
    if logreg and model_type != catalog.VISUAL_EMBEDDER:
        return
    for record in records:
        if not record.concepts:
            raise DatasetError(record.source or record.id, "the input has no concept (none given, or only value 0)",
                               "give every input a concept, or set logreg: true for multi-label data")


def _tolerate_invalid_lines(lines: ImageLoadStats, config: TrainerConfig) -> None:
    """Malformed annotation lines count against the tolerance the way undecodable images do."""
    if not lines.skipped:
        return
    tolerance = config.dataset.invalid_data_tolerance_percent
    percent = lines.skipped_fraction() * 100
    summary = f"{lines.skipped} of {lines.total} lines are invalid, e.g. " + ", ".join(lines.examples)
    if percent > tolerance:
        raise DatasetError(uris.resolve_uri(config.dataset.uri),
                           f"{summary}: {percent:.1f}% is over the tolerated {tolerance:g}%",
                           "fix or remove those lines, or raise spec.dataset.invalidDataTolerancePercent")
    log.warning("skipping %s (%.1f%%, tolerated up to %g%%)", summary, percent, tolerance)


def _require_two_concepts(concepts: list[str], model_type: str, logreg: bool, location: str) -> None:
    """Choosing among one concept teaches nothing (loss 0, accuracy 1.0 from the first step)."""
    choosing = model_type in (catalog.VISUAL_CLASSIFIER, catalog.TEXT_CLASSIFIER) and not logreg
    if (choosing or model_type == catalog.VISUAL_EMBEDDER) and len(concepts) < 2:
        raise DatasetError(location, f"a {model_type} needs at least two concepts with training data; found only "
                                     f"{', '.join(repr(c) for c in concepts)}",
                           "add data of another concept (a folder per concept for imagefolder)"
                           + ("" if model_type == catalog.VISUAL_EMBEDDER else
                              ", or set logreg: true to learn one concept's presence from positives and negatives"))


def load_splits(config: TrainerConfig) -> Splits:
    model_type = config.modelType
    dataset = config.dataset
    anomaly = model_type == catalog.VISUAL_ANOMALY_HEATMAP
    lines = ImageLoadStats()  # jsonl lines that do not parse, tolerated like undecodable images
    records = restrict_to_concepts(read_records(dataset.uri, dataset.format, model_type, None, lines),
                                   config.concepts, model_type)
    records, stats = expand_videos(records, dataset.video_frame_rate)
    if dataset.validation_uri is not None:
        train = list(records)
        validation, validation_videos = expand_videos(
            restrict_to_concepts(read_records(dataset.validation_uri, dataset.format, model_type, None, lines),
                                 config.concepts, model_type), dataset.video_frame_rate)
        stats.add(validation_videos)
        if anomaly:
            train = [r for r in train if isinstance(r, ImageRecord) and not r.is_anomalous]
    else:
        fraction = dataset.validation_fraction or DEFAULT_VALIDATION_FRACTION
        if anomaly:
            normal = [r for r in records if isinstance(r, ImageRecord) and not r.is_anomalous]
            train, validation = split_by_fraction(normal, fraction, config.seed, model_type)
            validation += [r for r in records if isinstance(r, ImageRecord) and r.is_anomalous]
        else:
            train, validation = split_by_fraction(records, fraction, config.seed, model_type)
    _tolerate_invalid_lines(lines, config)
    if catalog.model_type(model_type).input == "image":
        train, validation, stats = _drop_undecodable(train, validation, config, stats)
    stats.skipped += lines.skipped
    stats.examples = (stats.examples + lines.examples)[:SKIPPED_EXAMPLES_KEPT]
    location = uris.resolve_uri(dataset.uri)
    if not train:
        what = "no normal images (folders or concepts named good or normal)" if anomaly else "no training examples"
        raise DatasetError(location, f"the training split is empty: {what}", "add data or lower the validation fraction")
    if not validation:
        raise DatasetError(dataset.validation_uri or location, "the validation split is empty",
                           "add data, raise validation_fraction or give a validation dataset with entries")
    _require_labels(train + validation, model_type, bool(config.hyperparameters.get("logreg", False)))
    found = sorted({label for record in train + validation for label in record_labels(record, model_type)})
    concepts = list(config.concepts) if config.concepts else found
    if not concepts:
        raise DatasetError(location, f"no concepts found for {model_type}",
                           "label the data (detectors need boxes, segmenters need polygons or masks)")
    _require_two_concepts(concepts, model_type, bool(config.hyperparameters.get("logreg", False)), location)
    if not anomaly:
        taught = {label for record in train for label in record_labels(record, model_type)}
        for concept in concepts:
            if concept not in taught:
                raise DatasetError(location, f"concept {concept!r} has no training example",
                                   "add training examples of it or remove it from spec.concepts")
    return Splits(train=train, validation=validation, concepts=concepts, image_stats=stats)
