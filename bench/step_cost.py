"""Step cost: what one training step costs in our trainer and in the plain loop, measured in one process.

trainer_overhead.py compares whole torchrun launches, and on this machine two launches of the very
same program differ by up to 10-20% in images/s: a gap of a few percent between the trainer and
the plain loop is lost in that spread. Here both arms run in the same process on the same model,
alternating step by step, so that whatever slows the machine slows both alike:

- plain: a batch indexed out of the decoded images (one float tensor, as plain_loop.py keeps
  them) and plain_loop.py's own step (`plain_update`: forward, cross-entropy, backward, torch's
  clip_grad_norm_ at the job's gradient_clip_norm, SGD);
- ours:  the next batch from the real Trainer's loader (`Trainer._train_batches`: the decoded
  split, flips, batch normalisation) and `Trainer._train_step`, the step and its bookkeeping
  (running loss, progress, the stop schedule) exactly as `Trainer._train_epoch` runs them.

The Trainer is the real one, set up from the same job.json as trainer_overhead.py's (world of one;
its training loop is replaced by this measurement). The figure is the median over steps of the
per-step difference ours - plain, as a share of the plain step: 0.03 is the 0.97 goal.

    .venv/bin/python bench/step_cost.py
    .venv/bin/python bench/step_cost.py --templates InceptionBatchNorm --steps 500
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import add_common_arguments, fmt, median, pin_threads, print_table, simple_table, write_results

pin_threads()

from trainer_setup import (  # noqa: E402 (after pinning threads, before torch loads)
    add_workload_arguments,
    classifier_config,
    digits_dataset,
    load_image_tensors,
)

GOAL_EXTRA = 0.03  # ours at >= 0.97 of the plain loop's speed
WARMUP_STEPS = 20


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, default_rounds=1)
    add_workload_arguments(parser)
    parser.add_argument("--steps", type=int, default=300, help="measured steps per arm (default 300)")
    return parser.parse_args(argv)


def interleaved_steps(trainer: Any, images: Any, labels: Any, steps: int) -> dict[str, list[float]]:
    """Seconds per phase of each arm's steps, the arms alternating step by step."""
    import torch
    from plain_loop import plain_update

    model = trainer.model
    plain_step = plain_update(model, model, trainer.hp)
    per_rank = trainer.per_rank_batch
    model.train()

    def plain_batches():
        generator = torch.Generator().manual_seed(0)
        while True:
            order = torch.randperm(len(images), generator=generator)
            for start in range(0, len(images) - per_rank + 1, per_rank):
                index = order[start:start + per_rank]
                yield images[index], labels[index]

    def our_batches():
        epoch = 0
        while True:
            trainer.state.epoch, trainer.state.step_in_epoch = epoch, 0
            trainer.state.start_epoch()
            yield from trainer._train_batches(epoch, 0)
            epoch += 1

    plain, ours = plain_batches(), our_batches()
    samples: dict[str, list[float]] = {name: [] for name in ("plain load", "plain step", "ours load", "ours step")}
    started = time.monotonic()
    for index in range(WARMUP_STEPS + steps):
        t0 = time.perf_counter()
        inputs, targets = next(plain)
        t1 = time.perf_counter()
        plain_step(inputs, targets)
        t2 = time.perf_counter()
        batch = next(ours)
        t3 = time.perf_counter()
        trainer._train_step(batch, started, index + 1)
        t4 = time.perf_counter()
        if index >= WARMUP_STEPS:
            for name, seconds in zip(samples, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                samples[name].append(seconds)
    return samples


def measure(template: str, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    from deeptrain_trainer import engine
    from deeptrain_trainer.distributed import init_distributed

    dataset = digits_dataset()
    config = classifier_config(scratch / template, dataset, template=template, batch_size=args.batch_per_rank,
                               image_size=args.image_size, num_epochs=1000,
                               num_items_per_epoch=args.batch_per_rank * args.steps_per_epoch,
                               width=args.width, depth=args.depth)
    images, labels = load_image_tensors(dataset, args.image_size)
    measured: dict[str, Any] = {}

    def in_place_of_training(trainer: Any) -> None:
        measured.update(interleaved_steps(trainer, images, labels, args.steps))

    original = engine.Trainer._train_and_publish
    engine.Trainer._train_and_publish = in_place_of_training
    try:
        engine.Trainer(config, init_distributed()).run()
    finally:
        engine.Trainer._train_and_publish = original
    return measured


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ["DEEPTRAIN_REPORT"] = "none"
    scratch = Path(tempfile.mkdtemp(prefix="bench-step-cost-"))
    results: dict[str, Any] = {}
    rows = []
    for template in args.templates:
        samples = measure(template, args, scratch)
        plain = [load + step for load, step in zip(samples["plain load"], samples["plain step"], strict=True)]
        ours = [load + step for load, step in zip(samples["ours load"], samples["ours step"], strict=True)]
        extra = median(o - p for o, p in zip(ours, plain, strict=True))
        share = extra / median(plain)
        results[template] = {"samples_seconds": samples, "median_extra_seconds": extra, "extra_share": share}
        rows.append((template, *(fmt(median(samples[name]) * 1000, 2) for name in samples),
                     f"{extra * 1000:+.2f}", f"{share:+.1%}", "yes" if share <= GOAL_EXTRA else "NO"))
    print_table(simple_table(
        f"one process, arms alternating step by step, {args.steps} steps each: milliseconds per step (median), "
        f"{args.batch_per_rank} images of {args.image_size} px",
        ["template", "plain load", "plain step", "ours load", "ours step", "ours - plain (median)",
         "of a plain step", f"<= {GOAL_EXTRA:.0%}"], rows))
    path = write_results("step_cost", {"settings": {k: v for k, v in vars(args).items() if k != "output"},
                                       "goal_extra_share": GOAL_EXTRA, "templates": results}, args.output)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
