"""Data loading: our pipeline (build_dataset + collate + DataLoader + EpochSampler) against a raw
Pillow decode+resize loop over the same files, and against the model step it has to keep fed.

Arms, alternated round by round on the same records in the same order:
- ours, in-process   DataLoader(num_workers=0): how the trainer loads on CPU
- ours, 1 worker     DataLoader(num_workers=1): one loader process (on GPUs the trainer uses 4)
- raw Pillow         open, convert("RGB"), resize bilinear; nothing else, in this process
- model step         forward + backward + SGD step of the classifier at the same batch and size

Ours does more than the raw loop on purpose (normalisation, tensor conversion, a flip decision,
batching, the sampler), so the goal is 0.8 of raw per loading process, not parity. A worker's
items/s includes starting the worker at the top of the epoch, as the trainer pays it every epoch.

    .venv/bin/python bench/data_loading.py
    .venv/bin/python bench/data_loading.py --datasets photos --photo-count 2000 --rounds 5
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from benchlib import (
    Comparison,
    add_common_arguments,
    alternate,
    comparison_table,
    fmt,
    median,
    pin_threads,
    print_table,
    profile_parts,
    simple_table,
    write_results,
)

pin_threads()

from trainer_setup import classifier_config, digits_dataset, photo_dataset  # noqa: E402

GOAL = 0.8
# Where one in-process epoch of our loader spends its time (label -> function name).
LOADER_PARTS = {
    "one epoch of batches (DataLoader, in-process)": "ours",
    "  read file bytes (data.uris.read_bytes)": "read_bytes",
    "  decode + EXIF orientation (data.images.decode_image)": "decode_image",
    "    to RGB (data.images.to_rgb)": "to_rgb",
    "  resize (data.transforms.resize_image)": "resize_image",
    "  to a uint8 tensor (data.transforms.image_to_tensor)": "image_to_tensor",
    "  flip decision, a hash per item (_is_flipped)": "_is_flipped",
    "  stack + normalise a batch (collate _stack_images)": "_stack_images",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, default_rounds=5)
    parser.add_argument("--datasets", nargs="+", choices=("digits", "photos"), default=["digits", "photos"],
                        help="digits: the 32 px example PNGs; photos: 640x480 JPEGs resized to --photo-size")
    parser.add_argument("--photo-count", type=int, default=400, help="JPEGs in the photos dataset (default 400)")
    parser.add_argument("--photo-size", type=int, default=224, help="image_size for the photos (default 224)")
    parser.add_argument("--digits-limit", type=int, default=None, help="use only the first N digits (default all)")
    parser.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--template", default="ResNext", help="model for the step arm (default ResNext)")
    parser.add_argument("--width", type=float, default=0.25, help="templateScale.width of that model (default 0.25)")
    parser.add_argument("--depth", type=float, default=0.34, help="templateScale.depth of that model (default 0.34)")
    parser.add_argument("--profile", action="store_true", help="also show where one epoch of our loader spends its time (cProfile)")
    parser.add_argument("--step-batches", type=int, default=2, help="timed model steps per round, after one warm-up (default 2)")
    return parser.parse_args(argv)


def training_records(folder: Path, image_size: int) -> tuple[list[Any], list[str]]:
    """The training split exactly as the trainer reads it (header check included)."""
    from deeptrain_trainer.data import load_splits

    config = classifier_config(Path("/nonexistent-output"), folder, template="ResNext", batch_size=32,
                               image_size=image_size, num_epochs=1, num_items_per_epoch=0)
    splits = load_splits(config)
    return splits.train, splits.concepts


def ours(records: list[Any], concepts: list[str], image_size: int, batch: int, workers: int, epoch: int) -> float:
    from torch.utils.data import DataLoader

    from deeptrain_api import catalog
    from deeptrain_trainer.data import EpochSampler, build_dataset, collate_fn

    dataset = build_dataset(catalog.VISUAL_CLASSIFIER, records, concepts, image_size=image_size, train=True,
                            flips=True, seed=0)
    dataset.set_epoch(epoch)
    sampler = EpochSampler(len(dataset), num_items_per_epoch=0, rank=0, world_size=1, seed=0)
    sampler.set_epoch(epoch)
    started = time.perf_counter()
    loader = DataLoader(dataset, batch_size=batch, sampler=sampler, drop_last=True,
                        collate_fn=collate_fn(catalog.VISUAL_CLASSIFIER), num_workers=workers)
    items = sum(len(images) for images, _ in loader)
    return items / (time.perf_counter() - started)


def epoch_paths(records: list[Any], batch: int, epoch: int) -> list[str]:
    """The files ours reads in `epoch`, in its order, so both arms touch the same bytes."""
    from deeptrain_trainer.data import EpochSampler

    sampler = EpochSampler(len(records), num_items_per_epoch=0, rank=0, world_size=1, seed=0)
    sampler.set_epoch(epoch)
    order = list(sampler)
    return [records[index].uri for index in order[: len(order) // batch * batch]]


def raw_pillow(paths: list[str], image_size: int) -> float:
    from PIL import Image

    started = time.perf_counter()
    for path in paths:
        with Image.open(path) as image:
            image.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
    return len(paths) / (time.perf_counter() - started)


class ModelStep:
    """The classifier's training step on random inputs: what the loader has to keep up with."""

    def __init__(self, template: str, width: float, depth: float, image_size: int, batch: int, classes: int) -> None:
        import torch

        from deeptrain_api import catalog
        from deeptrain_api.trainer_contract import TemplateScale
        from deeptrain_trainer.models.registry import build_model

        self.model = build_model(catalog.VISUAL_CLASSIFIER, template, num_classes=classes, image_size=image_size,
                                 scale=TemplateScale(width=width, depth=depth), hyperparameters={})
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
        self.inputs = torch.randn(batch, 3, image_size, image_size)
        self.targets = torch.randint(0, classes, (batch,))

    def step(self) -> None:
        import torch.nn.functional as F

        self.optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(self.model(self.inputs), self.targets).backward()
        self.optimizer.step()

    def items_per_second(self, timed_steps: int) -> float:
        self.step()  # warm-up: first-call allocations
        started = time.perf_counter()
        for _ in range(timed_steps):
            self.step()
        return timed_steps * len(self.inputs) / (time.perf_counter() - started)


def measure(name: str, args: argparse.Namespace) -> tuple[list[Comparison], dict[str, Any]]:
    if name == "digits":
        folder, image_size = digits_dataset(args.digits_limit), 32
    else:
        folder, image_size = photo_dataset(args.photo_count), args.photo_size
    records, concepts = training_records(folder, image_size)
    label = f"{name} ({len(records)} files -> {image_size} px)"
    step = ModelStep(args.template, args.width, args.depth, image_size, args.batch, len(concepts))
    arms = {
        "ours in-process": lambda r: ours(records, concepts, image_size, args.batch, 0, r),
        "ours 1 worker": lambda r: ours(records, concepts, image_size, args.batch, 1, r),
        "raw Pillow": lambda r: raw_pillow(epoch_paths(records, args.batch, r), image_size),
        "model step": lambda r: step.items_per_second(args.step_batches),
    }
    runs = alternate(arms, args.rounds,
                     on_result=lambda arm, r, value: print(f"{label} round {r + 1} {arm}: {fmt(value)} items/s", flush=True))
    comparisons = [Comparison(case=f"{label}, {arm.removeprefix('ours ')}", unit="items/s", goal=GOAL,
                              ours=runs[arm], baseline=runs["raw Pillow"],
                              extra={"dataset": name, "image_size": image_size, "files": len(records)})
                   for arm in ("ours in-process", "ours 1 worker")]
    loader_rate = median(runs["ours in-process"])
    step_rate = median(runs["model step"])
    feeding = {
        "dataset": label, "loader_items_per_second": loader_rate, "one_worker_items_per_second": median(runs["ours 1 worker"]),
        "model_step_items_per_second": step_rate, "loader_over_step": loader_rate / step_rate,
        # In-process loading runs between steps, so it adds its time to every step.
        "in_process_slowdown_percent": 100.0 * step_rate / loader_rate,
        "model": f"{args.template} {args.width}/{args.depth}", "batch": args.batch,
        "raw": runs["raw Pillow"], "ours_in_process": runs["ours in-process"],
        "ours_one_worker": runs["ours 1 worker"], "model_step": runs["model step"]}
    if args.profile:
        seconds = profile_parts(lambda: ours(records, concepts, image_size, args.batch, 0, 0), LOADER_PARTS,
                                path_contains="")
        raw_seconds = profile_parts(lambda: raw_pillow(epoch_paths(records, args.batch, 0), image_size),
                                    {"raw": "raw_pillow"}, path_contains="")["raw"]
        feeding["profile_seconds"] = {**seconds, "raw Pillow loop, same files (for scale)": raw_seconds}
        total = seconds[next(iter(LOADER_PARTS))] or 1.0
        print_table(simple_table(f"where our loader's time goes, {label} (cProfile, cumulative)",
                                 ["part", "seconds", "% of the epoch"],
                                 [(part, f"{value:.3f}", f"{100 * value / total:.1f}")
                                  for part, value in feeding["profile_seconds"].items()]))
    return comparisons, feeding


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(1)
    comparisons: list[Comparison] = []
    feeding_rows: list[dict[str, Any]] = []
    for name in args.datasets:
        dataset_comparisons, feeding = measure(name, args)
        comparisons += dataset_comparisons
        feeding_rows.append(feeding)

    print_table(comparison_table("our data pipeline vs raw Pillow decode+resize, items/s per loading process",
                                 comparisons, "deeptrain", "raw Pillow"))
    print_table(simple_table(
        f"does the loader keep the model step fed? ({args.template} templateScale {args.width}/{args.depth}, batch {args.batch})",
        ["dataset", "loader in-process", "loader 1 worker", "model step", "loader / step", "in-process loading adds"],
        [(row["dataset"], f"{fmt(row['loader_items_per_second'])}/s", f"{fmt(row['one_worker_items_per_second'])}/s",
          f"{fmt(row['model_step_items_per_second'])}/s", f"{row['loader_over_step']:.1f}x",
          f"{row['in_process_slowdown_percent']:.1f}% to each step") for row in feeding_rows]))
    path = write_results("data_loading", {
        "goal": f"ours/raw items/s per loading process >= {GOAL}",
        "settings": {key: value for key, value in vars(args).items() if key != "output"},
        "comparisons": [c.as_dict() for c in comparisons], "feeding": feeding_rows}, args.output)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
