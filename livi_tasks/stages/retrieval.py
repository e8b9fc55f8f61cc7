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
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from livi_tasks.core.audio import SAMPLE_RATE, AudioError
from livi_tasks.core.config import LiviConfig
from livi_tasks.core.index import IDS_FILE, INDEX_FILE, SIDECAR_FILE, IndexMismatch, TrackIndex
from livi_tasks.core.runner import produce_artifact
from livi_tasks.core.store import Artifact, ArtifactMissing, ArtifactStore
from livi_tasks.models.registry import current_model
from livi_tasks.stages.catalogue import AUDIO_SUFFIXES
from livi_tasks.stages.lineage import artifact_for, shard_ids

log = logging.getLogger(__name__)

POINTER = "_index/CURRENT.json"
INDEX_FILES = (INDEX_FILE, IDS_FILE, SIDECAR_FILE)
HIT_COLUMNS = ["rank", "track_id", "work_id", "catalogue", "score"]
NO_HITS = pd.DataFrame(columns=HIT_COLUMNS)


def _catalogue_embeddings(
    cfg: LiviConfig, store: ArtifactStore, catalogue: str, model: str
) -> tuple[list[Artifact], str]:
    artifacts = [
        artifact_for(cfg, store, catalogue, "embed", shard, (model,)).require() for shard in shard_ids(store, catalogue)
    ]
    signature = hashlib.sha256("".join(a.key.fingerprint + a.key.shard for a in artifacts).encode()).hexdigest()[:16]
    return artifacts, signature


def _read_embeddings(catalogue: str, artifacts: list[Artifact]) -> tuple[np.ndarray, pd.DataFrame]:
    vectors = [a.read_array("track_embeddings") for a in artifacts]
    rows = pd.concat([a.read_table("tracks") for a in artifacts], ignore_index=True)
    rows.insert(0, "catalogue", catalogue)
    dim = next((v.shape[1] for v in vectors if v.ndim == 2), 0)
    return (np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32)), rows[
        ["catalogue", "track_id", "work_id"]
    ]


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


def build_catalogue_index(
    cfg: LiviConfig, catalogues: list[str], store: ArtifactStore | None = None, model: str | None = None
) -> dict:
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

    def build(target: Artifact) -> dict:
        result = {"model": model, "members": members, "index": target.url}
        unchanged = (
            pointer is not None
            and pointer["model"] == model
            and all(pointer["members"].get(c) in (None, signature) for c, (_, signature) in wanted.items())
        )
        if unchanged:
            index = load_index(current, expected_model=model)
            new = [catalogue for catalogue in wanted if catalogue not in pointer["members"]]
            for catalogue in new:
                index.add(*_read_embeddings(catalogue, wanted[catalogue][0]))
            log.info("added %s to the index of %s", new, sorted(pointer["members"]))
            result["added"], result["rebuilt"] = new, False
        else:
            everything = {
                **{c: _catalogue_embeddings(cfg, store, c, model)[0] for c in members if c not in wanted},
                **{c: a for c, (a, _) in wanted.items()},
            }
            parts = [_read_embeddings(catalogue, artifacts) for catalogue, artifacts in sorted(everything.items())]
            vectors, rows = np.concatenate([p[0] for p in parts]), pd.concat([p[1] for p in parts], ignore_index=True)
            index = TrackIndex.build(vectors, rows, cfg.index, model)
            log.info("built a %s index of %d tracks from %s", index.kind, index.count, sorted(everything))
            result["added"], result["rebuilt"] = sorted(everything), True
        save_index(index, target)
        return {**result, "kind": index.kind, "tracks": index.count}

    return produce_artifact(output, build, pointer=POINTER)


@dataclass
class QueryAnswer:
    """One file's ranking (rank, track_id, work_id, catalogue, score), or why there is none."""

    query: str
    hits: pd.DataFrame
    error: str = ""
    embed_s: float = 0.0  # decode, vocal windows, segments and encoder passes
    search_ms: float = 0.0  # the index search alone


class QuerySession:
    """The index, the encoder and the vocal detector loaded once, then any number of queries.

    ``cold_start_s`` is what loading took; each answer says how long its embedding and its search
    took, so a user running many queries (``livi query`` over a folder) pays the loading once.
    """

    def __init__(self, cfg: LiviConfig, store: ArtifactStore | None = None) -> None:
        from livi_tasks.models.musicnn import WINDOW_SECONDS
        from livi_tasks.stages.audio_embed import load_encoder
        from livi_tasks.stages.vocal import window_vocalness

        started = time.perf_counter()
        self.cfg = cfg
        self.store = store or ArtifactStore(cfg.store.root)
        pointer, artifact = current_index(self.store)
        self.model = current_model(cfg, self.store)
        if pointer["model"] != self.model:
            raise IndexMismatch(
                f"the index was built with encoder {pointer['model']}, but {self.model} is the current model "
                "(promoted, else shipped): run `livi build-index` again"
            )
        self.index = load_index(artifact, expected_model=self.model)
        load_encoder(cfg, self.store, self.model)
        # One silent window loads the vocal detector now rather than in the first query.
        window_vocalness(np.zeros(round(WINDOW_SECONDS * SAMPLE_RATE), np.float32), cfg)
        self.cold_start_s = time.perf_counter() - started

    def query(self, audio_file: str | Path, top_k: int = 10) -> QueryAnswer:
        """Rank the indexed tracks against one file; a file that cannot be read gives an error, not a raise."""
        from livi_tasks.stages.audio_embed import embed_file

        name = str(audio_file)
        if not Path(audio_file).is_file():
            return QueryAnswer(name, NO_HITS, error=f"{name}: missing file")
        started = time.perf_counter()
        try:
            embedding = embed_file(self.cfg, audio_file, self.store, model=self.model)
        except AudioError as exc:
            return QueryAnswer(name, NO_HITS, error=str(exc))
        searched = time.perf_counter()
        result = self.index.search(embedding[None, :], min(top_k, self.index.count))
        done = time.perf_counter()
        # The hits table is built after the clock stops: formatting is not the index's latency.
        hits = result.rows[HIT_COLUMNS].reset_index(drop=True)
        return QueryAnswer(name, hits, embed_s=searched - started, search_ms=(done - searched) * 1000)


def query_file(
    cfg: LiviConfig, audio_file: str | Path, top_k: int = 10, store: ArtifactStore | None = None
) -> pd.DataFrame:
    """Rank the indexed tracks against one audio file (no ASR): rank, track, work, catalogue, score."""
    if not Path(audio_file).is_file():
        raise AudioError(f"{audio_file}: missing file")
    answer = QuerySession(cfg, store).query(audio_file, top_k)
    if answer.error:
        raise AudioError(answer.error)
    return answer.hits


def audio_files(paths: list[Path]) -> list[Path]:
    """The given files, and the audio files under the given folders (recursively, sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(child for child in path.rglob("*") if child.suffix.lower() in AUDIO_SUFFIXES and child.is_file())
            )
        else:
            found.append(path)
    return found


def format_timings(session: QuerySession, answers: list[QueryAnswer]) -> str:
    answered = [answer for answer in answers if not answer.error]
    line = f"cold start {session.cold_start_s:.1f} s (index and models loaded once)"
    if answered:
        line += (
            f"; {len(answered)} queries: embedding p50 {np.median([a.embed_s for a in answered]):.2f} s,"
            f" search p50 {np.median([a.search_ms for a in answered]):.2f} ms"
        )
    failed = len(answers) - len(answered)
    return line + (f"; {failed} failed" if failed else "")


def format_results(hits: pd.DataFrame) -> str:
    lines = [f"{'rank':>4}  {'score':>6}  {'work':<20} {'catalogue':<14} track"]
    for row in hits.itertuples():
        lines.append(
            f"{row.rank:>4}  {row.score:6.3f}  {str(row.work_id or '-'):<20} {row.catalogue:<14} {row.track_id}"
        )
    return "\n".join(lines)
