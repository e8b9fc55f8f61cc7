"""Capacity plan for a large catalogue, computed from the measured benchmarks (benchmarks/results/*.json).

Reads the per-stage costs that the benchmarks measured on this project's machine and scales them to
a catalogue of ``--tracks`` tracks of ``--track-minutes`` minutes: workers and hours for the first
full run, for a nightly increment and for retraining; shard sizes against Airflow's
``max_map_length``; index memory and latency. Prints the plan as Markdown and, with ``--write``,
replaces the generated block of docs/SCALING.md, so the plan follows the code and the measurements.

    .venv/bin/python benchmarks/capacity_plan.py [--tracks 10000000] [--write docs/SCALING.md]

Scaling rules (stated in the output): decoding, vocal detection and the number of 30 s vocal
segments grow with a track's duration; the encoder costs the same per segment; an IVF-PQ index
with the refine step costs the same bytes per vector; its search cost grows with the vectors
scanned, ``tracks * nprobe / nlist``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
BEGIN, END = "<!-- capacity-plan:begin -->", "<!-- capacity-plan:end -->"
HOUR = 3600.0


def load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def plan(args: argparse.Namespace) -> dict:
    embed = load("embed.json")
    index = load("index.json")
    concurrency = load("concurrency.json") if (RESULTS / "concurrency.json").exists() else None
    per_track = embed["seconds_per_track"]
    scale = args.track_minutes * 60 / embed["mean_track_duration_s"]
    segments_per_track = embed["asr_segments_per_track"] * scale
    machine_cores = embed["machine"]["cpus"]

    # Seconds of one bench machine (2 cores, torch using both) per catalogue track.
    # The embed stage and `livi query` run the same ASR-free path: with the one-pass embed stage
    # that is all a track needs (livi_incoming skips vocal and segments). Training tracks also go
    # through the vocal and segments stages, transcription and the text model.
    asr_free_s = per_track["asr_free_total"] * scale
    vocal_segments_s = (per_track["asr_detection"] + per_track["asr_segments"]) * scale
    asr_s = (per_track["asr_transcription"] + per_track["asr_text_embedding"]) * scale
    one_pass = embed["vocal_method"] == "encoder_probe"
    every_track_s = asr_free_s if one_pass else asr_free_s + vocal_segments_s
    training_track_s = asr_s + (vocal_segments_s if one_pass else 0.0)
    baseline = {
        "machine": f"{machine_cores} cores, CPU only (the benchmarks' machine)",
        "whisper_model": embed["whisper_model"],
        "asr_free_path": embed["asr_free_path"],
        "inference_precision": embed["inference_precision"],
        "track_minutes": args.track_minutes,
        "segments_per_track": round(segments_per_track, 2),
        "asr_free_s_per_track": round(asr_free_s, 2),
        "vocal_segments_s_per_track": round(vocal_segments_s, 2),
        "asr_s_per_track": round(asr_s, 2),
        "preprocessing_share": round(embed["preprocessing_share_of_asr_free"], 3),
    }

    def machines(seconds: float, hours: float) -> int:
        return max(1, math.ceil(seconds / (hours * HOUR)))

    first_s = args.tracks * every_track_s + args.training_tracks * training_track_s
    nightly_s = args.increment * every_track_s
    first = {
        "machine_hours": round(first_s / HOUR),
        "machines_for_deadline": machines(first_s, args.first_run_hours),
        "deadline_hours": args.first_run_hours,
        "of_which_transcription_machine_hours": round(args.training_tracks * training_track_s / HOUR),
    }
    nightly = {
        "tracks": args.increment,
        "machine_hours": round(nightly_s / HOUR, 1),
        "machines_for_window": machines(nightly_s, args.nightly_hours),
        "window_hours": args.nightly_hours,
    }

    epoch = load("embed.json")["training_epoch"]
    training_segments = args.training_tracks * segments_per_track
    epoch_s = epoch["epoch_from_cache_s"] / epoch["segments"] * training_segments
    features_s = epoch["recompute_features_s"] / epoch["segments"] * training_segments
    retrain = {
        "training_tracks": args.training_tracks,
        "segments": round(training_segments),
        "feature_cache_gb": round(training_segments * epoch["cache_mb_per_segment"] / 1024, 1),
        "feature_cache_machine_hours": round(features_s / HOUR, 1),
        "epoch_hours": round(epoch_s / HOUR, 2),
        "epochs": args.epochs,
        "training_hours_one_machine": round(epoch_s * args.epochs / HOUR, 1),
    }

    # Airflow: one mapped task instance per shard and stage; max_map_length bounds a run's shards.
    tracks_per_run = args.shard_size * args.max_map_length
    task_seconds = args.shard_size * asr_free_s  # the heaviest shard task: embed
    sharding = {
        "max_map_length": args.max_map_length,
        "shard_size": args.shard_size,
        "tracks_per_run_at_most": tracks_per_run,
        "runs_for_catalogue": math.ceil(args.tracks / tracks_per_run),
        "shard_task_minutes": round(task_seconds / 60, 1),
        "task_overhead_share": round(args.task_overhead_s / (args.task_overhead_s + task_seconds), 3),
        "nightly_shards": math.ceil(args.increment / args.shard_size),
    }

    bytes_per_vector = (index["index_bytes"] + index["id_table_bytes"]) / index["tracks"]
    lists_measured = int(index["faiss_factory"].split(",")[0].removeprefix("IVF"))
    probe = index["chosen"]["ivf_probe"]
    lists = 2 ** round(math.log2(4 * math.sqrt(args.tracks)))
    scanned_measured = index["tracks"] * probe / lists_measured
    scanned = args.tracks * probe / lists
    index_plan = {
        "measured": {
            "tracks": index["tracks"],
            "factory": index["faiss_factory"],
            "search_p50_ms": round(index["chosen"]["search_p50_ms"], 2),
            "recall_at_10": index["chosen"]["recall_at_10"],
            "build_s": round(index["build_s"]),
        },
        "bytes_per_track": round(bytes_per_vector),
        "memory_gb": round(args.tracks * bytes_per_vector / 2**30, 1),
        "ivf_lists": lists,
        "ivf_probe": probe,
        "vectors_scanned_per_query": round(scanned),
        "search_p50_ms_projected": round(
            index["chosen"]["faiss_p50_ms"] * scanned / scanned_measured
            + (index["chosen"]["search_p50_ms"] - index["chosen"]["faiss_p50_ms"]),
            2,
        ),
        "build_hours_projected": round(index["build_s"] * args.tracks / index["tracks"] / HOUR, 1),
        "shard_when_memory_gb_over": args.index_machine_gb,
    }
    return {
        "assumptions": vars(args) | {"write": None},
        "per_track": baseline,
        "first_run": first,
        "nightly": nightly,
        "retraining": retrain,
        "airflow": sharding,
        "index": index_plan,
        "concurrency": concurrency,
    }


def row(*cells: object) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def markdown(result: dict) -> str:
    a, t, f, n, r, s, i = (
        result[key] for key in ("assumptions", "per_track", "first_run", "nightly", "retraining", "airflow", "index")
    )
    measured = i["measured"]
    lines = [
        f"Generated by `benchmarks/capacity_plan.py` from `benchmarks/results/*.json`: {a['tracks']:,} tracks of "
        f"{a['track_minutes']} min, {a['training_tracks']:,} of them transcribed for training, "
        f'nightly {a["increment"]:,}. A "machine" is the benchmarks\' machine: {t["machine"]}; '
        f"Whisper {t['whisper_model']}, greedy decoding; ASR-free path: {t['asr_free_path']}, encoder "
        f"{t['inference_precision']}.",
        "",
        row("per track", "seconds on one machine"),
        row("---", "---"),
        row(
            "ASR-free path: the embed stage and `livi query` (decode, vocal detection, encoder + head)",
            t["asr_free_s_per_track"],
        ),
        row("vocal and segments stages, training tracks only (transcription's input)", t["vocal_segments_s_per_track"]),
        row("greedy transcription + text embedding, training tracks only", t["asr_s_per_track"]),
        "",
        row("job", "machine-hours", "machines", "for"),
        row("---", "---", "---", "---"),
        row(
            "first full run (embed all, transcribe the training set)",
            f"{f['machine_hours']:,}",
            f"{f['machines_for_deadline']:,}",
            f"{f['deadline_hours']} h",
        ),
        row("of which the training set's transcription path", f"{f['of_which_transcription_machine_hours']:,}", "", ""),
        row(
            f"nightly increment ({n['tracks']:,} tracks)",
            n["machine_hours"],
            n["machines_for_window"],
            f"{n['window_hours']} h window",
        ),
        row(
            f"retraining: feature cache ({r['segments']:,} segments, {r['feature_cache_gb']} GB float16)",
            r["feature_cache_machine_hours"],
            "",
            "once per Whisper model",
        ),
        row(
            f"retraining: {r['epochs']} epochs from the cache",
            r["training_hours_one_machine"],
            1,
            f"{r['epoch_hours']} h per epoch",
        ),
        "",
        f"Airflow: with `max_map_length` {s['max_map_length']} and {s['shard_size']} tracks per shard, one run maps "
        f"at most {s['tracks_per_run_at_most']:,} tracks, so the catalogue is {s['runs_for_catalogue']:,} runs "
        f"(catalogue partitions, e.g. `livi_incoming` days); a shard task embeds for {s['shard_task_minutes']} min, "
        f"so a task's start-up (~{a['task_overhead_s']} s) is {s['task_overhead_share']:.1%} of it. "
        f"A nightly increment is {s['nightly_shards']} shards.",
        "",
        f"Index: measured {measured['factory']} on {measured['tracks']:,} tracks: p50 {measured['search_p50_ms']} ms, "
        f"recall@10 {measured['recall_at_10']}, built in {measured['build_s']} s. At {a['tracks']:,} tracks: "
        f"{i['bytes_per_track']} bytes per track = {i['memory_gb']} GB in memory; IVF{i['ivf_lists']} "
        f"(about 4 sqrt(n) lists) with nprobe {i['ivf_probe']} scans {i['vectors_scanned_per_query']:,} vectors "
        f"per query: p50 about {i['search_p50_ms_projected']} ms (linear in vectors scanned); build about "
        f"{i['build_hours_projected']} h on 2 threads. "
        f"Past {i['shard_when_memory_gb_over']} GB on one machine, move the index to a Milvus server "
        "(`index_backend.name: milvus`, compose profile `milvus`), which shards and replicates it.",
    ]
    concurrency = result["concurrency"]
    if concurrency:
        lines += [
            "",
            row("heavy tasks at once", "threads each", "segments per second, all tasks", "per task"),
            row("---", "---", "---", "---"),
        ]
        for run in concurrency["runs"]:
            lines.append(
                row(
                    run["tasks"],
                    run["threads"],
                    f"{run['segments_per_s']:.2f}",
                    f"{run['segment_s']:.2f} s per segment",
                )
            )
    return "\n".join(lines)


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=10_000_000, help="Catalogue size.")
    parser.add_argument("--track-minutes", type=float, default=3.5, help="Mean track duration.")
    parser.add_argument("--training-tracks", type=int, default=200_000, help="Tracks transcribed to train the head.")
    parser.add_argument("--increment", type=int, default=50_000, help="Tracks arriving per night.")
    parser.add_argument("--first-run-hours", type=float, default=72, help="Deadline of the first full run.")
    parser.add_argument("--nightly-hours", type=float, default=4, help="Window of the nightly run.")
    parser.add_argument("--epochs", type=int, default=30, help="Training epochs (early stopping may end sooner).")
    parser.add_argument("--shard-size", type=int, default=200, help="Tracks per shard (ingest.shard_size).")
    parser.add_argument("--max-map-length", type=int, default=1024, help="Airflow [core] max_map_length.")
    parser.add_argument(
        "--task-overhead-s", type=float, default=5.0, help="Start-up of one Airflow task (measured ~5 s here)."
    )
    parser.add_argument("--index-machine-gb", type=float, default=64, help="Memory one index machine gives the index.")
    parser.add_argument(
        "--write",
        type=Path,
        help="Replace the generated block of this Markdown file (docs/SCALING.md); write results/capacity_plan.json.",
    )
    return parser.parse_args(argv)


def generated_block(document: str) -> str:
    return document.partition(BEGIN)[2].partition(END)[0].strip()


def main() -> None:
    args = arguments()
    result = plan(args)
    text = markdown(result)
    if args.write:
        (RESULTS / "capacity_plan.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        document = args.write.read_text()
        head, _, rest = document.partition(BEGIN)
        _, _, tail = rest.partition(END)
        args.write.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")
    print(text)


if __name__ == "__main__":
    main()
