"""Taskflow steps around encoder training: the retrain gate, promotion and the nightly decision."""

from __future__ import annotations

from typing import Any

from airflow.sdk import get_current_context, task

from livi_airflow.operators import load_task_config, log, log_summary, open_store
from livi_airflow.task_runtime import running_library


def _config_and_store():
    cfg = load_task_config(get_current_context()["params"])
    return cfg, open_store(cfg)


@task.short_circuit(task_id="training_needed", ignore_downstream_trigger_rules=False)
def training_needed() -> bool:
    """Train when the run asks for it, or when no model is promoted and none is shipped for its Whisper model."""
    from livi_tasks.models.registry import current_model

    params = get_current_context()["params"]
    cfg, store = _config_and_store()
    return bool(params.get("retrain")) or current_model(cfg, store, required=False) is None


@task(task_id="promote", multiple_outputs=False)
def promote(training: dict[str, Any]) -> dict[str, Any]:
    """Make the model just trained the one every later embedding uses."""
    from livi_tasks.models.registry import promote_model

    _, store = _config_and_store()
    promote_model(store, training["fingerprint"])
    summary = {"promoted": training["fingerprint"]}
    log_summary("promote", summary)
    return summary


@task(task_id="train_tracked", multiple_outputs=False)
def train_tracked(catalogues: list[str]) -> dict[str, Any]:
    """Train on ``catalogues`` and log the run (params, per-epoch metrics, model) to MLflow."""
    from livi_tasks.stages.tracking import train_and_log

    cfg, store = _config_and_store()
    with running_library(log):
        summary = train_and_log(cfg, catalogues, store=store)
    log_summary("train", summary)
    return summary


@task(task_id="promote_if_better", multiple_outputs=False)
def promote_if_better(training: dict[str, Any], holdout_catalogue: str) -> dict[str, Any]:
    """Evaluate the new model on the labelled held-out catalogue; promote it unless it is worse."""
    from livi_tasks.stages.tracking import promote_if_better as decide

    cfg, store = _config_and_store()
    with running_library(log):
        decision = decide(cfg, training, holdout_catalogue, store=store)
    log_summary("promotion decision", decision)
    return decision
