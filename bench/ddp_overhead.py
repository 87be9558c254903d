"""DDP overhead: what DistributedDataParallel costs on one process, and what a second process buys.

All arms run bench/plain_loop.py under torchrun (gloo, CPU, one thread per process) on the same
job.json, model and per-rank batch, alternated round by round:
- bare, 1 process       the model itself, no process group
- DDP, 1 process        the same model wrapped in DDP in a world of one (gradient hooks, bucketing,
                        a gloo all-reduce with nobody else) - goal: >= 0.93 of bare
- DDP, 2 processes      two ranks, the per-rank batch unchanged (so twice the global batch):
                        images/s of the pair against bare on one process (reported, no goal)

The trainer itself never wraps a world of one in DDP (engine.Trainer._wrap), so the first ratio
is what a one-process job would pay if it did, and the second is the best a two-process job can
get on this machine.

    .venv/bin/python bench/ddp_overhead.py
    .venv/bin/python bench/ddp_overhead.py --templates ResNext --rounds 5 --steps-per-epoch 20
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

from benchlib import (
    Comparison,
    add_common_arguments,
    alternate,
    comparison_table,
    fmt,
    paired_ratio,
    pin_threads,
    print_table,
    write_results,
)

pin_threads()

from trainer_setup import add_workload_arguments, classifier_config, digits_dataset, run_plain_loop  # noqa: E402

DDP_ONE_PROCESS_GOAL = 0.93


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, default_rounds=3)
    add_workload_arguments(parser)
    return parser.parse_args(argv)


def measure_template(template: str, args: argparse.Namespace, dataset: Path, scratch: Path) -> list[Comparison]:
    def config_for(nproc: int) -> Any:
        batch = args.batch_per_rank * nproc
        return classifier_config(scratch / "unused", dataset, template=template, batch_size=batch,
                                 image_size=args.image_size, num_epochs=args.epochs,
                                 num_items_per_epoch=batch * args.steps_per_epoch, width=args.width, depth=args.depth)

    arms = {
        "bare 1p": lambda r: run_plain_loop(config_for(1), scratch / f"{template}-bare-{r}", 1, 1, ddp="auto"),
        "DDP 1p": lambda r: run_plain_loop(config_for(1), scratch / f"{template}-ddp1-{r}", 1, 1, ddp="always"),
        "DDP 2p": lambda r: run_plain_loop(config_for(2), scratch / f"{template}-ddp2-{r}", 2, 1, ddp="auto"),
    }
    runs = alternate(arms, args.rounds, on_result=lambda arm, r, value: print(
        f"{template} round {r + 1} {arm}: {fmt(value['items_per_second'])} images/s "
        f"(epochs {[round(x, 1) for x in value['epochs']]})", flush=True))
    rate = {arm: [run["items_per_second"] for run in values] for arm, values in runs.items()}
    epochs = {f"{arm} epochs": [run["epochs"] for run in values] for arm, values in runs.items()}
    return [
        Comparison(case=f"{template}: DDP vs bare, 1 process", unit="img/s", goal=DDP_ONE_PROCESS_GOAL,
                   ours=rate["DDP 1p"], baseline=rate["bare 1p"], extra={"template": template, **epochs}),
        Comparison(case=f"{template}: 2 processes (DDP) vs 1 (bare)", unit="img/s", ours=rate["DDP 2p"],
                   baseline=rate["bare 1p"], notes="ideal 2.0 on 2 idle cores",
                   extra={"template": template, "ddp_2p_over_ddp_1p": paired_ratio(rate["DDP 2p"], rate["DDP 1p"])}),
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dataset = digits_dataset()
    scratch = Path(tempfile.mkdtemp(prefix="bench-ddp-overhead-"))
    try:
        comparisons: list[Comparison] = []
        for template in args.templates:
            comparisons += measure_template(template, args, dataset, scratch)
        title = (f"DDP overhead, plain loop, images/s (templateScale {args.width}/{args.depth}, {args.image_size} px, "
                 f"{args.batch_per_rank}/process, first epoch dropped)")
        print_table(comparison_table(title, comparisons, "first arm", "second arm"))
        path = write_results("ddp_overhead", {
            "goal": f"DDP/bare on 1 process >= {DDP_ONE_PROCESS_GOAL}; 2 processes vs 1 reported",
            "settings": {key: value for key, value in vars(args).items() if key != "output"},
            "comparisons": [c.as_dict() for c in comparisons]}, args.output)
        print(f"results: {path}")
        return 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
