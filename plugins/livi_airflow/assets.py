"""The assets the LIVI DAGs hand work over by: one definition for the producer and its consumers."""

from __future__ import annotations

from airflow.sdk import Asset

# livi_incoming's publish task emits it with {"catalogues": [...]} when new embeddings land;
# livi_index is scheduled on it.
EMBEDDINGS = Asset(name="livi_embeddings", uri="file:///livi/embeddings")
