"""Index artifacts of both backends: written by the index stage, opened by `livi query` and the service.

- Faiss (``_index/faiss/all/<key>/``): ``index.faiss``, ``ids.parquet`` and ``index.json``, as
  ``TrackIndex.save`` writes them (readers load a private copy: Faiss reads from a path).
- Milvus (``_index/milvus/all/<key>/``): ``ids.parquet`` (the rows given to the collection, with
  ``removed``) and ``index.json`` (backend, kind, dim, model, count, collection, uri); with
  milvus-lite also ``lite/``, the database folder, which each reader opens as a private copy
  (milvus-lite locks its folder to one process). On a Milvus server the collection is the data.
- Both: ``centre.npy`` when the index is centred (``index.centre``): the mean the stored vectors
  had taken out, which every query embedding must have taken out too (``read_centre``); and, when
  queries are re-ranked chunk by chunk (``index.chunk_weight`` > 0), ``chunk_vectors.npy``
  (float16, centred like the tracks) and ``chunk_owners.npy`` (each chunk's row position).

``open_index`` gives either as an object with the ``TrackIndex`` surface; ``close_index`` lets a
milvus-lite copy go.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import tempfile
from pathlib import Path

import numpy as np

from livi_tasks.core.chunk_match import IndexedChunks
from livi_tasks.core.config import IndexBackendConfig
from livi_tasks.core.index import IDS_FILE, INDEX_FILE, ROW_COLUMNS, SIDECAR_FILE, IndexMismatch, TrackIndex
from livi_tasks.core.milvus_index import MilvusTrackIndex, connect, disconnect
from livi_tasks.core.store import Artifact, ArtifactStore

log = logging.getLogger(__name__)

INDEX_CATALOGUE = "_index"
INDEX_SHARD = "all"
FAISS_FILES = (INDEX_FILE, IDS_FILE, SIDECAR_FILE)
LITE_FOLDER = "lite"
LITE_LOCK = "LOCK"
FORMAT_VERSION = 1


def index_artifact(store: ArtifactStore, backend: str, fingerprint: str) -> Artifact:
    return store.artifact(INDEX_CATALOGUE, backend, INDEX_SHARD, fingerprint)


def collection_name(backend_cfg: IndexBackendConfig, fingerprint: str) -> str:
    return f"{backend_cfg.milvus_collection_prefix}_{fingerprint}"


def _secret(value) -> str | None:
    return value.get_secret_value() if value is not None else None


CENTRE_ARRAY = "centre"


def save_centre(artifact: Artifact, centre: np.ndarray | None) -> None:
    if centre is not None:
        artifact.write_array(CENTRE_ARRAY, np.asarray(centre, np.float32))


def read_centre(artifact: Artifact) -> np.ndarray | None:
    """The mean an index's vectors were centred on; None for an uncentred index."""
    return artifact.read_array(CENTRE_ARRAY) if artifact.exists(f"{CENTRE_ARRAY}.npy") else None


CHUNK_VECTORS, CHUNK_OWNERS = "chunk_vectors", "chunk_owners"


def save_chunks(artifact: Artifact, chunks: IndexedChunks | None) -> None:
    if chunks is not None:
        # Half precision: re-ranking compares unit vectors, 1e-3 apart at most, and halves the file.
        artifact.write_array(CHUNK_VECTORS, np.asarray(chunks.vectors, np.float16))
        artifact.write_array(CHUNK_OWNERS, chunks.owners)


def read_chunks(artifact: Artifact) -> IndexedChunks | None:
    """The chunk vectors kept for re-ranking (memory-mapped on a local store); None when the index has none."""
    if not artifact.exists(f"{CHUNK_OWNERS}.npy"):
        return None
    return IndexedChunks(artifact.read_array(CHUNK_VECTORS, mmap=True), artifact.read_array(CHUNK_OWNERS))


# -- Faiss --------------------------------------------------------------------------------------
def save_faiss(index: TrackIndex, artifact: Artifact) -> None:
    """Faiss writes to a path: save to a private folder, then publish each file atomically."""
    with tempfile.TemporaryDirectory() as folder:
        index.save(folder)
        for name in FAISS_FILES:
            artifact.write_bytes(name, (Path(folder) / name).read_bytes())


def load_faiss(artifact: Artifact, expected_model: str | None = None) -> TrackIndex:
    artifact.require()
    with tempfile.TemporaryDirectory() as folder:
        for name in FAISS_FILES:
            (Path(folder) / name).write_bytes(artifact.read_bytes(name))
        return TrackIndex.load(folder, expected_model_id=expected_model)


# -- Milvus -------------------------------------------------------------------------------------
class LiteFolder:
    """A private milvus-lite folder that lives as long as the index opened on it."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="livi-milvus-")
        self.path = os.path.join(self._tmp.name, "index.db")  # pymilvus takes a local path ending in .db

    def cleanup(self) -> None:
        self._tmp.cleanup()


def new_milvus_index(
    backend_cfg: IndexBackendConfig, fingerprint: str, dim: int, model: str
) -> tuple[MilvusTrackIndex, LiteFolder | None]:
    """An empty collection for the index ``fingerprint``: in a private lite folder, or on the server."""
    lite = None if backend_cfg.milvus_uri else LiteFolder()
    client = connect(lite.path if lite else backend_cfg.milvus_uri, _secret(backend_cfg.milvus_token))
    name = collection_name(backend_cfg, fingerprint)
    index = MilvusTrackIndex.create(client, name, dim, model, backend_cfg.milvus_index_type)
    index.lite = lite
    return index, lite


def save_milvus(index: MilvusTrackIndex, artifact: Artifact, uri: str | None) -> None:
    """Publish the rows and the sidecar; a lite database's files too (its client is closed first)."""
    lite: LiteFolder | None = getattr(index, "lite", None)
    if lite is not None:
        index.close()
        for path in sorted(Path(lite.path).rglob("*")):
            if path.is_file() and path.name != LITE_LOCK:
                name = posixpath.join(LITE_FOLDER, path.relative_to(lite.path).as_posix())
                artifact.write_bytes(name, path.read_bytes())
    ids = index.rows.assign(id=np.arange(len(index.rows), dtype=np.int64), removed=index.removed)
    artifact.write_table(IDS_FILE.removesuffix(".parquet"), ids)
    sidecar = {
        "format": FORMAT_VERSION,
        "backend": "milvus",
        "kind": index.kind,
        "dim": index.dim,
        "model_id": index.model_id,
        "catalogues": index.catalogues,
        "count": index.count,
        "removed": int(index.removed.sum()),
        "collection": index.collection,
        "uri": None if lite is not None else uri,
    }
    artifact.write_bytes(SIDECAR_FILE, json.dumps(sidecar, indent=2).encode())


def open_milvus(
    artifact: Artifact, backend_cfg: IndexBackendConfig | None = None, expected_model: str | None = None
) -> MilvusTrackIndex:
    artifact.require()
    sidecar = json.loads(artifact.read_bytes(SIDECAR_FILE))
    if expected_model is not None and sidecar["model_id"] != expected_model:
        raise IndexMismatch(
            f"{artifact.url}: index built with embedding model {sidecar['model_id']!r}, expected {expected_model!r}"
        )
    ids = artifact.read_table(IDS_FILE.removesuffix(".parquet"))
    rows = ids.loc[:, list(ROW_COLUMNS)].astype(object)
    rows["work_id"] = rows["work_id"].where(rows["work_id"].notna(), None)
    lite = None
    if sidecar["uri"] is None:
        lite = LiteFolder()
        prefix = posixpath.join(artifact.url, LITE_FOLDER) + "/"
        for source in artifact.store.fs.find(prefix):
            target = Path(lite.path) / source[len(prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            with artifact.store.fs.open(source, "rb") as handle:
                target.write_bytes(handle.read())
        client = connect(lite.path)
    else:
        token = _secret(backend_cfg.milvus_token) if backend_cfg else None
        client = connect(sidecar["uri"], token)
    removed = ids["removed"].to_numpy(bool)
    index = MilvusTrackIndex.open(client, sidecar["collection"], rows, sidecar["model_id"], removed)
    index.lite = lite
    return index


def close_index(index) -> None:
    """Let an index go: a milvus-lite client and its private folder (Faiss needs nothing)."""
    if isinstance(index, MilvusTrackIndex):
        try:
            index.close()
        finally:
            lite = getattr(index, "lite", None)
            if lite is not None:
                lite.cleanup()


# -- either -------------------------------------------------------------------------------------
def open_index(artifact: Artifact, backend_cfg: IndexBackendConfig | None = None, expected_model: str | None = None):
    """The index an artifact holds, of either backend, ready to search."""
    if artifact.key.stage == "milvus":
        return open_milvus(artifact, backend_cfg, expected_model)
    return load_faiss(artifact, expected_model)


def retire_collections(backend_cfg: IndexBackendConfig, keep: set[str]) -> list[str]:
    """On a Milvus server, drop this prefix's collections but ``keep``; returns the dropped names."""
    if not backend_cfg.milvus_uri:
        return []
    client = connect(backend_cfg.milvus_uri, _secret(backend_cfg.milvus_token))
    try:
        prefix = f"{backend_cfg.milvus_collection_prefix}_"
        dropped = [name for name in client.list_collections() if name.startswith(prefix) and name not in keep]
        for name in dropped:
            client.drop_collection(name)
            log.info("dropped Milvus collection %s (no longer published)", name)
        return dropped
    finally:
        disconnect(client)
