"""Tracks compared chunk by chunk: a second opinion on the candidates the track vectors find.

A track's vector is the mean of its 30 s chunk embeddings. For a whole song, the chunks that two
versions share (the chorus sung again, the verses in another order) are averaged with the ones
they do not (a live intro, a solo, a bridge left out), so the means drift apart. Matching chunks
keeps what is shared: each chunk's best match in the other track, averaged over both tracks'
chunks (``chunk_match``). The search still runs on the track vectors; the top candidates are
then re-ranked by ``(1 - weight) * track cosine + weight * chunk match`` (``fused_scores``), the
weight being ``index.chunk_weight`` (BENCHMARKS.md, "Chunk re-ranking").

Chunks are compared as the index stores tracks: unit vectors centred on the index's mean
(``core.vectors.centred``). A track without chunks (the vocal filter excluded it) scores 0
against everything, as its zero track vector does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from livi_tasks.core.vectors import catalogue_centre, centred


@dataclass(frozen=True)
class TrackChunks:
    """The chunk vectors of a list of tracks, track after track: track ``t`` owns the rows
    ``starts[t]:starts[t + 1]`` of ``vectors`` (none when the two are equal)."""

    vectors: np.ndarray  # (chunks, dim)
    starts: np.ndarray  # (tracks + 1,) int64, non-decreasing, starts[0] == 0, starts[-1] == chunks

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.starts)


def chunk_match(query: np.ndarray, candidates: TrackChunks) -> np.ndarray:
    """(candidates,) how well one track's chunks (rows of ``query``) and each candidate's match:
    each chunk's best cosine in the other track, averaged over both tracks' chunks; 0 where
    either has none."""
    query = np.asarray(query, np.float32).reshape(-1, candidates.vectors.shape[1])
    scores = np.zeros(len(candidates.counts), np.float32)
    present = np.flatnonzero(candidates.counts)
    if not len(query) or not len(present):
        return scores
    similarity = query @ candidates.vectors.T
    # reduceat needs the start of every non-empty track (an empty one would read its neighbour's).
    starts = candidates.starts[present]
    forward = np.maximum.reduceat(similarity, starts, axis=1).mean(axis=0)  # each query chunk's best per track
    backward = np.add.reduceat(similarity.max(axis=0), starts) / candidates.counts[present]  # and the other way
    scores[present] = 0.5 * (forward + backward)
    return scores


def fused_scores(track_scores: np.ndarray, chunk_scores: np.ndarray, weight: float) -> np.ndarray:
    """The re-ranking score: ``(1 - weight) * track cosine + weight * chunk match``."""
    return (1.0 - weight) * np.asarray(track_scores, np.float32) + weight * np.asarray(chunk_scores, np.float32)


def top_candidates(similarity: np.ndarray, depth: int) -> np.ndarray:
    """(queries, depth) the positions of each row's ``depth`` most similar other tracks (itself left out)."""
    others = np.asarray(similarity, np.float32).copy()
    np.fill_diagonal(others, -np.inf)
    depth = min(depth, len(others) - 1)
    return np.argpartition(-others, depth - 1, axis=1)[:, :depth] if depth > 0 else np.zeros((len(others), 0), int)


def reranked_similarity(
    cosines: np.ndarray, candidates: np.ndarray, matched: np.ndarray, weight: float
) -> tuple[np.ndarray, np.ndarray]:
    """(ranking, scores) of a catalogue whose queries re-rank their ``candidates`` (queries, depth)
    by the fused score, ``matched`` being the candidates' chunk match. ``scores`` is each answer's
    score (fused for a re-ranked candidate, the cosine below them); ``ranking`` orders as the
    answers do: the re-ranked candidates first (lifted by 4, above any cosine), then the rest."""
    rows = np.arange(len(cosines))[:, None]
    scores = np.asarray(cosines, np.float32).copy()
    scores[rows, candidates] = fused_scores(scores[rows, candidates], matched, weight)
    ranking = scores.copy()
    ranking[rows, candidates] += 4.0
    return ranking, scores


@dataclass(frozen=True)
class IndexedChunks:
    """The chunk vectors an index keeps beside its track vectors for re-ranking: ``owners[i]`` is
    the row position, in the index, of the track that chunk ``i`` belongs to. Rows are added,
    dropped (takedowns) and put back as the index's rows are. Kept sorted by owner (a track's
    chunks in their order), so a query's candidates are found by binary search."""

    vectors: np.ndarray  # (chunks, dim), centred unit vectors as the index stores tracks
    owners: np.ndarray  # (chunks,) int64 row positions, non-decreasing

    def __post_init__(self) -> None:
        owners = np.asarray(self.owners, np.int64)
        if len(owners) > 1 and (np.diff(owners) < 0).any():
            order = np.argsort(owners, kind="stable")
            object.__setattr__(self, "vectors", self.vectors[order])
            owners = owners[order]
        object.__setattr__(self, "owners", owners)

    def added(self, other: "IndexedChunks") -> "IndexedChunks":
        return IndexedChunks(
            np.concatenate([self.vectors, np.asarray(other.vectors, self.vectors.dtype)]),
            np.concatenate([self.owners, other.owners]),
        )

    def without(self, positions) -> "IndexedChunks":
        keep = ~np.isin(self.owners, np.asarray(list(positions), np.int64))
        return IndexedChunks(self.vectors[keep], self.owners[keep])

    def of_rows(self, positions: np.ndarray) -> TrackChunks:
        """The chunks of the tracks at these row positions, in that order (none for a row without)."""
        positions = np.asarray(positions, np.int64)
        first = np.searchsorted(self.owners, positions, side="left")
        last = np.searchsorted(self.owners, positions, side="right")
        counts = last - first
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        picked = np.arange(starts[-1]) + np.repeat(first - starts[:-1], counts)
        return TrackChunks(np.asarray(self.vectors[picked], np.float32), starts)


def catalogue_similarity(
    vectors: np.ndarray, chunks: list[np.ndarray] | None, centre: bool, weight: float, depth: int
) -> tuple[np.ndarray, np.ndarray]:
    """(ranking, scores) of every pair of a catalogue as an index of it answers (see
    ``reranked_similarity``): track vectors centred on their own mean (``centre``), each query's top
    ``depth`` re-ranked with its chunks (``chunks``: each track's; None or ``weight`` 0: track
    vectors alone, and both matrices are the cosines)."""
    mean = catalogue_centre(vectors) if centre else None
    units = centred(vectors, mean)
    cosines = units @ units.T
    if chunks is None or weight <= 0:
        return cosines, cosines
    counts = [len(c) for c in chunks]
    if not sum(counts):
        return cosines, cosines
    stored = IndexedChunks(centred(np.concatenate(chunks), mean), np.repeat(np.arange(len(chunks)), counts))
    return catalogue_reranked(cosines, stored, weight, depth)


def catalogue_reranked(
    cosines: np.ndarray, stored: IndexedChunks, weight: float, depth: int
) -> tuple[np.ndarray, np.ndarray]:
    """(ranking, scores) of ``reranked_similarity`` for a catalogue whose track ``i`` asked row ``i``
    of ``cosines`` (its query vector against every track) and is re-ranked with its own chunks."""
    candidates = top_candidates(cosines, depth)
    matched = np.stack(
        [
            chunk_match(stored.of_rows(np.array([query])).vectors, stored.of_rows(row))
            for query, row in enumerate(candidates)
        ]
    )
    return reranked_similarity(cosines, candidates, matched, weight)
