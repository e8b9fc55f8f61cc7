"""Unit vectors and pooling shared by the lyrics, audio and baseline embeddings."""

from __future__ import annotations

import numpy as np

from livi_tasks.core.vectors import l2_normalise, pool_normalised


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
