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

from .contract import ENV_LAUNCHER_PID
from .lifeline import die_with_parent


def main(argv: list[str]) -> int:
    log_path, torchrun_args = argv[0], argv[1:]
    launcher = os.environ.get(ENV_LAUNCHER_PID)
    die_with_parent(signal.SIGTERM, expected_parent=int(launcher) if launcher else None)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        handlers=[logging.FileHandler(log_path)], force=True)
    logging.captureWarnings(True)
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun_main

    try:
        torchrun_main(torchrun_args)
    except (ChildFailedError, SignalException) as error:
        with open(log_path, "a") as log:
            traceback.print_exc(file=log)
            if isinstance(error, ChildFailedError):
                log.write(error.format_msg() + "\n")
        return 128 + int(error.sigval) if isinstance(error, SignalException) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
