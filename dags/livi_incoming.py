"""LIVI incoming: each day's newly arrived catalogues, embedded with the promoted model."""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task, task_group

from livi_airflow.assets import EMBEDDINGS
from livi_airflow.defaults import DEFAULT_ARGS, HEAVY_ARGS
from livi_airflow.operators import LiviIngestOperator, LiviShardOperator
from livi_airflow.params import config_params

DOC = """
### LIVI incoming

Catalogues arrive as folders `<incoming root>/YYYY-MM-DD/<catalogue>/` (layout
`<work_id>/<track>`, or a CSV manifest inside). The run for data interval day D processes the
folders under `D/` (`{{ ds }}`) with the current **promoted** model, without transcription:

**ingest** -> per shard (mapped): **vocal** -> **segments** -> **embed** -> **publish**, which emits
an event on the `livi_embeddings` asset; the asset-scheduled `livi_index` DAG then adds the
catalogues to the index. With the default vocal detector (the Whisper-encoder probe) **embed**
reads the ingested tracks and decides what is sung in its own encoder pass, so **vocal** and
**segments** are skipped; with Musicnn (`vocal_detector: zero_shot`) they run and feed it.

Catch-up is off; past days are processed on request with
`airflow backfill create --dag-id livi_incoming --from-date 2026-01-01 --to-date 2026-01-03`.
A day without a folder skips. Reruns skip work already done.
"""


@task(task_id="publish", outlets=[EMBEDDINGS])
def publish(units: list[dict[str, str]], *, outlet_events=None) -> list[str]:
    """Announce which catalogues now have embeddings (the asset event's extra names them)."""
    catalogues = sorted({unit["catalogue"] for unit in units})
    outlet_events[EMBEDDINGS].extra = {"catalogues": catalogues}
    return catalogues


@dag(
    dag_id="livi_incoming",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["livi", "incoming", "inference"],
    doc_md=DOC,
    max_active_runs=2,
    params={
        "incoming_root": Param(
            os.environ.get("LIVI_INCOMING_ROOT", "incoming"),
            type="string",
            minLength=1,
            title="Incoming root",
            description="Folder holding one YYYY-MM-DD folder per arrival day.",
        ),
        **config_params(),
    },
)
def livi_incoming():
    ingest = LiviIngestOperator(task_id="ingest", source="{{ params.incoming_root }}/{{ ds }}", arrivals=True)

    @task_group(group_id="audio")
    def audio(catalogue: str, shard: str):
        """One shard to ASR-free audio embeddings; shards run independently of each other."""
        # Arrivals are not transcribed here: vocal and segments only feed a Musicnn-path embed stage.
        vocal = LiviShardOperator(
            task_id="vocal",
            stage="vocal",
            catalogue=catalogue,
            shard=shard,
            only_feeds_embedding=True,
            **HEAVY_ARGS,  # the default detector runs the Whisper encoder
        )
        segments = LiviShardOperator(
            task_id="segments",
            stage="segments",
            catalogue=catalogue,
            shard=shard,
            only_feeds_embedding=True,
        )
        embed = LiviShardOperator(
            task_id="embed",
            stage="embed",
            catalogue=catalogue,
            shard=shard,
            trigger_rule="none_failed",
            **HEAVY_ARGS,
        )
        vocal >> segments >> embed

    audio.expand_kwargs(ingest.output) >> publish(ingest.output)


livi_incoming()
