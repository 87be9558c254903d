"""Load on the Workflow serving process: mixed small and 10000x10000 images, many clients at once.

`python -m deeptrain_trainer.serve` runs as its own process on 127.0.0.1 with its default limits,
serving a classifier (untrained weights: the work per image is the same). Clients send `--requests`
requests, `--clients` at a time, in a fixed mix:

    every 10th request, from the 1st:  eight 10000x10000 PNGs (the request that once took it down: 413)
    every 10th request, from the 6th:  one 10000x10000 PNG (decoded and classified: 200)
    the others:                        one 256x256 PNG (200)

Meanwhile a prober asks /healthz every 100 ms and a sampler reads the server's RSS every 50 ms.
The baseline is the same server idle, measured first in the same run: /healthz latency with no
load, and the RSS after loading. Passes when no answer is a 5xx other than 503 (none is expected
with the default queue), /healthz p99 stays under 1 s, and the peak RSS stays under the bound the
limits document (workflow/limits.py): idle RSS + concurrency x (3 x max_body_bytes + 4 bytes x
max_request_pixels).

    .venv/bin/python bench/serve_load.py                    # 200 requests, 20 at a time
    .venv/bin/python bench/serve_load.py --requests 40 --clients 8 --big-side 3000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

from benchlib import REPO_ROOT, fmt, pin_threads, print_table, simple_table, trainer_env, write_results

pin_threads()

import aiohttp  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402
import yaml  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(REPO_ROOT))
from tests.workflow.conftest import write_untrained_model  # noqa: E402

from deeptrain_api import catalog  # noqa: E402
from deeptrain_trainer.workflow.limits import ServeLimits  # noqa: E402

HEALTH_P99_GOAL_SECONDS = 1.0
PROBE_INTERVAL = 0.1
RSS_INTERVAL = 0.05
IDLE_PROBES = 30


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="requests in all (default 200)")
    parser.add_argument("--clients", type=int, default=20, help="requests in flight at once (default 20)")
    parser.add_argument("--big-side", type=int, default=10_000, help="side of the large images (default 10000)")
    parser.add_argument("--output", type=Path, default=None,
                        help="where the JSON goes (default bench/results/serve_load.json)")
    return parser.parse_args(argv)


def solid_png(side: int, colour: tuple[int, int, int]) -> bytes:
    """A real side x side RGB PNG, written row block by row block (never side^2 x 3 bytes in memory)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\0" + bytes(colour) * side
    compressor = zlib.compressobj(1)
    rows_per_block = max(1, (8 << 20) // len(row))
    parts = [compressor.compress(row * min(rows_per_block, side - start)) for start in range(0, side, rows_per_block)]
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def small_png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, size=(256, 256, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def request_bodies(big_side: int) -> dict[str, bytes]:
    big = base64.b64encode(solid_png(big_side, (40, 90, 160))).decode()
    small = base64.b64encode(small_png(0)).decode()
    return {kind: json.dumps({"inputs": [{"image": {"base64": image}}] * count}).encode()
            for kind, image, count in (("eight-big", big, 8), ("one-big", big, 1), ("small", small, 1))}


def kind_of(index: int) -> str:
    return {0: "eight-big", 5: "one-big"}.get(index % 10, "small")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(work: Path, port: int) -> subprocess.Popen:
    write_untrained_model(work / "models" / "classifier", catalog.VISUAL_CLASSIFIER, ["a", "b"], image_size=64)
    manifest = work / "workflow.yaml"
    manifest.write_text(yaml.safe_dump({"apiVersion": "deeptrain.dev/v1alpha1", "kind": "Workflow",
                                        "metadata": {"name": "load"},
                                        "spec": {"nodes": [{"id": "classify",
                                                            "model": {"deepTrainingJob": "classifier"}}]}}))
    log = (work / "server.log").open("w")
    return subprocess.Popen([sys.executable, "-m", "deeptrain_trainer.serve", "--workflow", str(manifest),
                             "--models", str(work / "models"), "--port", str(port)],
                            env=trainer_env(), stdout=log, stderr=subprocess.STDOUT)


class RssSampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.process, self.peak, self.stopped = psutil.Process(pid), 0, threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.NoSuchProcess:
                return
            time.sleep(RSS_INTERVAL)


async def wait_ready(session: aiohttp.ClientSession, base: str, server: subprocess.Popen) -> None:
    for _ in range(3000):
        assert server.poll() is None, "the server exited; see its log"
        try:
            async with session.get(f"{base}/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the server never became ready")


async def probe_health(session: aiohttp.ClientSession, base: str, stop: asyncio.Event, latencies: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        async with session.get(f"{base}/healthz") as response:
            await response.read()
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(PROBE_INTERVAL)


def p99(values: list[float]) -> float:
    return float(np.percentile(values, 99)) if values else float("nan")


async def load(base: str, bodies: dict[str, bytes], args: argparse.Namespace) -> dict:
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=args.clients + 2)) as session:
        idle: list[float] = []
        for _ in range(IDLE_PROBES):
            started = time.perf_counter()
            async with session.get(f"{base}/healthz") as response:
                await response.read()
            idle.append(time.perf_counter() - started)
            await asyncio.sleep(PROBE_INTERVAL / 2)

        loaded: list[float] = []
        stop = asyncio.Event()
        prober = asyncio.create_task(probe_health(session, base, stop, loaded))
        slots = asyncio.Semaphore(args.clients)
        outcomes: list[tuple[str, int, float]] = []

        async def one(index: int) -> None:
            kind = kind_of(index)
            async with slots:
                started = time.perf_counter()
                async with session.post(f"{base}/v1/predict", data=bodies[kind],
                                        headers={"Content-Type": "application/json"}) as response:
                    await response.read()
                    outcomes.append((kind, response.status, time.perf_counter() - started))

        started = time.perf_counter()
        await asyncio.gather(*(one(index) for index in range(args.requests)))
        wall = time.perf_counter() - started
        stop.set()
        await prober
    return {"idle_health": idle, "loaded_health": loaded, "outcomes": outcomes, "wall_seconds": wall}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    limits = ServeLimits()
    bodies = request_bodies(args.big_side)
    with tempfile.TemporaryDirectory(prefix="serve-load-") as scratch:
        work = Path(scratch)
        port = free_port()
        server = start_server(work, port)
        base = f"http://127.0.0.1:{port}"
        try:
            asyncio.run(_ready(base, server))
            idle_rss = psutil.Process(server.pid).memory_info().rss
            sampler = RssSampler(server.pid)
            sampler.start()
            result = asyncio.run(load(base, bodies, args))
            sampler.stopped.set()
            sampler.join()
        finally:
            server.terminate()
            server.wait(timeout=60)
            log_tail = (work / "server.log").read_text()[-2000:]

    bound = limits.memory_bound(idle_rss)
    codes = Counter((kind, status) for kind, status, _ in result["outcomes"])
    server_errors = sum(count for (_, status), count in codes.items() if status >= 500)
    health_p99 = p99(result["loaded_health"])
    mib = 2**20
    rows = [[kind, status, count,
             fmt(statistics.median(s for k, c, s in result["outcomes"] if (k, c) == (kind, status)), 2)]
            for (kind, status), count in sorted(codes.items())]
    print_table(simple_table(f"{args.requests} requests, {args.clients} at a time, in {result['wall_seconds']:.1f} s",
                             ["request", "status", "count", "median s"], rows))
    checks = [
        ["5xx answers", "0", str(server_errors), "yes" if server_errors == 0 else "NO"],
        ["/healthz p99 under load (idle p99)", f"< {HEALTH_P99_GOAL_SECONDS:g} s",
         f"{health_p99:.3f} s ({p99(result['idle_health']):.3f} s, x{health_p99 / p99(result['idle_health']):.1f})",
         "yes" if health_p99 < HEALTH_P99_GOAL_SECONDS else "NO"],
        ["/healthz max under load", "-", f"{max(result['loaded_health']):.3f} s", "-"],
        ["peak RSS (idle RSS)", f"< {bound / mib:.0f} MiB", f"{sampler.peak / mib:.0f} MiB ({idle_rss / mib:.0f} MiB)",
         "yes" if sampler.peak < bound else "NO"],
    ]
    print_table(simple_table("goals", ["figure", "goal", "measured", "met"], checks))
    path = write_results("serve_load", {
        "settings": vars(args) | {"limits": limits.describe()}, "idle_rss": idle_rss, "peak_rss": sampler.peak,
        "rss_bound": bound, "health_p99_seconds": health_p99, "server_errors": server_errors,
        "codes": {f"{kind} {status}": count for (kind, status), count in codes.items()}, **result,
        "server_log_tail": log_tail}, args.output)
    print(f"results: {path}")
    return 0 if server_errors == 0 and health_p99 < HEALTH_P99_GOAL_SECONDS and sampler.peak < bound else 1


async def _ready(base: str, server: subprocess.Popen) -> None:
    async with aiohttp.ClientSession() as session:
        await wait_ready(session, base, server)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
