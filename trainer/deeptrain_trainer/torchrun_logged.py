"""`python -m deeptrain_trainer.torchrun_logged LOG TORCHRUN-ARGS...`: torchrun as `deeptrain run` starts it.

The training processes keep the terminal (progress bar, their log lines, the one-line failure);
torchrun's own log and its traceback of a failed process go to LOG instead, whose path the CLI
prints when training fails. This process also ends (as on SIGTERM) when the CLI that started it
dies, however it dies.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback

from deeptrain_api.trainer_contract import ENV_LAUNCHER_PID

from .lifeline import die_with_parent


def main(argv: list[str]) -> int:
    log_path, torchrun_args = argv[0], argv[1:]
    launcher = os.environ.get(ENV_LAUNCHER_PID)
    die_with_parent(signal.SIGTERM, expected_parent=int(launcher) if launcher else None)
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun_main

    _log_to_file(log_path)

    try:
        torchrun_main(torchrun_args)
    except (ChildFailedError, SignalException) as error:
        with open(log_path, "a") as log:
            traceback.print_exc(file=log)
            if isinstance(error, ChildFailedError):
                log.write(error.format_msg() + "\n")
        return 128 + int(error.sigval) if isinstance(error, SignalException) else 1
    return 0


def _log_to_file(log_path: str) -> None:
    """Root logging, warnings and torch's own stderr handlers (its loggers do not propagate) into the file."""
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    logging.captureWarnings(True)
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if not isinstance(logger, logging.Logger):
            continue
        for old in [h for h in logger.handlers if isinstance(h, logging.StreamHandler)
                    and getattr(h, "stream", None) is sys.stderr]:
            logger.removeHandler(old)
            logger.addHandler(handler)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
