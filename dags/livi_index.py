"""LIVI index: rebuild the search index whenever a catalogue's audio embeddings land."""

from __future__ import annotations

from airflow.sdk import dag

from livi_airflow.assets import EMBEDDINGS
from livi_airflow.defaults import DEFAULT_ARGS, HEAVY_ARGS
from livi_airflow.operators import LiviCatalogueOperator, LiviShardOperator
from livi_airflow.params import config_params
from livi_airflow.store_units import catalogues_to_embed

DOC = """
### LIVI index

Scheduled on the `livi_embeddings` asset (produced by `livi_incoming`): when new embeddings land,
**embed** makes sure every catalogue it can read (ingested with the encoder probe, else segmented)
has embeddings from the promoted model (done shards are skipped) and **index** rebuilds the Faiss
index over all of them.
"""


@dag(
    dag_id="livi_index",
    schedule=[EMBEDDINGS],
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["livi", "index"],
    doc_md=DOC,
    max_active_runs=1,
    params=config_params(),
)
def livi_index():
    units = catalogues_to_embed.override(task_id="embeddable_catalogues")()
    embed = LiviShardOperator.partial(task_id="embed", stage="embed", **HEAVY_ARGS).expand_kwargs(units)
    index = LiviCatalogueOperator(
        task_id="index",
        step="index",
        arguments={"catalogues": units["catalogues"]},
    )
    embed >> index


livi_index()
