"""Operator latency and cost: DeepTrainingJob create -> child Job -> pods -> `Running`, at 1, 50 and
200 concurrent jobs, against the fake API server (or a real cluster with DEEPTRAIN_TEST_KUBECONFIG).

Arms, alternated round by round, each started fresh as its own process per round so that its CPU
time and memory are its own (`python -m deeptrain_operator`, as the chart runs it, with KUBECONFIG
pointing at the server):
- ours      the deeptrain operator
- minimal   bench/minimal_operator.py: a kopf operator that only makes the Job and sets `Running`

This process hosts the fake API server (a thread), creates the jobs, watches Jobs, Pods and
DeepTrainingJobs, and plays the Job controller and kubelet (tests/harness JobPlayer): as soon as a
child Job appears its pods are created and reported running and ready. Latencies are from the
moment the create call returned to the moment the watch delivered the event, so they include the
player's reaction for pods and `Running`; both arms pay it alike.

Cost: operator CPU seconds (user+system, from /proc via psutil) and peak RSS while the jobs of a
round are processed; API requests per job are the fake's request counts minus this process's own
(creates, watches and the player's calls), so they are the operator's alone.

    .venv/bin/python bench/operator_latency.py
    .venv/bin/python bench/operator_latency.py --levels 1 50 200 500 --rounds 3
    DEEPTRAIN_TEST_KUBECONFIG=~/.kube/config .venv/bin/python bench/operator_latency.py --levels 1 10
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib import (
    BENCH_DIR,
    REPO_ROOT,
    alternate,
    fmt,
    print_table,
    simple_table,
    trainer_env,
    write_results,
)

sys.path.insert(0, str(REPO_ROOT / "tests"))

SEQUENTIAL_SAMPLES = 5  # a level of 1 concurrent job runs this many jobs one after another
API = "deeptrain.dev/v1alpha1"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", nargs="+", type=int, default=[1, 50, 200], help="concurrent jobs (default 1 50 200)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per level, arms alternating (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="spec.workers of every job (default 2)")
    parser.add_argument("--arms", nargs="+", choices=("ours", "minimal"), default=["ours", "minimal"])
    parser.add_argument("--timeout", type=float, default=300, help="seconds a round may take (default 300)")
    parser.add_argument("--output", type=Path, default=None, help="JSON path (default bench/results/operator_latency.json)")
    return parser.parse_args(argv)


def job_manifest(name: str, namespace: str, workers: int) -> dict[str, Any]:
    return {
        "apiVersion": API, "kind": "DeepTrainingJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"modelType": "visual-classifier", "template": "ResNext",
                 "hyperparameters": {"batch_size": 8, "num_epochs": 2},
                 "dataset": {"uri": "pvc://datasets/shoes", "format": "imagefolder"},
                 "output": {"uri": f"pvc://models/{name}"}, "workers": workers},
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OperatorProcess:
    """One operator as a child process; CPU and peak RSS sampled from /proc while it runs."""

    def __init__(self, arm: str, namespace: str, kubeconfig: Path, log_path: Path) -> None:
        port = free_port()
        liveness = f"http://127.0.0.1:{port}/healthz"
        if arm == "ours":
            # The chart's entry point; the later --liveness replaces its default port, which may be taken here.
            command = [sys.executable, "-m", "deeptrain_operator", "--liveness", liveness]
        else:
            command = [sys.executable, "-m", "kopf", "run", "--standalone", "--namespace", namespace,
                       "--liveness", liveness, str(BENCH_DIR / "minimal_operator.py")]
        env = trainer_env(KUBECONFIG=str(kubeconfig), DEEPTRAIN_WATCH_NAMESPACES=namespace, DEEPTRAIN_METRICS_PORT="0")
        self.log = open(log_path, "w")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.liveness = liveness
        self.peak_rss = 0
        self._sampling = True
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def wait_ready(self, timeout: float = 120) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the operator exited {self.process.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(self.liveness, timeout=2):
                    self._sampler.start()
                    return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"the operator did not become live; see {self.log.name}")

    def _sample(self) -> None:
        import psutil

        process = psutil.Process(self.process.pid)
        while self._sampling:
            try:
                self.peak_rss = max(self.peak_rss, process.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.1)

    def cpu_seconds(self) -> float:
        import psutil

        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        self._sampling = False
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # only the operator this benchmark started
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@dataclass
class Timeline:
    created: dict[str, float] = field(default_factory=dict)
    job_seen: dict[str, float] = field(default_factory=dict)
    pods_seen: dict[str, float] = field(default_factory=dict)
    running_seen: dict[str, float] = field(default_factory=dict)


def owner_name(obj: dict[str, Any], kind: str) -> str | None:
    for reference in obj["metadata"].get("ownerReferences") or ():
        if reference.get("kind") == kind:
            return reference["name"]
    return None


def counting_client(kubeconfig: Path) -> Any:
    from harness import KubeClient

    class CountingKubeClient(KubeClient):
        """Counts this process's own requests, to tell the operator's apart in the fake's totals."""

        sent = 0

        async def request(self, *args: Any, **kwargs: Any) -> Any:
            CountingKubeClient.sent += 1
            return await super().request(*args, **kwargs)

    return CountingKubeClient(kubeconfig)


async def watch(kube: Any, path: str, on_event: Any, stop: asyncio.Event) -> None:
    """A watch stream (one request) on `path`, handing each object to `on_event` as it arrives."""
    type(kube).sent += 1
    async with kube.session.get(path.lstrip("/"), params={"watch": "true"},
                                timeout=aiohttp_timeout()) as response:
        while not stop.is_set():
            line = await response.content.readline()
            if not line:
                return
            event = json.loads(line)
            if event.get("type") in ("ADDED", "MODIFIED"):
                on_event(event["object"], time.monotonic())


def aiohttp_timeout() -> Any:
    import aiohttp

    return aiohttp.ClientTimeout(total=None, sock_read=None)


async def run_round(arm: str, concurrency: int, args: argparse.Namespace, kubeconfig: Path, fake: Any,
                    work: Path) -> dict[str, Any]:
    from harness import JobPlayer, has_condition

    namespace = f"bench-{arm}-{concurrency}-{secrets.token_hex(3)}"
    kube = counting_client(kubeconfig)
    timeline = Timeline()
    job_of_child: dict[str, str] = {}
    pods_of: dict[str, set[str]] = collections.defaultdict(set)
    player = JobPlayer(kube, plays_controller=True if fake is not None else None)
    player_tasks: list[asyncio.Task] = []
    try:
        await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        operator = OperatorProcess(arm, namespace, kubeconfig, work / f"{namespace}.log")
        try:
            await asyncio.to_thread(operator.wait_ready)
            await asyncio.sleep(1.0)  # let its watches start: the first create must not land before them
            stop = asyncio.Event()

            async def play(job: dict[str, Any]) -> None:
                await player.start_pods(job)
                await player.set_running(job, ready=True)

            def on_job(job: dict[str, Any], stamp: float) -> None:
                owner = owner_name(job, "DeepTrainingJob")
                if owner and owner not in timeline.job_seen:
                    timeline.job_seen[owner] = stamp
                    job_of_child[job["metadata"]["name"]] = owner
                    player_tasks.append(asyncio.create_task(play(job)))

            def on_pod(pod: dict[str, Any], stamp: float) -> None:
                owner = job_of_child.get(owner_name(pod, "Job") or "")
                if owner:
                    pods_of[owner].add(pod["metadata"]["name"])
                    if len(pods_of[owner]) >= args.workers and owner not in timeline.pods_seen:
                        timeline.pods_seen[owner] = stamp

            def on_dtj(obj: dict[str, Any], stamp: float) -> None:
                name = obj["metadata"]["name"]
                if name not in timeline.running_seen and has_condition(obj, "Running"):
                    timeline.running_seen[name] = stamp

            watches = [asyncio.create_task(watch(kube, f"/apis/batch/v1/namespaces/{namespace}/jobs", on_job, stop)),
                       asyncio.create_task(watch(kube, f"/api/v1/namespaces/{namespace}/pods", on_pod, stop)),
                       asyncio.create_task(watch(kube, f"/apis/{API}/namespaces/{namespace}/deeptrainingjobs", on_dtj, stop))]
            await asyncio.sleep(0.5)
            counts_before = fake.request_counts() if fake is not None else collections.Counter()
            requests_before = sum(counts_before.values())
            own_before = type(kube).sent
            cpu_before = operator.cpu_seconds()
            started = time.monotonic()

            batches = SEQUENTIAL_SAMPLES if concurrency == 1 else 1
            names: list[str] = []
            for batch in range(batches):
                wave = [f"job-{batch}-{index}" for index in range(concurrency)]
                names += wave

                async def create(name: str) -> None:
                    await kube.create(job_manifest(name, namespace, args.workers))
                    timeline.created[name] = time.monotonic()

                await asyncio.gather(*(create(name) for name in wave))
                deadline = time.monotonic() + args.timeout
                while not all(name in timeline.running_seen for name in wave):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{arm}: {sum(n in timeline.running_seen for n in wave)} of {len(wave)} "
                                           f"jobs Running after {args.timeout} s; see {operator.log.name}")
                    await asyncio.sleep(0.05)
            elapsed = time.monotonic() - started
            await asyncio.gather(*player_tasks)
            cpu = operator.cpu_seconds() - cpu_before
            operator_requests, breakdown = None, {}
            if fake is not None:
                counts_after = fake.request_counts()
                total = sum(counts_after.values()) - requests_before
                operator_requests = total - (type(kube).sent - own_before)
                # Every client's requests by verb and resource (this process's included: the same in both arms).
                breakdown = {f"{verb} {resource}": (counts_after[(verb, resource)] - counts_before[(verb, resource)]) / len(names)
                             for verb, resource in counts_after if counts_after[(verb, resource)] != counts_before[(verb, resource)]}
            stop.set()
            for task in watches:
                task.cancel()
            await asyncio.gather(*watches, return_exceptions=True)
        finally:
            operator.stop()

        def latencies(seen: dict[str, float]) -> list[float]:
            return [seen[name] - timeline.created[name] for name in names if name in seen]

        return {"arm": arm, "concurrency": concurrency, "jobs": len(names), "seconds": elapsed,
                "to_job": latencies(timeline.job_seen), "to_pods": latencies(timeline.pods_seen),
                "to_running": latencies(timeline.running_seen), "operator_cpu_seconds": cpu,
                "operator_peak_rss_mib": operator.peak_rss / 2**20,
                "operator_requests_per_job": None if operator_requests is None else operator_requests / len(names),
                "all_requests_per_job_by_verb_and_resource": breakdown}
    finally:
        await kube.close()


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = fraction * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from harness.environment import kube_environment

    work = Path(tempfile.mkdtemp(prefix="bench-operator-"))
    results: list[dict[str, Any]] = []
    with kube_environment(work) as env:
        if env.crd_problem:
            raise SystemExit(env.crd_problem)
        where = "real cluster" if env.real else "fake API server (in this process)"
        for concurrency in args.levels:
            arms = {arm: (lambda r, arm=arm, concurrency=concurrency: asyncio.run(
                run_round(arm, concurrency, args, env.kubeconfig, env.fake, work)))
                    for arm in args.arms}
            runs = alternate(arms, args.rounds, on_result=lambda arm, r, value: print(
                f"{value['concurrency']} concurrent, round {r + 1}, {arm}: p50 to Running "
                f"{fmt(percentile(value['to_running'], 0.5), 3)} s, operator CPU {value['operator_cpu_seconds']:.2f} s, "
                f"peak RSS {value['operator_peak_rss_mib']:.0f} MiB", flush=True))
            for arm, values in runs.items():
                results.append({"arm": arm, "concurrency": concurrency, "rounds": values})

    rows = []
    summary = []
    for entry in results:
        rounds = entry["rounds"]
        merged = {key: [value for run in rounds for value in run[key]] for key in ("to_job", "to_pods", "to_running")}
        jobs = sum(run["jobs"] for run in rounds)
        cpu_per_job = sum(run["operator_cpu_seconds"] for run in rounds) / jobs
        rss = max(run["operator_peak_rss_mib"] for run in rounds)
        requests = [run["operator_requests_per_job"] for run in rounds if run["operator_requests_per_job"] is not None]
        line = {"arm": entry["arm"], "concurrency": entry["concurrency"], "jobs": jobs,
                **{f"{key}_p50": percentile(values, 0.5) for key, values in merged.items()},
                **{f"{key}_p99": percentile(values, 0.99) for key, values in merged.items()},
                "operator_cpu_seconds_per_job": cpu_per_job, "operator_peak_rss_mib": rss,
                "operator_requests_per_job": sum(requests) / len(requests) if requests else None}
        summary.append(line)
        rows.append((f"{entry['concurrency']} concurrent, {entry['arm']}", jobs,
                     f"{fmt(line['to_job_p50'], 3)} / {fmt(line['to_job_p99'], 3)}",
                     f"{fmt(line['to_pods_p50'], 3)} / {fmt(line['to_pods_p99'], 3)}",
                     f"{fmt(line['to_running_p50'], 3)} / {fmt(line['to_running_p99'], 3)}",
                     f"{cpu_per_job * 1000:.0f}", f"{rss:.0f}", fmt(line["operator_requests_per_job"], 1)))
    print_table(simple_table(
        f"DeepTrainingJob create -> child Job / pods / Running, seconds p50 / p99 ({where}; operator in its own process)",
        ["case", "jobs", "-> Job", "-> pods", "-> Running", "operator CPU ms/job", "peak RSS MiB", "API requests/job"],
        rows))
    path = write_results("operator_latency", {
        "where": where, "settings": {key: value for key, value in vars(args).items() if key != "output"},
        "summary": summary, "raw": results}, args.output)
    print(f"results: {path}; operator logs in {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
