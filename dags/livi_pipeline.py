"""LIVI pipeline: one catalogue from audio files to a searchable index and an evaluation report."""

from __future__ import annotations

from airflow.sdk import Param, dag, task_group

from livi_airflow.assets import SEARCH_INDEX
from livi_airflow.defaults import DEFAULT_ARGS, HEAVY_ARGS
from livi_airflow.operators import LiviCatalogueOperator, LiviIngestOperator, LiviShardOperator
from livi_airflow.params import config_params
from livi_airflow.training import promote, train_tracked, training_needed
from livi_tasks.core.names import CATALOGUE_NAME_PATTERN, CATALOGUE_NAME_RULE

DOC = """
### LIVI pipeline

Lyrics-informed cover retrieval for one catalogue (a folder `<root>/<work_id>/<track>` or a CSV
manifest `track_id,work_id,path`):

1. **ingest**: check every file, quarantine the unusable ones, cut the catalogue into shards;
2. per shard (mapped task group): **vocal** (drop tracks with too little singing; pool `whisper`:
   the default detector runs the Whisper encoder) -> **segments** (30 s vocal segments) ->
   **transcribe** (Whisper, pool `whisper`) -> **text** (lyrics embeddings);
   beside it **baseline** (audio-only chroma embeddings, when `evaluate.baseline` is on);
3. when **retrain** is on, or no model is promoted and no head is shipped for the Whisper model:
   **features** (frozen Whisper encoder states per shard) -> **train** the audio head (logged to
   MLflow) -> **promote** it;
4. **embed** every shard's audio with the promoted model, else the shipped default head (no
   transcription needed) ->
   **index** -> **evaluate** (metrics and report in the artifact store).

Every stage is idempotent: artifacts are keyed by configuration, so a rerun with the same Params
skips all work and a changed Param re-runs exactly the stages it affects. Empty Params keep the
configured values (`$LIVI_CONFIG`, `LIVI__SECTION__FIELD`).
"""


@dag(
    dag_id="livi_pipeline",
    schedule=None,
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["livi", "pipeline"],
    doc_md=DOC,
    max_active_runs=1,
    params={
        "catalogue_source": Param(
            type="string",
            minLength=1,
            title="Catalogue location",
            description="Folder <root>/<work_id>/<track> or CSV manifest, as the workers see it.",
        ),
        "catalogue_name": Param(
            None,
            type=["null", "string"],
            pattern=CATALOGUE_NAME_PATTERN,
            title="Catalogue name",
            description=f"Name in the artifact store: {CATALOGUE_NAME_RULE}. Empty: the folder's name.",
        ),
        "retrain": Param(
            False,
            type="boolean",
            title="Retrain the audio encoder",
            description=(
                "Train a head on this catalogue's lyrics and promote it. "
                "Off: embed with the promoted model, else the shipped default head."
            ),
        ),
        **config_params(),
    },
)
def livi_pipeline():
    ingest = LiviIngestOperator(
        task_id="ingest", source="{{ params.catalogue_source }}", catalogue="{{ params.catalogue_name or '' }}"
    )
    units = ingest.output
    catalogues = ingest.output["catalogues"]

    @task_group(group_id="lyrics")
    def lyrics(catalogue: str, shard: str):
        """One shard from tracks to lyrics embeddings; shards run independently of each other."""
        vocal = LiviShardOperator(
            task_id="vocal",
            stage="vocal",
            catalogue=catalogue,
            shard=shard,
            **HEAVY_ARGS,  # the default detector runs the Whisper encoder
        )
        segments = LiviShardOperator(task_id="segments", stage="segments", catalogue=catalogue, shard=shard)
        transcribe = LiviShardOperator(
            task_id="transcribe",
            stage="transcribe",
            catalogue=catalogue,
            shard=shard,
            **HEAVY_ARGS,
        )
        text = LiviShardOperator(task_id="text", stage="text", catalogue=catalogue, shard=shard)
        vocal >> segments >> transcribe >> text

    lyrics_done = lyrics.expand_kwargs(units)

    gate = training_needed()
    features = LiviShardOperator.partial(task_id="features", stage="features", **HEAVY_ARGS).expand_kwargs(units)
    train = train_tracked.override(task_id="train", **HEAVY_ARGS)(catalogues)
    promoted = promote(train)
    baseline = LiviShardOperator.partial(
        task_id="baseline", stage="baseline", enabled_by="evaluate.baseline"
    ).expand_kwargs(units)

    embed = LiviShardOperator.partial(
        task_id="embed", stage="embed", trigger_rule="none_failed", **HEAVY_ARGS
    ).expand_kwargs(units)
    index = LiviCatalogueOperator(
        task_id="index", step="index", arguments={"catalogues": catalogues}, outlets=[SEARCH_INDEX]
    )
    evaluate = LiviCatalogueOperator(
        task_id="evaluate",
        step="evaluate",
        arguments={"catalogue": "{{ ti.xcom_pull(task_ids='ingest', key='catalogues')[0] }}"},
        trigger_rule="none_failed",
    )

    lyrics_done >> gate >> features >> train >> promoted >> embed
    lyrics_done >> embed >> index >> evaluate
    baseline >> evaluate


livi_pipeline()
