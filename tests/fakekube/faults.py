"""Fault injection: failing requests on purpose, cutting watch streams, expiring watch history."""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

_REASONS = {
    409: "Conflict", 429: "TooManyRequests", 500: "InternalError", 502: "BadGateway",
    503: "ServiceUnavailable", 504: "Timeout",
}


def reason_for(status: int) -> str:
    return _REASONS.get(status, "InternalError")


@dataclass
class FaultRule:
    """Fail matching requests with `status`, each with `probability`, at most `count` times."""

    method: str | None
    path: re.Pattern[str]
    status: int
    probability: float
    remaining: int | None
    rng: random.Random
    injected: int = field(default=0)

    def fires(self, method: str, path_and_query: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        if not self.path.search(path_and_query):
            return False
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.rng.random() >= self.probability:
            return False
        if self.remaining is not None:
            self.remaining -= 1
        self.injected += 1
        return True


class Faults:
    """The fault-injection API tests drive; safe to call from any thread."""

    def __init__(self, run_on_server: Callable[[Callable[[], object]], object],
                 cut_watches: Callable[[], int], expire_history: Callable[[], None]) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._outage_until = 0.0
        self._outage_status = 503
        self._run_on_server = run_on_server
        self._cut_watches = cut_watches
        self._expire_history = expire_history

    def add(self, method: str | None = None, path_regex: str = "", status: int = 500,
            probability: float = 1.0, count: int | None = None, seed: int | None = None) -> FaultRule:
        """E.g. `faults.add("PATCH", r"/deeptrainingjobs/", status=409, probability=0.3, seed=1)`.

        `path_regex` is searched in the path with its query string, so `watch=true` can be matched too.
        """
        rule = FaultRule(method.upper() if method else None, re.compile(path_regex), status, probability,
                         count, random.Random(seed))
        with self._lock:
            self._rules.append(rule)
        return rule

    def cut_watches(self) -> int:
        """Close every open watch stream, as a load balancer or apiserver restart would; returns how many."""
        return int(self._run_on_server(self._cut_watches))  # type: ignore[call-overload]

    def expire_history(self) -> None:
        """Forget the watch history, so resuming from any resourceVersion seen so far gets 410 Gone."""
        self._run_on_server(self._expire_history)

    def outage(self, seconds: float, status: int = 503) -> None:
        """Answer every request with `status` for `seconds`, and drop the open watches."""
        with self._lock:
            self._outage_until = time.monotonic() + seconds
            self._outage_status = status
        self.cut_watches()

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._outage_until = 0.0

    def injected_status(self, method: str, path_and_query: str) -> int | None:
        """The status to fail this request with, or None to serve it."""
        with self._lock:
            if time.monotonic() < self._outage_until:
                return self._outage_status
            for rule in self._rules:
                if rule.fires(method, path_and_query):
                    return rule.status
        return None
