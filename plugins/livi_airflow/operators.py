"""Operators that run one LIVI library function: per catalogue, per shard, or an ingest.

Each operator builds the run's configuration from its Params, calls the function named by its
dotted path (imported at run time so that parsing a DAG stays cheap), logs the summary the
library returns and pushes that summary (keys, paths, counts: never data) to XCom.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from livi_airflow.params import overrides_from_params
from livi_airflow.task_runtime import running_library
from livi_tasks.core.stage_table import catalogue_step, import_entry, shard_stage

log = logging.getLogger(__name__)


def load_task_config(params: Mapping[str, Any]):
    """The run's LiviConfig; an invalid value fails the task at once (no retry) with one line."""
    from livi_tasks.core.config import ConfigError, load_config

    try:
        return load_config(overrides=overrides_from_params(params))
    except ConfigError as exc:
        raise AirflowFailException(f"invalid configuration: {exc}") from None


def open_store(cfg):
    from livi_tasks.core.store import ArtifactStore

    return ArtifactStore(cfg.store.root)


def log_summary(label: str, summary: Any) -> None:
    log.info("%s summary: %s", label, json.dumps(summary, sort_keys=True, default=str))


class LiviCatalogueOperator(BaseOperator):
    """Run a catalogue-level step of ``livi_tasks.core.stage_table.CATALOGUE_STEPS`` once:
    ``function(cfg, **arguments, store=store)``; an unknown step fails the DAG's parse.

    ``arguments`` is templated and may hold XComArgs (e.g. the list of catalogues from ingest).
    """

    template_fields: Sequence[str] = ("arguments",)
    ui_color = "#d9ead3"

    def __init__(self, *, step: str, arguments: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.entry = catalogue_step(step)
        self.step = step
        self.arguments = arguments or {}

    def execute(self, context: Mapping[str, Any]) -> Any:
        cfg = load_task_config(context["params"])
        with running_library(log):
            result = import_entry(self.entry)(cfg, **self.arguments, store=open_store(cfg))
        log_summary(self.step, result)
        # An asset this task publishes (the index) carries what a consumer needs to know of it.
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = {
                key: result.get(key) for key in ("fingerprint", "tracks", "backend", "model", "skipped")
            }
        return result


class LiviShardOperator(BaseOperator):
    """Run one per-shard stage of ``livi_tasks.core.stage_table``: its entry function
    ``(cfg, catalogue, shard, store=store, **arguments)``; an unknown stage fails the DAG's parse.

    Meant for ``.partial(...).expand_kwargs(units)`` over ``{"catalogue", "shard"}`` units: one
    mapped task instance per shard of tracks, never per file. ``enabled_by`` names a boolean
    config field (e.g. ``evaluate.baseline``); when it is false the task is skipped.
    ``only_feeds_embedding`` marks a stage whose one consumer in the DAG is the embed stage (vocal
    and segments in a DAG that never transcribes): it is skipped when the run embeds in one pass,
    which reads the ingested tracks itself.
    """

    template_fields: Sequence[str] = ("catalogue", "shard", "arguments")
    ui_color = "#cfe2f3"

    def __init__(
        self,
        *,
        stage: str,
        catalogue: str,
        shard: str,
        arguments: dict[str, Any] | None = None,
        enabled_by: str | None = None,
        only_feeds_embedding: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("map_index_template", "{{ task.catalogue }}/{{ task.shard }}")
        super().__init__(**kwargs)
        self.stage = shard_stage(stage).name
        self.catalogue = catalogue
        self.shard = shard
        self.arguments = arguments or {}
        self.enabled_by = enabled_by
        self.only_feeds_embedding = only_feeds_embedding

    def execute(self, context: Mapping[str, Any]) -> Any:
        from livi_tasks.stages.lineage import one_pass_embedding

        cfg = load_task_config(context["params"])
        if self.enabled_by:
            section, field = self.enabled_by.split(".")
            if not getattr(getattr(cfg, section), field):
                raise AirflowSkipException(f"{self.enabled_by} is off")
        if self.only_feeds_embedding and one_pass_embedding(cfg):
            raise AirflowSkipException(
                "not needed: with vocal.method encoder_probe the embed stage reads the ingested tracks in one pass"
            )
        with running_library(log):
            result = shard_stage(self.stage).function()(
                cfg, self.catalogue, self.shard, store=open_store(cfg), **self.arguments
            )
        log_summary(f"{self.stage} {self.catalogue}/{self.shard}", result)
        return result


def work_units(summaries: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One ``{"catalogue", "shard"}`` unit per shard of every ingested catalogue."""
    return [{"catalogue": summary["catalogue"], "shard": shard} for summary in summaries for shard in summary["shards"]]


class LiviIngestOperator(BaseOperator):
    """Ingest catalogues and publish the work units the per-shard stages map over.

    ``source`` is one catalogue (a folder or CSV manifest) named ``catalogue`` (default: its
    folder's name), or with ``arrivals=True`` a folder whose sub-folders are catalogues, each
    named after its sub-folder (``incoming/YYYY-MM-DD/<catalogue>/``). Returns the work units
    ([{"catalogue", "shard"}], what mapped tasks expand over) and pushes XCom keys ``catalogues``
    ([name]) and ``summaries`` (one ingest summary per catalogue).
    """

    template_fields: Sequence[str] = ("source", "catalogue")
    ui_color = "#fff2cc"

    def __init__(self, *, source: str, catalogue: str | None = None, arrivals: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.catalogue = catalogue
        self.arrivals = arrivals

    def _sources(self) -> list[tuple[str | None, str]]:
        if not self.arrivals:
            return [(self.catalogue or None, self.source)]
        folder = Path(self.source)
        if not folder.is_dir():
            raise AirflowSkipException(f"nothing arrived: {folder} does not exist")
        arrived = [
            (entry.name, str(entry))
            for entry in sorted(folder.iterdir())
            if entry.is_dir() and not entry.name.startswith(".")
        ]
        if not arrived:
            raise AirflowSkipException(f"nothing arrived: {folder} holds no catalogue folder")
        return arrived

    def execute(self, context: Mapping[str, Any]) -> list[dict[str, str]]:
        from livi_tasks.stages.catalogue import CatalogueError, ingest_catalogue

        cfg = load_task_config(context["params"])
        store = open_store(cfg)
        summaries = []
        for name, source in self._sources():
            try:
                with running_library(log):
                    summary = ingest_catalogue(cfg, source, name, store=store)
            except CatalogueError as exc:
                raise AirflowFailException(str(exc)) from None
            log_summary(f"ingest {summary['catalogue']}", summary)
            summaries.append(
                {
                    key: summary[key]
                    for key in ("catalogue", "fingerprint", "tracks", "quarantined", "shards", "skipped")
                }
            )
        context["ti"].xcom_push(key="catalogues", value=[summary["catalogue"] for summary in summaries])
        context["ti"].xcom_push(key="summaries", value=summaries)
        return work_units(summaries)
