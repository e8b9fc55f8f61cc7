"""Experiment tracking and model promotion: every encoder training run is logged to MLflow.

A run records the encoder settings and training inputs as params, train/validation loss and
learning rate per epoch as metrics, and the trained head as artifacts. Runs are tagged with the
model fingerprint, so training the same model twice (skipped by the library) reuses its run.

The tracking server is ``$MLFLOW_TRACKING_URI``; without it, a SQLite database beside the data
(``sqlite:///<data root>/mlflow.db``). Unless the URI is a tracking server, run artifacts go under
``<data root>/mlflow-artifacts``.

Promotion after retraining: the candidate is embedded and evaluated on a labelled held-out
catalogue and replaces the promoted model only when its MAP is not lower.
"""

from __future__ import annotations

import logging
import os
import posixpath
import tempfile
from pathlib import Path
from typing import Any, Sequence

from livi_tasks.core.config import LiviConfig
from livi_tasks.core.store import ArtifactMissing, ArtifactStore
from livi_tasks.models.registry import HEAD_CONFIG_FILE, HEAD_WEIGHTS_FILE, model_artifact
from livi_tasks.stages.lineage import INGEST_SHARD, artifact_for, parent_stage, pointer_name, shard_ids

log = logging.getLogger(__name__)

EXPERIMENT = "livi-encoder"
FINGERPRINT_TAG = "livi.fingerprint"
EPOCH_METRICS = ("train_loss", "val_loss", "lr")
COMPARED_METHOD = "livi_audio"
COMPARED_METRIC = "MAP"


def _local_data_root(cfg: LiviConfig) -> Path:
    """Where the default SQLite store lives: the data root, or models_dir for a remote data root."""
    store = ArtifactStore(cfg.store.root)
    return Path(store.root) if store.is_local else Path(cfg.models_dir)


def tracking_uri(cfg: LiviConfig) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{_local_data_root(cfg) / 'mlflow.db'}"


def _experiment_id(cfg: LiviConfig) -> str:
    import mlflow

    uri = tracking_uri(cfg)
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    # A tracking server keeps artifacts where it is configured to; a database URI would put them
    # in ./mlruns of whatever directory the worker runs in, so they go beside the data instead.
    served = uri.startswith(("http://", "https://", "databricks"))
    location = None if served else (_local_data_root(cfg) / "mlflow-artifacts").as_uri()
    return mlflow.create_experiment(EXPERIMENT, artifact_location=location)


def find_run(cfg: LiviConfig, fingerprint: str) -> str | None:
    """The MLflow run that logged the training of model ``fingerprint``, if any."""
    import mlflow

    runs = mlflow.search_runs(
        experiment_ids=[_experiment_id(cfg)],
        filter_string=f"tags.`{FINGERPRINT_TAG}` = '{fingerprint}'",
        output_format="list",
    )
    return runs[0].info.run_id if runs else None


def _model_files(store: ArtifactStore, fingerprint: str, folder: Path) -> list[Path]:
    """Copy the trained model's files (head weights, config, model card, metrics) to ``folder``."""
    artifact = model_artifact(store, fingerprint).require()
    paths = []
    for name in (HEAD_WEIGHTS_FILE, HEAD_CONFIG_FILE, "model.json", "metrics.jsonl"):
        if artifact.exists(name):
            path = folder / name
            path.write_bytes(artifact.read_bytes(name))
            paths.append(path)
    return paths


def log_training_run(cfg: LiviConfig, catalogues: Sequence[str], training: dict[str, Any], store: ArtifactStore) -> str:
    """Log one training run (params, per-epoch metrics, model files); returns its run id.

    A model already logged (same fingerprint) is not logged again: its run id is returned.
    """
    import mlflow

    fingerprint = training["fingerprint"]
    existing = find_run(cfg, fingerprint)
    if existing:
        log.info("training of %s already tracked in MLflow run %s", fingerprint, existing)
        return existing
    params = {f"encoder.{name}": value for name, value in cfg.encoder.model_dump(mode="json").items()}
    params.update(
        {
            "catalogues": ",".join(catalogues),
            "whisper_model": cfg.transcribe.whisper_model,
            "text_model": cfg.text.model,
            "fingerprint": fingerprint,
            "pairs": training.get("pairs"),
            "train_pairs": training.get("train_pairs"),
            "val_pairs": training.get("val_pairs"),
        }
    )
    with mlflow.start_run(experiment_id=_experiment_id(cfg), run_name=f"encoder-{fingerprint[:8]}") as run:
        mlflow.set_tags({FINGERPRINT_TAG: fingerprint, "livi.catalogues": ",".join(catalogues)})
        mlflow.log_params(params)
        for row in training.get("history", []):
            values = {name: float(row[name]) for name in EPOCH_METRICS if row.get(name) is not None}
            mlflow.log_metrics(values, step=int(row["epoch"]))
        final = {
            name: float(training[name])
            for name in ("final_train_loss", "best_val_loss", "epochs_run", "best_epoch")
            if training.get(name) is not None
        }
        mlflow.log_metrics(final)
        with tempfile.TemporaryDirectory() as folder:
            for path in _model_files(store, fingerprint, Path(folder)):
                mlflow.log_artifact(str(path), artifact_path="model")
        log.info("training of %s logged to MLflow run %s (%s)", fingerprint, run.info.run_id, tracking_uri(cfg))
        return run.info.run_id


def train_and_log(
    cfg: LiviConfig, catalogues: Sequence[str], store: ArtifactStore | None = None, resume: bool = False
) -> dict[str, Any]:
    """Train the encoder on ``catalogues`` and log the run; the summary (without the per-epoch
    history, which MLflow holds) plus ``mlflow_run_id``."""
    from livi_tasks.stages.train_encoder import train

    store = store or ArtifactStore(cfg.store.root)
    training = train(cfg, list(catalogues), store=store, resume=resume)
    run_id = log_training_run(cfg, catalogues, training, store)
    return {**{key: value for key, value in training.items() if key != "history"}, "mlflow_run_id": run_id}


def catalogues_with_stage(cfg: LiviConfig, store: ArtifactStore, stage: str) -> list[str]:
    """Ingested catalogues whose every shard has a committed ``stage`` artifact under ``cfg``."""
    ready = []
    for folder in sorted(store.fs.ls(store.root, detail=False)):
        catalogue = posixpath.basename(folder.rstrip("/"))
        if catalogue.startswith(("_", ".")) or not store.fs.exists(store.join(pointer_name(catalogue))):
            continue
        try:
            shards = shard_ids(store, catalogue)
            if shards and all(artifact_for(cfg, store, catalogue, stage, shard).is_complete() for shard in shards):
                ready.append(catalogue)
        except ArtifactMissing:
            continue
    return ready


def catalogues_to_embed(cfg: LiviConfig, store: ArtifactStore) -> list[str]:
    """Catalogues whose embed-stage input is complete: ingested ones when the embed stage works in
    one pass (the encoder probe), segmented ones otherwise."""
    return catalogues_with_stage(cfg, store, parent_stage(cfg, "embed"))


def embed_and_evaluate(cfg: LiviConfig, catalogue: str, model: str, store: ArtifactStore) -> dict[str, Any]:
    """Embed every shard of ``catalogue`` with ``model`` (skipped when done) and evaluate it."""
    from livi_tasks.stages.audio_embed import embed_audio
    from livi_tasks.stages.evaluate import evaluate_catalogue

    for shard in shard_ids(store, catalogue):
        embed_audio(cfg, catalogue, shard, store=store, model=model)
    return evaluate_catalogue(cfg, catalogue, store=store, model=model)


def _score(evaluation: dict[str, Any]) -> float:
    try:
        return float(evaluation["methods"][COMPARED_METHOD][COMPARED_METRIC])
    except KeyError:
        raise ArtifactMissing(
            f"evaluation has no {COMPARED_METHOD} {COMPARED_METRIC}: {evaluation.get('missing')}"
        ) from None


def promote_if_better(
    cfg: LiviConfig, training: dict[str, Any], holdout: str, store: ArtifactStore | None = None
) -> dict[str, Any]:
    """Promote the candidate model only when its held-out MAP beats the current model's (the
    promoted one, else the shipped default head); with no current model it is promoted.

    The decision and both scores are logged to the candidate's MLflow run when it has one.
    """
    from livi_tasks.models.registry import current_model, promote_model

    store = store or ArtifactStore(cfg.store.root)
    artifact_for(cfg, store, holdout, "ingest", INGEST_SHARD).require()
    candidate, current = training["fingerprint"], current_model(cfg, store, required=False)
    candidate_score = _score(embed_and_evaluate(cfg, holdout, candidate, store))
    current_score = None if current in (None, candidate) else _score(embed_and_evaluate(cfg, holdout, current, store))
    promote = current_score is None or candidate_score > current_score
    if promote:
        promote_model(store, candidate)
    decision = {
        "candidate": candidate,
        "previous": current,
        "holdout": holdout,
        "metric": f"{COMPARED_METHOD}.{COMPARED_METRIC}",
        "candidate_score": candidate_score,
        "previous_score": current_score,
        "promoted": promote,
        "model": candidate if promote else current,
    }
    log.info("promotion decision on %s: %s", holdout, decision)
    run_id = training.get("mlflow_run_id")
    if run_id:
        import mlflow

        mlflow.set_tracking_uri(tracking_uri(cfg))
        with mlflow.start_run(run_id=run_id):
            mlflow.log_metric(f"holdout_{COMPARED_METRIC}", candidate_score)
            if current_score is not None:
                mlflow.log_metric(f"previous_holdout_{COMPARED_METRIC}", current_score)
            mlflow.set_tags({"livi.promoted": str(promote).lower(), "livi.holdout": holdout})
    return decision
