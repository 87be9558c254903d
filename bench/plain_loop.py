"""The baseline: a minimal hand-written PyTorch (DDP) training loop, started by torchrun.

It reads the same job.json as the trainer and trains the same model (built by the project's model
registry) with the same optimizer settings (SGD, Nesterov momentum 0.9, weight decay 1e-4 on
weights only), the same gradient clipping (the job's gradient_clip_norm, with torch's
clip_grad_norm_) and the same per-rank batch, but with nothing else: the images are decoded once into
memory, there is no checkpointing, evaluation, reporting or per-step collective besides DDP's own.
It times every epoch on rank 0 and writes the figures as JSON; the benchmarks drop the first
epoch as warm-up.

    python -m torch.distributed.run --standalone --nproc-per-node 2 bench/plain_loop.py \\
        --config out/job.json --result out/plain.json [--ddp always|auto] [--profile-dir out/steps]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from benchlib import pin_threads

pin_threads()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="a trainer job.json (TrainerConfig)")
    parser.add_argument("--result", type=Path, required=True, help="where rank 0 writes per-epoch items/s")
    parser.add_argument("--ddp", choices=("auto", "always"), default="auto",
                        help="auto: wrap in DDP only with 2+ processes (as the trainer does); always: also with 1")
    parser.add_argument("--profile-dir", type=Path, default=None,
                        help="time every step's phases and run torch.profiler after the first epoch (step_timer.py)")
    return parser.parse_args(argv)


def plain_update(model: Any, trained: Any, hp: Mapping[str, Any]) -> Callable[[Any, Any], None]:
    """One hand-written training step on `model` (forward through `trained`, its DDP wrapper or itself):
    cross-entropy, backward, clipping at the job's gradient_clip_norm (0: none) as torch's own
    function does it, and SGD with the trainer's settings. bench/step_cost.py steps with it too."""
    import torch
    import torch.nn.functional as F

    weights = [p for p in model.parameters() if p.ndim > 1]
    others = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = torch.optim.SGD([{"params": weights, "weight_decay": 1e-4}, {"params": others, "weight_decay": 0.0}],
                                lr=float(hp["lrate"]), momentum=0.9, nesterov=True)
    clip_norm = float(hp.get("gradient_clip_norm", 0.0))

    def update(inputs: Any, targets: Any) -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(trained(inputs), targets).backward()
        if clip_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        optimizer.step()

    return update


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    from trainer_setup import load_image_tensors

    from deeptrain_api.trainer_contract import load_config
    from deeptrain_trainer.models.registry import build_model

    torch.set_num_threads(1)
    config = load_config(args.config.read_text())
    hp = config.hyperparameters
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    wrap = world > 1 or args.ddp == "always"
    if wrap:
        # Same as the trainer's gloo group; a world of one needs the env a launcher sets.
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29511")
        dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(config.seed * 1000 + rank)

    image_size = int(hp["image_size"])
    images, labels = load_image_tensors(Path(config.dataset.uri), image_size)
    model = build_model(config.modelType, config.template, num_classes=int(labels.max()) + 1, image_size=image_size,
                        scale=config.templateScale, hyperparameters=hp)
    # Wrapped as the trainer wraps (engine.Trainer._wrap): no per-step broadcast of BatchNorm buffers.
    trained = DistributedDataParallel(model, forward_sync_buffers=False) if wrap else model
    update = plain_update(model, trained, hp)

    global_batch = int(hp["batch_size"])
    per_rank = global_batch // world
    items = int(hp["num_items_per_epoch"]) or len(images)
    steps = max(1, items // global_batch)
    model.train()

    timer = None
    if args.profile_dir is not None:
        from step_timer import StepTimer

        timer = StepTimer(args.profile_dir, rank, warmup_steps=steps)
    epoch_rates, epoch_seconds = [], []
    for epoch in range(int(hp["num_epochs"])):
        generator = torch.Generator().manual_seed(config.seed * 7919 + epoch)
        repeats = -(-steps * global_batch // len(images))
        order = torch.cat([torch.randperm(len(images), generator=generator) for _ in range(repeats)])
        mine = order[rank::world]
        started = time.monotonic()
        for step in range(steps):
            index = mine[step * per_rank:(step + 1) * per_rank]
            if timer is None:
                update(images[index], labels[index])
            else:
                batch = timer.load(lambda index=index: (images[index], labels[index]))
                timer.compute(lambda batch=batch: update(*batch))
        elapsed = time.monotonic() - started
        if timer is not None:
            timer.end_epoch()
        epoch_rates.append(steps * global_batch / elapsed)
        epoch_seconds.append(elapsed)
    if rank == 0:
        args.result.write_text(json.dumps({"epoch_items_per_second": epoch_rates, "epoch_seconds": epoch_seconds,
                                           "steps_per_epoch": steps, "world_size": world, "ddp": wrap}))
    if timer is not None:
        timer.write()
    if wrap:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
