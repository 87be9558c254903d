"""`python -m deeptrain_trainer`: the entry point torchrun starts in every training process."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from deeptrain_api.trainer_contract import ENV_CONFIG

from .lifeline import die_with_parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m deeptrain_trainer",
        description="Train one deeptrain model. Normally started by torchrun (one process per device); "
                    "reads the trainer config (job.json) and writes the model, checkpoints, metrics and "
                    "plots under its outputUri. Resumes from the checkpoint there when it is of the same "
                    "config and dataset.",
        epilog=f"Exit codes: 0 trained; 10 invalid config; 11 invalid dataset; 12 output not writable; "
               "13 not enough memory for the estimate (in a cluster pod); "
               f"130/143 interrupted (checkpoint written); 1 other errors (retried). "
               f"Env: {ENV_CONFIG} (config path), DEEPTRAIN_REPORT (console | kubernetes | none), "
               f"DEEPTRAIN_TERMINATION_LOG.",
    )
    parser.add_argument("--config", default=os.environ.get(ENV_CONFIG),
                        help=f"path of job.json (default: ${ENV_CONFIG})")
    args = parser.parse_args(argv)
    if not args.config:
        parser.error(f"give --config PATH or set {ENV_CONFIG}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # torchrun starts each rank in a session of its own: without this, a torchrun killed outright
    # would leave its ranks training on (SIGTERM makes them checkpoint and exit).
    die_with_parent(signal.SIGTERM)
    from .engine import run_from_config_file

    return run_from_config_file(args.config)


if __name__ == "__main__":
    sys.exit(main())
