"""Heavy tasks side by side: Whisper encoder throughput with 1 and 2 concurrent processes.

Each process stands for one Airflow task of the whisper pool (transcribe, features, embed): it
loads Whisper and pushes 30 s segments through the frozen encoder, the cost those tasks share.
Configurations: one task with all cores; two tasks each with torch's default (one thread per core,
what an Airflow worker with two slots did before tasks got a thread budget); two tasks with the
budget ``cores // 2`` that plugins/livi_airflow/task_runtime.py now gives each task.

    .venv/bin/python benchmarks/bench_concurrency.py [--model tiny.en] [--segments 12]

Writes benchmarks/results/concurrency.json (machine, load average, per configuration: tasks,
threads, seconds per segment per task, segments per second over all tasks). Run it alone.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def encode_segments(
    model_name: str, segments: int, threads: int | None, start_at: float, out: multiprocessing.Queue
) -> None:
    """One task: its thread budget set before torch loads, then ``segments`` encoder passes."""
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    else:
        os.environ.pop("OMP_NUM_THREADS", None)
    import torch
    import whisper

    from livi_tasks.core.config import load_config
    from livi_tasks.models.whisper_weights import cached_whisper

    model = cached_whisper(model_name, load_config(environ={}).models_dir)
    mel = whisper.log_mel_spectrogram(torch.randn(whisper.audio.N_SAMPLES) * 0.1, model.dims.n_mels)[None]
    with torch.inference_mode():
        model.encoder(mel)  # warm-up
        while time.time() < start_at:  # start together
            time.sleep(0.01)
        started = time.perf_counter()
        for _ in range(segments):
            model.encoder(mel)
    out.put({"threads": torch.get_num_threads(), "seconds": time.perf_counter() - started})


def run(model_name: str, tasks: int, threads: int | None, segments: int) -> dict:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start_at = time.time() + 20  # after every process has loaded the model
    processes = [
        context.Process(target=encode_segments, args=(model_name, segments, threads, start_at, results))
        for _ in range(tasks)
    ]
    for process in processes:
        process.start()
    timings = [results.get(timeout=1800) for _ in processes]
    for process in processes:
        process.join()
    slowest = max(timing["seconds"] for timing in timings)
    return {
        "tasks": tasks,
        "threads": timings[0]["threads"],
        "segment_s": slowest / segments,
        "segments_per_s": tasks * segments / slowest,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny.en", help="Whisper checkpoint.")
    parser.add_argument("--segments", type=int, default=12, help="Encoder passes per task.")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "concurrency.json"))
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    load_before = os.getloadavg()
    runs = [
        run(args.model, 1, None, args.segments),
        run(args.model, 2, None, args.segments),
        run(args.model, 2, max(1, cores // 2), args.segments),
    ]
    result = {
        "machine": {
            "platform": platform.platform(),
            "cpus": cores,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "whisper_model": args.model,
        "segments_per_task": args.segments,
        "runs": runs,
        "two_tasks_budgeted_over_default_throughput": runs[2]["segments_per_s"] / runs[1]["segments_per_s"],
        "two_tasks_budgeted_over_one_task_throughput": runs[2]["segments_per_s"] / runs[0]["segments_per_s"],
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
