"""OperatorRunner: a kopf operator module running in-process (kopf.testing.KopfRunner) against a kubeconfig."""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import kopf
import pytest
from kopf.testing import KopfRunner

# Loggers whose records belong to the operator: kopf's own (handler failures land in "kopf.objects").
OPERATOR_LOGGERS = ("kopf",)


_registries: dict[tuple[str, ...], kopf.OperatorRegistry] = {}


def registry_of(modules: tuple[str, ...]) -> kopf.OperatorRegistry:
    """The handlers of an operator's modules, in a registry of their own.

    kopf registers handlers into a process-wide default registry at import time; giving each operator
    its own keeps operators run by different tests of one session from seeing each other's handlers.
    """
    if modules not in _registries:
        registry = kopf.OperatorRegistry()
        # The harness always hands the operator a kubeconfig (KUBECONFIG), on the fake and on real clusters.
        kopf.on.login(registry=registry, id="harness-kubeconfig")(kopf.login_with_kubeconfig)
        previous = kopf.get_default_registry()
        kopf.set_default_registry(registry)
        try:
            for module in modules:
                if module in sys.modules:
                    importlib.reload(sys.modules[module])  # imported before: register its handlers again, here
                else:
                    importlib.import_module(module)
        finally:
            kopf.set_default_registry(previous)
        _registries[modules] = registry
    return _registries[modules]


class _Collector(logging.Handler):
    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__(logging.DEBUG)
        self.prefixes = prefixes
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in self.prefixes:
            self.records.append(record)


class OperatorRunner:
    """Usage: `runner = OperatorRunner(("deeptrain_operator.handlers",), ns, kubeconfig); runner.start()`.

    `env` is set in this process while the operator runs (kopf runs in a thread, not a subprocess),
    KUBECONFIG included. Any ERROR record with a traceback, i.e. an exception the operator did not
    handle, fails `check()`, unless it matches a pattern given to `allow_errors()`.
    """

    def __init__(self, modules: Sequence[str], namespace: str, kubeconfig: str | Path, env: Mapping[str, str] | None = None,
                 extra_args: Sequence[str] = ()) -> None:
        self.modules = tuple(modules)
        self.namespace = namespace
        self.env = {**(env or {}), "KUBECONFIG": str(kubeconfig)}
        self.extra_args = list(extra_args)
        self._collector = _Collector((*OPERATOR_LOGGERS, *(module.split(".")[0] for module in self.modules)))
        self._runner: KopfRunner | None = None
        self._saved_env: dict[str, str | None] = {}
        self._allowed: list[re.Pattern[str]] = []
        self._exit_failures: list[str] = []

    @property
    def args(self) -> list[str]:
        modules = [arg for module in self.modules for arg in ("-m", module)]
        return ["run", "--standalone", "--namespace", self.namespace, *modules, *self.extra_args]

    @property
    def running(self) -> bool:
        return self._runner is not None

    def start(self) -> OperatorRunner:
        assert self._runner is None, "the operator is already running"
        self._saved_env = {name: os.environ.get(name) for name in self.env}
        os.environ.update(self.env)
        logging.getLogger().addHandler(self._collector)
        self._runner = KopfRunner(self.args, timeout=60, registry=registry_of(self.modules))
        self._runner.__enter__()
        return self

    def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        try:
            runner.__exit__(None, None, None)
        except Exception as exc:  # kopf itself crashed: a failure of the run, reported by check()
            self._exit_failures.append(f"the operator exited with {exc!r}")
        finally:
            logging.getLogger().removeHandler(self._collector)
            for name, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def restart(self) -> OperatorRunner:
        self.stop()
        return self.start()

    # ---- what the run logged -----------------------------------------------------------------------

    def allow_errors(self, pattern: str) -> None:
        """Tolerate unhandled-exception records whose message matches `pattern` (fault-injection tests)."""
        self._allowed.append(re.compile(pattern))

    @property
    def records(self) -> list[logging.LogRecord]:
        return list(self._collector.records)

    def logs(self) -> str:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        return "\n".join(formatter.format(record) for record in self.records)

    def unhandled_exceptions(self) -> list[logging.LogRecord]:
        return [record for record in self.records
                if record.levelno >= logging.ERROR and record.exc_info is not None
                and not any(p.search(record.getMessage()) for p in self._allowed)]

    def check(self) -> None:
        """Fail the test if the operator crashed or logged an exception it did not handle."""
        problems = self._exit_failures + [record.getMessage() for record in self.unhandled_exceptions()]
        if problems:
            pytest.fail("the operator failed:\n  " + "\n  ".join(problems) + "\n\noperator log:\n" + self.logs(),
                        pytrace=False)
