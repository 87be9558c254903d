"""The trainer's memory estimate (deeptrain_trainer.memory) against the measured peak of a real step.

Each case runs in a fresh process: build the classifier, note the resident memory, take one SGD step
(forward, backward, optimizer with momentum) on random images, and read the peak resident memory;
the increase is the measurement. The estimate is computed afterwards in the same process (its probe
pass must not raise the peak being measured). Ratio = estimate / measured: at least 1 means the
check never lets through a job that does not fit; far above 1 would refuse jobs that do.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

from benchlib import (
    add_common_arguments,
    median,
    pin_threads,
    print_table,
    simple_table,
    trainer_env,
    write_results,
)

DEFAULT_CASES = ["ResNext:128:16", "ResNext:256:16", "ResNext:512:8", "InceptionBatchNorm:256:16",
                 "InceptionV2:256:16"]
GIB = 1 << 30


def measure(case: str, width: float, depth: float) -> dict[str, float]:
    """In this (fresh) process: the measured increase of peak RSS for one step, and the estimate."""
    pin_threads()
    import psutil
    import torch

    from deeptrain_api import catalog
    from deeptrain_api.trainer_contract import DatasetConfig, JobRef, TemplateScale, TrainerConfig
    from deeptrain_trainer.memory import estimate_training_memory
    from deeptrain_trainer.optim import build_optimizer
    from deeptrain_trainer.tasks import task_for
    from deeptrain_trainer.tasks.base import ModelSpec

    template, image_size, batch = case.split(":")
    hyperparameters = catalog.resolve_hyperparameters(catalog.VISUAL_CLASSIFIER, {"image_size": int(image_size),
                                                                                  "lrate": 0.01})
    config = TrainerConfig(job=JobRef(name="bench"), modelType=catalog.VISUAL_CLASSIFIER, template=template,
                           templateScale=TemplateScale(width=width, depth=depth), hyperparameters=hyperparameters,
                           dataset=DatasetConfig(uri="unused", format="imagefolder"), outputUri="file:///unused")
    task = task_for(catalog.VISUAL_CLASSIFIER)
    model = task.build_model(ModelSpec.from_config(config, [str(i) for i in range(10)]))
    optimizer = build_optimizer(model, hyperparameters, task.optimizer)
    images = torch.rand(int(batch), 3, int(image_size), int(image_size))
    labels = torch.randint(0, 10, (int(batch),))
    before = psutil.Process().memory_info().rss
    model.train()
    loss = torch.nn.functional.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    estimate = estimate_training_memory(model, image_size=int(image_size), per_rank_batch=int(batch),
                                        optimizer=task.optimizer, device=torch.device("cpu"))
    return {"measured": peak - before, "estimate": estimate.total, "activations": estimate.activations}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, default_rounds=2)
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES, help="TEMPLATE:IMAGE_SIZE:BATCH per process")
    parser.add_argument("--width", type=float, default=0.25, help="templateScale.width (default 0.25)")
    parser.add_argument("--depth", type=float, default=0.34, help="templateScale.depth (default 0.34)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.width, args.depth)))
        return

    samples: dict[str, list[dict[str, float]]] = {case: [] for case in args.cases}
    for _ in range(args.rounds):
        for case in args.cases:
            child = subprocess.run([sys.executable, str(Path(__file__)), "--child", case, "--width", str(args.width),
                                    "--depth", str(args.depth)], env=trainer_env(), capture_output=True, text=True,
                                   check=True)
            samples[case].append(json.loads(child.stdout.strip().splitlines()[-1]))
    rows = []
    for case, runs in samples.items():
        measured = median(run["measured"] for run in runs)
        estimate = median(run["estimate"] for run in runs)
        rows.append([case, f"{estimate / GIB:.3f} GiB", f"{measured / GIB:.3f} GiB",
                     f"{estimate / max(measured, 1):.2f}", len(runs)])
    print_table(simple_table("memory estimate vs measured peak of one training step (per process)",
                             ["case (template:size:batch)", "estimate", "measured", "estimate/measured", "rounds"],
                             rows))
    write_results("memory_estimate", {"settings": vars(args), "samples": samples}, args.output)


if __name__ == "__main__":
    main()
