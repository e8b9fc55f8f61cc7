"""Taskflow steps that find work in the artifact store (for DAGs not started from one catalogue)."""

from __future__ import annotations

from airflow.sdk import get_current_context, task

from livi_airflow.operators import load_task_config, log_summary, open_store, work_units


@task
def catalogues_ready(stage: str, exclude: str | None = None) -> list[dict[str, str]]:
    """Work units of every catalogue whose ``stage`` is complete (all shards), minus ``exclude``.

    Returns the units for mapped tasks; pushes the catalogue names under XCom key ``catalogues``.
    """
    from livi_tasks.stages.tracking import catalogues_with_stage

    return _publish_units(lambda cfg, store: catalogues_with_stage(cfg, store, stage), exclude, f"{stage} done")


@task
def catalogues_to_embed() -> list[dict[str, str]]:
    """Work units of every catalogue the embed stage can read under the run's config: ingested ones
    when it embeds in one pass (the encoder probe), segmented ones with Musicnn."""
    from livi_tasks.stages.tracking import catalogues_to_embed as ready

    return _publish_units(ready, None, "the embed stage's input done")


def _publish_units(find, exclude: str | None, what: str) -> list[dict[str, str]]:
    from livi_tasks.stages.lineage import shard_ids

    context = get_current_context()
    cfg = load_task_config(context["params"])
    store = open_store(cfg)
    catalogues = [name for name in find(cfg, store) if name != exclude]
    summaries = [{"catalogue": name, "shards": shard_ids(store, name)} for name in catalogues]
    log_summary(f"catalogues with {what}", summaries)
    context["ti"].xcom_push(key="catalogues", value=catalogues)
    return work_units(summaries)
