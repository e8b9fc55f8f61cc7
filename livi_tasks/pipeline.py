"""The stages in order, and an in-process run of them (the CLI's ``livi run``; Airflow runs the
same library functions as separate tasks)."""

from __future__ import annotations

import logging
from typing import Callable

from tqdm import tqdm

from livi_tasks.core.config import LiviConfig
from livi_tasks.core.stage_table import shard_stage, stages_down_to
from livi_tasks.core.store import ArtifactStore
from livi_tasks.stages.lineage import shard_ids

log = logging.getLogger(__name__)


def stage_function(stage: str) -> Callable[..., dict]:
    """Import a per-shard stage's entry function (lazily: heavy modules load only when used)."""
    return shard_stage(stage).function()


def run_stage_over_shards(
    cfg: LiviConfig,
    stage: str,
    catalogue: str,
    shards: list[str] | None = None,
    store: ArtifactStore | None = None,
    **kwargs,
) -> list[dict]:
    store = store or ArtifactStore(cfg.store.root)
    function = stage_function(stage)
    shards = shards or shard_ids(store, catalogue)
    return [
        function(cfg, catalogue, shard, store=store, **kwargs)
        for shard in tqdm(shards, desc=f"{stage} {catalogue}", unit="shard", disable=None)
    ]


def run_pipeline(
    cfg: LiviConfig, source: str, catalogue: str | None = None, train: bool = False, store: ArtifactStore | None = None
) -> dict:
    """Ingest -> lyrics path -> (train, promote) -> ASR-free embeddings -> index -> evaluation."""
    from livi_tasks.models.registry import current_model, promote_model
    from livi_tasks.stages.catalogue import ingest_catalogue
    from livi_tasks.stages.evaluate import evaluate_catalogue
    from livi_tasks.stages.retrieval import build_catalogue_index
    from livi_tasks.stages.train_encoder import train as train_encoder

    store = store or ArtifactStore(cfg.store.root)
    ingested = ingest_catalogue(cfg, source, catalogue, store)
    catalogue = ingested["catalogue"]
    lyrics_path = stages_down_to("text")  # vocal, segments, transcribe, text
    stages = [*lyrics_path, "baseline"] if cfg.evaluate.baseline else lyrics_path
    summaries = {stage: run_stage_over_shards(cfg, stage, catalogue, store=store) for stage in stages}
    model = current_model(cfg, store, required=False)
    if train or model is None:
        summaries["features"] = run_stage_over_shards(cfg, "features", catalogue, store=store)
        trained = train_encoder(cfg, [catalogue], store=store)
        model = trained["fingerprint"]
        promote_model(store, model)
        summaries["train"] = trained
    summaries["embed"] = run_stage_over_shards(cfg, "embed", catalogue, store=store, model=model)
    summaries["index"] = build_catalogue_index(cfg, [catalogue], store=store, model=model)
    summaries["evaluate"] = evaluate_catalogue(cfg, catalogue, store=store, model=model)
    return {"catalogue": catalogue, "ingest": ingested, "model": model, "stages": summaries}
