"""MLflow tracking of training runs, store discovery and the promote-if-not-worse decision."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
from livi_testing import write_tone
from mlflow.tracking import MlflowClient

from livi_tasks.core.config import EncoderConfig
from livi_tasks.core.store import ArtifactStore
from livi_tasks.models.encoder import LiviHead, head_to_bytes
from livi_tasks.models.registry import model_artifact, promote_model, promoted_model
from livi_tasks.stages import tracking
from livi_tasks.stages.catalogue import ingest_catalogue
from livi_tasks.stages.train_encoder import FramePairs, fit_head

WIDTH, FRAMES, TEXT_DIM = 16, 12, 8


@pytest.fixture(autouse=True)
def private_tracking(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def trained_model(store: ArtifactStore, fingerprint: str, tmp_path: Path, epochs: int = 3) -> dict:
    """Really train a small head on learnable random pairs and store it as the library does."""
    rng = np.random.default_rng(0)
    states = rng.standard_normal((24, FRAMES, WIDTH)).astype(np.float16)
    texts = states.astype(np.float32).mean(axis=1) @ rng.standard_normal((WIDTH, TEXT_DIM)).astype(np.float32)
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)
    rows = np.stack([np.zeros(24, np.int64), np.arange(24), np.arange(24)], axis=1)
    pairs = FramePairs([(states, texts)], rows, [f"w{i // 2}" for i in range(24)])
    settings = EncoderConfig(hidden_dim=16, attention_heads=2, epochs=epochs, batch_size=8, lr=5e-3)
    result = fit_head(
        LiviHead(WIDTH, TEXT_DIM, 16, 2),
        pairs.subset(np.arange(16)),
        pairs.subset(np.arange(16, 24)),
        settings,
        tmp_path / fingerprint,
    )
    artifact = model_artifact(store, fingerprint)
    weights, config = head_to_bytes(result.head)
    artifact.write_bytes("head.pt", weights)
    artifact.write_bytes("head.json", config)
    summary = {
        "pairs": 24,
        "train_pairs": 16,
        "val_pairs": 8,
        "epochs_run": len(result.history),
        "history": result.history,
        "final_train_loss": result.history[-1]["train_loss"],
        "best_val_loss": min(r["val_loss"] for r in result.history),
    }
    artifact.commit(summary)
    return {**summary, "fingerprint": fingerprint, "skipped": False}


def test_default_tracking_store_is_sqlite_beside_the_data(cfg, monkeypatch):
    root = Path(cfg.store.root).resolve()
    assert tracking.tracking_uri(cfg) == f"sqlite:///{root}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert tracking.tracking_uri(cfg) == "http://mlflow:5000"


def test_training_run_logs_params_per_epoch_metrics_and_model_once(cfg, tmp_path):
    store = ArtifactStore(cfg.store.root)
    training = trained_model(store, "modelaaaa", tmp_path)
    run_id = tracking.log_training_run(cfg, ["covers-a", "covers-b"], training, store)

    client = MlflowClient(tracking_uri=tracking.tracking_uri(cfg))
    run = client.get_run(run_id)
    assert run.data.params["catalogues"] == "covers-a,covers-b"
    assert run.data.params["encoder.alpha"] == str(cfg.encoder.alpha)
    assert run.data.tags[tracking.FINGERPRINT_TAG] == "modelaaaa"
    history = client.get_metric_history(run_id, "train_loss")
    assert [m.step for m in history] == [row["epoch"] for row in training["history"]]
    assert [m.value for m in history] == pytest.approx([row["train_loss"] for row in training["history"]])
    assert len(client.get_metric_history(run_id, "val_loss")) == 3
    logged = {item.path for item in client.list_artifacts(run_id, "model")}
    assert {"model/head.pt", "model/head.json"} <= logged
    artifacts_root = Path(cfg.store.root).resolve() / "mlflow-artifacts"
    assert (artifacts_root / run_id / "artifacts" / "model" / "head.pt").is_file()
    # Logging the same model again (a skipped retrain) reuses its run.
    assert tracking.log_training_run(cfg, ["covers-a", "covers-b"], training, store) == run_id
    assert len(mlflow.search_runs(experiment_names=[tracking.EXPERIMENT], output_format="list")) == 1


def test_catalogues_with_stage_lists_complete_catalogues(cfg, tmp_path):
    store = ArtifactStore(cfg.store.root)
    for name in ("alpha", "beta"):
        write_tone(tmp_path / name / "w1" / "a.wav")
        ingest_catalogue(cfg, tmp_path / name, name, store=store)
    assert tracking.catalogues_with_stage(cfg, store, "ingest") == ["alpha", "beta"]
    assert tracking.catalogues_with_stage(cfg, store, "vocal") == []


@pytest.mark.parametrize(("candidate_map", "promoted"), [(0.40, True), (0.45, False)])
def test_candidate_promoted_only_when_better(cfg, tmp_path, monkeypatch, candidate_map, promoted):
    store = ArtifactStore(cfg.store.root)
    write_tone(tmp_path / "holdout" / "w1" / "a.wav")
    ingest_catalogue(cfg, tmp_path / "holdout", "holdout", store=store)
    trained_model(store, "current", tmp_path, epochs=1)
    promote_model(store, "current")
    candidate = trained_model(store, "candidate", tmp_path, epochs=1)
    candidate["mlflow_run_id"] = tracking.log_training_run(cfg, ["train"], candidate, store)
    scores = {"current": 0.39 if promoted else 0.45, "candidate": candidate_map}  # equal scores keep the current model
    evaluated = []

    def fake_embed_and_evaluate(cfg_, catalogue, model, store_):
        evaluated.append((catalogue, model))
        return {"methods": {"livi_audio": {"MAP": scores[model]}}}

    monkeypatch.setattr(tracking, "embed_and_evaluate", fake_embed_and_evaluate)
    decision = tracking.promote_if_better(cfg, candidate, "holdout", store=store)
    assert evaluated == [("holdout", "candidate"), ("holdout", "current")]
    assert decision["promoted"] is promoted
    assert promoted_model(store) == ("candidate" if promoted else "current")
    run = MlflowClient(tracking_uri=tracking.tracking_uri(cfg)).get_run(candidate["mlflow_run_id"])
    assert run.data.metrics["holdout_MAP"] == pytest.approx(candidate_map)
    assert run.data.tags["livi.promoted"] == str(promoted).lower()
