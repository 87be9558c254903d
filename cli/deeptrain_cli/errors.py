"""How `deeptrain` ends on a failure: one line on stderr naming the problem and the fix, and an exit code.

Exit codes (README, "Exit codes"): 0 done; 1 an input was refused (manifest, file, model directory,
image, option: the line names it); 2 command-line usage (the parser's own message); 3 an unexpected
error (a bug: `--debug` shows the traceback to report). `deeptrain run` passes the trainer's codes
through (10 invalid config, 11 invalid dataset, 12 output not writable, 13 not enough memory, 128 +
signal when stopped by a signal, the checkpoint written).
"""

from __future__ import annotations

import sys

import click
import typer
from typer.core import TyperGroup

EXIT_INPUT = 1
EXIT_INTERNAL = 3

# Errors whose message already names the problem and the fix, by module and class. They are looked up
# in sys.modules rather than imported: an error cannot be of a class whose module was never loaded, and
# the operator image (no torch, no Pillow) must not import the trainer to print a manifest error.
_INPUT_ERRORS = (
    ("deeptrain_api.manifests", "ManifestError"),
    ("deeptrain_api.trainer_config", "TrainerConfigError"),
    ("deeptrain_trainer.data.errors", "DatasetError"),
    ("deeptrain_trainer.workflow.errors", "WorkflowError"),
    ("deeptrain_trainer.inference", "ModelLoadError"),
)


# The parser's own errors and exits, which it reports itself (exit 2 for usage): typer's bundled copy
# of click in newer releases, click itself in older ones.
_PARSER_OUTCOMES = (typer.Exit, typer.Abort, click.ClickException, click.exceptions.Exit, click.exceptions.Abort,
                    getattr(typer, "TyperException", click.ClickException))


class InputError(Exception):
    """Refused input the command names itself; str() is the whole line."""


def _is_input_error(error: BaseException) -> bool:
    for module_name, class_name in _INPUT_ERRORS:
        cls = getattr(sys.modules.get(module_name), class_name, None)
        if cls is not None and isinstance(error, cls):
            return True
    return isinstance(error, InputError)


def one_line(error: BaseException) -> tuple[str, int]:
    """The line to print and the exit code for an exception a command raised."""
    if _is_input_error(error):
        return f"error: {error}", EXIT_INPUT
    if isinstance(error, OSError) and error.strerror:
        where = f"{error.filename}: " if error.filename else ""
        return f"error: {where}{error.strerror}; check the path and its permissions", EXIT_INPUT
    text = " ".join(str(error).split()) or "(no message)"
    return (f"error: unexpected {type(error).__name__}: {text}; run again with --debug for the traceback "
            "and report it"), EXIT_INTERNAL


class OneLineErrors(TyperGroup):
    """The root command: turns whatever a command raises into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except _PARSER_OUTCOMES:
            raise
        except Exception as error:
            if ctx.params.get("debug"):
                raise
            line, code = one_line(error)
            typer.echo(line, err=True)
            raise typer.Exit(code) from None
