"""Unit vectors and their pooling: one definition for lyrics, audio and baseline embeddings."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

# Below this norm a vector has no direction; it stays (near) zero rather than dividing by zero.
NORM_EPSILON = 1e-12


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """float32 rows (or one vector) scaled to unit length."""
    vectors = np.asarray(vectors)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, NORM_EPSILON)).astype(np.float32)


def pool_normalised(
    vectors: np.ndarray, owners: Sequence, weights: np.ndarray | None = None
) -> tuple[list, np.ndarray]:
    """(Weighted) mean of the rows of each owner, L2-normalised; owners in order of first appearance."""
    codes, uniques = pd.factorize(pd.Series(list(owners), dtype=object), sort=False)
    weights = np.ones(len(vectors)) if weights is None else np.asarray(weights, np.float64)
    sums = np.zeros((len(uniques), vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, codes, vectors * weights[:, None])
    totals = np.bincount(codes, weights=weights, minlength=len(uniques))[:, None]
    return list(uniques), l2_normalise(sums / np.maximum(totals, NORM_EPSILON))
