"""Per-step timing and torch.profiler for one training process, shared by both arms of step_profile.py.

A step is split into three phases, measured the same way in both arms:
- load:    from the end of the previous step to the batch being ready on the device
- compute: forward, backward and the optimizer step
- other:   what the loop does between steps besides those (bookkeeping, reporting, collectives)
`other` is the remainder of the step's wall time, so anything the loop adds shows up there even
when it has no name. Steps of the warm-up epochs are not recorded. From the first recorded step
on, torch.profiler runs too (CPU activities, record_function scopes per phase); each rank writes
`rank<R>.json` (per-step phases) and `rank<R>.profile.txt` (its top operators by self time).
"""

from __future__ import annotations

import json
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

PROFILED_OPERATORS = 25


class StepTimer:
    def __init__(self, output: Path, rank: int, *, warmup_steps: int, use_profiler: bool = True) -> None:
        self.output = output
        self.rank = rank
        self.warmup_steps = warmup_steps
        self.use_profiler = use_profiler
        self.steps: list[dict[str, float]] = []
        self._seen = 0
        self._step_started: float | None = None
        self._load = 0.0
        self._compute = 0.0
        self._profiler: Any = None

    @property
    def recording(self) -> bool:
        return self._seen >= self.warmup_steps

    def _scope(self, name: str) -> AbstractContextManager:
        if self._profiler is None:
            return nullcontext()
        import torch

        return torch.profiler.record_function(name)

    def load(self, fetch: Any) -> Any:
        """Close the previous step, start the next one and call `fetch()` (the next batch, on the device).

        StopIteration from `fetch` (the epoch's batches are done) passes through and opens no step.
        """
        now = time.perf_counter()
        self._close(now)
        if self.recording and self.use_profiler and self._profiler is None:
            self._start_profiler()
        with self._scope("step.load"):
            batch = fetch()
        self._step_started = now
        self._load = time.perf_counter() - now
        return batch

    def compute(self, step: Any) -> Any:
        started = time.perf_counter()
        with self._scope("step.compute"):
            result = step()
        self._compute = time.perf_counter() - started
        return result

    def end_epoch(self) -> None:
        """The last step of an epoch ends here; epoch-end work (evaluation, checkpoints) is no step's."""
        self._close(time.perf_counter())

    def _close(self, now: float) -> None:
        if self._step_started is None:
            return
        if self.recording:
            total = now - self._step_started
            self.steps.append({"total": total, "load": self._load, "compute": self._compute,
                               "other": max(0.0, total - self._load - self._compute)})
        self._seen += 1
        self._step_started = None

    def _start_profiler(self) -> None:
        import torch

        self._profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
        self._profiler.__enter__()

    def write(self) -> None:
        self.output.mkdir(parents=True, exist_ok=True)
        (self.output / f"rank{self.rank}.json").write_text(json.dumps({"rank": self.rank, "steps": self.steps}))
        if self._profiler is not None:
            self._profiler.__exit__(None, None, None)
            table = self._profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=PROFILED_OPERATORS)
            (self.output / f"rank{self.rank}.profile.txt").write_text(table)
