"""kill -9 in the middle of a stage, rerun: the same artifacts as an uninterrupted run.

A runner process is killed with SIGKILL either at an exact point (halfway through its N-th atomic
file write, which leaves a half-written temporary) or after a random delay. After the kill, every
committed artifact has all its files; after a rerun, the data root reads exactly like the one of an
uninterrupted run: same tables and arrays, no duplicate rows, every artifact folder committed, and
at most hidden ``.tmp-`` leftovers.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pandas as pd
import pytest
from reliability_corpus import (
    CRASH_CATALOGUE,
    Snapshot,
    assert_same_artifacts,
    crash_config,
    finish_runner,
    snapshot,
    start_runner,
    wait_ready,
)

from livi_tasks.core.store import MARKER
from livi_tasks.pipeline import run_stage_over_shards
from livi_tasks.stages.catalogue import ingest_catalogue

# Atomic writes, in order. ingest: tracks, quarantine, shards, marker, pointer (1-5).
# vocal, per shard: windows, tracks, features, marker (1-4 for the first shard, 5-8 for the second);
# the ingest kills already cover a kill while writing a commit marker.
INGEST_KILL_POINTS = [1, 2, 4, 5]
VOCAL_KILL_POINTS = [3, 6]


def assert_committed_are_whole(killed: Snapshot, reference: Snapshot) -> None:
    """Whatever carries a commit marker after the kill has every file of the uninterrupted run."""
    for name in killed.files:
        if Path(name).name == MARKER:
            folder = str(Path(name).parent)
            have = {f for f in killed.files if str(Path(f).parent) == folder}
            want = {f for f in reference.files if str(Path(f).parent) == folder}
            assert have == want, f"committed artifact {folder} lacks {sorted(want - have)}"


def kill_run(data_root: Path, manifest: Path, stage: str, kill_at_write: int | None, max_delay_s: float) -> str:
    """Start the stage in a runner, kill it (at a write or after a random delay); say what happened."""
    options = ("--kill-at-write", str(kill_at_write)) if kill_at_write else ()
    runner = start_runner(data_root, manifest, stage, *options)
    wait_ready(runner)
    if kill_at_write is None:
        delay = random.uniform(0.0, max_delay_s)
        time.sleep(delay)
        runner.send_signal(signal.SIGKILL)
    code, _ = finish_runner(runner)
    killed = "killed" if code == -signal.SIGKILL else "finished before the kill"
    return f"{killed} ({'at write ' + str(kill_at_write) if kill_at_write else f'after {delay:.2f} s'})"


@pytest.mark.parametrize(
    "kill_at_write", [*INGEST_KILL_POINTS, None], ids=[*(f"write{n}" for n in INGEST_KILL_POINTS), "random"]
)
def test_kill_ingest_then_rerun(crash_reference, tmp_path, kill_at_write):
    root = tmp_path / "data"
    outcome = kill_run(root, crash_reference.manifest, "ingest", kill_at_write, max_delay_s=0.3)
    print(outcome)
    assert_committed_are_whole(snapshot(root), crash_reference.ingest)
    ingest_catalogue(crash_config(root), crash_reference.manifest, CRASH_CATALOGUE)
    assert_same_artifacts(snapshot(root), crash_reference.ingest)


@pytest.mark.parametrize(
    "kill_at_write", [*VOCAL_KILL_POINTS, None], ids=[*(f"write{n}" for n in VOCAL_KILL_POINTS), "random"]
)
def test_kill_vocal_stage_then_rerun(crash_reference, tmp_path, kill_at_write):
    root = tmp_path / "data"
    cfg = crash_config(root)
    ingest_catalogue(cfg, crash_reference.manifest, CRASH_CATALOGUE)
    # The runner loads Musicnn after READY, then does the reference's work: a delay up to the
    # reference's time lands before the end, anywhere from the model load to the last shard.
    outcome = kill_run(
        root, crash_reference.manifest, "vocal", kill_at_write, max_delay_s=crash_reference.vocal_seconds
    )
    killed = snapshot(root)
    assert_committed_are_whole(killed, crash_reference.vocal)
    done_before = {
        name.split("/")[2]
        for name in killed.files
        if name.startswith(f"{CRASH_CATALOGUE}/vocal/") and name.endswith(MARKER)
    }
    print(f"{outcome}, shards committed before the kill: {sorted(done_before)}")

    rerun = run_stage_over_shards(cfg, "vocal", CRASH_CATALOGUE)
    # Committed shards are skipped, the others redone from scratch.
    assert {s["shard"] for s in rerun if s["skipped"]} == done_before
    after = snapshot(root)
    assert_same_artifacts(after, crash_reference.vocal)
    tracks = pd.concat(
        [
            table
            for name, table in after.files.items()
            if name.startswith(f"{CRASH_CATALOGUE}/vocal/") and name.endswith("tracks.parquet")
        ]
    )
    assert tracks["track_id"].is_unique and len(tracks) == 3
    if kill_at_write:
        assert killed.temporaries, "the killed write should have left its half-written temporary, hidden"
        # The rerun of that shard, holding its lock, clears what the killed writer left.
        assert after.temporaries == []
