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


# The mean of fewer tracks is mostly the tracks themselves, not what they share: such a set stays uncentred.
MIN_CENTRE_TRACKS = 8


def catalogue_centre(vectors: np.ndarray) -> np.ndarray | None:
    """The mean direction of a set of track embeddings (rows without direction, e.g. tracks the
    vocal filter excluded, left out), or None when fewer than ``MIN_CENTRE_TRACKS`` rows have one.

    Learned embeddings share a common direction (the student inherits it from the sentence
    embedding space it mimics), which inflates every cosine similarity alike; subtracting the
    catalogue's mean before comparing leaves the directions that tell works apart
    (BENCHMARKS.md, "Centring")."""
    vectors = np.asarray(vectors)
    live = np.linalg.norm(vectors, axis=1) > NORM_EPSILON
    if live.sum() < MIN_CENTRE_TRACKS:
        return None
    return l2_normalise(vectors[live]).mean(axis=0, dtype=np.float64).astype(np.float32)


def centred(vectors: np.ndarray, centre: np.ndarray | None) -> np.ndarray:
    """Unit rows of ``unit(v) - centre``, renormalised; rows without direction stay zero, and a row
    that equals the centre keeps its own direction. ``centre`` None: the unit rows alone."""
    units = l2_normalise(np.asarray(vectors, np.float32).reshape(-1, np.shape(vectors)[-1]))
    if centre is None:
        return units
    live = np.linalg.norm(units, axis=1, keepdims=True) > NORM_EPSILON
    moved = units - np.asarray(centre, np.float32)
    usable = np.linalg.norm(moved, axis=1, keepdims=True) > 1e-6
    return l2_normalise(np.where(live & usable, moved, units))
