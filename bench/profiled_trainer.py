"""Our trainer with a StepTimer around its loop: what `python -m deeptrain_trainer` runs, timed per step.

Started by torchrun exactly like the trainer; the timer wraps the loop's batch iterator (load) and
`Trainer._step` (compute) from outside, so the trainer itself carries no profiling code.

    python -m torch.distributed.run --standalone --nproc-per-node 2 bench/profiled_trainer.py \\
        --config out/job.json --profile-dir out/steps --warmup-steps 8
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from benchlib import pin_threads

pin_threads()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--profile-dir", type=Path, required=True)
    parser.add_argument("--warmup-steps", type=int, default=0, help="steps not recorded (the warm-up epoch)")
    parser.add_argument("--no-torch-profiler", action="store_true", help="per-step timer only")
    args = parser.parse_args()

    from step_timer import StepTimer

    from deeptrain_trainer import engine

    timer = StepTimer(args.profile_dir, int(os.environ.get("RANK", "0")), warmup_steps=args.warmup_steps,
                      use_profiler=not args.no_torch_profiler)
    batches, step = engine.Trainer._train_batches, engine.Trainer._step

    def timed_batches(self, *given):
        inner = iter(batches(self, *given))
        while True:
            try:
                batch = timer.load(lambda: next(inner))
            except StopIteration:
                timer.end_epoch()
                return
            yield batch

    engine.Trainer._train_batches = timed_batches
    engine.Trainer._step = lambda self, batch: timer.compute(lambda: step(self, batch))
    try:
        return engine.run_from_config_file(args.config)
    finally:
        timer.write()


if __name__ == "__main__":
    raise SystemExit(main())
