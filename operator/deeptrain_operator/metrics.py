"""Prometheus metrics of the operator, served on /metrics at DEEPTRAIN_METRICS_PORT."""

from __future__ import annotations

import logging
import threading

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from . import constants as c

JOBS = Gauge("deeptrain_jobs", "DeepTrainingJobs by namespace and phase.", ["namespace", "phase"])
JOB_RESTARTS = Counter("deeptrain_job_restarts_total", "Gang restarts (a new attempt after a retryable failure).",
                       ["namespace", "reason"])
JOBS_FINISHED = Counter("deeptrain_jobs_finished_total", "DeepTrainingJobs that succeeded or failed.",
                        ["namespace", "phase", "reason"])
RECONCILE_DURATION = Histogram("deeptrain_reconcile_duration_seconds", "Time of one reconcile of one job.")
RECONCILE_ERRORS = Counter("deeptrain_reconcile_errors_total", "Reconciles that raised, by exception class.",
                           ["error"])

_phases: dict[tuple[str, str], str] = {}  # (namespace, name) -> phase
_lock = threading.Lock()
_server_started = False


def record_phase(namespace: str, name: str, phase: str | None) -> None:
    """Remember a job's phase (None: the job is gone) and refresh the per-phase gauge."""
    with _lock:
        if phase is None:
            _phases.pop((namespace, name), None)
        else:
            _phases[(namespace, name)] = phase
        counts = {(ns, p): 0 for ns, _ in _phases for p in c.PHASES}
        for (ns, _), p in _phases.items():
            counts[(ns, p)] = counts.get((ns, p), 0) + 1
        JOBS.clear()
        for (ns, p), count in counts.items():
            JOBS.labels(namespace=ns, phase=p).set(count)


def serve(port: int, logger: logging.Logger | logging.LoggerAdapter) -> None:  # type: ignore[type-arg]
    """Start the /metrics server once per process (the operator may be restarted in-process)."""
    global _server_started
    if port == 0 or _server_started:
        return
    try:
        start_http_server(port)
    except OSError as error:
        logger.warning(f"metrics are not served: port {port}: {error}")
        return
    _server_started = True
