"""What chunk re-ranking adds to a search: a Faiss index of N synthetic tracks with their chunks.

Each track gets 1-8 chunks (a 30 s chunk each; whole songs have 4-10, short tracks 1-2), its
vector the normalised mean of them, as the one-pass embedding makes it. A query is a stored
track's vector and chunks (what ``/versions`` searches with). Timed on one thread, as the service
runs each search: the search alone (top k), and the search of the top ``--depth`` followed by the
re-ranking (``PublishedIndex._reranked``: the candidates' chunks looked up, matched and fused).
Reports p50 / p99 in milliseconds and the chunk file's size.

    .venv/bin/python benchmarks/bench_rerank.py [--tracks 100000] [--depth 100] [--k 10]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from flop_bound import machine_facts  # noqa: E402  (benchmarks/, the script's folder)

from livi_tasks.core.chunk_match import IndexedChunks
from livi_tasks.core.config import IndexConfig
from livi_tasks.core.index import TrackIndex
from livi_tasks.core.vectors import l2_normalise
from livi_tasks.stages.retrieval import PublishedIndex

DIM = 384


def synthetic_tracks(tracks: int, seed: int = 0) -> tuple[np.ndarray, IndexedChunks]:
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 9, size=tracks)
    owners = np.repeat(np.arange(tracks), counts)
    chunks = l2_normalise(rng.standard_normal((len(owners), DIM), dtype=np.float32))
    sums = np.zeros((tracks, DIM), np.float32)
    np.add.at(sums, owners, chunks)
    return l2_normalise(sums), IndexedChunks(chunks.astype(np.float16), owners)


def timed_ms(function, repeats: int) -> np.ndarray:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return np.asarray(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, default=100_000, help="Synthetic tracks in the index.")
    parser.add_argument("--depth", type=int, default=100, help="Candidates re-ranked (index.rerank_depth).")
    parser.add_argument("--k", type=int, default=10, help="Answers per query.")
    parser.add_argument("--queries", type=int, default=500, help="Queries timed per variant.")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "rerank.json"))
    args = parser.parse_args()
    import faiss

    faiss.omp_set_num_threads(1)
    load_before = os.getloadavg()
    vectors, chunks = synthetic_tracks(args.tracks)
    rows = pd.DataFrame({"catalogue": "bench", "track_id": [f"t{i}" for i in range(args.tracks)], "work_id": ""})
    index = TrackIndex.build(vectors, rows, IndexConfig(), "bench")
    published = PublishedIndex(
        {"fingerprint": "bench"}, index, chunks=chunks, chunk_weight=0.5, rerank_depth=args.depth
    )
    plain = PublishedIndex({"fingerprint": "bench"}, index)
    picks = np.random.default_rng(1).integers(0, args.tracks, size=args.queries)
    result = {"tracks": args.tracks, "chunks": len(chunks.owners), "depth": args.depth, "k": args.k, "kind": index.kind}
    for name, target in (("search", plain), ("search+rerank", published)):
        queue = iter(picks.tolist() * 2)

        def one_query(target=target, queue=queue) -> None:
            position = next(queue)
            target.versions_of("bench", f"t{position}", position, args.k)

        times = timed_ms(one_query, min(args.queries, len(picks)))
        result[name] = {
            "p50_ms": round(float(np.median(times)), 3),
            "p99_ms": round(float(np.percentile(times, 99)), 3),
        }
        print(name, result[name])
    result["chunk_file_mb"] = round(chunks.owners.size * DIM * 2 / 2**20, 1)
    result.update(machine_facts(load_before))
    result["measured"] = time.strftime("%Y-%m-%d")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
