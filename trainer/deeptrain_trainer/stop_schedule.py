"""When the ranks agree on a stop request: every few seconds of training, not every step.

A SIGTERM reaches the ranks at different moments, and all of them must stop after the same step
to write one consistent checkpoint, so agreeing takes a collective. One per step would be a second
synchronisation point besides DDP's gradient all-reduce, where a rank delayed by anything holds
the others. The check instead runs every `interval` steps, with `interval` chosen after each check
so that checks come about CHECK_SECONDS apart at the slowest rank's recent pace, and at least
CHECKS_PER_EPOCH times per epoch (so that short epochs, too, stop within the epoch under way):

    stop latency (signal -> all ranks stop) <= CHECK_SECONDS + one step, at the pace of the last interval

(longer only when steps suddenly get slower than during the previous interval). The same
collective carries each rank's seconds per step, so every rank computes the same next check.
A world of one checks every step: it needs no collective.
"""

from __future__ import annotations

import time

from .distributed import DistributedContext, max_of_each_across_ranks

CHECK_SECONDS = 2.0
CHECKS_PER_EPOCH = 2


class StopSchedule:
    def __init__(self, ctx: DistributedContext, steps_per_epoch: int, check_seconds: float = CHECK_SECONDS) -> None:
        self.ctx = ctx
        self.check_seconds = check_seconds
        self.max_interval = max(1, steps_per_epoch // CHECKS_PER_EPOCH)
        self._next_check: int | None = None  # the global step after which the next check runs
        self._last_check: tuple[float, int] | None = None  # (monotonic time, global step)

    def agreed_signal(self, global_step: int, signum: int) -> int:
        """After step `global_step`: the signal any rank got (0: none), when this step is a check."""
        if not self.ctx.is_distributed:
            return signum
        if self._next_check is not None and global_step < self._next_check:
            return 0
        now = time.monotonic()
        seconds_per_step = 0.0
        if self._last_check is not None and global_step > self._last_check[1]:
            seconds_per_step = (now - self._last_check[0]) / (global_step - self._last_check[1])
        agreed, slowest = max_of_each_across_ranks(self.ctx, [float(signum), seconds_per_step])
        self._next_check = global_step + self.interval(slowest)
        self._last_check = (now, global_step)
        return int(agreed)

    def interval(self, seconds_per_step: float) -> int:
        """Steps until the next check: about check_seconds of training, at least one step, at most
        a CHECKS_PER_EPOCH-th of an epoch."""
        if seconds_per_step <= 0:
            return 1
        return max(1, min(self.max_interval, int(self.check_seconds / seconds_per_step)))
