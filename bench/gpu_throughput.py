"""GPU training throughput per template: images/s per GPU and model FLOP utilisation (MFU).

For every image template at its model type's default image size, one GPU, full templateScale:
- bf16     torch.autocast(bfloat16) + channels_last, as the trainer runs on CUDA (engine.Trainer)
- fp32     the same model and batch in float32, channels-first: the reference the first is compared with
The two alternate round by round. FLOPs of one training step (forward + backward) are counted
with torch.utils.flop_counter.FlopCounterMode; MFU = counted FLOPs x steps/s / the GPU's peak dense
bf16 FLOP/s (from the vendor's datasheet for known GPUs, or --peak-tflops).

Published per-GPU training figures for these architectures (same image size and precision) are
listed in PUBLISHED_IMAGES_PER_SECOND with their source; the column stays blank for any template
without one.

Needs a CUDA GPU and --gpu; without --gpu it only describes what it would run.

    .venv/bin/python bench/gpu_throughput.py --gpu
    .venv/bin/python bench/gpu_throughput.py --gpu --templates ResNext --batch 128 --rounds 5
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from benchlib import (
    Comparison,
    add_common_arguments,
    alternate,
    comparison_table,
    fmt,
    print_table,
    simple_table,
    write_results,
)

# (model type, template): every image template, each under the model type whose default size it gets.
CASES = [
    ("visual-classifier", "InceptionV2"),
    ("visual-classifier", "InceptionBatchNorm"),
    ("visual-classifier", "InceptionResnetV2"),
    ("visual-classifier", "ResNext"),
    ("visual-detector", "InceptionV4"),
]

# Peak dense bf16 tensor-core throughput, TFLOP/s, from the vendors' datasheets (without sparsity).
PEAK_BF16_TFLOPS = {
    "H100 80GB HBM3": 989.4,  # H100 SXM5 datasheet
    "H100 PCIe": 756.0,  # H100 PCIe datasheet
    "H200": 989.4,  # same tensor cores as H100 SXM5 (H200 datasheet)
    "A100": 312.0,  # A100 datasheet (SXM and PCIe)
}

# template -> (images/s per GPU, "source"). Only figures with a source that states the same
# architecture, image size and precision belong here; none has been checked in yet.
PUBLISHED_IMAGES_PER_SECOND: dict[str, tuple[float, str]] = {}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, default_rounds=3)
    parser.add_argument("--gpu", action="store_true", help="run (needs CUDA); without it, describe only")
    parser.add_argument("--templates", nargs="+", default=[template for _, template in CASES])
    parser.add_argument("--batch", type=int, default=64, help="images per step (default 64)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per round, after 10 warm-up steps (default 30)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the GPU's peak dense bf16 TFLOP/s, when it is not one of: " + ", ".join(PEAK_BF16_TFLOPS))
    return parser.parse_args(argv)


def build(model_type: str, template: str, image_size: int, batch: int, bf16: bool) -> tuple[Any, Any, Any, Any]:
    import torch

    from deeptrain_api import catalog
    from deeptrain_api.trainer_contract import TemplateScale
    from deeptrain_trainer.models.registry import build_model

    num_classes = 10
    model = build_model(model_type, template, num_classes=num_classes, image_size=image_size, scale=TemplateScale(),
                        hyperparameters=catalog.model_type(model_type).defaults).cuda()
    images = torch.randn(batch, 3, image_size, image_size, device="cuda")
    if bf16:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    if model_type == catalog.VISUAL_DETECTOR:
        size = float(image_size)
        targets = [{"boxes": torch.tensor([[0.1 * size, 0.1 * size, 0.5 * size, 0.6 * size]], device="cuda"),
                    "labels": torch.tensor([1], device="cuda")} for _ in range(batch)]
    else:
        targets = torch.randint(0, num_classes, (batch,), device="cuda")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    return model, images, targets, optimizer


def train_step(model: Any, images: Any, targets: Any, optimizer: Any, bf16: bool) -> None:
    import contextlib

    import torch

    optimizer.zero_grad(set_to_none=True)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with autocast:
        loss, _ = model.loss(model(images), targets)
    loss.backward()
    optimizer.step()


def images_per_second(model_type: str, template: str, image_size: int, args: argparse.Namespace, bf16: bool) -> float:
    import torch

    model, images, targets, optimizer = build(model_type, template, image_size, args.batch, bf16)
    for _ in range(10):
        train_step(model, images, targets, optimizer, bf16)
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(args.steps):
        train_step(model, images, targets, optimizer, bf16)
    torch.cuda.synchronize()
    return args.steps * args.batch / (time.perf_counter() - started)


def step_flops(model_type: str, template: str, image_size: int, batch: int) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    model, images, targets, optimizer = build(model_type, template, image_size, batch, bf16=True)
    with FlopCounterMode(display=False) as counter:
        train_step(model, images, targets, optimizer, bf16=True)
    return counter.get_total_flops()


def peak_tflops(args: argparse.Namespace) -> tuple[float | None, str]:
    import torch

    name = torch.cuda.get_device_name()
    if args.peak_tflops:
        return args.peak_tflops, f"{name} (--peak-tflops)"
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in name:
            return value, name
    return None, name


def describe(args: argparse.Namespace) -> int:
    from deeptrain_api import catalog

    print_table(simple_table("bench/gpu_throughput.py --gpu would measure (not run: no --gpu)",
                             ["template", "model type", "image size", "batch", "arms"],
                             [(template, model_type, catalog.model_type(model_type).defaults["image_size"], args.batch,
                               "bf16+channels_last vs fp32") for model_type, template in CASES
                              if template in args.templates]))
    print("columns it prints: images/s per GPU (bf16, fp32), ratio bf16/fp32, GFLOP per image (training step), "
          "MFU % of the GPU's peak dense bf16, published figure and source (blank when unknown)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.gpu:
        return describe(args)
    import torch

    from deeptrain_api import catalog

    if not torch.cuda.is_available():
        raise SystemExit("--gpu: no CUDA device is visible")
    torch.backends.cudnn.benchmark = True
    peak, device = peak_tflops(args)
    comparisons, rows = [], []
    for model_type, template in CASES:
        if template not in args.templates:
            continue
        image_size = int(catalog.model_type(model_type).defaults["image_size"])
        runs = alternate({"bf16": lambda r, mt=model_type, t=template, s=image_size: images_per_second(mt, t, s, args, True),
                          "fp32": lambda r, mt=model_type, t=template, s=image_size: images_per_second(mt, t, s, args, False)},
                         args.rounds)
        flops_per_image = step_flops(model_type, template, image_size, args.batch) / args.batch
        comparison = Comparison(case=f"{template} {image_size} px", ours=runs["bf16"], baseline=runs["fp32"], unit="img/s",
                                extra={"model_type": model_type, "gflop_per_image": flops_per_image / 1e9})
        rate = sorted(runs["bf16"])[len(runs["bf16"]) // 2]
        mfu = rate * flops_per_image / (peak * 1e12) if peak else None
        published = PUBLISHED_IMAGES_PER_SECOND.get(template)
        comparison.extra.update({"mfu": mfu, "published": published})
        comparisons.append(comparison)
        rows.append((comparison.case, fmt(rate), f"{flops_per_image / 1e9:.2f}",
                     "-" if mfu is None else f"{100 * mfu:.1f}%",
                     "" if published is None else f"{published[0]:,.0f} ({published[1]})"))
    print_table(comparison_table(f"training images/s per GPU, {device}, batch {args.batch}", comparisons,
                                 "bf16 + channels_last", "fp32"))
    print_table(simple_table(f"model FLOP utilisation, peak {peak or '?'} TFLOP/s bf16",
                             ["case", "bf16 img/s", "GFLOP/image (fwd+bwd)", "MFU", "published figure"], rows))
    path = write_results("gpu_throughput", {"device": device, "peak_bf16_tflops": peak,
                                            "settings": {k: v for k, v in vars(args).items() if k != "output"},
                                            "comparisons": [c.as_dict() for c in comparisons]},
                         args.output if args.output else None)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
