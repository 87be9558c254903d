"""The benchmark scripts run end to end at tiny sizes and write their JSON. No timing is asserted:
on a shared machine the figures mean nothing at these sizes; only that the scripts work does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import benchlib  # noqa: E402


def run_script(name: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(BENCH / name), *args], env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


def read(path: Path) -> dict:
    document = json.loads(path.read_text())
    assert document["machine"]["nproc"] and document["machine"]["torch"]
    return document


def test_alternate_flips_the_order_every_round():
    calls: list[str] = []
    results = benchlib.alternate({"a": lambda r: calls.append("a") or r, "b": lambda r: calls.append("b") or -r}, 3)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert results == {"a": [0, 1, 2], "b": [0, -1, -2]}


def test_paired_ratio_is_the_median_of_per_round_ratios():
    assert benchlib.paired_ratio([2.0, 3.0, 10.0], [1.0, 3.0, 5.0]) == 2.0
    comparison = benchlib.Comparison("case", [1.0, 1.0], [2.0, 2.0], "x", goal=0.4)
    assert comparison.ratio == 0.5 and comparison.met


def test_a_median_closer_to_the_goal_than_the_rounds_agree_is_not_shown():
    close = benchlib.Comparison("close", [0.90, 1.00, 1.10, 0.95, 1.05], [1.0] * 5, "x", goal=0.97)
    assert close.round_ratios == [0.90, 1.00, 1.10, 0.95, 1.05] and close.ratio == 1.00
    assert not close.shown and "not shown" in close.verdict()
    clear = benchlib.Comparison("clear", [0.99, 1.00, 1.01, 0.995, 1.005], [1.0] * 5, "x", goal=0.97)
    assert clear.shown and clear.verdict().endswith(": met")
    below = benchlib.Comparison("below", [0.60, 0.61, 0.62], [1.0] * 3, "x", goal=0.97)
    assert below.verdict().endswith(": missed")


def test_every_script_has_help():
    for script in sorted(BENCH.glob("*.py")):
        if script.name in ("benchlib.py", "trainer_setup.py", "minimal_operator.py", "step_timer.py"):
            continue
        assert "usage" in run_script(script.name, "--help").stdout.lower(), script.name


def test_gpu_throughput_describes_itself_without_a_gpu():
    assert "would measure" in run_script("gpu_throughput.py").stdout


def test_data_loading_tiny(tmp_path):
    output = tmp_path / "data_loading.json"
    run_script("data_loading.py", "--rounds", "1", "--datasets", "digits", "--digits-limit", "60", "--batch", "8",
               "--step-batches", "1", "--profile", "--output", str(output))
    document = read(output)
    assert {c["case"].split(",")[-1].strip() for c in document["comparisons"]} == {"in-process", "1 worker"}
    assert document["feeding"][0]["model_step_items_per_second"] > 0


@pytest.mark.torchrun
def test_trainer_overhead_tiny(tmp_path):
    output = tmp_path / "trainer_overhead.json"
    run_script("trainer_overhead.py", "--rounds", "1", "--templates", "InceptionBatchNorm", "--nprocs", "1", "--epochs", "2",
               "--steps-per-epoch", "2", "--batch-per-rank", "8", "--output", str(output))
    (comparison,) = read(output)["comparisons"]
    assert comparison["ours_median"] > 0 and comparison["baseline_median"] > 0


@pytest.mark.torchrun
def test_step_profile_tiny(tmp_path):
    output = tmp_path / "step_profile.json"
    run_script("step_profile.py", "--templates", "InceptionBatchNorm", "--nproc", "1", "--epochs", "2",
               "--steps-per-epoch", "2", "--batch-per-rank", "8", "--output", str(output))
    (case,) = read(output)["cases"].values()
    for arm in ("ours", "plain"):
        assert case["medians_ms"][arm]["compute"] > 0 and len(case["steps"][arm][0]) == 2  # the warm-up epoch left out
        assert "aten::" in case["operators_rank0"][arm]


def test_step_cost_tiny(tmp_path):
    output = tmp_path / "step_cost.json"
    run_script("step_cost.py", "--templates", "InceptionBatchNorm", "--steps", "3", "--batch-per-rank", "8",
               "--steps-per-epoch", "2", "--output", str(output))
    samples = read(output)["templates"]["InceptionBatchNorm"]["samples_seconds"]
    assert set(samples) == {"plain load", "plain step", "ours load", "ours step"}
    assert all(len(values) == 3 and min(values) > 0 for values in samples.values())


@pytest.mark.torchrun
def test_global_batch_tiny(tmp_path):
    output = tmp_path / "global_batch.json"
    run_script("global_batch.py", "--rounds", "1", "--models", "classifier", "--epochs", "1", "--limit", "40",
               "--output", str(output))
    case = read(output)["cases"]["classifier"]
    assert case["metric"] == "accuracy" and len(case["one_process"]) == len(case["two_processes"]) == 1
    assert 0 <= case["one_process"][0] <= 1 and 0 <= case["two_processes"][0] <= 1


@pytest.mark.torchrun
def test_ddp_overhead_tiny(tmp_path):
    output = tmp_path / "ddp_overhead.json"
    run_script("ddp_overhead.py", "--rounds", "1", "--templates", "InceptionBatchNorm", "--epochs", "2",
               "--steps-per-epoch", "2", "--batch-per-rank", "8", "--output", str(output))
    assert len(read(output)["comparisons"]) == 2


@pytest.mark.torchrun
def test_restart_tiny(tmp_path):
    output = tmp_path / "restart.json"
    run_script("restart.py", "--kills", "1", "--gangs", "1", "--batch-per-rank", "4", "--output", str(output))
    document = read(output)
    assert len(document["restart_seconds"]["samples"]) == 1 and len(document["cold_start_seconds"]["samples"]) == 1


def test_operator_latency_tiny(tmp_path):
    output = tmp_path / "operator_latency.json"
    run_script("operator_latency.py", "--levels", "1", "--rounds", "1", "--output", str(output))
    summary = read(output)["summary"]
    assert {line["arm"] for line in summary} == {"ours", "minimal"}
    assert all(line["jobs"] == 5 for line in summary)


def test_serve_load_tiny(tmp_path):
    output = tmp_path / "serve_load.json"
    run_script("serve_load.py", "--requests", "10", "--clients", "4", "--big-side", "1200", "--output", str(output))
    document = read(output)
    assert document["codes"] == {"eight-big 200": 1, "one-big 200": 1, "small 200": 8}
    assert document["server_errors"] == 0 and document["idle_rss"] < document["peak_rss"] < document["rss_bound"]


def test_search_scale_tiny(tmp_path):
    output = tmp_path / "search_scale.json"
    run_script("search_scale.py", "--vectors", "2000", "--queries", "10", "--stores", "embedded-exact,embedded-hnsw",
               "--output", str(output))
    stores = read(output)["stores"]
    assert set(stores) == {"embedded-exact", "embedded-hnsw"}
    assert stores["embedded-exact"]["recall_at_10"] == 1.0 and stores["embedded-hnsw"]["qps"] > 0


def test_video_decoding_tiny(tmp_path):
    output = tmp_path / "video_decoding.json"
    run_script("video_decoding.py", "--rounds", "1", "--seconds", "2", "--width", "64", "--height", "48",
               "--image-size", "32", "--output", str(output))
    document = read(output)
    assert document["comparisons"][0]["goal"] == 0.9 and document["predict"]["ours"]
