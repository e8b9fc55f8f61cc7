"""LIVI index: rebuild the search index whenever a catalogue's audio embeddings land."""

from __future__ import annotations

from airflow.sdk import dag

from livi_airflow.assets import EMBEDDINGS, SEARCH_INDEX
from livi_airflow.defaults import DEFAULT_ARGS, HEAVY_ARGS
from livi_airflow.operators import LiviCatalogueOperator, LiviShardOperator
from livi_airflow.params import config_params
from livi_airflow.search import refresh_search
from livi_airflow.store_units import catalogues_to_embed

DOC = """
### LIVI index

Scheduled on the `livi_embeddings` asset (produced by `livi_incoming`): when new embeddings land,
**embed** makes sure every catalogue it can read (ingested with the encoder probe, else segmented)
has embeddings from the promoted model (done shards are skipped) and **index** adds them to the
index (Faiss files, or Milvus with `index_backend.name: milvus`), leaving out taken-down tracks; it
emits the `livi_search_index` asset. **refresh_search** asks the search service (`livi serve`) to
swap the new index in at once (skipped when `LIVI_SEARCH_API_URL` is not set: the service then
finds it within `serve.refresh_s`).
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
        outlets=[SEARCH_INDEX],
    )
    embed >> index >> refresh_search(index.output)


livi_index()
