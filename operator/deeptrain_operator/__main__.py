"""`python -m deeptrain_operator [kopf run options]`: the operator as the Helm chart runs it.

One replica without peering (the chart's Deployment uses the Recreate strategy), liveness on :8081,
every namespace unless DEEPTRAIN_WATCH_NAMESPACES names some. Extra arguments go to `kopf run`
(for example `--verbose` or `--log-format=json`).
"""

from __future__ import annotations

import sys

from kopf import cli

from .settings import Settings

LIVENESS_ENDPOINT = "http://0.0.0.0:8081/healthz"
# One kopf handler module per kind; the Workflow controller shares the job controller's client and state.
HANDLER_MODULES = ("deeptrain_operator.handlers", "deeptrain_operator.workflows.handlers")


def kopf_arguments(settings: Settings, extra: list[str]) -> list[str]:
    scope = [arg for ns in settings.watch_namespaces for arg in ("--namespace", ns)] or ["--all-namespaces"]
    modules = [arg for module in HANDLER_MODULES for arg in ("-m", module)]
    return ["run", "--standalone", "--liveness", LIVENESS_ENDPOINT, *scope, *modules, *extra]


def main(argv: list[str] | None = None) -> None:
    arguments = kopf_arguments(Settings.from_env(), list(sys.argv[1:] if argv is None else argv))
    cli.main.main(args=arguments, prog_name="deeptrain-operator")


if __name__ == "__main__":
    main()
