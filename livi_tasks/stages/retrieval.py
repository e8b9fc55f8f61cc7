"""The catalogue index stage and the query command: ASR-free track embeddings in Faiss or Milvus.

The index is an artifact like every other: ``_index/<backend>/all/<fingerprint>/`` where the
fingerprint hashes the encoder model, the embed artifacts of every member catalogue and the
tracks of those catalogues that are taken down (``core.takedowns``). The pointer
``_index/CURRENT.json`` names the index in use. Indexing a new catalogue opens the current index
(same model, same backend), adds the new vectors and saves a new artifact: nothing is rebuilt; a
takedown deletes the track from it and a restore puts it back the same way. A changed member
(re-embedded catalogue), another model or another backend means a rebuild from the members'
embeddings, taken-down tracks left out. With ``index.centre`` (the default) a rebuild learns the
members' mean embedding and stores every vector with it taken out; catalogues added later and
every query are centred on that same mean (``core.vectors.centred``), until catalogues that bring
more tracks than the index holds are added: then it is rebuilt and learns the mean again. With ``index.chunk_weight``
above 0 (the default) the index also keeps every track's chunk embeddings (its 30 s chunks, or
vocal segments, centred alike), and each query's top ``index.rerank_depth`` candidates are
re-ranked chunk by chunk (``core.chunk_match``). The backend
(``index_backend.name``): Faiss files in the store (the default) or a Milvus collection
(milvus-lite inside the artifact, or a server by URI); ``stages.index_artifacts`` writes and opens
both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from livi_tasks.core.audio import SAMPLE_RATE, AudioError
from livi_tasks.core.chunk_match import IndexedChunks, chunk_match, fused_scores
from livi_tasks.core.config import LiviConfig
from livi_tasks.core.index import IndexMismatch, SearchResult, TrackIndex
from livi_tasks.core.milvus_index import MilvusTrackIndex
from livi_tasks.core.runner import produce_artifact, store_lock
from livi_tasks.core.store import Artifact, ArtifactMissing, ArtifactStore
from livi_tasks.core.takedowns import active_takedowns, keys_text
from livi_tasks.core.vectors import catalogue_centre, centred
from livi_tasks.models.registry import current_model
from livi_tasks.stages.catalogue import AUDIO_SUFFIXES
from livi_tasks.stages.index_artifacts import (
    close_index,
    index_artifact,
    load_faiss,
    new_milvus_index,
    open_index,
    open_milvus,
    read_centre,
    read_chunks,
    retire_collections,
    save_centre,
    save_chunks,
    save_faiss,
    save_milvus,
)
from livi_tasks.stages.lineage import artifact_for, shard_ids, track_segment_embeddings

log = logging.getLogger(__name__)

POINTER = "_index/CURRENT.json"
BUILD_LOCK = "_index/BUILD.lock"
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


def _read_embeddings(
    catalogue: str, artifacts: list[Artifact], only: set[str] | None = None, leave_out: set[str] | None = None
) -> tuple[np.ndarray, pd.DataFrame]:
    """A catalogue's track vectors and rows (catalogue, track_id, work_id): only the tracks whose
    ``catalogue/track_id`` is in ``only`` (when given), less those in ``leave_out``."""
    vectors = [a.read_array("track_embeddings") for a in artifacts]
    rows = pd.concat([a.read_table("tracks") for a in artifacts], ignore_index=True)
    rows.insert(0, "catalogue", catalogue)
    dim = next((v.shape[1] for v in vectors if v.ndim == 2), 0)
    matrix = np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32)
    keys = (catalogue + "/" + rows["track_id"].astype(str)).to_numpy()
    keep = np.ones(len(rows), bool)
    if only is not None:
        keep &= np.isin(keys, list(only))
    if leave_out:
        keep &= ~np.isin(keys, list(leave_out))
    return matrix[keep], rows.loc[keep, ["catalogue", "track_id", "work_id"]].reset_index(drop=True)


def _held_chunks(index, catalogues: list[tuple[pd.DataFrame, list[Artifact]]], centre) -> IndexedChunks:
    """The chunks of tracks the index holds (each catalogue's rows and embed artifacts), at their
    row positions, centred as the tracks are."""
    per_track, positions = [], []
    for rows, artifacts in catalogues:
        per_track += track_segment_embeddings(artifacts, rows["track_id"])
        positions += [index.position(c, t) for c, t in zip(rows["catalogue"], rows["track_id"])]
    counts = [len(chunks) for chunks in per_track]
    vectors = np.concatenate(per_track) if sum(counts) else np.zeros((0, index.dim), np.float32)
    return IndexedChunks(centred(vectors, centre), np.repeat(np.asarray(positions, np.int64), counts))


def current_index(store: ArtifactStore) -> tuple[dict, Artifact]:
    """The index pointer and the artifact it names."""
    try:
        pointer = store.read_pointer(POINTER)
    except ArtifactMissing:
        raise ArtifactMissing(f"no index in {store.root}: run `livi build-index --catalogue NAME` first") from None
    return pointer, index_artifact(store, pointer.get("backend", "faiss"), pointer["fingerprint"])


def _backend_identity(cfg: LiviConfig) -> tuple[str, ...]:
    """What of the backend keys an index: nothing for Faiss (keys made before backends stay)."""
    backend = cfg.index_backend
    if backend.name == "faiss":
        return ()
    identity = [backend.name, backend.milvus_uri, backend.milvus_index_type, backend.milvus_collection_prefix]
    return (json.dumps(identity),)


def build_catalogue_index(
    cfg: LiviConfig, catalogues: list[str], store: ArtifactStore | None = None, model: str | None = None
) -> dict:
    """Index the catalogues' ASR-free track embeddings, adding them to the current index when it
    uses the same model and backend; taken-down tracks are left out (or deleted from it)."""
    store = store or ArtifactStore(cfg.store.root)
    model = current_model(cfg, store, model)
    # One build at a time: each starts from what the previous one published (its catalogues and
    # takedowns), so two builds at once (a DAG run and a takedown) cannot drop each other's change.
    with store_lock(store, BUILD_LOCK):
        return _build_catalogue_index(cfg, catalogues, store, model)


def _build_catalogue_index(cfg: LiviConfig, catalogues: list[str], store: ArtifactStore, model: str) -> dict:
    backend = cfg.index_backend.name
    wanted = {catalogue: _catalogue_embeddings(cfg, store, catalogue, model) for catalogue in catalogues}
    try:
        pointer, current = current_index(store)
    except ArtifactMissing:
        pointer, current = None, None
    same_kind = (
        pointer is not None
        and pointer["model"] == model
        and pointer.get("backend", "faiss") == backend
        and pointer.get("uri") == (cfg.index_backend.milvus_uri if backend == "milvus" else None)
        and pointer.get("centre", False) == cfg.index.centre  # switching centring on or off rebuilds
        and pointer.get("chunks", False) == (cfg.index.chunk_weight > 0)  # so does keeping chunks or not
    )
    members = dict(pointer["members"]) if same_kind else {}
    members.update({catalogue: signature for catalogue, (_, signature) in wanted.items()})
    taken = keys_text(active_takedowns(store, members))
    parts = [json.dumps(members, sort_keys=True), *_backend_identity(cfg)]
    if taken:  # only then: an index without takedowns keeps the key it always had
        parts.append(json.dumps(taken))
    fingerprint = cfg.index.fingerprint("index", model, *parts)
    output = index_artifact(store, backend, fingerprint)

    def build(target: Artifact) -> dict:
        unchanged = (
            same_kind
            and all(pointer["members"].get(c) in (None, signature) for c, (_, signature) in wanted.items())
            and not (cfg.index.centre and _outgrown(pointer, wanted))
        )
        if unchanged:
            index, centre, chunks, result = _update(cfg, store, model, pointer, current, wanted, set(taken))
        else:
            index, centre, chunks, result = _rebuild(cfg, store, model, members, wanted, set(taken), fingerprint)
        save_centre(target, centre)
        save_chunks(target, chunks)
        try:
            if backend == "milvus":
                save_milvus(index, target, cfg.index_backend.milvus_uri)
                result["collection"] = index.collection
            else:
                save_faiss(index, target)
        finally:
            close_index(index)
        return {
            **result,
            "model": model,
            "backend": backend,
            "uri": cfg.index_backend.milvus_uri if backend == "milvus" else None,
            "members": members,
            "takedowns": taken,
            "index": target.url,
            "kind": index.kind,
            "centre": cfg.index.centre,
            "centred": centre is not None,  # false with centring on when too few tracks to learn a mean
            "chunks": chunks is not None,
            "tracks": index.live_count,
        }

    result = produce_artifact(output, build, pointer=POINTER)
    if backend == "milvus" and cfg.index_backend.milvus_uri:
        previous = pointer.get("collection") if same_kind and pointer else None
        keep = {result["collection"], *([previous] if previous else [])}
        retire_collections(cfg.index_backend, keep)
    return result


def _outgrown(pointer: dict, wanted: dict) -> bool:
    """The new catalogues bring more tracks than the index holds: the mean it learned would be a
    minority's (or it had too few tracks to learn one), so the index is rebuilt and learns it again."""
    new = [artifacts for catalogue, (artifacts, _) in wanted.items() if catalogue not in pointer["members"]]
    added = sum(len(artifact.read_table("tracks")) for artifacts in new for artifact in artifacts)
    return added > pointer.get("tracks", 0)


def _rebuild(cfg, store, model, members, wanted, taken: set[str], fingerprint: str):
    everything = {
        **{c: _catalogue_embeddings(cfg, store, c, model)[0] for c in members if c not in wanted},
        **{c: a for c, (a, _) in wanted.items()},
    }
    parts = [_read_embeddings(c, artifacts, leave_out=taken) for c, artifacts in sorted(everything.items())]
    vectors, rows = np.concatenate([p[0] for p in parts]), pd.concat([p[1] for p in parts], ignore_index=True)
    centre = catalogue_centre(vectors) if cfg.index.centre else None
    vectors = centred(vectors, centre)
    if cfg.index_backend.name == "milvus":
        index, _ = new_milvus_index(cfg.index_backend, fingerprint, vectors.shape[1], model)
        index.add(vectors, rows)
    else:
        index = TrackIndex.build(vectors, rows, cfg.index, model)
    chunks = None
    if cfg.index.chunk_weight > 0:
        members_rows = [(part[1], artifacts) for (_, artifacts), part in zip(sorted(everything.items()), parts)]
        chunks = _held_chunks(index, members_rows, centre)
    log.info(
        "built a %s %s index of %d tracks from %s (%s)",
        index.backend,
        index.kind,
        index.count,
        sorted(everything),
        "centred on their mean" if centre is not None else "uncentred",
    )
    return index, centre, chunks, {"added": sorted(everything), "rebuilt": True, "deleted": [], "restored": []}


def _update(cfg, store, model, pointer, current, wanted, taken: set[str]):
    """The published index plus the new catalogues, less newly taken-down tracks, plus restored ones;
    the new vectors are centred on the mean the index learned when it was built."""
    if cfg.index_backend.name == "milvus":
        index = open_milvus(current, cfg.index_backend, model)
    else:
        index = load_faiss(current, expected_model=model)
    centre, chunks = read_centre(current), read_chunks(current)
    new = [catalogue for catalogue in wanted if catalogue not in pointer["members"]]
    for catalogue in new:
        vectors, rows = _read_embeddings(catalogue, wanted[catalogue][0], leave_out=taken)
        index.add(centred(vectors, centre), rows)
        if chunks is not None:
            chunks = chunks.added(_held_chunks(index, [(rows, wanted[catalogue][0])], centre))
    before = set(pointer.get("takedowns", []))
    deleted = sorted(taken - before)
    keys = [tuple(key.split("/", 1)) for key in deleted]
    if chunks is not None:
        chunks = chunks.without(p for p in (index.position(*key) for key in keys) if p is not None)
    index.delete(keys)
    restored = sorted(before - taken)
    if restored:
        chunks = _restore(cfg, store, model, index, restored, centre, chunks)
    log.info(
        "added %s to the index of %s; %d taken down, %d restored",
        new,
        sorted(pointer["members"]),
        len(deleted),
        len(restored),
    )
    return index, centre, chunks, {"added": new, "rebuilt": False, "deleted": deleted, "restored": restored}


def _restore(cfg, store, model, index, restored: list[str], centre, chunks: IndexedChunks | None):
    """Put the restored tracks back (and their chunks, when the index keeps them); returns the chunks."""
    by_catalogue: dict[str, set[str]] = {}
    for key in restored:
        by_catalogue.setdefault(key.split("/", 1)[0], set()).add(key)
    for catalogue, keys in by_catalogue.items():
        artifacts = _catalogue_embeddings(cfg, store, catalogue, model)[0]
        vectors, rows = _read_embeddings(catalogue, artifacts, only=keys)
        vectors = centred(vectors, centre)
        pairs = list(zip(rows["catalogue"], rows["track_id"]))
        held = np.array([index.position(*pair) is not None for pair in pairs], bool)
        index.restore([p for p, h in zip(pairs, held) if h], vectors[held])
        if (~held).any():
            index.add(vectors[~held], rows[~held].reset_index(drop=True))
        if chunks is not None:
            chunks = chunks.added(_held_chunks(index, [(rows, artifacts)], centre))
    return chunks


@dataclass(frozen=True)
class PublishedIndex:
    """An opened index, the pointer that named it, the mean its vectors were centred on (None:
    uncentred), the tracks taken down since it was built (``excluded``: their row positions), which
    every search leaves out, and the chunks its candidates are re-ranked by (None: not re-ranked)."""

    pointer: dict
    index: TrackIndex | MilvusTrackIndex
    takedowns: frozenset[str] = frozenset()  # catalogue/track_id of every active takedown
    excluded: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    centre: np.ndarray | None = None
    chunks: IndexedChunks | None = None
    chunk_weight: float = 0.0
    rerank_depth: int = 0

    @property
    def fingerprint(self) -> str:
        return self.pointer["fingerprint"]

    @property
    def live_count(self) -> int:
        return self.index.live_count - len(self.excluded)

    def with_takedowns(self, takedowns: Iterable[str]) -> "PublishedIndex":
        """The same index with these takedowns (``catalogue/track_id``) left out of answers; cheap."""
        keys = frozenset(takedowns)
        positions = (self.index.position(*key.split("/", 1)) for key in keys)
        live = [p for p in positions if p is not None and not self.index.removed[p]]
        return replace(self, takedowns=keys, excluded=np.array(sorted(live), np.int64))

    def search(
        self,
        embeddings: np.ndarray,
        k: int,
        leave_out: Iterable[int] = (),
        query_chunks: list[np.ndarray] | None = None,
    ) -> SearchResult:
        """The top k of each query embedding (as the encoder gives it: centred here like the stored
        vectors), the takedowns and ``leave_out`` (row positions) excluded; with ``query_chunks``
        (each query's chunk embeddings) re-ranked chunk by chunk when the index keeps chunks. The
        result's ``rows`` (built on first use) names the hits."""
        chunks = None if query_chunks is None else [centred(c, self.centre) for c in query_chunks]
        return self._search_stored(centred(embeddings, self.centre), k, leave_out, chunks)

    def versions_of(self, catalogue: str, track_id: str, position: int, k: int) -> SearchResult:
        """The top k of an indexed track (at row ``position``), from its stored vector (and chunks),
        itself left out."""
        chunks = None if self.chunks is None else [self.chunks.of_rows(np.array([position])).vectors]
        return self._search_stored(self.index.vector(catalogue, track_id)[None, :], k, [position], chunks)

    def _search_stored(
        self, vectors: np.ndarray, k: int, leave_out: Iterable[int], query_chunks: list[np.ndarray] | None = None
    ) -> SearchResult:
        extra = np.asarray(list(leave_out), np.int64)
        excluded = np.union1d(self.excluded, extra) if len(extra) else self.excluded
        live = self.index.live_count - len(excluded)
        k = max(1, min(k, live))
        if self.chunks is None or query_chunks is None or self.chunk_weight <= 0:
            return self.index.search(vectors, k, exclude=excluded)
        found = self.index.search(vectors, max(k, min(self.rerank_depth, live)), exclude=excluded)
        return self._reranked(found, query_chunks, k)

    def _reranked(self, found: SearchResult, query_chunks: list[np.ndarray], k: int) -> SearchResult:
        """Each query's candidates ordered by the fused score (``core.chunk_match.fused_scores``), top k kept."""
        ids = np.full((len(found.ids), k), -1, np.int64)
        scores = np.zeros((len(found.ids), k), np.float32)
        for query, (candidates, cosines) in enumerate(zip(found.ids, found.scores)):
            held = candidates >= 0
            candidates, cosines = candidates[held], cosines[held]
            matched = chunk_match(query_chunks[query], self.chunks.of_rows(candidates))
            fused = fused_scores(cosines, matched, self.chunk_weight)
            order = np.argsort(-fused, kind="stable")[:k]
            ids[query, : len(order)], scores[query, : len(order)] = candidates[order], fused[order]
        return SearchResult(ids, scores, found.id_table)


def open_published_index(cfg: LiviConfig, store: ArtifactStore, expected_model: str | None = None) -> PublishedIndex:
    """The index the pointer names now, with the takedowns recorded since it was built."""
    pointer, artifact = current_index(store)
    index = open_index(artifact, cfg.index_backend, expected_model=expected_model)
    published = PublishedIndex(
        pointer,
        index,
        centre=read_centre(artifact),
        chunks=read_chunks(artifact) if cfg.index.chunk_weight > 0 else None,
        chunk_weight=cfg.index.chunk_weight,
        rerank_depth=cfg.index.rerank_depth,
    )
    return published.with_takedowns(keys_text(active_takedowns(store, pointer["members"])))


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
        pointer, _ = current_index(self.store)
        self.model = current_model(cfg, self.store)
        if pointer["model"] != self.model:
            raise IndexMismatch(
                f"the index was built with encoder {pointer['model']}, but {self.model} is the current model "
                "(promoted, else shipped): run `livi build-index` again"
            )
        self.published = open_published_index(cfg, self.store, expected_model=self.model)
        self.index = self.published.index
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
            embedded = embed_file(self.cfg, audio_file, self.store, model=self.model)
        except AudioError as exc:
            return QueryAnswer(name, NO_HITS, error=str(exc))
        searched = time.perf_counter()
        result = self.published.search(embedded.embedding[None, :], top_k, query_chunks=[embedded.chunks])
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
