"""The track index in Milvus (pymilvus): milvus-lite in a local folder, or a Milvus server by URI.

The same surface as :class:`~livi_tasks.core.index.TrackIndex` (add, delete, search, vector,
rows, counts), so that the index stage and the search service use either. One collection holds
one index: a row per track with a primary key ``pk`` (the first 32 hex digits of the sha256 of
``catalogue/track_id``: safe in filter expressions whatever a track id holds), the scalar fields
``catalogue``, ``track_id`` and ``work_id`` and the unit vector, searched by COSINE similarity
(``FLAT``: exact, the same top-k as Faiss flat). A takedown is a real delete.

milvus-lite holds an exclusive lock on its folder: one process opens a folder at a time, so the
index stage builds a lite index in a private folder and readers open private copies of it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Iterable

import numpy as np
import pandas as pd

from livi_tasks.core.index import ROW_COLUMNS, IndexMismatch, SearchResult, TrackRows, check_rows, key_text, normalise

log = logging.getLogger(__name__)

INSERT_BATCH = 5_000
MAX_TRACK_ID = 1_000
MAX_CATALOGUE = 128
FILTER_CHUNK = 2_000  # keys per delete call: an expression of thousands of literals stays small
OUTPUT_FIELDS = ["pk", "catalogue", "track_id", "work_id"]


def primary_key(catalogue: str, track_id: str) -> str:
    return hashlib.sha256(key_text(catalogue, track_id).encode()).hexdigest()[:32]


def _quoted(keys: Iterable[str]) -> str:
    # Primary keys are hex digits: JSON quoting is Milvus quoting for them.
    return "[" + ",".join(json.dumps(key) for key in keys) + "]"


SERVER_SCHEMES = ("http://", "https://", "tcp://", "unix:")


def connect(uri: str, token: str | None = None):
    """A MilvusClient: ``uri`` a local ``.db`` folder (milvus-lite) or a server URI (http://host:19530)."""
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri, token=token or "")
    client.livi_lite_path = None if uri.startswith(SERVER_SCHEMES) else uri
    return client


def disconnect(client) -> None:
    """Close a client; for milvus-lite also stop the in-process server pymilvus started for its
    folder (closing the client alone leaves it running, its folder locked, until the process exits)."""
    client.close()
    path = getattr(client, "livi_lite_path", None)
    if path:
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(path)


class MilvusTrackIndex(TrackRows):
    """Track embeddings in one Milvus collection, with the rows they belong to kept beside it."""

    backend = "milvus"

    def __init__(self, client, collection: str, rows: pd.DataFrame, model_id: str, dim: int, kind: str = "FLAT"):
        self.client = client
        self.collection = collection
        self.rows = rows.reset_index(drop=True)
        self.removed = np.zeros(len(self.rows), bool)
        self.model_id = model_id
        self._dim = dim
        self.kind = kind

    # -- creation -------------------------------------------------------------------------------
    @classmethod
    def create(cls, client, collection: str, dim: int, model_id: str, index_type: str = "FLAT") -> "MilvusTrackIndex":
        """An empty collection (an existing one of that name is dropped first: names are index keys)."""
        from pymilvus import DataType, MilvusClient

        if client.has_collection(collection):
            client.drop_collection(collection)
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=32)
        schema.add_field("catalogue", DataType.VARCHAR, max_length=MAX_CATALOGUE)
        schema.add_field("track_id", DataType.VARCHAR, max_length=MAX_TRACK_ID)
        schema.add_field("work_id", DataType.VARCHAR, max_length=MAX_TRACK_ID, nullable=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        params = client.prepare_index_params()
        params.add_index(field_name="vector", index_type=index_type, metric_type="COSINE")
        client.create_collection(collection, schema=schema, index_params=params)
        return cls(client, collection, pd.DataFrame(columns=list(ROW_COLUMNS)), model_id, dim, index_type)

    @classmethod
    def build(
        cls,
        client,
        collection: str,
        embeddings: np.ndarray,
        rows: pd.DataFrame,
        model_id: str,
        index_type: str = "FLAT",
    ) -> "MilvusTrackIndex":
        vectors = normalise(embeddings)
        index = cls.create(client, collection, vectors.shape[1], model_id, index_type)
        index.add(vectors, rows)
        return index

    @classmethod
    def open(
        cls, client, collection: str, rows: pd.DataFrame, model_id: str, removed: np.ndarray | None = None
    ) -> "MilvusTrackIndex":
        """An existing collection, loaded for search; ``rows`` are the tracks it was given."""
        if not client.has_collection(collection):
            raise FileNotFoundError(f"Milvus collection {collection!r} does not exist")
        description = client.describe_collection(collection)
        dim = next(f["params"]["dim"] for f in description["fields"] if f["name"] == "vector")
        client.load_collection(collection)
        kind = client.describe_index(collection, "vector")["index_type"]
        index = cls(client, collection, rows, model_id, int(dim), kind)
        if removed is not None:
            index.removed = removed
        return index

    def close(self) -> None:
        if not getattr(self, "_closed", False):
            self._closed = True
            disconnect(self.client)

    # -- the TrackIndex surface -----------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self._dim

    @property
    def count(self) -> int:
        return len(self.rows)

    def _upsert(self, table: pd.DataFrame, vectors: np.ndarray) -> None:
        """Write rows with their unit vectors in batches. An upsert, so that a build killed halfway
        and run again (a server collection changed in place) writes each track once."""
        for start in range(0, len(table), INSERT_BATCH):
            part = table.iloc[start : start + INSERT_BATCH]
            self.client.upsert(
                self.collection,
                [
                    {
                        "pk": primary_key(row.catalogue, row.track_id),
                        "catalogue": row.catalogue,
                        "track_id": row.track_id,
                        "work_id": row.work_id,
                        "vector": vector,
                    }
                    for row, vector in zip(part.itertuples(index=False), vectors[start : start + INSERT_BATCH])
                ],
            )
        self.client.flush(self.collection)

    def add(self, embeddings: np.ndarray, rows: pd.DataFrame) -> None:
        vectors = normalise(embeddings)
        if vectors.shape[1] != self.dim:
            raise IndexMismatch(f"embeddings have dim {vectors.shape[1]}, the index {self.dim}")
        table = check_rows(rows, len(vectors))
        known = [key for key in zip(table["catalogue"], table["track_id"]) if self.position(*key) is not None]
        if known:
            raise ValueError(f"track {key_text(*known[0])} is already in the index")
        self._upsert(table, vectors)
        self.client.load_collection(self.collection)
        self._append_rows(table)

    def delete(self, keys) -> int:
        """Delete tracks from the collection; returns how many were live."""
        positions = [p for p in (self.position(c, t) for c, t in keys) if p is not None and not self.removed[p]]
        pks = [primary_key(*self._key(p)) for p in positions]
        for start in range(0, len(pks), FILTER_CHUNK):
            self.client.delete(self.collection, ids=pks[start : start + FILTER_CHUNK])
        if pks:
            self.client.flush(self.collection)
        self._set_removed(positions, True)
        return len(positions)

    def restore(self, keys, vectors: np.ndarray) -> int:
        """Write deleted tracks again with their ``vectors`` (Milvus keeps nothing of a deleted row)."""
        chosen = [(p, v) for p, v in zip((self.position(c, t) for c, t in keys), vectors) if p is not None]
        chosen = [(p, v) for p, v in chosen if self.removed[p]]
        if not chosen:
            return 0
        positions = [p for p, _ in chosen]
        self._upsert(self.rows.iloc[positions], normalise(np.stack([v for _, v in chosen])))
        self._set_removed(positions, False)
        return len(chosen)

    def _key(self, position: int) -> tuple[str, str]:
        return self.rows.at[position, "catalogue"], self.rows.at[position, "track_id"]

    def vector(self, catalogue: str, track_id: str) -> np.ndarray | None:
        position = self.position(catalogue, track_id)
        if position is None or self.removed[position]:
            return None
        found = self.client.get(self.collection, ids=[primary_key(catalogue, track_id)], output_fields=["vector"])
        return np.asarray(found[0]["vector"], np.float32) if found else None

    def search(self, queries: np.ndarray, k: int, exclude: np.ndarray | None = None) -> SearchResult:
        """Top-k by cosine similarity over the collection, less the row positions in ``exclude``."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        vectors = normalise(queries)
        if vectors.shape[1] != self.dim:
            raise IndexMismatch(f"queries have dim {vectors.shape[1]}, the index {self.dim}")
        expression = ""
        if exclude is not None and len(exclude):
            expression = "pk not in " + _quoted(primary_key(*self._key(int(p))) for p in exclude)
        answers = self.client.search(
            self.collection,
            data=list(vectors),
            limit=k,
            filter=expression,
            output_fields=OUTPUT_FIELDS[1:],
            search_params={"metric_type": "COSINE"},
        )
        ids = np.full((len(vectors), k), -1, np.int64)
        scores = np.full((len(vectors), k), -np.inf, np.float32)
        for query, hits in enumerate(answers):
            for rank, hit in enumerate(hits):
                entity = hit["entity"]
                position = self.position(entity["catalogue"], entity["track_id"])
                ids[query, rank] = -1 if position is None else position
                scores[query, rank] = hit["distance"]
        return SearchResult(ids=ids, scores=scores, id_table=self.rows)
