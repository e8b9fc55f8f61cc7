"""The shape every stage shares: lock, skip when done, write, commit (and, for catalogue-level
stages, move a pointer). Keys come from the caller (``stages.lineage`` for the pipeline's stages)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from typing import Callable, Iterator

import pandas as pd

from livi_tasks.core.store import Artifact, ArtifactStore

log = logging.getLogger(__name__)

FAILED_COLUMNS = {"track_id": "string", "reason": "string"}


@contextlib.contextmanager
def artifact_lock(artifact: Artifact) -> Iterator[None]:
    """Exclusive lock on a local artifact, so that two runs of one shard do the work once.

    Object stores get no lock: their writers produce identical files and the first commit wins.
    """
    with path_lock(artifact.store, artifact.url.rstrip("/") + ".lock"):
        yield


@contextlib.contextmanager
def store_lock(store: ArtifactStore, name: str) -> Iterator[None]:
    """Exclusive lock on a name of a local store (``_index/BUILD.lock``), for work whose output
    depends on what the previous holder published; object stores get none."""
    with path_lock(store, store.join(name)):
        yield


@contextlib.contextmanager
def path_lock(store: ArtifactStore, lock_path: str) -> Iterator[None]:
    if not store.is_local:
        yield
        return
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def produce_artifact(output: Artifact, work: Callable[[Artifact], dict], pointer: str | None = None) -> dict:
    """The one path every stage's output takes: lock it; when it is committed, skip; otherwise clear
    what a killed writer left, run ``work(output) -> summary`` and commit.

    ``pointer`` names a small JSON file of the store (a catalogue's current ingest, the current
    index, the latest evaluation) that then gets the summary (less its timing) and the
    fingerprint, on both paths, so it names the output of the latest run. Returns the summary
    plus the artifact's key and ``skipped`` (True when nothing was done).
    """
    label = f"{output.key.stage} {output.key.catalogue}/{output.key.shard}"
    with artifact_lock(output):
        skipped = output.is_complete()
        if skipped:
            summary = output.summary()
            log.info("%s already done: %s", label, output.url)
        else:
            output.remove_temporaries()
            started = time.perf_counter()
            summary = work(output)
            summary["seconds"] = round(time.perf_counter() - started, 3)
            output.commit(summary)
            scalars = {name: value for name, value in summary.items() if not isinstance(value, (list, dict))}
            log.info("%s done in %.1f s: %s", label, summary["seconds"], scalars)
        if pointer:
            # Without the timing: runs that did the same work write the same pointer.
            named = {name: value for name, value in summary.items() if name != "seconds"}
            output.store.write_pointer(pointer, {**named, "fingerprint": output.key.fingerprint})
    return {**summary, **output.key.to_dict(), "skipped": skipped}


def shard_tracks(ingest: Artifact, shard: str):
    """The ingest table's rows of one shard."""
    tracks = ingest.read_table("tracks")
    return tracks[tracks["shard"] == shard].reset_index(drop=True)


def write_failed_tracks(output: Artifact, failed: list[dict]) -> int:
    """Record the tracks a stage could not process, with the reason, as the artifact's ``failed``
    table (track_id, reason): the way a stage whose rows are not one per track (segments) or
    hold only what succeeded (baseline) keeps every track accounted for. Returns how many."""
    output.write_table("failed", pd.DataFrame(failed, columns=list(FAILED_COLUMNS)).astype(FAILED_COLUMNS))
    return len(failed)
