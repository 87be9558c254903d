"""Progress reporting from rank 0, and the termination message every pod leaves behind.

DEEPTRAIN_REPORT picks where progress goes:
- `console`: a progress bar on a terminal (plain lines otherwise) and a line per evaluation;
- `kubernetes`: a JSON merge patch of `status.progress` on the job's status subresource, sent from a
  background thread so that a slow or failing API server never stalls or crashes training;
- `none`: log lines only.
Unset means `kubernetes` inside a cluster pod that names its job, else `console`.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import threading
import time
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deeptrain_api.trainer_contract import (
    DEFAULT_TERMINATION_LOG,
    ENV_API_SERVER,
    ENV_JOB_NAME,
    ENV_JOB_NAMESPACE,
    ENV_REPORT,
    ENV_TERMINATION_LOG,
    TerminationMessage,
)

log = logging.getLogger(__name__)

REPORT_INTERVAL_SECONDS = 5.0
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
API_GROUP_PATH = "apis/deeptrain.dev/v1alpha1"


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def progress_payload(*, epoch: int, epochs: int, step: int, steps: int, loss: float | None,
                     items_per_second: float, eta_seconds: float | None,
                     last_eval: Mapping[str, float] | None) -> dict[str, Any]:
    """status.progress: `epoch` is the 1-based epoch under way, `step` the steps done in it."""
    done = (epoch - 1) * steps + step
    total = max(1, epochs * steps)
    payload: dict[str, Any] = {
        "epoch": epoch,
        "epochs": epochs,
        "step": step,
        "steps": steps,
        "percent": round(100.0 * done / total, 1),
        "itemsPerSecond": round(items_per_second, 2),
        "updatedAt": utc_now(),
    }
    if loss is not None:
        payload["loss"] = round(float(loss), 5)
    if eta_seconds is not None:
        payload["etaSeconds"] = int(eta_seconds)
    if last_eval:
        payload["lastEval"] = {name: round(float(value), 5) for name, value in last_eval.items()}
    return payload


class Reporter:
    """Throttles progress updates; subclasses decide where they go."""

    def __init__(self, interval: float = REPORT_INTERVAL_SECONDS):
        self.interval = interval
        self._last_sent = float("-inf")

    def due(self) -> bool:
        """Whether an update sent now would go out, so the loop builds a payload only then."""
        return time.monotonic() - self._last_sent >= self.interval

    def progress(self, payload: Mapping[str, Any], *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_sent >= self.interval:
            self._last_sent = now
            self.send(payload)

    def evaluation(self, epoch: int, metrics: Mapping[str, float]) -> None:
        log.info("evaluation after epoch %d: %s", epoch, _format_metrics(metrics))

    def send(self, payload: Mapping[str, Any]) -> None:
        log.info("epoch %s/%s step %s/%s loss %s %.1f items/s", payload["epoch"], payload["epochs"],
                 payload["step"], payload["steps"], payload.get("loss"), payload["itemsPerSecond"])

    def close(self) -> None:
        pass


class ConsoleReporter(Reporter):
    """A rich progress bar on a terminal; throttled plain lines when output goes to a pipe or file."""

    def __init__(self, interval: float = REPORT_INTERVAL_SECONDS):
        super().__init__(interval)
        from rich.console import Console

        self.console = Console(stderr=True)
        self._bar = None
        self._task = None
        if self.console.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                                 TextColumn("{task.fields[details]}"), TimeRemainingColumn(), console=self.console)
            self._bar.start()
            self._task = self._bar.add_task("training", total=100.0, details="")

    def due(self) -> bool:
        return self._bar is not None or super().due()

    def progress(self, payload: Mapping[str, Any], *, force: bool = False) -> None:
        if self._bar is not None:  # a live bar is cheap to update: no throttling
            self.send(payload)
        else:
            super().progress(payload, force=force)

    def send(self, payload: Mapping[str, Any]) -> None:
        if self._bar is None:
            super().send(payload)
            return
        loss = payload.get("loss")
        details = f"step {payload['step']}/{payload['steps']}"
        if loss is not None:
            details += f"  loss {loss:.4f}"
        details += f"  {payload['itemsPerSecond']:.1f} items/s"
        self._bar.update(self._task, completed=payload["percent"],
                         description=f"epoch {payload['epoch']}/{payload['epochs']}", details=details)

    def evaluation(self, epoch: int, metrics: Mapping[str, float]) -> None:
        if self._bar is None:
            super().evaluation(epoch, metrics)
        else:
            self._bar.console.print(f"evaluation after epoch {epoch}: {_format_metrics(metrics)}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


class KubernetesReporter(Reporter):
    """Merge-patches status.progress of the job through the API server, from a background thread."""

    def __init__(self, *, namespace: str, name: str, interval: float = REPORT_INTERVAL_SECONDS,
                 api_server: str | None = None, timeout: float = 10.0):
        super().__init__(interval)
        self.timeout = timeout
        explicit = api_server or os.environ.get(ENV_API_SERVER)
        if explicit:
            base, token, context = explicit.rstrip("/"), None, None
        else:
            host = os.environ.get("KUBERNETES_SERVICE_HOST", "kubernetes.default.svc")
            port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            base = f"https://{host}:{port}"
            token = _read(SERVICE_ACCOUNT_DIR / "token")
            ca_file = SERVICE_ACCOUNT_DIR / "ca.crt"
            context = ssl.create_default_context(cafile=str(ca_file) if ca_file.exists() else None)
        self.url = f"{base}/{API_GROUP_PATH}/namespaces/{namespace}/deeptrainingjobs/{name}/status"
        self._token = token
        self._ssl = context
        self._pending: Mapping[str, Any] | None = None
        self._wake = threading.Condition()
        self._closing = False
        self._failures = 0
        self._thread = threading.Thread(target=self._run, name="progress-reporter", daemon=True)
        self._thread.start()

    def send(self, payload: Mapping[str, Any]) -> None:
        with self._wake:
            self._pending = payload  # only the newest update matters
            self._wake.notify()

    def close(self) -> None:
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join(timeout=self.timeout + 1)

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._pending is None and not self._closing:
                    self._wake.wait()
                payload, self._pending = self._pending, None
                closing = self._closing
            if payload is not None:
                self._patch(payload)
            if closing and payload is None:
                return

    def _patch(self, payload: Mapping[str, Any]) -> None:
        body = json.dumps({"status": {"progress": payload}}).encode()
        request = urllib.request.Request(self.url, data=body, method="PATCH",
                                         headers={"Content-Type": "application/merge-patch+json",
                                                  "Accept": "application/json"})
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._ssl) as response:
                response.read()
            self._failures = 0
        except Exception as error:  # reporting is best effort: training goes on regardless
            self._failures += 1
            if self._failures in (1, 10) or self._failures % 100 == 0:
                log.warning("could not report progress to %s (%d failures so far): %s", self.url, self._failures, error)


def make_reporter(job_namespace: str, job_name: str) -> Reporter:
    mode = os.environ.get(ENV_REPORT, "").strip().lower()
    if not mode:
        in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and bool(os.environ.get(ENV_JOB_NAME))
        mode = "kubernetes" if in_cluster else "console"
    if mode == "kubernetes":
        namespace = os.environ.get(ENV_JOB_NAMESPACE) or job_namespace or _read(SERVICE_ACCOUNT_DIR / "namespace") or "default"
        name = os.environ.get(ENV_JOB_NAME) or job_name
        return KubernetesReporter(namespace=namespace, name=name)
    if mode == "console":
        return ConsoleReporter()
    if mode != "none":
        log.warning("%s=%r is not one of console, kubernetes, none; reporting to the log only", ENV_REPORT, mode)
    return Reporter()


def termination_log_path() -> Path | None:
    """Where the termination message goes: the env's choice, else kubelet's file when it exists."""
    explicit = os.environ.get(ENV_TERMINATION_LOG)
    if explicit:
        return Path(explicit)
    default = Path(DEFAULT_TERMINATION_LOG)
    # Only an existing file: kubelet creates it in pods; elsewhere it is not ours to create.
    if default.is_file() and os.access(default, os.W_OK):
        return default
    return None


def write_termination_message(message: TerminationMessage, *, overwrite: bool) -> None:
    """Write the message; with `overwrite=False` keep one another process of this pod already wrote."""
    path = termination_log_path()
    if path is None:
        return
    try:
        if not overwrite and path.exists() and path.stat().st_size > 0:
            return
        path.write_text(message.to_json())
    except OSError as error:
        log.warning("could not write the termination message to %s: %s", path, error)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _format_metrics(metrics: Mapping[str, float]) -> str:
    return ", ".join(f"{name} {value:.4f}" for name, value in metrics.items())
