"""What every benchmark shares: thread pinning, alternating arms, medians and ratios, tables, JSON.

The machine these run on is usually shared, so absolute timings drift with other people's load.
Each benchmark therefore runs its two arms alternately in one process tree and compares them
round by round: drift that hits both arms of a round cancels out of that round's ratio.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"


def pin_threads(threads: int = 1) -> None:
    """One intra-op thread per process: with N processes on N shared cores, more threads only fight.

    Set before torch is imported anywhere (the env var) and again on torch itself in case it was.
    Children started from here inherit the env var.
    """
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def trainer_env(**extra: str) -> dict[str, str]:
    """Env for a child process that runs project code: every source root importable, one thread."""
    env = dict(os.environ)
    roots = [str(REPO_ROOT / root) for root in ("api", "operator", "trainer", "cli")] + [str(BENCH_DIR)]
    if env.get("PYTHONPATH"):
        roots.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(roots)
    env["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS", "1")
    env["MKL_NUM_THREADS"] = env["OMP_NUM_THREADS"]
    env.update(extra)
    return env


def machine_info() -> dict[str, Any]:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu_model = platform.processor()
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = ""
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "torch": torch_version,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_when_written": load_average(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", ""),
        "git_commit": _git_commit(),
    }


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages: how busy the cores were besides the benchmark's own runs."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return [0.0, 0.0, 0.0]


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def alternate(arms: Mapping[str, Callable[[int], Any]], rounds: int,
              on_result: Callable[[str, int, Any], None] | None = None) -> dict[str, list[Any]]:
    """Run every arm once per round, flipping the order each round (AB, BA, AB, ...).

    Flipping keeps a slow drift in the machine's load (or a warm cache left by the previous run)
    from always favouring the arm that goes second. Each arm gets the round number.
    """
    names = list(arms)
    results: dict[str, list[Any]] = {name: [] for name in names}
    for round_index in range(rounds):
        order = names if round_index % 2 == 0 else list(reversed(names))
        for name in order:
            value = arms[name](round_index)
            results[name].append(value)
            if on_result is not None:
                on_result(name, round_index, value)
    return results


def median(values: Iterable[float]) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def paired_ratio(ours: Sequence[float], baseline: Sequence[float]) -> float:
    """Median over rounds of ours/baseline within the round; robust to load that changes between rounds."""
    ratios = [o / b for o, b in zip(ours, baseline, strict=True) if o is not None and b]
    return median(ratios)


@dataclass
class Comparison:
    """One line of a benchmark's table: the same measurement of two arms over several rounds."""

    case: str
    ours: list[float]
    baseline: list[float]
    unit: str
    goal: float | None = None  # the ratio ours/baseline should reach (higher is better)
    lower_is_better: bool = False
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return paired_ratio(self.ours, self.baseline)

    @property
    def round_ratios(self) -> list[float]:
        return [o / b for o, b in zip(self.ours, self.baseline, strict=True) if o is not None and b]

    @property
    def spread(self) -> float:
        """Interquartile range of the per-round ratios (the middle half of the rounds)."""
        ratios = self.round_ratios
        if len(ratios) < 2:
            return float("nan")
        lower, _, upper = statistics.quantiles(ratios, n=4, method="inclusive")
        return upper - lower

    @property
    def shown(self) -> bool:
        """Whether the rounds agree closely enough to say which side of the goal the median is on."""
        return self.goal is not None and self.spread <= abs(self.ratio - self.goal)

    def verdict(self) -> str:
        """One line: the median against the goal, or "not shown" when the spread is wider than the gap."""
        gap = self.ratio - self.goal
        text = (f"{self.case}: median ratio {self.ratio:.3f}, goal {self.goal:g}, gap {gap:+.3f}, "
                f"per-round spread (interquartile) {self.spread:.3f}")
        if not self.shown:
            return f"{text}: not shown (the spread is wider than the gap)"
        return f"{text}: {'met' if self.met else 'missed'}"

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        return self.ratio <= self.goal if self.lower_is_better else self.ratio >= self.goal

    def as_dict(self) -> dict[str, Any]:
        return {"case": self.case, "unit": self.unit, "ours": self.ours, "baseline": self.baseline,
                "ours_median": median(self.ours), "baseline_median": median(self.baseline),
                "ratio": self.ratio, "round_ratios": self.round_ratios, "spread": self.spread,
                "goal": self.goal, "lower_is_better": self.lower_is_better,
                "goal_met": self.met, "notes": self.notes, **self.extra}


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    return f"{value:,.{digits}f}"


def comparison_table(title: str, comparisons: Sequence[Comparison], ours_label: str, baseline_label: str,
                     per_round: bool = False) -> Any:
    """One row per comparison; `per_round` adds each round's ratio, so a reader sees the spread."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("case")
    table.add_column(f"{ours_label} (median)", justify="right")
    table.add_column(f"{baseline_label} (median)", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("goal", justify="right")
    table.add_column("met", justify="center")
    table.add_column("rounds", justify="right")
    if per_round:
        table.add_column("per-round ratios")
    for row in comparisons:
        goal = "-" if row.goal is None else (f"<= {row.goal:g}" if row.lower_is_better else f">= {row.goal:g}")
        met = {None: "-", True: "yes", False: "NO"}[row.met]
        if per_round and row.goal is not None and not row.shown:
            met = "not shown"
        cells = [row.case, f"{fmt(median(row.ours))} {row.unit}", f"{fmt(median(row.baseline))} {row.unit}",
                 f"{row.ratio:.3f}", goal, met, str(len(row.ours))]
        if per_round:
            cells.append(", ".join(f"{ratio:.2f}" for ratio in row.round_ratios))
        table.add_row(*cells)
    return table


def simple_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(*[str(cell) for cell in row])
    return table


def print_table(table: Any) -> None:
    from rich.console import Console

    Console(width=160).print(table)


def write_results(name: str, payload: Mapping[str, Any], output: Path | None = None) -> Path:
    """bench/results/<name>.json: the machine, the command and every raw sample, for later comparison."""
    path = output or RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"benchmark": name, "command": " ".join([Path(sys.executable).name, *sys.argv]),
                "machine": machine_info(), **payload}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path


def add_common_arguments(parser: Any, default_rounds: int) -> None:
    parser.add_argument("--rounds", type=int, default=default_rounds,
                        help=f"times each arm runs, alternating (default {default_rounds})")
    parser.add_argument("--output", type=Path, default=None,
                        help="where the JSON goes (default bench/results/<benchmark>.json)")


def profile_parts(run: Callable[[], Any], parts: Mapping[str, str], path_contains: str = "deeptrain_trainer",
                  ) -> dict[str, float]:
    """Run `run` under cProfile; cumulative seconds of each named function (label -> function name).

    Only functions whose file path contains `path_contains` are looked at, so a name like `run`
    means the project's, not a library's. cProfile slows Python-heavy code more than code that
    sits in C++ (torch kernels, Pillow codecs): read the shares as an upper bound for Python parts.
    """
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        run()
    finally:
        profiler.disable()
    cumulative: dict[str, float] = {}
    for (filename, _, function), (_, _, _, cum, _) in pstats.Stats(profiler).stats.items():  # type: ignore[attr-defined]
        if path_contains in filename or filename == "~":
            cumulative[function] = max(cumulative.get(function, 0.0), cum)
    return {label: cumulative.get(function, 0.0) for label, function in parts.items()}
