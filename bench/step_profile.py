"""Where a training step's time goes, in our trainer and in the plain DDP loop, per phase and per operator.

Both arms run under torchrun (default 2 processes, gloo, one thread each) on the settings of
trainer_overhead.py. A StepTimer (step_timer.py) splits every step after the warm-up epoch into
load (batch ready on the device), compute (forward, backward, optimizer step) and other (the
rest of the step's wall time: bookkeeping, reporting, collectives besides DDP's); torch.profiler
runs over the same steps and each rank's top operators by self CPU time are kept. Arms alternate
round by round as in every benchmark here; the table shows medians over all recorded steps of all
ranks and rounds.

    .venv/bin/python bench/step_profile.py                        # both templates, 2 processes
    .venv/bin/python bench/step_profile.py --templates InceptionBatchNorm --show-operators
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from benchlib import (
    BENCH_DIR,
    add_common_arguments,
    alternate,
    median,
    pin_threads,
    print_table,
    simple_table,
    write_results,
)

pin_threads()

from trainer_setup import (  # noqa: E402 (after pinning threads, before torch loads)
    add_workload_arguments,
    classifier_config,
    digits_dataset,
    run_logged,
    torchrun_prefix,
    write_config,
)

PHASES = ("load", "compute", "other", "total")
LAUNCH_TIMEOUT_SECONDS = 900


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, default_rounds=1)
    add_workload_arguments(parser)
    parser.add_argument("--nproc", type=int, default=2, help="processes per run (default 2)")
    parser.add_argument("--no-torch-profiler", action="store_true", help="the per-step timer only")
    parser.add_argument("--show-operators", action="store_true", help="print rank 0's top operators of each arm")
    return parser.parse_args(argv)


def run_arm(arm: str, config: Any, folder: Path, nproc: int, warmup_steps: int, torch_profiler: bool) -> dict[str, Any]:
    shutil.rmtree(folder, ignore_errors=True)
    config_path = write_config(config.model_copy(update={"outputUri": (folder / "out").resolve().as_uri()}), folder)
    steps_dir = folder / "steps"
    if arm == "ours":
        command = [*torchrun_prefix(nproc), str(BENCH_DIR / "profiled_trainer.py"), "--config", str(config_path),
                   "--profile-dir", str(steps_dir), "--warmup-steps", str(warmup_steps)]
        if not torch_profiler:
            command.append("--no-torch-profiler")
    else:
        command = [*torchrun_prefix(nproc), str(BENCH_DIR / "plain_loop.py"), "--config", str(config_path),
                   "--result", str(folder / "plain.json"), "--profile-dir", str(steps_dir)]
    log_path = folder / "run.log"
    code = run_logged(command, log_path, LAUNCH_TIMEOUT_SECONDS)
    if code != 0:
        raise RuntimeError(f"{arm} exited {code}; see {log_path}")
    steps = [step for path in sorted(steps_dir.glob("rank*.json")) for step in json.loads(path.read_text())["steps"]]
    operators = steps_dir / "rank0.profile.txt"
    return {"steps": steps, "operators": operators.read_text() if operators.exists() else ""}


def phase_medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    steps = [step for run in runs for step in run["steps"]]
    return {phase: median(step[phase] for step in steps) * 1000 for phase in PHASES}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dataset = digits_dataset()
    scratch = Path(tempfile.mkdtemp(prefix="bench-step-profile-"))
    results: dict[str, Any] = {}
    rows = []
    try:
        for template in args.templates:
            batch = args.batch_per_rank * args.nproc
            config = classifier_config(scratch / "unused", dataset, template=template, batch_size=batch,
                                       image_size=args.image_size, num_epochs=args.epochs,
                                       num_items_per_epoch=batch * args.steps_per_epoch,
                                       width=args.width, depth=args.depth)

            def arm(name: str, template: str = template, config: Any = config):
                return lambda round_index: run_arm(name, config, scratch / f"{template}-{name}-{round_index}",
                                                   args.nproc, args.steps_per_epoch, not args.no_torch_profiler)

            runs = alternate({"ours": arm("ours"), "plain": arm("plain")}, args.rounds)
            case = f"{template} {args.nproc}p"
            medians = {name: phase_medians(arm_runs) for name, arm_runs in runs.items()}
            results[case] = {"medians_ms": medians, "steps": {name: [r["steps"] for r in arm_runs] for name, arm_runs in runs.items()},
                             "operators_rank0": {name: arm_runs[-1]["operators"] for name, arm_runs in runs.items()}}
            for name in ("ours", "plain"):
                rows.append((f"{case} {name}", *(f"{medians[name][phase]:.1f}" for phase in PHASES),
                             str(sum(len(r["steps"]) for r in runs[name]))))
            rows.append((f"{case} ours - plain", *(f"{medians['ours'][p] - medians['plain'][p]:+.1f}" for p in PHASES), ""))
            if args.show_operators:
                for name in ("ours", "plain"):
                    print(f"\n{case} {name}, rank 0, top operators by self CPU time:\n{runs[name][-1]['operators']}")
        print_table(simple_table(f"milliseconds per step (median over steps after the warm-up epoch, all ranks), "
                                 f"{args.batch_per_rank}/process, {args.image_size} px",
                                 ["case", *PHASES, "steps"], rows))
        path = write_results("step_profile", {"settings": {k: v for k, v in vars(args).items() if k != "output"},
                                              "cases": results}, args.output)
        print(f"results: {path}")
        return 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
