"""Torch datasets and collate functions per model type (the batch conventions the engine relies on).

    classifier / embedder  (images [B,3,S,S], targets LongTensor [B] | multi-hot FloatTensor [B,C] with logreg)
    detector               (images, [{"boxes": FloatTensor [N,4] x1,y1,x2,y2 pixels, "labels": LongTensor [N],
                                       "iscrowd": BoolTensor [N] (COCO crowd regions)}])
    segmenter              (images, masks LongTensor [B,S,S]: 0 background, i+1 for concept i;
                            validation adds [LongTensor [H,W]]: each mask at its image's original size)
    anomaly                (images, labels LongTensor [B]: 0 normal 1 anomalous, masks FloatTensor [B,S,S])
    text                   (token ids LongTensor [B,L] 0-padded, targets as classifier)

Images are float32, normalised with the ImageNet mean and std by the collate functions, once per
batch; dataset items carry uint8 pixels [3,S,S].

Flips are decided per (seed, epoch, index), not by a global random state, so they do not depend on
the number of DataLoader workers; call `set_epoch` before each epoch (it writes shared memory, so
persistent workers see it when the next epoch's iterator starts).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from deeptrain_api import catalog

from .errors import DatasetError
from .images import ImageLoadStats, load_record_image
from .records import ImageRecord, Mask, Record, TextRecord
from .text import PAD_ID, Tokenizer
from .transforms import (
    boxes_to_pixels,
    flip_boxes,
    flip_mask,
    image_to_tensor,
    normalise,
    rasterize_mask,
    resize_image,
)

TEXT_MAX_LENGTH = 256
# A split whose resized images fit in this many bytes (per process) is decoded once and kept in memory.
DECODED_CACHE_BYTES = 256 * 1024 * 1024
_UNKNOWN, _CACHED, _UNDECODABLE = 0, 1, -1
_MASK64 = 0xFFFFFFFFFFFFFFFF
# Padded batches are at least this long, so a TextCNN's widest kernel always fits.
TEXT_MIN_LENGTH = 8


def _mix(seed: int, epoch: int, indices: np.ndarray) -> np.ndarray:
    """A well-spread 64-bit hash of (seed, epoch, index) for each index (splitmix64 steps in wrapping
    uint64 arithmetic): cheap per-item randomness that depends only on its inputs, not on which
    worker or process asks, computed for a whole batch at once."""
    state = np.zeros(len(indices), dtype=np.uint64)
    for value in (np.uint64(seed & _MASK64), np.uint64(epoch & _MASK64), np.asarray(indices, dtype=np.uint64)):
        state = state + value + np.uint64(0x9E3779B97F4A7C15)
        state = (state ^ (state >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        state = (state ^ (state >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        state ^= state >> np.uint64(31)
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
    """Loads, resizes and (when training with flips) mirrors images; subclasses add the targets.

    Items hold uint8 pixels [3, S, S]; the collate functions normalise whole batches. A split whose
    resized pixels fit in DECODED_CACHE_BYTES keeps them in one uint8 tensor [N, 3, S, S], filled
    as items are first read or all at once by `preload` (then no epoch decodes anything).
    """

    def __init__(self, records: Sequence[ImageRecord], concepts: Sequence[str], *, image_size: int,
                 train: bool, flips: bool, seed: int) -> None:
        self.records = list(records)
        self.concept_index = {concept: i for i, concept in enumerate(concepts)}
        self.image_size = image_size
        self.train = train
        self.flips = train and flips
        self.seed = seed
        # Shared memory, so that persistent DataLoader workers see set_epoch (they hold copies of the rest).
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self.stats = ImageLoadStats()  # images that failed to decode here and were replaced
        self._stats_lock = threading.Lock()
        fits = len(self.records) * image_size * image_size * 3 <= DECODED_CACHE_BYTES
        # [N, 3, S, S] uint8 and, per record, _UNKNOWN / _CACHED / _UNDECODABLE
        self._pixels = torch.empty((len(self.records), 3, image_size, image_size), dtype=torch.uint8) if fits else None
        self._slot_state = np.full(len(self.records), _UNKNOWN, dtype=np.int8)
        self._sizes: list[tuple[int, int]] = [(0, 0)] * len(self.records)  # each image's original (width, height)
        self._in_memory = False
        self._sources: np.ndarray | None = None  # once in memory: the record whose pixels stand for each index

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        self._epoch[0] = epoch

    @property
    def in_memory(self) -> bool:
        """Every image decoded and cached: items are served without reading or decoding anything."""
        if not self._in_memory and self._pixels is not None:
            self._in_memory = not (self._slot_state == _UNKNOWN).any()
        return self._in_memory

    def __len__(self) -> int:
        return len(self.records)

    def preload(self, threads: int = 1) -> None:
        """Decode and resize every image not cached yet, when the split fits the cache (else nothing).

        Pillow decodes and resizes outside the GIL, so threads help where cores are free.
        """
        if self._pixels is None:
            return
        missing = np.flatnonzero(self._slot_state == _UNKNOWN).tolist()
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            list(pool.map(self._fill, missing))

    def _flipped(self, indices: Sequence[int], epoch: int) -> np.ndarray:
        """Whether each item of `indices` is mirrored in `epoch` [len(indices)] bool."""
        if not self.flips:
            return np.zeros(len(indices), dtype=bool)
        return (_mix(self.seed, epoch, np.asarray(indices)) & np.uint64(1)).astype(bool)

    def _decode(self, index: int) -> tuple[torch.Tensor, tuple[int, int]] | None:
        """Record `index`'s pixels [3, S, S] uint8 and original (width, height); None (counted) when
        its image cannot be decoded."""
        record = self.records[index]
        try:
            image = load_record_image(record)
        except (DatasetError, OSError) as error:
            with self._stats_lock:
                self.stats.record_skipped(record.uri, str(error))
            return None
        with self._stats_lock:
            self.stats.record_loaded()
        return image_to_tensor(resize_image(image, self.image_size)), image.size

    def _fill(self, index: int) -> None:
        decoded = self._decode(index)
        if decoded is None:
            self._slot_state[index] = _UNDECODABLE
            return
        self._pixels[index], self._sizes[index] = decoded
        self._slot_state[index] = _CACHED

    def _load_resized(self, index: int) -> tuple[ImageRecord, torch.Tensor, tuple[int, int]]:
        """The record, its pixels [3, S, S] and its image's original (width, height); an undecodable
        image is replaced by the next record's (record and all)."""
        if self._pixels is not None:
            source = self._cached_source(index)
            return self.records[source], self._pixels[source], self._sizes[source]
        for offset in range(len(self.records)):
            source = (index + offset) % len(self.records)
            decoded = self._decode(source)
            if decoded is not None:
                return self.records[source], *decoded
        raise self._nothing_decodes(index)

    def _cached_source(self, index: int) -> int:
        """The record whose cached pixels stand for `index`: itself, or the next decodable one."""
        for offset in range(len(self.records)):
            source = (index + offset) % len(self.records)
            if self._slot_state[source] == _UNKNOWN:
                self._fill(source)
            if self._slot_state[source] == _CACHED:
                return source
        raise self._nothing_decodes(index)

    def _nothing_decodes(self, index: int) -> DatasetError:
        return DatasetError(self.records[index].uri, "no image of this dataset can be decoded", "check the files are images")

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        record, pixels, original_size = self._load_resized(index)
        flipped = bool(self._flipped([index], self.epoch)[0])
        if flipped:
            pixels = pixels.flip(-1)
        return self.item(record, pixels, flipped, original_size)

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[Any, ...]]:
        """A batch's items (what DataLoader asks for); from memory, one gather and one flip for all."""
        if not self.in_memory:
            return [self[index] for index in indices]
        if self._sources is None:  # every slot is known now, so each index's stand-in is fixed
            self._sources = np.array([self._cached_source(index) for index in range(len(self.records))], dtype=np.int64)
        sources = self._sources[np.asarray(indices, dtype=np.int64)]
        flipped = self._flipped(indices, self.epoch)
        pixels = self._pixels.index_select(0, torch.from_numpy(sources))  # [B, 3, S, S] uint8, a copy
        if flipped.any():
            rows = torch.from_numpy(np.flatnonzero(flipped))
            pixels.index_copy_(0, rows, pixels.index_select(0, rows).flip(-1))  # not pixels[rows]: 10x slower
        return [self.item(self.records[source], image, flip, self._sizes[source])
                for source, image, flip in zip(sources.tolist(), pixels, flipped.tolist(), strict=True)]

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
        self._targets = {id(record): _class_target(record.concepts, self.concept_index, logreg) for record in self.records}

    def item(self, record: ImageRecord, image: torch.Tensor, flipped: bool,
             original_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        return image, self._targets[id(record)]


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

    in_memory = True  # tokenising an item is cheaper than handing it over from a worker

    def set_epoch(self, epoch: int) -> None:
        """Text items do not depend on the epoch; kept so the engine treats every dataset alike."""

    def preload(self, threads: int = 1) -> None:
        """Nothing to decode; kept so the engine treats every dataset alike."""

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


def _stack_images(images: Sequence[torch.Tensor]) -> torch.Tensor:
    return normalise(torch.stack(list(images)))


def _stack_pairs(batch: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    return _stack_images([item[0] for item in batch]), torch.stack([item[1] for item in batch])


def _collate_segmentation(batch: Sequence[tuple[torch.Tensor, ...]]) -> tuple[Any, ...]:
    images, masks = _stack_pairs(batch)
    if len(batch[0]) == 2:
        return images, masks
    return images, masks, [item[2] for item in batch]  # original sizes differ: a list, not a stack


def _collate_detection(batch: Sequence[tuple[torch.Tensor, dict[str, torch.Tensor]]],
                       ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    return _stack_images([item[0] for item in batch]), [item[1] for item in batch]


def _collate_anomaly(batch: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    images, labels, masks = zip(*batch, strict=True)
    return _stack_images(images), torch.stack(labels), torch.stack(masks)


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
