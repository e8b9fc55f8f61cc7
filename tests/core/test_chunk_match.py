"""Tracks compared chunk by chunk, and the re-ranking of a query's candidates."""

from __future__ import annotations

import numpy as np

from livi_tasks.core.chunk_match import (
    IndexedChunks,
    catalogue_similarity,
    chunk_match,
    reranked_similarity,
    top_candidates,
)
from livi_tasks.core.vectors import l2_normalise


def pairwise_best_match(own: np.ndarray, other: np.ndarray) -> float:
    if not len(own) or not len(other):
        return 0.0
    pairs = own @ other.T
    return 0.5 * (pairs.max(axis=1).mean() + pairs.max(axis=0).mean())


def catalogue_chunks(chunks: list[np.ndarray]) -> IndexedChunks:
    """Tracks as an index keeps them: row t owns the chunks of ``chunks[t]``."""
    return IndexedChunks(np.concatenate(chunks), np.repeat(np.arange(len(chunks)), [len(c) for c in chunks]))


def chunk_matches(chunks: list[np.ndarray]) -> np.ndarray:
    """Every pair's chunk match: each track a query against all of them."""
    tracks = catalogue_chunks(chunks).of_rows(np.arange(len(chunks)))
    return np.stack([chunk_match(own, tracks) for own in chunks])


def random_tracks(seed: int = 0, dim: int = 16) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    counts = [3, 0, 1, 5, 2, 0, 4]  # tracks the vocal filter excluded have no chunks
    return [l2_normalise(rng.standard_normal((n, dim))) if n else np.zeros((0, dim), np.float32) for n in counts]


def test_every_pair_scores_its_chunks_best_matches_averaged_both_ways():
    chunks = random_tracks()
    expected = np.array([[pairwise_best_match(a, b) for b in chunks] for a in chunks])
    np.testing.assert_allclose(chunk_matches(chunks), expected, atol=1e-6)
    assert not chunk_matches(chunks)[[1, 5]].any()  # no chunks: 0 against everything


def test_a_cover_that_shares_the_chorus_but_not_the_intro_matches_better_by_chunks_than_by_its_mean():
    rng = np.random.default_rng(1)
    verse, chorus, intro, solo = l2_normalise(rng.standard_normal((4, 32)))
    original = np.stack([verse, chorus, chorus])
    live = np.stack([intro, solo, chorus, verse, intro])  # long intro and a solo, same song
    other_song = l2_normalise(rng.standard_normal((3, 32)))
    means = l2_normalise(np.stack([c.mean(axis=0) for c in (original, live, other_song)]))
    by_mean, by_chunks = means @ means.T, chunk_matches([original, live, other_song])
    assert by_chunks[0, 1] > by_mean[0, 1]
    assert by_chunks[0, 1] > by_chunks[0, 2]


def test_reranking_reorders_only_each_querys_top_candidates():
    cosines = np.array(
        [
            [1.0, 0.9, 0.8, 0.1],
            [0.9, 1.0, 0.7, 0.2],
            [0.8, 0.7, 1.0, 0.3],
            [0.1, 0.2, 0.3, 1.0],
        ]
    )
    candidates = top_candidates(cosines, depth=2)
    assert sorted(candidates[0]) == [1, 2] and sorted(candidates[3]) == [1, 2]
    # Query 0's chunks match track 2 and not track 1; its cosine prefers track 1.
    matched = np.array([[0.0 if c == 1 else 0.9 for c in row] for row in candidates])
    ranking, scores = reranked_similarity(cosines, candidates, matched, weight=0.5)
    order = [i for i in np.argsort(-ranking[0], kind="stable") if i != 0]
    assert order == [2, 1, 3]  # 3 stays below the re-ranked candidates
    np.testing.assert_allclose(scores[0, [1, 2, 3]], [0.45, 0.85, 0.1], rtol=1e-6)
    assert top_candidates(cosines, depth=10).shape == (4, 3)


def test_a_catalogue_without_chunk_weight_is_ranked_by_its_centred_cosines():
    chunks = [c for c in random_tracks() if len(c)] * 2
    vectors = l2_normalise(np.stack([c.mean(axis=0) for c in chunks]))
    ranking, scores = catalogue_similarity(vectors, chunks, centre=False, weight=0.0, depth=5)
    np.testing.assert_allclose(ranking, vectors @ vectors.T, rtol=1e-6)
    ranking, scores = catalogue_similarity(vectors, chunks, centre=False, weight=1.0, depth=len(chunks))
    # Weight 1 and every track a candidate: scores are the chunk matches themselves.
    expected = np.array([[pairwise_best_match(a, b) for b in chunks] for a in chunks])
    off_diagonal = ~np.eye(len(chunks), dtype=bool)
    np.testing.assert_allclose(scores[off_diagonal], expected[off_diagonal], atol=1e-5)


def test_indexed_chunks_find_a_tracks_chunks_by_row_after_adds_and_removals():
    chunks = random_tracks()
    counts = [len(c) for c in chunks]
    vectors = np.concatenate([c for c in chunks if len(c)])
    # Stored in another order than the rows (a restore appends a track's chunks at the end): lookups
    # still find each row's chunks, in their order.
    owners = np.repeat(np.arange(len(chunks)), counts)
    last = np.isin(owners, [3, 0])
    stored = IndexedChunks(
        np.concatenate([vectors[~last], vectors[last]]), np.concatenate([owners[~last], owners[last]])
    )
    for row, own in enumerate(chunks):
        np.testing.assert_array_equal(stored.of_rows(np.array([row])).vectors, own)
    picked = stored.of_rows(np.array([4, 1, 0]))
    assert list(picked.counts) == [2, 0, 3]
    without = stored.without([3, 0])
    assert len(without.vectors) == len(vectors) - 8 and not without.of_rows(np.array([3])).counts.any()
    back = without.added(IndexedChunks(chunks[3], np.full(5, 3)))
    np.testing.assert_array_equal(back.of_rows(np.array([3])).vectors, chunks[3])
