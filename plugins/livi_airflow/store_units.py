"""Taskflow steps that find work in the artifact store (for DAGs not started from one catalogue)."""

from __future__ import annotations

from airflow.sdk import get_current_context, task

from livi_airflow.operators import load_task_config, log_summary, open_store, work_units


@task
def catalogues_ready(stage: str, exclude: str | None = None) -> list[dict[str, str]]:
    """Work units of every catalogue whose ``stage`` is complete (all shards), minus ``exclude``.

    Returns the units for mapped tasks; pushes the catalogue names under XCom key ``catalogues``.
    """
    from livi_tasks.lineage import shard_ids
    from livi_tasks.tracking import catalogues_with_stage

    context = get_current_context()
    cfg = load_task_config(context["params"])
    store = open_store(cfg)
    catalogues = [name for name in catalogues_with_stage(cfg, store, stage) if name != exclude]
    summaries = [{"catalogue": name, "shards": shard_ids(store, name)} for name in catalogues]
    log_summary(f"catalogues with {stage} done", summaries)
    context["ti"].xcom_push(key="catalogues", value=catalogues)
    return work_units(summaries)
