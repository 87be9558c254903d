"""Admission: how many requests do their work at once, how many may wait, and who is turned away.

A request takes a slot before it reads its body: `concurrency` requests decode and run, up to
`queue_depth` more wait (holding only their connection), and the next one is answered 503 at once
with a Retry-After estimated from recent service times. So the work in flight, and the memory it
needs, stays bounded however many clients call, and the event loop stays free for /healthz.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

# Weight of the newest service time in the running estimate behind Retry-After.
SMOOTHING = 0.2
MAX_RETRY_AFTER_SECONDS = 60


class Overloaded(Exception):
    def __init__(self, retry_after: int, queue_depth: int):
        super().__init__(f"the server is busy: {queue_depth} requests already wait; retry after {retry_after} s")
        self.retry_after = retry_after


class Admission:
    def __init__(self, concurrency: int, queue_depth: int):
        self.concurrency = concurrency
        self.queue_depth = queue_depth
        self._slots = asyncio.Semaphore(concurrency)
        self.admitted = 0  # running + waiting
        self.running = 0
        self._service_seconds = 1.0

    @property
    def waiting(self) -> int:
        return self.admitted - self.running

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue ahead drained at the recent pace."""
        estimate = self._service_seconds * (self.waiting + 1) / self.concurrency
        return max(1, min(MAX_RETRY_AFTER_SECONDS, math.ceil(estimate)))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the `concurrency` slots; raises Overloaded when the queue is full."""
        if self.admitted >= self.concurrency + self.queue_depth:
            raise Overloaded(self.retry_after(), self.queue_depth)
        self.admitted += 1
        try:
            async with self._slots:
                self.running += 1
                started = time.monotonic()
                try:
                    yield
                finally:
                    self.running -= 1
                    elapsed = time.monotonic() - started
                    self._service_seconds += SMOOTHING * (elapsed - self._service_seconds)
        finally:
            self.admitted -= 1
