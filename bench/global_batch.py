"""Global-batch semantics: the same seed and data trained by 1 process and by 2 processes (same global
batch, half of it each) reach the same held-out metric, within a stated tolerance.

Each round is one seed; per model the 1-process and 2-process runs alternate (AB, BA, ...). The
table shows the held-out metric of every run, the mean difference (2 processes - 1 process) and
whether it is within the tolerance. The two arms are not bit-identical: a process's BatchNorm
normalises over its own half of the batch (torch's SyncBatchNorm exists for GPUs only), dropout draws
other masks, and floating-point sums run in another order. What must not differ is the objective:
every loss is averaged over the global batch (the detector's positive anchors and the segmenter's
Dice overlaps are summed over the processes), so the learning rate means the same in both arms.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib import add_common_arguments, alternate, pin_threads, print_table, simple_table, write_results
from trainer_setup import (
    CACHE_DIR,
    SMALL_DEPTH,
    SMALL_WIDTH,
    read_metrics_history,
    run_logged,
    trainer_command,
    write_config,
)

# |mean(2 processes) - mean(1 process)| of the held-out metric, averaged over the seeds.
TOLERANCE = 0.03


@dataclass(frozen=True)
class Case:
    name: str
    model_type: str
    template: str
    dataset: str  # an example dataset of `deeptrain data make`
    metric: str
    items: int  # of the example dataset, so that a run takes a few minutes on 2 CPU cores
    hyperparameters: dict[str, Any] = field(default_factory=dict)


CASES = {
    # The settings of examples/visual-classifier.yaml and examples/visual-segmenter.yaml.
    "classifier": Case("classifier", "visual-classifier", "ResNext", "digits", "accuracy", 600,
                       {"batch_size": 32, "image_size": 32, "lrate": 0.05, "average_horizontal_flips": False}),
    "segmenter": Case("segmenter", "visual-segmenter", "ResNext", "digits-segmentation", "mean_iou", 240,
                      {"batch_size": 16, "image_size": 64, "lrate": 0.05}),
}


def dataset(name: str, limit: int) -> tuple[Path, str]:
    from deeptrain_trainer.datasets import DATASETS, make_dataset

    folder = CACHE_DIR / f"{name}-{limit}"
    marker = folder / ".complete"
    if not marker.exists():
        make_dataset(name, folder, limit=limit)
        marker.write_text("made by bench/global_batch.py\n")
    return folder, DATASETS[name].format


def config(case: Case, output: Path, data: Path, data_format: str, *, epochs: int, seed: int) -> Any:
    from deeptrain_api import catalog
    from deeptrain_api.trainer_contract import DatasetConfig, JobRef, TemplateScale, TrainerConfig

    hyperparameters = catalog.resolve_hyperparameters(case.model_type, {
        **case.hyperparameters, "num_epochs": epochs, "init_epochs": epochs, "test_freq": epochs})
    return TrainerConfig(job=JobRef(name="bench", namespace="bench"), modelType=case.model_type, template=case.template,
                         templateScale=TemplateScale(width=SMALL_WIDTH, depth=SMALL_DEPTH),
                         hyperparameters=hyperparameters,
                         dataset=DatasetConfig(uri=str(data), format=data_format, validation_fraction=0.2),
                         outputUri=output.resolve().as_uri(), seed=seed)


def train(case: Case, data: Path, data_format: str, nproc: int, *, epochs: int, seed: int, workdir: Path) -> float:
    """The held-out metric after training with `nproc` processes."""
    output = workdir / f"{case.name}-{nproc}p-seed{seed}"
    path = write_config(config(case, output, data, data_format, epochs=epochs, seed=seed), output)
    code = run_logged(trainer_command(path, nproc), output.with_suffix(".log"), timeout=3600)
    if code != 0:
        raise SystemExit(f"{case.name} with {nproc} processes failed; see {output.with_suffix('.log')}")
    return float(read_metrics_history(output)[-1]["eval"][case.metric])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, default_rounds=3)
    parser.add_argument("--models", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--epochs", type=int, default=8, help="epochs per run (default 8)")
    parser.add_argument("--limit", type=int, default=None, help="items of every example dataset (default: per model)")
    args = parser.parse_args()
    pin_threads()

    rows, results = [], {}
    with tempfile.TemporaryDirectory(prefix="global-batch-") as workdir:
        for name in args.models.split(","):
            case = CASES[name]
            data, data_format = dataset(case.dataset, args.limit or case.items)

            def arm(nproc: int, case: Case = case, data: Path = data, data_format: str = data_format):
                return lambda seed: train(case, data, data_format, nproc, epochs=args.epochs, seed=seed,
                                          workdir=Path(workdir))

            scores = alternate({"1 process": arm(1), "2 processes": arm(2)}, args.rounds)
            one, two = scores["1 process"], scores["2 processes"]
            difference = statistics.mean(two) - statistics.mean(one)
            results[name] = {"metric": case.metric, "one_process": one, "two_processes": two,
                             "mean_difference": difference, "tolerance": TOLERANCE}
            rows.append((f"{name} ({case.metric})", ", ".join(f"{v:.3f}" for v in one), ", ".join(f"{v:.3f}" for v in two),
                         f"{difference:+.3f}", f"<= {TOLERANCE}", "yes" if abs(difference) <= TOLERANCE else "NO"))
    print_table(simple_table(f"held-out metric, 1 vs 2 processes, same global batch ({args.rounds} seeds, "
                             f"{args.epochs} epochs)", ["case", "1 process", "2 processes", "mean 2p - 1p", "tolerance",
                                                       "met"], rows))
    write_results("global_batch", {"epochs": args.epochs, "limit": args.limit, "seeds": args.rounds, "cases": results},
                  args.output)


if __name__ == "__main__":
    main()
