"""Vocal stage throughput: seconds of audio processed per second on this machine, split into
decoding (soundfile + resampling to 16 kHz), the log-mel front end and the Musicnn network.

    .venv/bin/python benchmarks/bench_vocal.py [--tracks 12] [--threads 2]

Writes benchmarks/results/vocal.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch

from livi_tasks.build.demo import make_demo_catalogue
from livi_tasks.core.audio import SAMPLE_RATE, load_audio
from livi_tasks.models.musicnn import TAGS, load_musicnn, log_mel_windows, predict_windows, zero_shot_vocalness

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, default=12, help="Demo tracks to time.")
    parser.add_argument("--threads", type=int, default=2, help="torch threads.")
    parser.add_argument("--batch", type=int, default=64, help="Windows per Musicnn batch.")
    parser.add_argument("--catalogue-dir", default=None, help="Where to make/keep the demo catalogue.")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "vocal.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    folder = Path(args.catalogue_dir or tempfile.mkdtemp(prefix="bench-vocal-"))
    manifest = make_demo_catalogue(
        folder, works=max(1, args.tracks // 3), versions=3, seed=3, instrumentals=0, hard_negatives=0
    )
    paths = [manifest.parent / p for p in pd.read_csv(manifest)["path"]][: args.tracks]
    model = load_musicnn("MTT_musicnn", os.path.expanduser("~/.cache/livi"))
    predict_windows(model, log_mel_windows(load_audio(str(paths[0]))[: 3 * SAMPLE_RATE * 4]), args.batch)  # warm-up

    seconds = {"decode": 0.0, "front_end": 0.0, "network": 0.0}
    audio_s = windows = 0
    for path in paths:
        start = time.perf_counter()
        audio = load_audio(str(path))
        mid = time.perf_counter()
        mel = log_mel_windows(audio)
        end = time.perf_counter()
        taggram, _ = predict_windows(model, mel, args.batch)
        zero_shot_vocalness(taggram, TAGS["MTT_musicnn"])
        done = time.perf_counter()
        seconds["decode"] += mid - start
        seconds["front_end"] += end - mid
        seconds["network"] += done - end
        audio_s += len(audio) / SAMPLE_RATE
        windows += len(mel)
    total = sum(seconds.values())
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end",
        "torch_threads": args.threads,
        "tracks": len(paths),
        "audio_seconds": round(audio_s, 1),
        "windows": windows,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "share": {k: round(v / total, 3) for k, v in seconds.items()},
        "audio_seconds_per_second": round(audio_s / total, 2),
        "windows_per_second_network": round(windows / seconds["network"], 2),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
