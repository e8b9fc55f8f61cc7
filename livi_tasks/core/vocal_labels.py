"""Labels of 3 s windows against known vocal regions (a generator's sung lines, a hand-labelled
CSV): how much of each window is sung, the label that follows, and detection precision/recall."""

from __future__ import annotations

import numpy as np
import pandas as pd

VOCAL_COVERAGE = 0.5
# Windows with a little voice at a region's edge are neither clearly vocal nor clearly not:
# detection metrics ignore windows covered more than this but less than VOCAL_COVERAGE.
SILENT_COVERAGE = 0.1


def window_coverage(windows: pd.DataFrame, regions: pd.DataFrame) -> np.ndarray:
    """Share of each window covered by the vocal regions of its track, in [0, 1]."""
    coverage = np.zeros(len(windows), np.float64)
    by_track = {track: group[["start_s", "end_s"]].to_numpy() for track, group in regions.groupby("track_id")}
    for i, (track, start, end) in enumerate(windows[["track_id", "start_s", "end_s"]].itertuples(index=False)):
        spans = by_track.get(track)
        if spans is None or end <= start:
            continue
        coverage[i] = np.clip(np.minimum(spans[:, 1], end) - np.maximum(spans[:, 0], start), 0, None).sum() / (
            end - start
        )
    return coverage


def window_labels(coverage: np.ndarray) -> np.ndarray:
    """1 (vocal), 0 (no voice) or -1 (a region's edge: ignored by the detection metrics)."""
    labels = np.where(coverage >= VOCAL_COVERAGE, 1, -1)
    labels[coverage <= SILENT_COVERAGE] = 0
    return labels


def precision_recall(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Window precision and recall of the vocal class; windows labelled -1 are left out."""
    decided = labels >= 0
    predicted, ignored, labels = predicted[decided], int((~decided).sum()), labels[decided]
    true_positive = float(((predicted == 1) & (labels == 1)).sum())
    precision = true_positive / max(float((predicted == 1).sum()), 1.0)
    recall = true_positive / max(float((labels == 1).sum()), 1.0)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "windows": int(len(labels)),
        "edge_windows_ignored": ignored,
    }
