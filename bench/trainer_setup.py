"""Datasets, trainer configs and torchrun command lines that the trainer benchmarks share.

The data is the project's own `digits` example (32 px RGB PNGs), made once into bench/.cache so
every arm of every benchmark reads the very same files.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchlib import BENCH_DIR, trainer_env

CACHE_DIR = BENCH_DIR / ".cache"
# The size the trainer's own tests train at: small enough for two shared CPU cores.
SMALL_WIDTH = 0.25
SMALL_DEPTH = 0.34


def add_workload_arguments(parser: argparse.ArgumentParser) -> None:
    """The training workload the trainer-vs-plain-loop benchmarks share: templates, batch, size, epochs."""
    parser.add_argument("--templates", nargs="+", default=["ResNext", "InceptionBatchNorm"])
    parser.add_argument("--batch-per-rank", type=int, default=32, help="images per process per step (default 32)")
    parser.add_argument("--image-size", type=int, default=32, help="pixels (default 32, the digits' own size)")
    parser.add_argument("--width", type=float, default=0.25, help="templateScale.width (default 0.25)")
    parser.add_argument("--depth", type=float, default=0.34, help="templateScale.depth (default 0.34)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run, the first one is warm-up (default 3)")
    parser.add_argument("--steps-per-epoch", type=int, default=8, help="optimizer steps per epoch (default 8)")


def digits_dataset(limit: int | None = None) -> Path:
    """The digits imagefolder (all 1797 images, or the first `limit`), made on first use."""
    folder = CACHE_DIR / (f"digits-{limit}" if limit else "digits")
    marker = folder / ".complete"
    if not marker.exists():
        from deeptrain_trainer.datasets import make_dataset

        make_dataset("digits", folder, limit=limit)
        marker.write_text("made by bench/trainer_setup.py\n")
    return folder


def image_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*.png") if path.is_file())


def classifier_config(output: Path, dataset: Path, *, template: str, batch_size: int, image_size: int,
                      num_epochs: int, num_items_per_epoch: int, test_freq: int | None = None,
                      width: float = SMALL_WIDTH, depth: float = SMALL_DEPTH, validation_fraction: float = 0.1,
                      seed: int = 0) -> Any:
    """A visual-classifier TrainerConfig, exactly what the operator would render into job.json."""
    from deeptrain_api import catalog
    from deeptrain_api.trainer_contract import DatasetConfig, JobRef, TemplateScale, TrainerConfig

    hyperparameters = catalog.resolve_hyperparameters(catalog.VISUAL_CLASSIFIER, {
        "batch_size": batch_size, "image_size": image_size, "num_epochs": num_epochs,
        "num_items_per_epoch": num_items_per_epoch, "lrate": 0.02,
        # Evaluate only after the last epoch: the benchmarks time training steps, not evaluation.
        "test_freq": test_freq or num_epochs,
    })
    return TrainerConfig(
        job=JobRef(name="bench", namespace="bench"),
        modelType=catalog.VISUAL_CLASSIFIER,
        template=template,
        templateScale=TemplateScale(width=width, depth=depth),
        hyperparameters=hyperparameters,
        dataset=DatasetConfig(uri=str(dataset), format="imagefolder", validation_fraction=validation_fraction),
        outputUri=output.resolve().as_uri(),
        seed=seed,
    )


def write_config(config: Any, output: Path) -> Path:
    output.mkdir(parents=True, exist_ok=True)
    path = output / "job.json"
    path.write_text(config.model_dump_json())
    return path


def torchrun_prefix(nproc: int, max_restarts: int = 0, extra: list[str] | None = None) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            f"--max-restarts={max_restarts}", *(extra or [])]


def trainer_command(config_path: Path, nproc: int, max_restarts: int = 0) -> list[str]:
    """Exactly how a pod (and `deeptrain run`) starts the trainer."""
    return [*torchrun_prefix(nproc, max_restarts), "-m", "deeptrain_trainer", "--config", str(config_path)]


def run_logged(command: list[str], log_path: Path, timeout: float, **env: str) -> int:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    environment = trainer_env(DEEPTRAIN_REPORT="none", TORCH_DISABLE_SHARE_RDZV_TCP_STORE="1",
                              DEEPTRAIN_TERMINATION_LOG=str(log_path.with_suffix(".termination")), **env)
    with open(log_path, "w") as log:
        return subprocess.run(command, env=environment, stdout=log, stderr=subprocess.STDOUT, timeout=timeout).returncode


def read_metrics_history(output: Path) -> list[dict[str, Any]]:
    path = output / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_image_tensors(folder: Path, image_size: int) -> tuple[Any, Any]:
    """Every image of an imagefolder decoded with plain Pillow into one normalised tensor, and labels.

    What a hand-written training script would do with a dataset this small: decode once, keep it
    in memory. Normalisation uses the ImageNet statistics, as the trainer does.
    """
    import numpy as np
    import torch
    from PIL import Image

    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)
    files = image_files(folder)
    classes = sorted({path.parent.name for path in files})
    pixels = np.empty((len(files), 3, image_size, image_size), dtype=np.float32)
    for index, path in enumerate(files):
        with Image.open(path) as image:
            rgb = image.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
        pixels[index] = ((np.asarray(rgb, dtype=np.float32) / 255.0 - mean) / std).transpose(2, 0, 1)
    labels = torch.tensor([classes.index(path.parent.name) for path in files], dtype=torch.long)
    return torch.from_numpy(pixels), labels


def photo_dataset(count: int = 400, width: int = 640, height: int = 480) -> Path:
    """An imagefolder of camera-sized JPEGs (smooth colour fields plus noise), made on first use.

    The digits are 32 px PNGs, far cheaper to decode than what users train on; these stand in for
    photos, so the loader is also measured where decoding is the real cost.
    """
    folder = CACHE_DIR / f"photos-{count}-{width}x{height}"
    marker = folder / ".complete"
    if not marker.exists():
        import numpy as np
        from PIL import Image

        rng = np.random.default_rng(7)
        for index in range(count):
            concept = f"class{index % 4}"
            coarse = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
            field = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), dtype=np.int16)
            noisy = (field + rng.normal(0, 12, size=field.shape)).clip(0, 255).astype(np.uint8)
            path = folder / concept / f"{index:04d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(noisy).save(path, quality=90)
        marker.write_text("made by bench/trainer_setup.py\n")
    return folder


def run_plain_loop(config: Any, output: Path, nproc: int, warmup_epochs: int, *, ddp: str = "auto",
                   timeout: float = 900) -> dict[str, Any]:
    """One torchrun launch of bench/plain_loop.py on `config`; images/s of the epochs after warm-up."""
    import shutil
    import time

    from benchlib import median

    shutil.rmtree(output, ignore_errors=True)
    config_path = write_config(config, output)
    result = output / "plain.json"
    command = [*torchrun_prefix(nproc), str(BENCH_DIR / "plain_loop.py"), "--config", str(config_path),
               "--result", str(result), "--ddp", ddp]
    started = time.monotonic()
    log_path = output.parent / f"{output.name}.log"
    code = run_logged(command, log_path, timeout)
    wall = time.monotonic() - started
    if code != 0:
        raise RuntimeError(f"the plain loop exited {code}; see {log_path}")
    rates = json.loads(result.read_text())["epoch_items_per_second"]
    return {"items_per_second": median(rates[warmup_epochs:]), "epochs": rates, "wall_seconds": wall}
