"""Checks on the operator's log under injected faults.

An injected API error makes a handler fail and kopf retry it; kopf logs that as an error with a
traceback. Those records are expected. Anything else with a traceback is an unhandled exception.
"""

from __future__ import annotations

from collections.abc import Iterable

from deeptrain_operator.kube import KubeError
from harness import OperatorRunner

RETRIED_HANDLER = r"failed with an exception and will (try again|ignore it)"


def expect_injected_errors(operator: OperatorRunner) -> None:
    """Let handler retries through `operator.check()`; `unexpected_errors` still inspects them."""
    operator.allow_errors(RETRIED_HANDLER)


def unexpected_errors(operator: OperatorRunner, injected: Iterable[int]) -> list[str]:
    """Error records with a traceback whose exception is not an API error with an injected status."""
    statuses = set(injected)
    problems = []
    for record in operator.records:
        if record.exc_info is None or record.levelname not in ("ERROR", "CRITICAL"):
            continue
        error = record.exc_info[1]
        if isinstance(error, KubeError) and error.code in statuses:
            continue
        problems.append(f"{record.getMessage()}: {error!r}")
    return problems
