"""Torch datasets and collate functions per model type (the batch conventions the engine relies on).

    classifier / embedder  (images [B,3,S,S], targets LongTensor [B] | multi-hot FloatTensor [B,C] with logreg)
    detector               (images, [{"boxes": FloatTensor [N,4] x1,y1,x2,y2 pixels, "labels": LongTensor [N],
                                       "iscrowd": BoolTensor [N] (COCO crowd regions)}])
    segmenter              (images, masks LongTensor [B,S,S]: 0 background, i+1 for concept i;
                            validation adds [LongTensor [H,W]]: each mask at its image's original size)
    anomaly                (images, labels LongTensor [B]: 0 normal 1 anomalous, masks FloatTensor [B,S,S])
    text                   (token ids LongTensor [B,L] 0-padded, targets as classifier)

Flips are decided per (seed, epoch, index), not by a global random state, so they do not depend on
the number of DataLoader workers; call `set_epoch` before each epoch (with non-persistent workers,
which copy the dataset at the start of every epoch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .. import catalog
from .errors import DatasetError
from .images import ImageLoadStats, load_record_image
from .records import ImageRecord, Mask, Record, TextRecord
from .text import PAD_ID, Tokenizer
from .transforms import (
    boxes_to_pixels,
    flip_boxes,
    flip_image,
    flip_mask,
    image_to_tensor,
    rasterize_mask,
    resize_image,
)

TEXT_MAX_LENGTH = 256
# Training sets whose resized images fit in this many bytes are decoded once and kept: every later
# epoch only flips and normalises (in-process loading, as on CPU, keeps the cache across epochs).
DECODED_CACHE_BYTES = 256 * 1024 * 1024
# Padded batches are at least this long, so a TextCNN's widest kernel always fits.
TEXT_MIN_LENGTH = 8


def _mix(*values: int) -> int:
    """A well-spread 64-bit hash of small integers (splitmix64 steps): cheap per-item randomness that
    depends only on its inputs, not on which worker or process asks."""
    state = 0
    for value in values:
        state = (state + value + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        state = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        state = ((state ^ (state >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        state ^= state >> 31
    return state


def _class_target(concepts: Sequence[str], index: dict[str, int], logreg: bool) -> torch.Tensor:
    if logreg:
        target = torch.zeros(len(index), dtype=torch.float32)
        for concept in concepts:
            if concept in index:
                target[index[concept]] = 1.0
        return target
    return torch.tensor(index[concepts[0]], dtype=torch.long)


class ImageRecordDataset(Dataset):
    """Loads, resizes and (when training with flips) mirrors images; subclasses add the targets."""

    def __init__(self, records: Sequence[ImageRecord], concepts: Sequence[str], *, image_size: int,
                 train: bool, flips: bool, seed: int) -> None:
        self.records = list(records)
        self.concept_index = {concept: i for i, concept in enumerate(concepts)}
        self.image_size = image_size
        self.train = train
        self.flips = train and flips
        self.seed = seed
        self.epoch = 0
        self.stats = ImageLoadStats()  # images that failed to decode here and were replaced
        fits = len(self.records) * image_size * image_size * 3 <= DECODED_CACHE_BYTES
        self._decoded: dict[int, tuple[ImageRecord, Image.Image, tuple[int, int]]] | None = {} if fits else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def _is_flipped(self, index: int) -> bool:
        return self.flips and bool(_mix(self.seed, self.epoch, index) & 1)

    def _load(self, index: int) -> tuple[ImageRecord, Image.Image]:
        """The record's image; an undecodable one is counted and replaced by the next record's."""
        for offset in range(len(self.records)):
            record = self.records[(index + offset) % len(self.records)]
            try:
                image = load_record_image(record)
            except (DatasetError, OSError) as error:
                self.stats.record_skipped(record.uri, str(error))
                continue
            self.stats.record_loaded()
            return record, image
        raise DatasetError(self.records[index].uri, "no image of this dataset can be decoded",
                           "check the files are images")

    def _load_resized(self, index: int) -> tuple[ImageRecord, Image.Image, tuple[int, int]]:
        """The record, its image resized to SxS and the image's original (width, height)."""
        if self._decoded is not None and index in self._decoded:
            return self._decoded[index]
        record, image = self._load(index)
        loaded = record, resize_image(image, self.image_size), image.size
        if self._decoded is not None:
            self._decoded[index] = loaded
        return loaded

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        record, image, original_size = self._load_resized(index)
        flipped = self._is_flipped(index)
        if flipped:
            image = flip_image(image)
        return self.item(record, image_to_tensor(image), flipped, original_size)

    def _masks(self, record: ImageRecord, flipped: bool, size: tuple[int, int] | None = None) -> list[tuple[str, np.ndarray]]:
        """Each mask rasterised at (width, height) `size`, SxS by default."""
        masks = [(concept, rasterize_mask(mask, size or (self.image_size, self.image_size)))
                 for concept, mask in zip(record.mask_concepts, record.masks, strict=True)]
        return [(concept, flip_mask(mask) if flipped else mask) for concept, mask in masks]

    def item(self, record: ImageRecord, image: torch.Tensor, flipped: bool, original_size: tuple[int, int]) -> tuple[Any, ...]:
        raise NotImplementedError


class ClassificationDataset(ImageRecordDataset):
    def __init__(self, *args: Any, logreg: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.logreg = logreg

    def item(self, record: ImageRecord, image: torch.Tensor, flipped: bool, original_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        return image, _class_target(record.concepts, self.concept_index, self.logreg)


class DetectionDataset(ImageRecordDataset):
    def item(self, record: ImageRecord, image: torch.Tensor, flipped: bool, original_size: tuple[int, int]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        boxes = flip_boxes(record.boxes) if flipped else record.boxes
        labels = [self.concept_index[concept] for concept in record.box_concepts]
        return image, {"boxes": boxes_to_pixels(boxes, self.image_size), "labels": torch.tensor(labels, dtype=torch.long),
                       "iscrowd": torch.tensor(record.crowd_flags, dtype=torch.bool)}


class SegmentationDataset(ImageRecordDataset):
    def item(self, record: ImageRecord, image: torch.Tensor, flipped: bool,
             original_size: tuple[int, int]) -> tuple[torch.Tensor, ...]:
        target = torch.from_numpy(self._target(record, flipped, (self.image_size, self.image_size)))
        if self.train:
            return image, target
        # Validation also scores the prediction at the image's own size, as users' masks are measured.
        return image, target, torch.from_numpy(self._target(record, flipped, original_size))

    def _target(self, record: ImageRecord, flipped: bool, size: tuple[int, int]) -> np.ndarray:
        width, height = size
        target = np.zeros((height, width), dtype=np.int64)
        for concept, mask in self._masks(record, flipped, size):  # later objects are drawn over earlier ones
            target[mask] = self.concept_index[concept] + 1
        return target


class AnomalyDataset(ImageRecordDataset):
    def item(self, record: ImageRecord, image: torch.Tensor, flipped: bool, original_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        truth = np.zeros((self.image_size, self.image_size), dtype=bool)
        for _, mask in self._masks(record, flipped):
            truth |= mask
        if record.anomaly_mask_uri:
            mask_image = rasterize_mask(Mask(image_uri=record.anomaly_mask_uri), (self.image_size, self.image_size))
            truth |= flip_mask(mask_image) if flipped else mask_image
        label = torch.tensor(int(record.is_anomalous), dtype=torch.long)
        return image, label, torch.from_numpy(truth.astype(np.float32))


class TextDataset(Dataset):
    def __init__(self, records: Sequence[TextRecord], concepts: Sequence[str], *, tokenizer: Tokenizer,
                 logreg: bool) -> None:
        self.records = list(records)
        self.concept_index = {concept: i for i, concept in enumerate(concepts)}
        self.tokenizer = tokenizer
        self.logreg = logreg

    def set_epoch(self, epoch: int) -> None:
        """Text items do not depend on the epoch; kept so the engine treats every dataset alike."""

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        record = self.records[index]
        ids = torch.tensor(self.tokenizer.encode(record.text, max_len=TEXT_MAX_LENGTH), dtype=torch.long)
        return ids, _class_target(record.concepts, self.concept_index, self.logreg)


def build_dataset(model_type: str, records: Sequence[Record], concepts: Sequence[str], *, image_size: int | None,
                  train: bool, flips: bool, logreg: bool = False, tokenizer: Tokenizer | None = None,
                  seed: int = 0) -> Dataset:
    if model_type == catalog.TEXT_CLASSIFIER:
        if tokenizer is None:
            raise ValueError("text-classifier needs a tokenizer fitted on the training texts")
        return TextDataset([r for r in records if isinstance(r, TextRecord)], concepts, tokenizer=tokenizer, logreg=logreg)
    if image_size is None:
        raise ValueError(f"{model_type} needs image_size")
    images = [r for r in records if isinstance(r, ImageRecord)]
    common: dict[str, Any] = {"image_size": image_size, "train": train, "flips": flips, "seed": seed}
    if model_type in (catalog.VISUAL_CLASSIFIER, catalog.VISUAL_EMBEDDER):
        return ClassificationDataset(images, concepts, logreg=logreg and model_type == catalog.VISUAL_CLASSIFIER, **common)
    dataset_types: dict[str, type[ImageRecordDataset]] = {
        catalog.VISUAL_DETECTOR: DetectionDataset,
        catalog.VISUAL_SEGMENTER: SegmentationDataset,
        catalog.VISUAL_ANOMALY_HEATMAP: AnomalyDataset,
    }
    return dataset_types[catalog.model_type(model_type).name](images, concepts, **common)


def _stack_pairs(batch: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([item[0] for item in batch]), torch.stack([item[1] for item in batch])


def _collate_segmentation(batch: Sequence[tuple[torch.Tensor, ...]]) -> tuple[Any, ...]:
    images, masks = _stack_pairs(batch)
    if len(batch[0]) == 2:
        return images, masks
    return images, masks, [item[2] for item in batch]  # original sizes differ: a list, not a stack


def _collate_detection(batch: Sequence[tuple[torch.Tensor, dict[str, torch.Tensor]]],
                       ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    return torch.stack([item[0] for item in batch]), [item[1] for item in batch]


def _collate_anomaly(batch: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    images, labels, masks = zip(*batch, strict=True)
    return torch.stack(images), torch.stack(labels), torch.stack(masks)


def _collate_text(batch: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    length = max([TEXT_MIN_LENGTH, *(len(item[0]) for item in batch)])
    ids = torch.full((len(batch), length), PAD_ID, dtype=torch.long)
    for row, (tokens, _) in enumerate(batch):
        ids[row, : len(tokens)] = tokens
    return ids, torch.stack([item[1] for item in batch])


def collate_fn(model_type: str) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """Module-level functions, so DataLoader workers can pickle them."""
    collates: dict[str, Callable[[Sequence[Any]], tuple[Any, ...]]] = {
        catalog.VISUAL_CLASSIFIER: _stack_pairs,
        catalog.VISUAL_EMBEDDER: _stack_pairs,
        catalog.VISUAL_SEGMENTER: _collate_segmentation,
        catalog.VISUAL_DETECTOR: _collate_detection,
        catalog.VISUAL_ANOMALY_HEATMAP: _collate_anomaly,
        catalog.TEXT_CLASSIFIER: _collate_text,
    }
    return collates[catalog.model_type(model_type).name]
