"""Search at scale: each index store against exact NumPy search over the same vectors, in the same run.

Synthetic embeddings by default: `--vectors` 256-d vectors drawn around 1,000 centres (embeddings of
real images cluster by what they show; uniform noise has no neighbours worth finding), L2-normalised,
searched by cosine with held-out queries from the same distribution. `--index DIR` benches an index
`deeptrain index` built instead, querying it with its own rows.

Per store: build time (rows added, committed), recall@10 against exact search, single-query latency
p50/p99 and QPS (one thread, one query at a time, as a serving replica answers), and the memory of a
serving replica: a fresh process that opens the index and answers the queries; what opening and
querying added to its private (anonymous) memory and to the file pages it maps, which replicas on
one node share through the page cache (RssAnon and RssFile of /proc/self/status). The NumPy baseline holds the whole matrix privately.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

K = 10
CENTRES = 1000


def synthetic(count: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CENTRES, dim)).astype(np.float32)
    vectors = np.empty((count, dim), dtype=np.float32)
    for start in range(0, count, 100_000):
        stop = min(start + 100_000, count)
        picks = rng.integers(CENTRES, size=stop - start)
        vectors[start:stop] = centres[picks] + rng.normal(scale=0.35, size=(stop - start, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def exact_numpy(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """The baseline: one matrix product and a partial sort per query, as the index did before."""
    scores = vectors @ queries.T  # [N, Q]
    top = np.argpartition(-scores, k, axis=0)[:k].T
    order = np.take_along_axis(scores.T, top, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(top, order, axis=1)


def time_queries(search, queries: np.ndarray) -> tuple[list[float], float]:
    latencies = []
    started = time.perf_counter()
    for query in queries:
        begin = time.perf_counter()
        search(query)
        latencies.append((time.perf_counter() - begin) * 1000)
    return latencies, len(queries) / (time.perf_counter() - started)


def recall(found: list[list[str]], truth: list[list[str]]) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def rows_of(vectors: np.ndarray, start: int, stop: int):
    from deeptrain_trainer.workflow.index import Rows

    ids = [f"{i:09d}" for i in range(start, stop)]
    return Rows(ids=ids, vectors=vectors[start:stop], items=[{"id": i, "source": i} for i in ids])


def build(store: str, vectors: np.ndarray, workdir: Path) -> tuple[str, float]:
    """Add every row to a new index of `store` and commit; (its location, seconds)."""
    from deeptrain_api.workflow_contract import ENV_MILVUS_URI
    from deeptrain_trainer.workflow.embedded_store import EmbeddedIndex
    from deeptrain_trainer.workflow.index import IndexMeta
    from deeptrain_trainer.workflow.milvus_store import MilvusIndex

    started = time.perf_counter()
    meta = IndexMeta(metric="cosine", embed_node="embed")
    if store == "milvus-lite":
        os.environ[ENV_MILVUS_URI] = str(workdir / "milvus.db")
        index = MilvusIndex.create("dt_bench_" + meta.generation, meta)
    else:
        index = EmbeddedIndex.create(workdir / store, meta, structure=store.removeprefix("embedded-"))
    for start in range(0, len(vectors), 50_000):
        index.add(rows_of(vectors, start, min(start + 50_000, len(vectors))))
    index.commit()
    elapsed = time.perf_counter() - started
    if isinstance(index, MilvusIndex):
        # Milvus Lite serves one file to one process at a time: stop this process's engine for the replica.
        from milvus_lite.server_manager import server_manager_instance

        index.client.close()
        server_manager_instance.release_all()
    return index.location, elapsed


REPLICA = """
import json, sys, time, numpy as np, faiss, pymilvus
from deeptrain_trainer.workflow.stores import open_index
location, queries_file, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
queries = np.load(queries_file)

def memory():
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if line.startswith("Rss"))
    return int(status["RssAnon"].split()[0]) / 1024, int(status["RssFile"].split()[0]) / 1024

private_before, file_before = memory()
index = open_index(location)
found, latencies = [], []
started = time.perf_counter()
for query in queries:
    begin = time.perf_counter()
    found.append([n["id"] for n in index.search(query, k)[0]])
    latencies.append((time.perf_counter() - begin) * 1000)
qps = len(queries) / (time.perf_counter() - started)
private_after, file_after = memory()
print(json.dumps({"found": found, "latencies": latencies, "qps": qps, "uss_mb": private_after - private_before,
                  "rss_file_mb": file_after - file_before}))
"""


def serve_replica(location: str, queries: np.ndarray, workdir: Path, env: dict[str, str]) -> dict[str, Any]:
    """A fresh process opening the index as a serving replica does, answering every query once."""
    queries_file = workdir / "queries.npy"
    np.save(queries_file, queries)
    result = subprocess.run([sys.executable, "-c", REPLICA, location, str(queries_file), str(K)],
                            env={**env, **{key: value for key, value in os.environ.items() if key.startswith("DEEPTRAIN_")}},
                            capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"the replica for {location} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def baseline_replica(vectors: np.ndarray, queries: np.ndarray) -> dict[str, Any]:
    """Exact NumPy as every replica ran it before: the whole matrix loaded into private memory."""
    latencies, qps = time_queries(lambda q: exact_numpy(vectors, q[None, :], K), queries)
    return {"latencies": latencies, "qps": qps, "private_mb": vectors.nbytes / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vectors", type=int, default=1_000_000, help="synthetic vectors (default 1,000,000)")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--stores", default="embedded-exact,embedded-ivfpq,milvus-lite,embedded-hnsw",
                        help="comma-separated: embedded-exact, embedded-hnsw, embedded-ivfpq, milvus-lite")
    parser.add_argument("--milvus-vectors", type=int, default=100_000,
                        help="Milvus Lite gets at most this many of the vectors (its inserts go through JSON over gRPC)")
    parser.add_argument("--index", type=Path, default=None, help="bench this index folder instead of synthetic data")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    benchlib.pin_threads(1)
    env = benchlib.trainer_env()

    if args.index is not None:
        from deeptrain_trainer.workflow.stores import open_index

        existing = open_index(args.index)
        data = np.concatenate([rows.vectors for rows in existing.iter_rows(50_000)])
        rng = np.random.default_rng(1)
        picks = rng.choice(len(data), min(args.queries, len(data)), replace=False)
        queries = data[picks] + rng.normal(scale=0.01, size=(len(picks), data.shape[1])).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        source = f"index {args.index} ({len(data)} rows, {data.shape[1]}-d)"
    else:
        data = synthetic(args.vectors + args.queries, args.dim, seed=0)
        data, queries = data[:args.vectors], data[args.vectors:]
        source = f"{args.vectors:,} synthetic {args.dim}-d vectors around {CENTRES} centres"

    rows: list[list[Any]] = []
    results: dict[str, Any] = {"source": source, "k": K, "queries": len(queries), "stores": {}}
    with tempfile.TemporaryDirectory(prefix="search-scale-") as tmp:
        workdir = Path(tmp)
        for store in args.stores.split(","):
            subset = data[:args.milvus_vectors] if store == "milvus-lite" else data
            truth_rows = exact_numpy(subset, queries, K)
            truth = [[f"{i:09d}" for i in row] for row in truth_rows]
            baseline = baseline_replica(subset, queries)
            location, seconds = build(store, subset, workdir)
            replica = serve_replica(location, queries, workdir, env)
            entry = {"vectors": len(subset), "build_s": seconds, "recall_at_10": recall(replica["found"], truth),
                     "p50_ms": float(np.percentile(replica["latencies"], 50)),
                     "p99_ms": float(np.percentile(replica["latencies"], 99)), "qps": replica["qps"],
                     "private_mb": replica["uss_mb"], "shared_mb": replica["rss_file_mb"],
                     "numpy_p50_ms": float(np.percentile(baseline["latencies"], 50)),
                     "numpy_p99_ms": float(np.percentile(baseline["latencies"], 99)), "numpy_qps": baseline["qps"],
                     "numpy_private_mb": baseline["private_mb"]}
            results["stores"][store] = entry
            rows.append([store, f"{len(subset):,}", benchlib.fmt(seconds), benchlib.fmt(entry["recall_at_10"], 3),
                         benchlib.fmt(entry["p50_ms"], 2), benchlib.fmt(entry["p99_ms"], 2), benchlib.fmt(entry["qps"]),
                         benchlib.fmt(entry["numpy_p50_ms"], 2), benchlib.fmt(entry["numpy_qps"]),
                         benchlib.fmt(entry["qps"] / entry["numpy_qps"], 2), benchlib.fmt(entry["private_mb"]),
                         benchlib.fmt(entry["shared_mb"]), benchlib.fmt(entry["numpy_private_mb"])])
            print(f"{store}: {json.dumps({key: round(value, 4) for key, value in entry.items()})}", flush=True)
    benchlib.print_table(benchlib.simple_table(
        f"Search at scale: {source}, k={K}, {len(queries)} single queries, 1 thread",
        ["store", "rows", "build s", "recall@10", "p50 ms", "p99 ms", "QPS", "numpy p50 ms", "numpy QPS",
         "QPS / numpy", "replica private MiB", "replica shared MiB", "numpy private MiB"], rows))
    written = benchlib.write_results("search_scale", {"settings": vars(args) | {"index": str(args.index)},
                                                      **results}, args.output)
    print(f"results: {written}")


if __name__ == "__main__":
    main()
