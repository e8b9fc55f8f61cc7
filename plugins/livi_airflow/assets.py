"""The assets the LIVI DAGs hand work over by: one definition for the producer and its consumers."""

from __future__ import annotations

from airflow.sdk import Asset

# livi_incoming's publish task emits it with {"catalogues": [...]} when new embeddings land;
# livi_index is scheduled on it.
EMBEDDINGS = Asset(name="livi_embeddings", uri="file:///livi/embeddings")

# Every index task emits it when it publishes an index, with {"fingerprint", "tracks", "backend",
# "model"}; the search service (`livi serve`) swaps the new index in (it watches the pointer the
# task writes, and livi_index's refresh_search task asks it to look at once).
SEARCH_INDEX = Asset(name="livi_search_index", uri="file:///livi/index")
