"""The data pipeline: dataset URI -> validated records -> splits -> torch datasets and samplers.

What the training engine calls:

    splits = load_splits(config)            # Splits(train, validation, concepts, image_stats)
        # raises DatasetError (exit with ExitCode.INVALID_DATASET, str(error) as the message);
        # images that are not decodable are dropped and counted in splits.image_stats, and
        # load_splits itself fails once they exceed config.dataset.invalid_data_tolerance_percent.
    tokenizer = Tokenizer.fit(r.text for r in splits.train)          # text-classifier only
    dataset = build_dataset(config.modelType, splits.train, splits.concepts, image_size=S,
                            train=True, flips=hp["average_horizontal_flips"], logreg=hp["logreg"],
                            tokenizer=tokenizer, seed=config.seed)
    dataset.preload(threads)                # a split that fits the cache: decoded now, served from memory
    sampler = EpochSampler(len(dataset), num_items_per_epoch=hp["num_items_per_epoch"],
                           rank=rank, world_size=world_size, seed=config.seed)
    loader = DataLoader(dataset, batch_size=per_rank_batch, sampler=sampler,
                        collate_fn=collate_fn(config.modelType),
                        **loader_options(in_memory=dataset.in_memory, on_cuda=..., persistent=True))
    for epoch in ...: sampler.set_epoch(epoch); dataset.set_epoch(epoch)   # then set_start on resume

URIs: `file:///abs`, `file://relative` (relative to the current directory, a project convention),
plain paths, and any fsspec URI (`s3://`, `gs://`, `https://`, ...) with credentials from env.
Formats: imagefolder, jsonl (the platform's annotation shape), coco (instances JSON), csv (text);
see each module in `readers/`. Batch conventions: see `torch_datasets`. Videos: `video` decodes and
samples them (for every part of the project), `video_records` turns a dataset's videos into frame
records at config.dataset.video_frame_rate, and splits keep each video's frames on one side.
"""

from .errors import DatasetError
from .images import ImageLoadStats, decode_image
from .readers import read_records
from .records import NORMAL_CONCEPTS, Box, ImageRecord, Mask, Point, Record, TextRecord
from .sampling import EpochSampler
from .splits import DEFAULT_VALIDATION_FRACTION, Splits, load_splits, record_labels
from .text import Tokenizer
from .torch_datasets import build_dataset, collate_fn

__all__ = [
    "DEFAULT_VALIDATION_FRACTION",
    "NORMAL_CONCEPTS",
    "Box",
    "DatasetError",
    "EpochSampler",
    "ImageLoadStats",
    "ImageRecord",
    "Mask",
    "Point",
    "Record",
    "Splits",
    "TextRecord",
    "Tokenizer",
    "build_dataset",
    "collate_fn",
    "decode_image",
    "load_splits",
    "read_records",
    "record_labels",
]
