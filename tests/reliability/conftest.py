"""Fixtures of the reliability tests: the corpus, ingested once, with the vocal and segments stages
run once over it per session; each test then checks one item's recorded reason or result."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from reliability_corpus import (
    CRASH_CATALOGUE,
    Corpus,
    Snapshot,
    build_corpus,
    config_for,
    crash_config,
    snapshot,
    write_crash_manifest,
)

from livi_tasks.core.config import LiviConfig


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return build_corpus(tmp_path_factory.mktemp("corpus") / "catalogue")


@pytest.fixture(scope="session")
def corpus_cfg(tmp_path_factory: pytest.TempPathFactory) -> LiviConfig:
    return config_for(tmp_path_factory.mktemp("corpus_data"))


@dataclass(frozen=True)
class CorpusRun:
    ingest: dict
    tracks: pd.DataFrame  # ingest tracks, indexed by track_id
    quarantine: pd.Series  # reason by track_id (the duplicate row's id appears once, for its second row)
    vocal: pd.DataFrame  # vocal stage tracks, indexed by track_id
    windows: pd.DataFrame
    segments: pd.DataFrame
    segments_failed: pd.DataFrame
    summaries: dict


@pytest.fixture(scope="session")
def corpus_run(corpus: Corpus, corpus_cfg: LiviConfig) -> CorpusRun:
    """Ingest the corpus, then run the vocal and segments stages over every shard, once."""
    from livi_tasks.core.store import ArtifactStore
    from livi_tasks.pipeline import run_stage_over_shards
    from livi_tasks.stages.catalogue import ingest_catalogue
    from livi_tasks.stages.lineage import artifact_for

    ingested = ingest_catalogue(corpus_cfg, corpus.manifest, "corpus")
    store = ArtifactStore(corpus_cfg.store.root)
    summaries = {
        stage: run_stage_over_shards(corpus_cfg, stage, "corpus", store=store) for stage in ("vocal", "segments")
    }
    ingest = artifact_for(corpus_cfg, store, "corpus", "ingest", "all")

    def tables(stage: str, name: str) -> pd.DataFrame:
        frames = [
            artifact_for(corpus_cfg, store, "corpus", stage, shard).read_table(name) for shard in ingested["shards"]
        ]
        return pd.concat(frames, ignore_index=True)

    return CorpusRun(
        ingest=ingested,
        tracks=ingest.read_table("tracks").set_index("track_id"),
        quarantine=ingest.read_table("quarantine").set_index("track_id")["reason"],
        vocal=tables("vocal", "tracks").set_index("track_id"),
        windows=tables("vocal", "windows"),
        segments=tables("segments", "segments"),
        segments_failed=tables("segments", "failed"),
        summaries=summaries,
    )


@dataclass(frozen=True)
class CrashReference:
    manifest: Path
    ingest: Snapshot  # the data root after an uninterrupted ingest
    vocal: Snapshot  # ... and after an uninterrupted vocal stage over every shard
    vocal_seconds: float


@pytest.fixture(scope="session")
def crash_reference(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> CrashReference:
    """Uninterrupted runs of ingest and the vocal stage over the small crash catalogue, in-process."""
    from livi_tasks.pipeline import run_stage_over_shards
    from livi_tasks.stages.catalogue import ingest_catalogue

    manifest = write_crash_manifest(corpus)
    root = tmp_path_factory.mktemp("crash_reference")
    cfg = crash_config(root)
    ingest_catalogue(cfg, manifest, CRASH_CATALOGUE)
    ingested = snapshot(root)
    started = time.perf_counter()
    run_stage_over_shards(cfg, "vocal", CRASH_CATALOGUE)
    return CrashReference(manifest, ingested, snapshot(root), time.perf_counter() - started)
