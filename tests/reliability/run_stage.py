"""Run ingest or a per-shard stage over every shard in its own process (crash and concurrency tests).

usage: run_stage.py DATA_ROOT MANIFEST STAGE [--kill-at-write N] [--go FILE]

Prints READY once its imports are done, then (unless killed) one JSON line: the list of summaries.
``--kill-at-write N`` kills this process with SIGKILL in the middle of its N-th atomic file write,
leaving half the bytes in the temporary file, as a power cut or the OOM killer would.
``--go FILE`` waits for FILE to exist before starting, so that two runners start together.
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reliability_corpus import CRASH_CATALOGUE, crash_config  # noqa: E402

from livi_tasks.core.store import ArtifactStore  # noqa: E402
from livi_tasks.pipeline import run_stage_over_shards, stage_function  # noqa: E402
from livi_tasks.stages.catalogue import ingest_catalogue  # noqa: E402


def kill_at_write(number: int) -> None:
    original = ArtifactStore.write_atomic
    writes = 0

    def write_then_die(self: ArtifactStore, url: str, data: bytes) -> None:
        nonlocal writes
        writes += 1
        if writes == number:
            parent = posixpath.dirname(url)
            os.makedirs(parent, exist_ok=True)
            with open(posixpath.join(parent, f".tmp-killed-{posixpath.basename(url)}"), "wb") as handle:
                handle.write(data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        original(self, url, data)

    ArtifactStore.write_atomic = write_then_die


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_root")
    parser.add_argument("manifest")
    parser.add_argument("stage")
    parser.add_argument("--kill-at-write", type=int)
    parser.add_argument("--go")
    args = parser.parse_args()
    cfg = crash_config(Path(args.data_root))
    if args.stage != "ingest":
        stage_function(args.stage)  # import the stage's heavy modules before READY
    if args.kill_at_write:
        kill_at_write(args.kill_at_write)
    print("READY", flush=True)
    while args.go and not os.path.exists(args.go):
        time.sleep(0.005)
    if args.stage == "ingest":
        summaries = [ingest_catalogue(cfg, args.manifest, CRASH_CATALOGUE)]
    else:
        summaries = run_stage_over_shards(cfg, args.stage, CRASH_CATALOGUE)
    print(json.dumps(summaries, default=str), flush=True)


if __name__ == "__main__":
    main()
