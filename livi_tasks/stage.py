"""The shape every per-shard stage shares: skip when done, lock, read the parent, write, commit."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from typing import Callable, Iterator

from .config import LiviConfig
from .lineage import artifact_for, input_of
from .store import Artifact, ArtifactStore

log = logging.getLogger(__name__)


@contextlib.contextmanager
def artifact_lock(artifact: Artifact) -> Iterator[None]:
    """Exclusive lock on a local artifact, so that two runs of one shard do the work once.

    Object stores get no lock: their writers produce identical files and the first commit wins.
    """
    if not artifact.store.is_local:
        yield
        return
    lock_path = artifact.url.rstrip("/") + ".lock"
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def run_shard_stage(
    cfg: LiviConfig,
    store: ArtifactStore | None,
    catalogue: str,
    stage: str,
    shard: str,
    work: Callable[[Artifact, Artifact], dict],
    extra: tuple[str, ...] = (),
) -> dict:
    """Run ``work(input_artifact, output_artifact) -> summary`` unless the output is committed.

    Returns the summary plus the artifact key and ``skipped`` (True when nothing was done).
    """
    store = store or ArtifactStore(cfg.store.root)
    output = artifact_for(cfg, store, catalogue, stage, shard, extra)
    with artifact_lock(output):
        if output.is_complete():
            log.info("%s %s/%s already done: %s", stage, catalogue, shard, output.url)
            return {**output.summary(), **output.key.to_dict(), "skipped": True}
        output.remove_temporaries()
        source = input_of(cfg, store, catalogue, stage, shard)
        started = time.perf_counter()
        summary = work(source, output)
        summary["seconds"] = round(time.perf_counter() - started, 3)
        output.commit(summary)
    log.info("%s %s/%s done in %.1f s: %s", stage, catalogue, shard, summary["seconds"], summary)
    return {**summary, **output.key.to_dict(), "skipped": False}


def shard_tracks(ingest: Artifact, shard: str):
    """The ingest table's rows of one shard."""
    tracks = ingest.read_table("tracks")
    return tracks[tracks["shard"] == shard].reset_index(drop=True)
