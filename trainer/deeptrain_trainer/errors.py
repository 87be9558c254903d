"""Trainer failures and how each one ends the process: exit code, termination reason, retry or not.

The operator reads the exit code (permanent codes fail the job at once) and the termination message
(the reason and message it copies into the Failed condition). Everything else is retried.
"""

from __future__ import annotations

import signal

from deeptrain_api.trainer_contract import PERMANENT_FAILURE_REASONS, ExitCode, TerminationMessage


class TrainerError(Exception):
    """A failure the user can act on; subclasses fix the exit code."""

    exit_code: int = 1
    reason: str = "Error"


class ConfigError(TrainerError):
    """The trainer config cannot be run as given (names the spec field when there is one)."""

    exit_code = ExitCode.INVALID_CONFIG
    reason = PERMANENT_FAILURE_REASONS[ExitCode.INVALID_CONFIG]


class OutputError(TrainerError):
    """The output location cannot be written: full disk, no permission, unreachable store."""

    exit_code = ExitCode.OUTPUT_ERROR
    reason = PERMANENT_FAILURE_REASONS[ExitCode.OUTPUT_ERROR]


class InsufficientMemory(TrainerError):
    """The estimated training memory exceeds the container's limit: it would be OOM-killed, again and again."""

    exit_code = ExitCode.INSUFFICIENT_MEMORY
    reason = PERMANENT_FAILURE_REASONS[ExitCode.INSUFFICIENT_MEMORY]


class NonFiniteLoss(TrainerError):
    """Too many steps in a row had a non-finite gradient: retrying from the checkpoint would do the same."""

    exit_code = ExitCode.NON_FINITE_LOSS
    reason = PERMANENT_FAILURE_REASONS[ExitCode.NON_FINITE_LOSS]


class Interrupted(Exception):
    """SIGTERM/SIGINT arrived; the checkpoint is written and the process exits 128 + signal."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}; the next run resumes from the checkpoint")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _is_dataset_error(error: BaseException) -> bool:
    # Imported lazily: the data module pulls in image libraries this module does not need.
    from .data import DatasetError

    return isinstance(error, DatasetError)


def termination_for(error: BaseException) -> TerminationMessage:
    """The exit code and termination message a failure ends the process with."""
    if isinstance(error, Interrupted):
        return TerminationMessage(reason="Interrupted", message=str(error), exitCode=error.exit_code)
    if isinstance(error, TrainerError):
        return TerminationMessage(reason=error.reason, message=str(error), permanent=error.exit_code != 1,
                                  exitCode=int(error.exit_code))
    if _is_dataset_error(error):
        location = getattr(error, "location", None)
        message = f"{location}: {error}" if location and str(location) not in str(error) else str(error)
        return TerminationMessage(reason=PERMANENT_FAILURE_REASONS[ExitCode.INVALID_DATASET], message=message,
                                  permanent=True, exitCode=int(ExitCode.INVALID_DATASET))
    return TerminationMessage(reason="Error", message=f"{type(error).__name__}: {error}", exitCode=1)
