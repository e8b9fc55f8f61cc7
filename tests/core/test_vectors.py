"""Unit vectors and pooling shared by the lyrics, audio and baseline embeddings."""

from __future__ import annotations

import numpy as np

from livi_tasks.core.vectors import MIN_CENTRE_TRACKS, catalogue_centre, centred, l2_normalise, pool_normalised


def test_rows_become_unit_length_and_a_zero_vector_stays_zero():
    vectors = l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, [[0.6, 0.8], [0.0, 0.0]])


def test_weighted_pooling_leans_towards_the_heavier_rows():
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    owners, pooled = pool_normalised(vectors, ["b", "b", "a"], weights=np.array([3.0, 1.0, 1.0]))
    assert owners == ["b", "a"]
    np.testing.assert_allclose(pooled[0], l2_normalise(np.array([3.0, 1.0])), rtol=1e-6)
    np.testing.assert_allclose(pooled[1], [2**-0.5, 2**-0.5], rtol=1e-6)


def versions_sharing_a_direction(works: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two versions of each work: a direction every track shares, the work's own, and noise."""
    rng = np.random.default_rng(seed)
    shared, own = rng.standard_normal(32), rng.standard_normal((works, 32))
    labels = np.repeat(np.arange(works), 2)
    return l2_normalise(4 * shared + own[labels] + 0.2 * rng.standard_normal((2 * works, 32))), labels


def test_centring_takes_out_the_direction_every_track_shares_and_keeps_what_tells_works_apart():
    vectors, labels = versions_sharing_a_direction()
    same = labels[:, None] == labels[None, :]
    other = ~same
    raw = vectors @ vectors.T
    moved = centred(vectors, catalogue_centre(vectors))
    centred_similarity = moved @ moved.T
    np.testing.assert_allclose(np.linalg.norm(moved, axis=1), 1, rtol=1e-5)
    assert raw[other].mean() > 0.8  # every pair looks alike before
    assert centred_similarity[other].mean() < 0.1 < 0.8 < centred_similarity[same & ~np.eye(16, dtype=bool)].mean()


def test_a_set_too_small_to_learn_a_mean_is_left_uncentred_and_rows_without_direction_stay_zero():
    vectors, _ = versions_sharing_a_direction(works=5)
    with_excluded = np.vstack([vectors[: MIN_CENTRE_TRACKS - 1], np.zeros((4, 32))])
    assert catalogue_centre(with_excluded) is None  # the zero rows (excluded tracks) do not count
    np.testing.assert_allclose(centred(with_excluded, None), l2_normalise(with_excluded), atol=1e-6)
    moved = centred(np.vstack([vectors, np.zeros((1, 32))]), catalogue_centre(vectors))
    assert not moved[-1].any() and np.isfinite(moved).all()
