"""Trainer overhead: our trainer's training images/s against a minimal hand-written DDP loop.

Both arms are started the same way (torchrun, gloo on CPU, one thread per process), read the same
job.json, build the same model from the registry and step the same SGD optimizer on the same
per-rank batch of the same images, clipping gradients as the job asks (gradient_clip_norm).
Ours is the real trainer (`python -m deeptrain_trainer`): it loads batches through its data
pipeline (a training set this small is decoded into memory before the first epoch), reports
progress, agrees on a stop flag every few seconds and writes checkpoints and metrics at epoch ends. The baseline (bench/plain_loop.py)
keeps the decoded images in memory and does nothing but forward, backward and step.

Every case runs 7 rounds by default; the table shows each round's ratio ours/plain, and a line per
case says whether the median meets the goal or, when the rounds' interquartile spread is wider than
the gap between the median and the goal, that the run does not show it either way. The load
average (other processes on the same cores) is printed at the start and at the end.

Measured: images/s over whole epochs, from the trainer's own metrics.jsonl (`itemsPerSecond`, timed
around the training steps of an epoch) and from the same per-epoch timer in the baseline. The
first epoch is warm-up and dropped. Evaluation, checkpoint and artifact writing happen outside
those timers: they are excluded from images/s and show up only in the separate wall-clock column.

    .venv/bin/python bench/trainer_overhead.py                     # defaults: 7 rounds, about 30 minutes on 2 cores
    .venv/bin/python bench/trainer_overhead.py --profile           # plus where our trainer's time goes
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import (
    Comparison,
    add_common_arguments,
    alternate,
    comparison_table,
    fmt,
    load_average,
    median,
    pin_threads,
    print_table,
    profile_parts,
    simple_table,
    write_results,
)

pin_threads()

from trainer_setup import (  # noqa: E402 (after pinning threads, before torch loads)
    add_workload_arguments,
    classifier_config,
    digits_dataset,
    read_metrics_history,
    run_logged,
    run_plain_loop,
    trainer_command,
    write_config,
)

GOAL = 0.97
# Where a training run's time can go, by the function that spends it (label -> function name).
TRAINER_PARTS = {
    "training epochs (Trainer._train_epoch)": "_train_epoch",
    "  forward+backward+step (Trainer._step)": "_step",
    "  loading batches (Trainer._train_batches)": "_train_batches",
    "    read file bytes (data.uris.read_bytes)": "read_bytes",
    "    decode (data.images.decode_image)": "decode_image",
    "    resize (data.transforms.resize_image)": "resize_image",
    "    to a uint8 tensor (data.transforms.image_to_tensor)": "image_to_tensor",
    "    flip decision, a hash per item (_is_flipped)": "_is_flipped",
    "    stack + normalise a batch (collate _stack_images)": "_stack_images",
    "  progress reporting (Trainer._report_step)": "_report_step",
    "  stop-flag check (StopSchedule.agreed_signal)": "agreed_signal",
    "evaluation (Trainer._evaluate)": "_evaluate",
    "checkpoints (Trainer._checkpoint)": "_checkpoint",
    "model, card and plots (Trainer._publish)": "_publish",
    "dataset scan (data.load_splits)": "load_splits",
    "whole run (Trainer.run)": "run",
}
LAUNCH_TIMEOUT_SECONDS = 900


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, default_rounds=7)
    add_workload_arguments(parser)
    parser.add_argument("--nprocs", nargs="+", type=int, default=[1, 2], help="processes per run (default 1 2)")
    parser.add_argument("--profile", action="store_true",
                        help="also run our trainer once in-process (1 process) under cProfile and show where the time goes")
    parser.add_argument("--keep", action="store_true", help="keep the run folders (logs, outputs) and print where")
    return parser.parse_args(argv)


def run_ours(config: Any, output: Path, nproc: int, warmup_epochs: int) -> dict[str, Any]:
    shutil.rmtree(output, ignore_errors=True)
    config_path = write_config(config, output)
    started = time.monotonic()
    code = run_logged(trainer_command(config_path, nproc), output.parent / f"{output.name}.log", LAUNCH_TIMEOUT_SECONDS)
    wall = time.monotonic() - started
    if code != 0:
        raise RuntimeError(f"the trainer exited {code}; see {output.parent / f'{output.name}.log'}")
    rates = [record["itemsPerSecond"] for record in read_metrics_history(output)]
    return {"items_per_second": median(rates[warmup_epochs:]), "epochs": rates, "wall_seconds": wall}


def profile_trainer(config: Any) -> dict[str, float]:
    """Run the real Trainer in this process (a world of one) under cProfile; seconds per part of the loop."""
    import os

    from deeptrain_trainer.distributed import init_distributed
    from deeptrain_trainer.engine import Trainer

    os.environ["DEEPTRAIN_REPORT"] = "none"
    return profile_parts(lambda: Trainer(config, init_distributed()).run(), TRAINER_PARTS)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_at_start = load_average()
    print(f"load average at the start: {load_at_start}", flush=True)
    dataset = digits_dataset()
    scratch = Path(tempfile.mkdtemp(prefix="bench-trainer-overhead-"))
    warmup = 1
    comparisons: list[Comparison] = []
    try:
        for template in args.templates:
            for nproc in args.nprocs:
                batch = args.batch_per_rank * nproc
                config = classifier_config(scratch / "unused", dataset, template=template, batch_size=batch,
                                           image_size=args.image_size, num_epochs=args.epochs,
                                           num_items_per_epoch=batch * args.steps_per_epoch,
                                           width=args.width, depth=args.depth)
                case = f"{template} {nproc}p"
                slug = f"{template}-{nproc}p"

                def ours(round_index: int, config: Any = config, nproc: int = nproc, slug: str = slug) -> dict[str, Any]:
                    output = scratch / f"{slug}-ours-{round_index}"
                    return run_ours(config.model_copy(update={"outputUri": output.resolve().as_uri()}), output, nproc, warmup)

                def plain(round_index: int, config: Any = config, nproc: int = nproc, slug: str = slug) -> dict[str, Any]:
                    return run_plain_loop(config, scratch / f"{slug}-plain-{round_index}", nproc, warmup)

                def show(arm: str, round_index: int, value: dict[str, Any], case: str = case) -> None:
                    print(f"{case} round {round_index + 1} {arm}: {fmt(value['items_per_second'])} images/s "
                          f"(epochs {[round(r, 1) for r in value['epochs']]}, wall {value['wall_seconds']:.1f} s)", flush=True)

                runs = alternate({"ours": ours, "plain": plain}, args.rounds, on_result=show)
                comparisons.append(Comparison(
                    case=case, unit="img/s", goal=GOAL,
                    ours=[run["items_per_second"] for run in runs["ours"]],
                    baseline=[run["items_per_second"] for run in runs["plain"]],
                    extra={"template": template, "nproc": nproc, "batch_per_rank": args.batch_per_rank,
                           "ours_epochs": [run["epochs"] for run in runs["ours"]],
                           "plain_epochs": [run["epochs"] for run in runs["plain"]],
                           "ours_wall_seconds": [run["wall_seconds"] for run in runs["ours"]],
                           "plain_wall_seconds": [run["wall_seconds"] for run in runs["plain"]]}))

        title = (f"trainer vs plain DDP loop: training images/s (templateScale {args.width}/{args.depth}, "
                 f"{args.image_size} px, {args.batch_per_rank}/process, {args.steps_per_epoch} steps/epoch, first epoch dropped)")
        load_at_end = load_average()
        print_table(comparison_table(title, comparisons, "deeptrain", "plain loop", per_round=True))
        for comparison in comparisons:
            print(comparison.verdict())
        print(f"load average (1, 5, 15 min): {load_at_start} at the start, {load_at_end} at the end")
        print_table(simple_table("whole launch, wall seconds (median): ours includes dataset scan, evaluation, "
                                 "checkpoints, model and plots", ["case", "deeptrain", "plain loop"],
                                 [(c.case, fmt(median(c.extra["ours_wall_seconds"])), fmt(median(c.extra["plain_wall_seconds"])))
                                  for c in comparisons]))
        profile: dict[str, Any] = {}
        if args.profile:
            for template in args.templates:
                output = scratch / f"profile-{template}"
                config = classifier_config(output, dataset, template=template, batch_size=args.batch_per_rank,
                                           image_size=args.image_size, num_epochs=args.epochs,
                                           num_items_per_epoch=args.batch_per_rank * args.steps_per_epoch,
                                           width=args.width, depth=args.depth)
                seconds = profile_trainer(config)
                profile[template] = seconds
                epochs = seconds["training epochs (Trainer._train_epoch)"] or 1.0
                print_table(simple_table(f"where our trainer's time goes, {template}, 1 process (cProfile, cumulative)",
                                         ["part", "seconds", "% of training epochs"],
                                         [(label, f"{value:.2f}", f"{100 * value / epochs:.1f}") for label, value in seconds.items()]))
        path = write_results("trainer_overhead", {
            "goal": f"ours/plain images/s >= {GOAL}",
            "settings": {key: value for key, value in vars(args).items() if key != "output"},
            "load_average": {"start": load_at_start, "end": load_at_end},
            "comparisons": [c.as_dict() for c in comparisons], "profile": profile}, args.output)
        print(f"results: {path}")
        return 0
    finally:
        if args.keep:
            print(f"run folders kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
