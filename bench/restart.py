"""Restart latency: SIGKILL one rank of a training gang, time until training steps again.

The gang is our trainer under `torchrun --max-restarts N` (2 processes, gloo, CPU), as `deeptrain
run` starts it. For each kill the clock starts at the SIGKILL and stops at the first step that
the restarted gang logs (rank 0 logs its first step right away; progress lines are throttled after
that). Phases, from the log lines as they arrive on the pipe:

    kill -> torchrun restarts the worker group -> "resumed from checkpoint" -> first step logged

The baseline is the same gang's cold start, measured in the same run: launch of torchrun until
its first step logged. A restart should cost no more than a cold start; what it costs beyond the
process start (tearing down the survivors, a new rendezvous, loading the checkpoint) is the
difference. Gangs alternate the two: each gang is a cold start followed by its share of the kills,
and ranks 1 and 0 are killed in turn.

    .venv/bin/python bench/restart.py                 # 10 kills over 3 gangs
    .venv/bin/python bench/restart.py --kills 20 --gangs 4
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import fmt, median, pin_threads, print_table, simple_table, trainer_env, write_results

pin_threads()

from trainer_setup import classifier_config, digits_dataset, trainer_command, write_config  # noqa: E402

STEP_LINE = re.compile(r"\[rank 0\] INFO epoch \d+/\d+ step \d+/\d+")
RESUMED_LINE = "resumed from checkpoint"
CHECKPOINT_LINE = re.compile(r"\[rank 0\] INFO checkpoint ")
# torchrun's agent logs these as it notices a dead worker (it signals the survivors) and once the
# whole group is down (its failure summary); the next attempt starts right after.
NOTICED_LINE = re.compile(r"closing signal SIGTERM")
GROUP_DOWN_LINE = re.compile(r"failed \(exitcode")
WAIT_SECONDS = 300


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=10, help="ranks to kill in all (default 10)")
    parser.add_argument("--gangs", type=int, default=3, help="gangs (each one cold start) to spread the kills over (default 3)")
    parser.add_argument("--nproc", type=int, default=2, help="processes in the gang (default 2)")
    parser.add_argument("--template", default="InceptionBatchNorm")
    parser.add_argument("--batch-per-rank", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--steps-per-epoch", type=int, default=4,
                        help="a checkpoint is written every epoch; short epochs keep the lost work small (default 4)")
    parser.add_argument("--run-before-kill", type=float, default=1.0,
                        help="seconds to let the resumed gang train before the next kill (default 1)")
    parser.add_argument("--output", type=Path, default=None, help="JSON path (default bench/results/restart.json)")
    parser.add_argument("--keep", action="store_true", help="keep the output folder and torchrun log")
    return parser.parse_args(argv)


@dataclass
class Kill:
    rank: int
    killed_at: float
    noticed_at: float | None = None
    group_down_at: float | None = None
    resumed_at: float | None = None
    first_step_at: float | None = None

    def seconds(self) -> dict[str, float | None]:
        def since(t: float | None, start: float | None) -> float | None:
            return None if t is None or start is None else t - start

        return {"rank": self.rank, "kill_to_step": since(self.first_step_at, self.killed_at),
                "kill_to_noticed": since(self.noticed_at, self.killed_at),
                "kill_to_group_down": since(self.group_down_at, self.killed_at),
                "kill_to_resumed": since(self.resumed_at, self.killed_at),
                "resumed_to_step": since(self.first_step_at, self.resumed_at)}


@dataclass
class Gang:
    """One torchrun process tree, its log lines timestamped as they arrive."""

    process: subprocess.Popen
    config_path: Path
    log_path: Path
    lines: queue.Queue = field(default_factory=queue.Queue)

    def pump(self) -> None:
        with open(self.log_path, "a") as log:
            for raw in self.process.stdout:  # type: ignore[union-attr]
                stamp = time.monotonic()
                line = raw.decode(errors="replace").rstrip()
                log.write(f"{stamp:.3f} {line}\n")
                self.lines.put((stamp, line))

    def wait_for(self, matches, what: str) -> float:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            try:
                stamp, line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no {what} within {WAIT_SECONDS} s; see {self.log_path}") from None
            if matches(line):
                return stamp

    def drain(self) -> None:
        while not self.lines.empty():
            self.lines.get_nowait()


def start_gang(config_path: Path, nproc: int, max_restarts: int, log_path: Path) -> Gang:
    env = trainer_env(DEEPTRAIN_REPORT="none", TORCH_DISABLE_SHARE_RDZV_TCP_STORE="1", PYTHONUNBUFFERED="1")
    env.pop("DEEPTRAIN_TERMINATION_LOG", None)
    process = subprocess.Popen(trainer_command(config_path, nproc, max_restarts), env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
    gang = Gang(process, config_path, log_path)
    threading.Thread(target=gang.pump, daemon=True).start()
    return gang


def worker_pid(config_path: Path, rank: int) -> int | None:
    """The training process of `rank` for this config (torchrun puts RANK in each worker's env)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(config_path).encode() in cmdline and b"deeptrain_trainer" in cmdline and f"RANK={rank}".encode() in environ \
                and b"torch.distributed.run" not in cmdline:
            return int(entry.name)
    return None


def kill_and_time(gang: Gang, rank: int) -> Kill:
    pid = None
    deadline = time.monotonic() + WAIT_SECONDS
    while pid is None:
        pid = worker_pid(gang.config_path, rank)
        if pid is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"rank {rank} never appeared")
            time.sleep(0.05)
    gang.drain()  # lines logged before the kill say nothing about the restart
    kill = Kill(rank=rank, killed_at=time.monotonic())
    os.kill(pid, signal.SIGKILL)
    # Lines arrive in order: the agent's restart notice, the new gang's resume, then its first step.
    kill.resumed_at = gang.wait_for(lambda line: RESUMED_LINE in line and "[rank 0]" in line, "resume after the kill")
    kill.first_step_at = gang.wait_for(STEP_LINE.search, "first step after the resume")
    return kill


def run_gang(index: int, kills: int, args: argparse.Namespace, folder: Path) -> tuple[float, list[Kill], Path]:
    output = folder / f"gang-{index}"
    config = classifier_config(output, digits_dataset(), template=args.template,
                               batch_size=args.batch_per_rank * args.nproc, image_size=args.image_size,
                               num_epochs=1000, num_items_per_epoch=args.batch_per_rank * args.nproc * args.steps_per_epoch,
                               test_freq=1000)
    config_path = write_config(config, output)
    log_path = folder / f"gang-{index}.log"
    launched = time.monotonic()
    gang = start_gang(config_path, args.nproc, max_restarts=kills + 1, log_path=log_path)
    try:
        cold_start = gang.wait_for(STEP_LINE.search, "first step") - launched
        gang.wait_for(CHECKPOINT_LINE.search, "first checkpoint")  # a kill before it would restart from scratch
        measured: list[Kill] = []
        for number in range(kills):
            time.sleep(args.run_before_kill)
            kill = kill_and_time(gang, rank=1 - number % 2 if args.nproc > 1 else 0)
            measured.append(kill)
            print(f"gang {index + 1} kill {number + 1} (rank {kill.rank}): training again after "
                  f"{kill.first_step_at - kill.killed_at:.2f} s (resumed from the checkpoint after "
                  f"{kill.resumed_at - kill.killed_at:.2f} s)", flush=True)
        return cold_start, measured, log_path
    finally:
        if gang.process.poll() is None:
            os.killpg(gang.process.pid, signal.SIGKILL)  # the whole tree this gang started, nothing else
        gang.process.wait()


def agent_phases(log_path: Path, kills: list[Kill]) -> None:
    """When torchrun's agent noticed each kill and when it had the old group down (first such lines)."""
    noticed, down = [], []
    for line in log_path.read_text().splitlines():
        stamp, _, text = line.partition(" ")
        if NOTICED_LINE.search(text):
            noticed.append(float(stamp))
        elif GROUP_DOWN_LINE.search(text):
            down.append(float(stamp))

    def first_between(stamps: list[float], start: float, end: float | None) -> float | None:
        inside = [stamp for stamp in stamps if start <= stamp <= (end or float("inf"))]
        return inside[0] if inside else None

    for kill in kills:
        kill.noticed_at = first_between(noticed, kill.killed_at, kill.resumed_at)
        kill.group_down_at = first_between(down, kill.killed_at, kill.resumed_at)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="bench-restart-"))
    per_gang = [args.kills // args.gangs + (1 if index < args.kills % args.gangs else 0) for index in range(args.gangs)]
    cold_starts: list[float] = []
    kills: list[Kill] = []
    for index, count in enumerate(per_gang):
        cold, measured, log_path = run_gang(index, count, args, folder)
        print(f"gang {index + 1}: cold start to first step {cold:.2f} s", flush=True)
        agent_phases(log_path, measured)
        cold_starts.append(cold)
        kills += measured

    samples = [kill.seconds() for kill in kills]

    def column(key: str) -> list[float]:
        return [sample[key] for sample in samples if sample[key] is not None]

    def row(label: str, values: list[float]) -> tuple[str, str, str, int]:
        return label, fmt(median(values), 2), fmt(max(values) if values else None, 2), len(values)

    restart = column("kill_to_step")
    rows = [
        row("kill -> first step logged (restart)", restart),
        row("  kill -> torchrun signals the survivors", column("kill_to_noticed")),
        row("  kill -> torchrun reports the old group down", column("kill_to_group_down")),
        row("  kill -> new gang resumed from checkpoint", column("kill_to_resumed")),
        row("  resumed -> first step logged", column("resumed_to_step")),
        row("launch -> first step logged (cold start, baseline)", cold_starts),
        ("ratio restart / cold start (medians)", f"{median(restart) / median(cold_starts):.2f}", "", ""),
    ]
    print_table(simple_table(
        f"restart after SIGKILL of one rank: {args.template}, {args.nproc} processes, torchrun --max-restarts",
        ["seconds", "median", "worst", "samples"], rows))
    path = write_results("restart", {
        "settings": {key: value for key, value in vars(args).items() if key != "output"},
        "restart_seconds": {"median": median(restart), "worst": max(restart), "samples": restart},
        "cold_start_seconds": {"median": median(cold_starts), "worst": max(cold_starts), "samples": cold_starts},
        "kills": samples}, args.output)
    print(f"results: {path}")
    if args.keep:
        print(f"logs kept in {folder}")
    else:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
