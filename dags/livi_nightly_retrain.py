"""LIVI nightly retrain: train on every transcribed catalogue, promote only when better than the
current model (the shipped head included), re-embed."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag

from livi_airflow.assets import SEARCH_INDEX
from livi_airflow.defaults import DEFAULT_ARGS, HEAVY_ARGS
from livi_airflow.operators import LiviCatalogueOperator, LiviShardOperator
from livi_airflow.params import config_params
from livi_airflow.store_units import catalogues_ready, catalogues_to_embed
from livi_airflow.training import promote_if_better, train_tracked
from livi_tasks.core.names import CATALOGUE_NAME_PATTERN, CATALOGUE_NAME_RULE

DOC = """
### LIVI nightly retrain

Every night at 02:00 UTC:

1. **training_data**: every catalogue in the store whose lyrics embeddings are complete (the
   `text` stage), except the held-out catalogue;
2. **features** per shard (cached, so only new shards cost time) -> **train** the audio encoder
   head; the run is logged to MLflow (params, per-epoch losses, model files) at
   `$MLFLOW_TRACKING_URI`, default `sqlite:///<data root>/mlflow.db`;
3. **promote_if_better**: embed and evaluate the new model on the labelled held-out catalogue
   (Param `holdout_catalogue`, already ingested and segmented) and promote it only when its
   `livi_audio` MAP beats the current model's (the promoted one, else the shipped default head);
4. **embed** every catalogue the embed stage can read (ingested with the encoder probe, else
   segmented) with the promoted model (skipped where already done) and rebuild the **index** over
   all of them.

Training the same data with the same settings again is skipped by the library (same model
fingerprint), so a night without new catalogues costs little.
"""


@dag(
    dag_id="livi_nightly_retrain",
    schedule="0 2 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["livi", "training", "mlflow"],
    doc_md=DOC,
    max_active_runs=1,
    params={
        "holdout_catalogue": Param(
            "holdout",
            type="string",
            pattern=CATALOGUE_NAME_PATTERN,
            title="Held-out catalogue",
            description=(
                "Labelled catalogue (already in the store) that decides promotion; "
                f"never trained on ({CATALOGUE_NAME_RULE})."
            ),
        ),
        **config_params(),
    },
)
def livi_nightly_retrain():
    training_units = catalogues_ready.override(task_id="training_data")(
        "text", exclude="{{ params.holdout_catalogue }}"
    )
    features = LiviShardOperator.partial(task_id="features", stage="features", **HEAVY_ARGS).expand_kwargs(
        training_units
    )
    training = train_tracked.override(task_id="train", **HEAVY_ARGS)(training_units["catalogues"])
    decision = promote_if_better.override(**HEAVY_ARGS)(training, "{{ params.holdout_catalogue }}")

    index_units = catalogues_to_embed.override(task_id="embeddable_catalogues")()
    embed = LiviShardOperator.partial(task_id="embed", stage="embed", **HEAVY_ARGS).expand_kwargs(index_units)
    index = LiviCatalogueOperator(
        task_id="index",
        step="index",
        arguments={"catalogues": index_units["catalogues"]},
        outlets=[SEARCH_INDEX],
    )

    features >> training
    decision >> index_units >> embed >> index


livi_nightly_retrain()
