"""When the ranks agree on a stop request: every few seconds of training, not every step, and without
holding any rank.

A SIGTERM reaches the ranks at different moments, and all of them must stop after the same step
to write one consistent checkpoint, so agreeing takes a collective. A blocking one would be a
second synchronisation point besides DDP's gradient all-reduce, where each rank waits for the
others' jitter (2-6 ms per check on 50 ms steps in bench/step_profile.py). So a check is started
after one step and read after the next: the collective completes while that step computes, and
every rank reads it after the same step, so all still stop together. Checks run every `interval`
steps, chosen at each reading so that checks come about CHECK_SECONDS apart at the slowest rank's
recent pace, and at least CHECKS_PER_EPOCH times per epoch (so that short epochs, too, stop within
the epoch under way):

    stop latency (signal -> all ranks stop) <= CHECK_SECONDS + two steps, at the pace of the last interval

(longer only when steps suddenly get slower than during the previous interval). The same
collective carries each rank's seconds per step, so every rank computes the same next check.
A world of one checks every step: it needs no collective.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .distributed import DistributedContext, start_max_of_each_across_ranks

CHECK_SECONDS = 2.0
CHECKS_PER_EPOCH = 2


class StopSchedule:
    def __init__(self, ctx: DistributedContext, steps_per_epoch: int, check_seconds: float = CHECK_SECONDS) -> None:
        self.ctx = ctx
        self.check_seconds = check_seconds
        self.max_interval = max(1, steps_per_epoch // CHECKS_PER_EPOCH)
        self._next_check: int | None = None  # the global step after which the next check starts
        self._last_check: tuple[float, int] | None = None  # (monotonic time, global step) of the last start
        # The check started after the previous step: (that step, its result when read).
        self._in_flight: tuple[int, Callable[[], list[float]]] | None = None

    def agreed_signal(self, global_step: int, signum: int) -> int:
        """After step `global_step`: the signal any rank had when the check in flight started (0: none)."""
        if not self.ctx.is_distributed:
            return signum
        if self._in_flight is not None:
            started_at, result = self._in_flight
            self._in_flight = None
            agreed, slowest = result()
            self._next_check = started_at + self.interval(slowest)
            if agreed:
                return int(agreed)
        if self._next_check is None or global_step >= self._next_check:
            self._start_check(global_step, signum)
        return 0

    def _start_check(self, global_step: int, signum: int) -> None:
        now = time.monotonic()
        seconds_per_step = 0.0
        if self._last_check is not None and global_step > self._last_check[1]:
            seconds_per_step = (now - self._last_check[0]) / (global_step - self._last_check[1])
        self._in_flight = (global_step, start_max_of_each_across_ranks(self.ctx, [float(signum), seconds_per_step]))
        self._last_check = (now, global_step)

    def interval(self, seconds_per_step: float) -> int:
        """Steps until the next check: about check_seconds of training, at least one step, at most
        a CHECKS_PER_EPOCH-th of an epoch."""
        if seconds_per_step <= 0:
            return 1
        return max(1, min(self.max_interval, int(self.check_seconds / seconds_per_step)))
