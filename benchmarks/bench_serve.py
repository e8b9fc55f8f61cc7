"""Benchmark `livi serve` on loopback: catalogue-track searches on a large index, audio queries, and
Faiss beside milvus-lite.

1. ``/v1/tracks/{catalogue}/{track}/versions`` on a synthetic index of ``--tracks`` tracks (the
   clustered 384-d vectors of bench_index.py) at each of ``--clients`` concurrent clients, each
   client a keep-alive HTTP/1.1 connection sending requests back to back, ``--requests`` per level:
   QPS, p50, p99, errors. The service runs as its own process (`livi serve` with
   ``serve.audio_queries=false``: no encoder needed) so that the load generator does not share its
   interpreter. Faiss (``index.kind: auto``: IVF-PQ from 50k tracks, exact below) and milvus-lite
   (``--milvus-index``, HNSW by default) side by side, with the overlap of their top 10.
   Goal: p99 <= 20 ms at 32 clients on 2 cores.
2. ``POST /v1/query`` with the files of a demo catalogue (``--whisper-model``): seconds per query
   one at a time, with the service's per-stage timings; then ``--overload`` x the pool's capacity
   (workers + queue) of uploads at once, ``--overload-rounds`` times: how many were answered and
   how many got 503 with Retry-After, that none timed out, and the service's memory (RSS) per round.

Loopback only; everything is bounded by the flags. The client and the service share the machine's
cores: the figures include the load generator's own cost.

    .venv/bin/python benchmarks/bench_serve.py [--tracks 1000000] [--clients 1,8,32] [--requests 2000]
        [--backends faiss,milvus] [--whisper-model base] [--query-requests 10] [--work-dir data/bench-serve]

Writes benchmarks/results/serve.json: per part its measurements, settings and machine facts (a part
left out with --skip keeps what the file held).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_index import synthetic_catalogue  # noqa: E402  (benchmarks/, the script's folder)
from flop_bound import machine_facts  # noqa: E402

from livi_tasks.core.config import IndexBackendConfig, IndexConfig, load_config  # noqa: E402
from livi_tasks.core.index import TrackIndex  # noqa: E402
from livi_tasks.core.runner import produce_artifact  # noqa: E402
from livi_tasks.core.store import ArtifactStore  # noqa: E402
from livi_tasks.service.app import wait_until_ready  # noqa: E402
from livi_tasks.stages.index_artifacts import close_index, index_artifact, new_milvus_index, save_faiss, save_milvus  # noqa: E402
from livi_tasks.stages.retrieval import POINTER  # noqa: E402

CATALOGUE = "synthetic"
MODEL = "synthetic-384"
GOAL_P99_MS_AT_32 = 20.0
CLIENT_TIMEOUT_S = 600


# -- the service, as a process ------------------------------------------------------------------
def start_service(root: Path, port: int, settings: list[str], threads: int | None, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if threads:
        env["LIVI_TASK_THREADS"] = str(threads)
    sets = [part for setting in settings for part in ("--set", setting)]
    command = [sys.executable, "-m", "livi_tasks.cli", "--data-root", str(root), *sets, "serve", "--port", str(port)]
    return subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def stop_service(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=120)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- a lean keep-alive HTTP/1.1 client (httpx would cost more than the service) -------------------
async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> int:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)
    return status


async def _client(port: int, paths: list[str], latencies: list[float], errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for path in paths:
            started = time.perf_counter()
            try:
                status = await _get(reader, writer, path)
            except (OSError, asyncio.IncompleteReadError) as exc:
                errors.append(repr(exc))
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors.append(str(status))
    finally:
        writer.close()


def load_level(port: int, paths: list[str], clients: int) -> dict:
    """``clients`` connections sending ``paths`` (split between them) back to back."""
    latencies: list[float] = []
    errors: list[str] = []

    async def run() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(_client(port, paths[i::clients], latencies, errors) for i in range(clients)))
        return time.perf_counter() - started

    seconds = asyncio.run(run())
    ms = np.array(latencies) * 1e3
    return {
        "clients": clients,
        "requests": len(paths),
        "errors": len(errors),
        "error_examples": errors[:3],
        "seconds": round(seconds, 3),
        "qps": round(len(latencies) / seconds, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
    }


# -- part 1: /versions on a synthetic index ----------------------------------------------------
def publish_synthetic(root: Path, tracks: int, backend: str, milvus_index: str) -> dict:
    """An index of synthetic tracks in a store of its own, published as the index stage would."""
    store = ArtifactStore(str(root))
    vectors, works = synthetic_catalogue(tracks)
    rows = pd.DataFrame(
        {"catalogue": CATALOGUE, "track_id": [f"t{i:07d}" for i in range(tracks)], "work_id": works.astype(str)}
    )
    fingerprint = f"bench-{backend}-{tracks}"
    artifact = index_artifact(store, backend, fingerprint)

    def build(target):
        started = time.perf_counter()
        if backend == "milvus":
            config = IndexBackendConfig(name="milvus", milvus_index_type=milvus_index)
            index, _ = new_milvus_index(config, fingerprint, vectors.shape[1], MODEL)
            index.add(vectors, rows)
            save_milvus(index, target, None)
            close_index(index)
        else:
            import faiss

            faiss.omp_set_num_threads(2)
            index = TrackIndex.build(vectors, rows, IndexConfig(), MODEL)
            save_faiss(index, target)
        return {
            "model": MODEL,
            "backend": backend,
            "uri": None,
            "members": {CATALOGUE: fingerprint},
            "takedowns": [],
            "kind": index.kind,
            "tracks": tracks,
            "build_s": round(time.perf_counter() - started, 1),
        }

    summary = produce_artifact(artifact, build, pointer=POINTER)
    return {"rows": rows, "vectors": vectors, **summary}


def versions_paths(rows: pd.DataFrame, count: int, k: int, seed: int) -> list[str]:
    chosen = np.random.default_rng(seed).choice(len(rows), size=count)
    return [f"/v1/tracks/{CATALOGUE}/{rows.track_id.iat[i]}/versions?k={k}" for i in chosen]


def bench_versions(args, work: Path) -> dict:
    results: dict = {}
    tops: dict[str, dict] = {}
    for backend in args.backends:
        root = work / f"versions-{backend}-{args.tracks}"
        published = publish_synthetic(root, args.tracks, backend, args.milvus_index)
        rows = published.pop("rows")
        published.pop("vectors")
        port = free_port()
        log = work / f"serve-{backend}.log"
        settings = ["serve.audio_queries=false", "serve.refresh_s=0", f"serve.max_k={args.k}"]
        process = start_service(root, port, settings, args.service_threads, log)
        try:
            ready = wait_until_ready(f"http://127.0.0.1:{port}", process, log)
            load_level(port, versions_paths(rows, min(200, args.requests), args.k, 99), 4)  # warm-up
            levels = [load_level(port, versions_paths(rows, args.requests, args.k, c), c) for c in args.clients]
            sample = versions_paths(rows, args.overlap_queries, 10, 7)
            tops[backend] = {
                path: [
                    v["track_id"] for v in requests.get(f"http://127.0.0.1:{port}{path}", timeout=60).json()["versions"]
                ]
                for path in sample
            }
            rss = psutil.Process(process.pid).memory_info().rss
        finally:
            stop_service(process)
        results[backend] = {
            "index_kind": ready["kind"],
            "tracks": ready["tracks"],
            "build_s": published.get("build_s"),
            "service_rss_bytes": rss,
            "levels": levels,
        }
        print(f"{backend}: {ready['kind']}, {ready['tracks']} tracks")
        for level in levels:
            print(
                f"  {level['clients']:>3} clients: {level['qps']:>8.1f} QPS, p50 {level['p50_ms']:.2f} ms, "
                f"p99 {level['p99_ms']:.2f} ms, errors {level['errors']}"
            )
    if len(tops) == 2:
        first, second = tops.values()
        overlap = [len(set(first[p]) & set(second[p])) / 10 for p in first]
        results["top10_overlap_faiss_milvus"] = round(float(np.mean(overlap)), 4)
    at32 = [lvl for lvl in results.get("faiss", {}).get("levels", []) if lvl["clients"] == 32]
    results["goal_p99_ms_at_32"] = GOAL_P99_MS_AT_32
    results["goal_met"] = bool(at32 and at32[0]["p99_ms"] <= GOAL_P99_MS_AT_32 and at32[0]["errors"] == 0)
    return results


# -- part 2: /v1/query with demo files -------------------------------------------------------------
def demo_store(work: Path, whisper_model: str) -> tuple[Path, list[Path]]:
    """A demo catalogue ingested, embedded (one pass) and indexed in a store of its own."""
    from livi_tasks.build.demo import make_demo_catalogue
    from livi_tasks.pipeline import run_stage_over_shards
    from livi_tasks.stages.catalogue import ingest_catalogue
    from livi_tasks.stages.retrieval import build_catalogue_index

    manifest = make_demo_catalogue(
        work / "demo-catalogue", works=6, versions=2, seed=5, instrumentals=1, hard_negatives=1
    )
    root = work / f"query-{whisper_model}"
    cfg = load_config(
        overrides={"store": {"root": str(root)}, "transcribe": {"whisper_model": whisper_model}}, environ={}
    )
    ingest_catalogue(cfg, manifest, "demo")
    run_stage_over_shards(cfg, "embed", "demo")
    build_catalogue_index(cfg, ["demo"])
    table = pd.read_csv(manifest)
    return root, [manifest.parent / path for path in table["path"]]


def _upload(url: str, path: Path) -> tuple[int, dict, dict]:
    with open(path, "rb") as handle:
        response = requests.post(f"{url}/v1/query", files={"file": (path.name, handle)}, timeout=CLIENT_TIMEOUT_S)
    return response.status_code, dict(response.headers), response.json()


def bench_queries(args, work: Path) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    root, files = demo_store(work, args.whisper_model)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = work / "serve-query.log"
    process = start_service(root, port, ["serve.refresh_s=0"], args.service_threads, log)
    try:
        ready = wait_until_ready(url, process, log)
        service = psutil.Process(process.pid)
        rss_start = service.memory_info().rss
        sequential = []
        for path in (files * args.query_requests)[: args.query_requests]:
            started = time.perf_counter()
            status, _, body = _upload(url, path)
            assert status == 200, body
            sequential.append({"wall_s": time.perf_counter() - started, **body["timings"]})
        rounds = []
        burst = args.overload * ready["query_capacity"]
        for number in range(args.overload_rounds):
            started = time.perf_counter()
            with ThreadPoolExecutor(burst) as pool:
                answers = list(pool.map(lambda p: _upload(url, p), (files * burst)[:burst]))
            statuses = [status for status, _, _ in answers]
            rounds.append(
                {
                    "round": number + 1,
                    "uploads": burst,
                    "answered": statuses.count(200),
                    "busy_503": statuses.count(503),
                    "with_retry_after": sum(
                        1 for s, h, _ in answers if s == 503 and "retry-after" in {k.lower() for k in h}
                    ),
                    "other": [s for s in statuses if s not in (200, 503)],
                    "seconds": round(time.perf_counter() - started, 2),
                    "service_rss_bytes": service.memory_info().rss,
                }
            )
            print(f"round {number + 1}: {rounds[-1]}")
    finally:
        stop_service(process)
    walls = np.array([s["wall_s"] for s in sequential])
    return {
        "whisper_model": args.whisper_model,
        "query_workers": ready["query_workers"],
        "query_capacity": ready["query_capacity"],
        "thread_budget": ready["thread_budget"],
        "audio_seconds_per_file": "40-60 (demo)",
        "sequential": {
            "queries": len(sequential),
            "p50_s": round(float(np.median(walls)), 3),
            "mean_s": round(float(walls.mean()), 3),
            "stage_p50": {
                name: round(float(np.median([s[name] for s in sequential])), 4)
                for name in ("upload_s", "queue_s", "decode_s", "embed_s", "search_ms", "total_s")
            },
        },
        "overload": {
            "factor": args.overload,
            "rounds": rounds,
            "timeouts": 0,  # a timeout raises in _upload and ends the benchmark
            "rss_start_bytes": rss_start,
            "rss_growth_over_rounds_bytes": rounds[-1]["service_rss_bytes"] - rounds[0]["service_rss_bytes"],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, default=1_000_000, help="Tracks of the synthetic index.")
    parser.add_argument("--clients", default="1,8,32", help="Concurrent clients, comma-separated levels.")
    parser.add_argument("--requests", type=int, default=2000, help="/versions requests per level.")
    parser.add_argument("--k", type=int, default=10, help="Versions asked per request.")
    parser.add_argument("--backends", default="faiss,milvus", help="faiss, milvus (milvus-lite) or both.")
    parser.add_argument("--milvus-index", default="HNSW", help="milvus-lite index type (FLAT is exact and slow).")
    parser.add_argument("--overlap-queries", type=int, default=100, help="Queries whose top 10 both backends give.")
    parser.add_argument("--whisper-model", default="base", help="Encoder of the audio-query part (base, tiny.en).")
    parser.add_argument("--query-requests", type=int, default=10, help="Audio queries sent one at a time.")
    parser.add_argument("--overload", type=int, default=2, help="Uploads at once, as a multiple of the capacity.")
    parser.add_argument("--overload-rounds", type=int, default=3, help="Rounds of the overload (memory per round).")
    parser.add_argument("--service-threads", type=int, default=0, help="The service's thread budget (0: its cores).")
    parser.add_argument("--skip", default="", help="Parts to skip: versions, query.")
    parser.add_argument("--work-dir", type=Path, default=None, help="Stores and logs (default: a temporary folder).")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "serve.json")
    args = parser.parse_args()
    args.clients = [int(c) for c in args.clients.split(",")]
    args.backends = [b for b in args.backends.split(",") if b]
    skip = set(args.skip.split(","))
    # A part skipped now keeps what the previous run wrote (each part carries its own machine facts).
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    threads = args.service_threads or len(os.sched_getaffinity(0))
    result = {}
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as scratch:
        work = args.work_dir or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        for part, run in (("versions", bench_versions), ("query", bench_queries)):
            if part in skip:
                result[part] = previous.get(part)
                continue
            load_before = os.getloadavg()
            result[part] = {**run(args, work), "settings": settings}
            result[part].update(machine_facts(load_before, service_threads=threads))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.out.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(temporary, args.out)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
