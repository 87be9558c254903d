"""`deeptrain run`: the cluster's trainer, launched on this machine with torchrun.

The config is written to <output>/job.json and torchrun starts the processes exactly as a pod
would. Ctrl-C is forwarded once as SIGINT (each process finishes its step, writes the checkpoint
and exits; the next `deeptrain run` resumes); a second Ctrl-C kills the processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .artifacts import OutputDir, write_json
from .contract import (
    CONFIG_FILENAME,
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

MAX_RESTARTS = 3
CPU_PROCESSES = 2


def default_nproc() -> int:
    import torch

    return torch.cuda.device_count() or CPU_PROCESSES


def torchrun_command(config_path: Path, nproc: int, max_restarts: int = MAX_RESTARTS) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            f"--max-restarts={max_restarts}", "-m", "deeptrain_trainer", "--config", str(config_path)]


def trainer_env(termination_log: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault(ENV_REPORT, "console")
    # A restarted gang must not reuse the previous attempt's store (torchrun's own advice).
    env["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"] = "1"
    env[ENV_TERMINATION_LOG] = str(termination_log)
    return env


def run_local(config: TrainerConfig, nproc: int | None) -> int:
    console = Console(stderr=True)
    nproc = nproc or default_nproc()
    batch_size = int(config.hyperparameters["batch_size"])
    if batch_size % nproc:
        console.print(f"[red]spec.hyperparameters.batch_size: {batch_size} is the global batch and must be a "
                      f"multiple of the {nproc} processes; change it or pass --nproc[/red]")
        return int(ExitCode.INVALID_CONFIG)
    output = OutputDir(config.outputUri)
    config_path = output.path(CONFIG_FILENAME)
    write_json(config_path, json.loads(config.model_dump_json()))
    console.print(f"training {config.modelType}/{config.template} with {nproc} processes; output in {output.root}")

    with tempfile.TemporaryDirectory(prefix="deeptrain-") as scratch:
        termination_log = Path(scratch) / "termination-log"
        # The gang is restarted here, not by torchrun: torchrun would restart a permanent failure (bad
        # data, bad config) too, a crash loop that only repeats the same error.
        for attempt in range(MAX_RESTARTS + 1):
            termination_log.write_text("")
            if attempt:
                console.print(f"restarting the training processes (restart {attempt} of {MAX_RESTARTS})")
            process = subprocess.Popen(torchrun_command(config_path, nproc, max_restarts=0),
                                       env=trainer_env(termination_log),
                                       start_new_session=True)  # Ctrl-C reaches us only; we decide what to forward
            exit_code = _wait_forwarding_interrupts(process, console)
            message = parse_termination_message(termination_log.read_text())
            if exit_code == 0 or exit_code == 128 + signal.SIGINT or (message is not None and message.permanent):
                break

    if exit_code != 0:
        interrupted = (message is not None and message.reason == "Interrupted") or exit_code == 128 + signal.SIGINT
        if interrupted:
            console.print(f"interrupted; checkpoint kept in {output.path('checkpoints')}: run again to resume",
                          soft_wrap=True)
        elif message is not None and message.exitCode:
            console.print(f"[red]training failed: {message.reason}: {message.message}[/red]")
        return message.exitCode if message is not None and message.exitCode else exit_code
    _print_summary(console, output, message)
    return 0


def _wait_forwarding_interrupts(process: subprocess.Popen, console: Console) -> int:
    interrupts = 0
    while True:
        try:
            code = process.wait()
            break
        except KeyboardInterrupt:
            interrupts += 1
            if interrupts == 1:
                console.print("stopping after the current step and writing a checkpoint (Ctrl-C again to kill)")
                process.send_signal(signal.SIGINT)
            else:
                os.killpg(process.pid, signal.SIGKILL)
    if interrupts:
        return 128 + signal.SIGINT
    return code


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
