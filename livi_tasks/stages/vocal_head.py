"""The paper's vocal detector: one linear layer (2 outputs) on Musicnn's penultimate features.

``train_vocal_head`` learns it from labelled windows: the penultimate features the vocal stage
already stored for a catalogue, and a vocal-regions CSV (``track_id,start_s,end_s``, e.g. the demo
generator's ``vocals.csv``). A window is labelled vocal when regions cover at least half of it;
for the metrics, windows with voice on less than half but more than a tenth of their length (a
line's first or last syllables) are ignored.
Tracks, not windows, are split into training and validation, so that no track is in both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from livi_tasks.core.atomic import write_atomic, write_bytes_atomic
from livi_tasks.core.config import LiviConfig
from livi_tasks.core.store import ArtifactStore
from livi_tasks.core.vocal_labels import precision_recall, window_coverage, window_labels
from livi_tasks.models.musicnn import VocalHead
from livi_tasks.stages.lineage import artifact_for, shard_ids

log = logging.getLogger(__name__)


def _validation_tracks(track_ids: np.ndarray, fraction: float) -> np.ndarray:
    # A hash of the id, not a random draw: the same track lands on the same side on every run.
    score = np.array([int(hashlib.sha256(str(t).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF for t in track_ids])
    return score < fraction


def train_vocal_head(
    cfg: LiviConfig,
    catalogue: str,
    regions_csv: str | os.PathLike,
    out_path: str | os.PathLike,
    store: ArtifactStore | None = None,
    epochs: int = 300,
    validation_fraction: float = 0.25,
    seed: int = 0,
) -> dict:
    """Train the head from the catalogue's stored Musicnn window features (the vocal stage run with
    vocal.method zero_shot); save it with its metrics."""
    store = store or ArtifactStore(cfg.store.root)
    musicnn = cfg.model_copy(update={"vocal": cfg.vocal.model_copy(update={"method": "zero_shot"})})
    windows, features = [], []
    for shard in shard_ids(store, catalogue):
        vocal = artifact_for(musicnn, store, catalogue, "vocal", shard).require()
        windows.append(vocal.read_table("windows"))
        features.append(vocal.read_array("features").astype(np.float32))
    windows = pd.concat(windows, ignore_index=True)
    x = torch.from_numpy(np.concatenate(features))
    labels = window_labels(window_coverage(windows, pd.read_csv(regions_csv)))
    y = torch.from_numpy((labels == 1).astype(np.int64))
    is_validation = torch.from_numpy(_validation_tracks(windows["track_id"].to_numpy(), validation_fraction))
    if is_validation.all() or not is_validation.any():
        raise ValueError(f"{catalogue}: too few tracks to hold out {validation_fraction:.0%} for validation")

    torch.manual_seed(seed)
    mean, std = x[~is_validation].mean(0), x[~is_validation].std(0).clamp_min(1e-6)
    head = VocalHead(cfg.vocal.musicnn_model)
    # Standardisation folded into the layer afterwards, so the saved head takes raw features.
    optimiser = torch.optim.Adam(head.parameters(), lr=1e-2, weight_decay=1e-4)
    train_x, train_y = (x[~is_validation] - mean) / std, y[~is_validation]
    class_weight = len(train_y) / (2 * torch.bincount(train_y, minlength=2).clamp_min(1).float())
    loss_fn = nn.CrossEntropyLoss(weight=class_weight)
    for _ in range(epochs):
        optimiser.zero_grad()
        loss = loss_fn(head(train_x), train_y)
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        head.linear.weight /= std
        head.linear.bias -= (head.linear.weight * mean).sum(1)
    predicted = (head.vocalness(x.numpy()) >= cfg.vocal.window_threshold).astype(np.int64)
    validation = is_validation.numpy()
    metrics = {
        "train": precision_recall(predicted[~validation], labels[~validation]),
        "validation": precision_recall(predicted[validation], labels[validation]),
        "final_train_loss": float(loss.detach()),
        "catalogue": catalogue,
    }
    out_path = Path(out_path)
    write_atomic(out_path, head.save)
    write_bytes_atomic(out_path.with_suffix(".metrics.json"), json.dumps(metrics, indent=2).encode())
    log.info("vocal head saved to %s: validation %s", out_path, metrics["validation"])
    return {"path": str(out_path), **metrics}
