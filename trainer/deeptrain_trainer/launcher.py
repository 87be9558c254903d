"""`deeptrain run`: the cluster's trainer, launched on this machine with torchrun.

The config is written to <output>/job.json and torchrun starts the processes exactly as a pod
would. The first SIGINT (Ctrl-C), SIGTERM (`timeout`, `kill`) or SIGHUP (a closed terminal) is
passed on (SIGINT as SIGINT, the others as SIGTERM, which the trainer handles the same way): each
process finishes its step, writes the checkpoint and exits, and the next `deeptrain run` resumes.
A second signal, or STOP_GRACE_SECONDS without an exit, kills the whole process tree; if this
process dies outright, torchrun and the ranks get SIGTERM from Linux (see `lifeline`).
torchrun's own log and tracebacks go to <output>/torchrun.log, printed when training fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.table import Table

from deeptrain_api.trainer_contract import (
    CONFIG_FILENAME,
    ENV_LAUNCHER_PID,
    ENV_REPORT,
    ENV_TERMINATION_LOG,
    MODEL_CARD,
    MODEL_WEIGHTS,
    PLOTS_DIR,
    ExitCode,
    TerminationMessage,
    TrainerConfig,
    parse_termination_message,
)

from .artifacts import OutputDir, write_json
from .lifeline import kill_tree, process_tree

MAX_RESTARTS = 3
CPU_PROCESSES = 2
TORCHRUN_LOG = "torchrun.log"
STOP_GRACE_SECONDS = 120  # a checkpoint of a large model on a slow disk; then the tree is killed
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def default_nproc() -> int:
    import torch

    return torch.cuda.device_count() or CPU_PROCESSES


def torchrun_command(config_path: Path, nproc: int, log_path: Path, max_restarts: int = MAX_RESTARTS) -> list[str]:
    return [sys.executable, "-m", "deeptrain_trainer.torchrun_logged", str(log_path),
            "--standalone", f"--nproc-per-node={nproc}", f"--max-restarts={max_restarts}",
            "-m", "deeptrain_trainer", "--config", str(config_path)]


def trainer_env(termination_log: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault(ENV_REPORT, "console")
    # A restarted gang must not reuse the previous attempt's store (torchrun's own advice).
    env["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"] = "1"
    env[ENV_TERMINATION_LOG] = str(termination_log)
    env[ENV_LAUNCHER_PID] = str(os.getpid())
    return env


class StopSignals:
    """While active, SIGINT/SIGTERM/SIGHUP are remembered and passed on to the running torchrun."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.signum = 0
        self.count = 0
        self.stopped_at: float | None = None
        self.process: subprocess.Popen | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        self.signum = self.signum or signum
        if self.stopped_at is None:
            self.stopped_at = time.monotonic()
        if self.process is None or self.process.poll() is not None:
            return
        if self.count == 1:
            _say(self.console, f"got {signal.Signals(signum).name}: stopping after the current step and writing "
                               "a checkpoint (signal again to kill)")
            self.process.send_signal(signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)
        else:
            kill_tree(process_tree(self.process.pid))

    def wait(self, process: subprocess.Popen) -> int:
        """The exit code of `process`; kills its tree when it outlives a stop request by STOP_GRACE_SECONDS."""
        self.process = process
        tree: list[int] = []
        killed = False
        while True:
            try:
                code = process.wait(timeout=1.0)
                break
            except subprocess.TimeoutExpired:
                if self.stopped_at is None:
                    tree = process_tree(process.pid)  # the ranks, to find them once torchrun is gone
                elif not killed and time.monotonic() - self.stopped_at > STOP_GRACE_SECONDS:
                    _say(self.console, f"the training processes did not stop within {STOP_GRACE_SECONDS} s; "
                                       "killing them")
                    kill_tree(process_tree(process.pid))
                    killed = True
        # Anything of the tree still alive (torchrun was killed before it could stop its ranks) goes too.
        kill_tree([pid for pid in tree[1:] if _is_our_child_process(pid)])
        return 128 + self.signum if self.signum else code


def _is_our_child_process(pid: int) -> bool:
    # Pids are reused: only a process still running our trainer (same command line) is one of ours.
    try:
        return b"deeptrain_trainer" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _say(console: Console, text: str) -> None:
    """Print, unless the terminal is gone (after SIGHUP writes fail; the run must still stop cleanly)."""
    try:
        console.print(text, soft_wrap=True, markup=False)
    except OSError:
        pass


def run_local(config: TrainerConfig, nproc: int | None) -> int:
    console = Console(stderr=True)
    nproc = nproc or default_nproc()
    batch_size = int(config.hyperparameters["batch_size"])
    if batch_size % nproc:
        console.print(f"spec.hyperparameters.batch_size: {batch_size} is the global batch and must be a "
                      f"multiple of the {nproc} processes; change it or pass --nproc", style="red", markup=False)
        return int(ExitCode.INVALID_CONFIG)
    output = OutputDir(config.outputUri)
    config_path = output.path(CONFIG_FILENAME)
    write_json(config_path, json.loads(config.model_dump_json()))
    log_path = output.path(TORCHRUN_LOG)
    log_path.write_text("")
    console.print(f"training {config.modelType}/{config.template} with {nproc} processes; output in {output.root}",
                  markup=False)

    with tempfile.TemporaryDirectory(prefix="deeptrain-") as scratch, StopSignals(console) as stop:
        termination_log = Path(scratch) / "termination-log"
        # The gang is restarted here, not by torchrun: torchrun would restart a permanent failure (bad
        # data, bad config) too, a crash loop that only repeats the same error.
        for attempt in range(MAX_RESTARTS + 1):
            termination_log.write_text("")
            if attempt:
                _say(console, f"restarting the training processes (restart {attempt} of {MAX_RESTARTS})")
            process = subprocess.Popen(torchrun_command(config_path, nproc, log_path, max_restarts=0),
                                       env=trainer_env(termination_log),
                                       start_new_session=True)  # signals reach us only; we decide what to forward
            exit_code = stop.wait(process)
            message = parse_termination_message(termination_log.read_text())
            if exit_code == 0 or stop.signum or (message is not None and message.permanent):
                break

    if exit_code != 0:
        interrupted = stop.signum or (message is not None and message.reason == "Interrupted")
        if interrupted:
            _say(console, f"interrupted; checkpoint kept in {output.path('checkpoints')}: run again to resume")
            if stop.signum:
                return 128 + stop.signum
        else:
            print_failure(console, message, exit_code, log_path)
        return message.exitCode if message is not None and message.exitCode else exit_code
    _print_summary(console, output, message)
    return 0


def print_failure(console: Console, message: TerminationMessage | None, exit_code: int, log_path: Path) -> None:
    """The trainer's one line (never read as markup: fixes name things like "[x, y, width, height]")."""
    if message is not None and message.exitCode:
        line = f"training failed: {message.reason}: {message.message}"
    else:
        line = f"training failed (exit code {exit_code}) without a message from the trainer"
    console.print(line, style="red", soft_wrap=True, markup=False)
    console.print(f"torchrun's log (with its traceback): {log_path}", soft_wrap=True, markup=False)


def _print_summary(console: Console, output: OutputDir, message: TerminationMessage | None) -> None:
    card_path = output.path(MODEL_CARD)
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    metrics = card.get("metrics") or (message.model.metrics if message and message.model else {})
    table = Table(title=f"{card.get('modelType', 'model')} / {card.get('template', '')}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, f"{value:.4f}")
    console.print(table)
    # Paths are printed whole (soft_wrap), so that they can be copied from any terminal width.
    console.print(f"weights:    {output.path(MODEL_WEIGHTS)}", soft_wrap=True)
    console.print(f"model card: {card_path}", soft_wrap=True)
    console.print(f"plots:      {output.path(PLOTS_DIR)}", soft_wrap=True)
    if output.is_remote:
        console.print(f"(uploaded to {output.uri})")
