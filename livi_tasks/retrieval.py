"""The catalogue index stage and the query command: ASR-free track embeddings in Faiss.

The index is an artifact like every other: ``_index/faiss/all/<fingerprint>/`` where the
fingerprint hashes the encoder model and the embed artifacts of every member catalogue. The
pointer ``_index/CURRENT.json`` names the index in use. Indexing a new catalogue loads the current
index (same model), adds the new vectors and saves a new artifact: nothing is rebuilt. A changed
member (re-embedded catalogue) or another model means a rebuild from the members' embeddings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from .audio import AudioError
from .config import LiviConfig
from .index import IDS_FILE, INDEX_FILE, SIDECAR_FILE, IndexMismatch, TrackIndex
from .lineage import artifact_for, shard_ids
from .model_registry import current_model
from .store import Artifact, ArtifactMissing, ArtifactStore

log = logging.getLogger(__name__)

POINTER = "_index/CURRENT.json"
INDEX_FILES = (INDEX_FILE, IDS_FILE, SIDECAR_FILE)


def _catalogue_embeddings(cfg: LiviConfig, store: ArtifactStore, catalogue: str, model: str) -> tuple[list[Artifact], str]:
    artifacts = [artifact_for(cfg, store, catalogue, "embed", shard, (model,)).require() for shard in shard_ids(store, catalogue)]
    signature = hashlib.sha256("".join(a.key.fingerprint + a.key.shard for a in artifacts).encode()).hexdigest()[:16]
    return artifacts, signature


def _read_embeddings(catalogue: str, artifacts: list[Artifact]) -> tuple[np.ndarray, pd.DataFrame]:
    vectors = [a.read_array("track_embeddings") for a in artifacts]
    rows = pd.concat([a.read_table("tracks") for a in artifacts], ignore_index=True)
    rows.insert(0, "catalogue", catalogue)
    dim = next((v.shape[1] for v in vectors if v.ndim == 2), 0)
    return (np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32)), rows[["catalogue", "track_id", "work_id"]]


def save_index(index: TrackIndex, artifact: Artifact) -> None:
    """Faiss writes to a path: save to a private folder, then publish each file atomically."""
    with tempfile.TemporaryDirectory() as folder:
        index.save(folder)
        for name in INDEX_FILES:
            artifact.write_bytes(name, (Path(folder) / name).read_bytes())


def load_index(artifact: Artifact, expected_model: str | None = None) -> TrackIndex:
    artifact.require()
    with tempfile.TemporaryDirectory() as folder:
        for name in INDEX_FILES:
            (Path(folder) / name).write_bytes(artifact.read_bytes(name))
        return TrackIndex.load(folder, expected_model_id=expected_model)


def current_index(store: ArtifactStore) -> tuple[dict, Artifact]:
    try:
        pointer = store.read_pointer(POINTER)
    except ArtifactMissing:
        raise ArtifactMissing(f"no index in {store.root}: run `livi build-index --catalogue NAME` first") from None
    return pointer, store.artifact("_index", "faiss", "all", pointer["fingerprint"])


def build_catalogue_index(cfg: LiviConfig, catalogues: list[str], store: ArtifactStore | None = None, model: str | None = None) -> dict:
    """Index the catalogues' ASR-free track embeddings, adding them to the current index when it
    uses the same model."""
    store = store or ArtifactStore(cfg.store.root)
    model = current_model(cfg, store, model)
    wanted = {catalogue: _catalogue_embeddings(cfg, store, catalogue, model) for catalogue in catalogues}
    try:
        pointer, current = current_index(store)
    except ArtifactMissing:
        pointer, current = None, None
    members = dict(pointer["members"]) if pointer and pointer["model"] == model else {}
    members.update({catalogue: signature for catalogue, (_, signature) in wanted.items()})
    fingerprint = cfg.index.fingerprint("index", model, json.dumps(members, sort_keys=True))
    output = store.artifact("_index", "faiss", "all", fingerprint)
    result = {"fingerprint": fingerprint, "model": model, "members": members, "index": output.url}
    if output.is_complete():
        log.info("index of %s already built: %s", sorted(members), output.url)
        store.write_pointer(POINTER, result)
        return {**output.summary(), "skipped": True}

    unchanged = pointer is not None and pointer["model"] == model and all(
        pointer["members"].get(catalogue) in (None, signature) for catalogue, (_, signature) in wanted.items()
    )
    if unchanged:
        index = load_index(current, expected_model=model)
        new = [catalogue for catalogue in wanted if catalogue not in pointer["members"]]
        for catalogue in new:
            index.add(*_read_embeddings(catalogue, wanted[catalogue][0]))
        log.info("added %s to the index of %s", new, sorted(pointer["members"]))
        result["added"], result["rebuilt"] = new, False
    else:
        everything = {**{c: _catalogue_embeddings(cfg, store, c, model)[0] for c in members if c not in wanted}, **{c: a for c, (a, _) in wanted.items()}}
        parts = [_read_embeddings(catalogue, artifacts) for catalogue, artifacts in sorted(everything.items())]
        index = TrackIndex.build(np.concatenate([p[0] for p in parts]), pd.concat([p[1] for p in parts], ignore_index=True), cfg.index, model)
        log.info("built a %s index of %d tracks from %s", index.kind, index.count, sorted(everything))
        result["added"], result["rebuilt"] = sorted(everything), True
    save_index(index, output)
    result.update(kind=index.kind, tracks=index.count)
    output.commit(result)
    store.write_pointer(POINTER, result)
    return {**result, "skipped": False}


def query_file(cfg: LiviConfig, audio_file: str | Path, top_k: int = 10, store: ArtifactStore | None = None) -> pd.DataFrame:
    """Rank the indexed tracks against one audio file (no ASR): track, work, catalogue, score."""
    from .audio_embed import embed_file

    if not Path(audio_file).is_file():
        raise AudioError(f"{audio_file}: missing file")
    store = store or ArtifactStore(cfg.store.root)
    pointer, artifact = current_index(store)
    model = current_model(cfg, store)
    if pointer["model"] != model:
        raise IndexMismatch(f"the index was built with encoder {pointer['model']}, but {model} is the current model (promoted, else shipped): run `livi build-index` again")
    index = load_index(artifact, expected_model=model)
    embedding = embed_file(cfg, audio_file, store, model=model)
    hits = index.search(embedding[None, :], min(top_k, index.count)).rows
    return hits[["rank", "track_id", "work_id", "catalogue", "score"]]


def format_results(hits: pd.DataFrame) -> str:
    lines = [f"{'rank':>4}  {'score':>6}  {'work':<20} {'catalogue':<14} track"]
    for row in hits.itertuples():
        lines.append(f"{row.rank:>4}  {row.score:6.3f}  {str(row.work_id or '-'):<20} {row.catalogue:<14} {row.track_id}")
    return "\n".join(lines)
