"""Benchmark the large-catalogue index: 1 M synthetic 384-d track embeddings.

Data: a three-level hierarchy like a music catalogue: 500 "genre" centres, works drawn around them
(spread 0.6), 2-18 versions per work around each work (spread 0.5), pushed through a random
rotation with a decaying spectrum (singular values j^-0.5, so the space is anisotropic like real
sentence embeddings) and L2-normalised. Versions of a work then have cosine ~0.8, works of one genre
~0.65, unrelated tracks ~0. Queries are held-out tracks of the same works, not in the index.

Measured: build time (2 Faiss threads), process RSS growth and saved index size, single-query
latency p50/p99 (1 thread; raw Faiss search and the full TrackIndex.search with its DataFrame),
recall@10 against exact inner-product search, and a small sweep of search-time settings.
Goal: p50 <= 2 ms, recall@10 >= 0.95, index under 1 GB.

    .venv/bin/python benchmarks/bench_index.py [--tracks 1000000] [--out benchmarks/results/index.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import psutil
from tqdm import tqdm

from livi_tasks.core.config import IndexConfig
from livi_tasks.core.index import TrackIndex, factory_string

DIM = 384
GENRES = 500
WORK_SPREAD = 0.6
VERSION_SPREAD = 0.5
GENERATE_CHUNK = 100_000
K = 10
SWEEP = ((16, 8), (16, 16), (32, 16), (32, 32), (64, 32))
GOALS = {"p50_ms": 2.0, "recall_at_10": 0.95, "index_bytes": 1 << 30}


def synthetic_catalogue(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, DIM) unit vectors and their work ids, generated as described in the module docstring."""
    rng = np.random.default_rng(seed)
    orthogonal, _ = np.linalg.qr(rng.standard_normal((DIM, DIM)))
    mixing = ((np.arange(1, DIM + 1) ** -0.5)[:, None] * orthogonal).astype(np.float32)
    versions_per_work = rng.integers(2, 19, size=n // 2 + 1)
    work_of = np.repeat(np.arange(len(versions_per_work)), versions_per_work)[:n]
    genres = rng.standard_normal((GENRES, DIM), dtype=np.float32)
    n_works = int(work_of[-1]) + 1
    works = genres[rng.integers(0, GENRES, n_works)] + WORK_SPREAD * rng.standard_normal(
        (n_works, DIM), dtype=np.float32
    )
    vectors = np.empty((n, DIM), dtype=np.float32)
    for start in tqdm(range(0, n, GENERATE_CHUNK), desc="generate", unit="chunk"):
        members = work_of[start : start + GENERATE_CHUNK]
        noisy = works[members] + VERSION_SPREAD * rng.standard_normal((len(members), DIM), dtype=np.float32)
        mixed = noisy @ mixing
        vectors[start : start + GENERATE_CHUNK] = mixed / np.linalg.norm(mixed, axis=1, keepdims=True)
    return vectors, work_of


def rss_bytes() -> int:
    return psutil.Process().memory_info().rss


def single_query_latencies(search, queries: np.ndarray) -> np.ndarray:
    latencies = np.empty(len(queries))
    for i in range(len(queries)):
        start = time.perf_counter()
        search(queries[i : i + 1])
        latencies[i] = time.perf_counter() - start
    return latencies * 1e3


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(f, t)) / truth.shape[1] for f, t in zip(found, truth)]))


def measure(index: TrackIndex, queries: np.ndarray, truth: np.ndarray) -> dict:
    """Recall and single-thread single-query latency of ``index`` under its current config."""
    faiss.omp_set_num_threads(1)
    params = index._search_parameters()
    raw = single_query_latencies(lambda q: index.index.search(q, K, params=params), queries)
    full = single_query_latencies(lambda q: index.search(q, K), queries)
    ids = index.search(queries, K).ids
    return {
        "ivf_probe": index.config.ivf_probe,
        "refine_factor": index.config.refine_factor,
        "recall_at_10": recall_at_k(ids, truth),
        "faiss_p50_ms": float(np.percentile(raw, 50)),
        "faiss_p99_ms": float(np.percentile(raw, 99)),
        "search_p50_ms": float(np.percentile(full, 50)),
        "search_p99_ms": float(np.percentile(full, 99)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--build-threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "index.json")
    args = parser.parse_args()

    vectors, work_of = synthetic_catalogue(args.tracks + args.queries)
    held_out = np.random.default_rng(1).choice(len(vectors), size=args.queries, replace=False)
    in_index = np.setdiff1d(np.arange(len(vectors)), held_out)
    queries, base, base_works = vectors[held_out], vectors[in_index], work_of[in_index]
    del vectors
    rows = pd.DataFrame(
        {"catalogue": "synthetic", "track_id": np.arange(len(base)).astype(str), "work_id": base_works.astype(str)}
    )

    config = IndexConfig()
    faiss.omp_set_num_threads(args.build_threads)
    rss_before = rss_bytes()
    start = time.perf_counter()
    index = TrackIndex.build(base, rows, config, model_id="synthetic-384")
    build_s = time.perf_counter() - start
    rss_growth = rss_bytes() - rss_before
    print(f"built {index.kind} over {index.count} vectors in {build_s:.1f} s", flush=True)

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        index.save(folder)
        save_s = time.perf_counter() - start
        index_bytes = (Path(folder) / "index.faiss").stat().st_size
        ids_bytes = (Path(folder) / "ids.parquet").stat().st_size

    start = time.perf_counter()
    _, truth = faiss.knn(queries, base, K, metric=faiss.METRIC_INNER_PRODUCT)
    exact_s = time.perf_counter() - start

    chosen = measure(index, queries, truth)
    sweep = []
    for probe, refine in SWEEP:
        index.config = config.model_copy(update={"ivf_probe": probe, "refine_factor": refine})
        sweep.append(measure(index, queries, truth))
    index.config = config

    result = {
        "tracks": index.count,
        "dim": DIM,
        "queries": args.queries,
        "kind": index.kind,
        "faiss_factory": factory_string(index.kind, config, index.count, DIM),
        "config": config.model_dump(mode="json"),
        "build_threads": args.build_threads,
        "build_s": build_s,
        "save_s": save_s,
        "rss_growth_bytes": rss_growth,
        "index_bytes": index_bytes,
        "id_table_bytes": ids_bytes,
        "exact_search_s_for_queries": exact_s,
        "chosen": chosen,
        "sweep": sweep,
        "goals": GOALS,
        "goals_met": {
            "p50_ms": chosen["faiss_p50_ms"] <= GOALS["p50_ms"] and chosen["search_p50_ms"] <= GOALS["p50_ms"],
            "recall_at_10": chosen["recall_at_10"] >= GOALS["recall_at_10"],
            "index_bytes": index_bytes < GOALS["index_bytes"],
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1m": os.getloadavg()[0],
            "python": platform.python_version(),
            "faiss": faiss.__version__,
        },
        "data": {
            "genres": GENRES,
            "work_spread": WORK_SPREAD,
            "version_spread": VERSION_SPREAD,
            "versions_per_work": "2-18",
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.out.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(result, indent=2))
    os.replace(temporary, args.out)

    print(f"index {index_bytes / 1e6:.0f} MB on disk, RSS +{rss_growth / 1e6:.0f} MB, build {build_s:.0f} s")
    print(f"{'nprobe':>6} {'refine':>6} {'recall@10':>9} {'faiss p50/p99 ms':>17} {'search p50/p99 ms':>18}")
    for row in [chosen] + sweep:
        print(
            f"{row['ivf_probe']:>6} {row['refine_factor']:>6} {row['recall_at_10']:>9.4f} "
            f"{row['faiss_p50_ms']:>8.3f}/{row['faiss_p99_ms']:<8.3f} "
            f"{row['search_p50_ms']:>8.3f}/{row['search_p99_ms']:<8.3f}"
        )
    print(
        f"goals met: {result['goals_met']} "
        f"(load average {result['machine']['load_average_1m']:.1f} on {os.cpu_count()} cpus)"
    )


if __name__ == "__main__":
    main()
