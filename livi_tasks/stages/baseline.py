"""Audio-only baseline: 2D Fourier transform magnitudes of beat-synchronous chroma.

Bertin-Mahieux and Ellis (2012), "Large-scale cover song recognition using the 2D Fourier
transform magnitude": chroma is averaged between beats, raised to a power to sharpen it, cut into
patches of ``patch_beats`` beats whose 2D FFT magnitude is invariant to key (circular shift along
chroma) and to time offset; the median over patches is the track's fingerprint. It knows nothing
of lyrics, so it shows where lyrics help: two works over the same backing look alike to it.
"""

from __future__ import annotations

import logging

import librosa
import numpy as np
import pandas as pd
from tqdm import tqdm

from livi_tasks.core.audio import SAMPLE_RATE, AudioError, load_audio
from livi_tasks.core.config import BaselineConfig, LiviConfig
from livi_tasks.core.runner import shard_tracks, write_failed_tracks
from livi_tasks.core.store import Artifact, ArtifactStore
from livi_tasks.core.vectors import l2_normalise
from livi_tasks.stages.lineage import run_shard_stage

log = logging.getLogger(__name__)

STAGE = "baseline"
HOP = 512


def chroma_2dftm(audio_16k: np.ndarray, cfg: BaselineConfig) -> np.ndarray:
    """The L2-normalised 2D-FTM fingerprint (12 * patch_beats values) of a mono 16 kHz signal."""
    chroma = librosa.feature.chroma_stft(y=audio_16k, sr=SAMPLE_RATE, hop_length=HOP)
    _, beats = librosa.beat.beat_track(y=audio_16k, sr=SAMPLE_RATE, hop_length=HOP)
    synced = librosa.util.sync(chroma, beats, aggregate=np.median) if len(beats) > 1 else chroma
    synced = synced / np.maximum(synced.max(axis=0, keepdims=True), 1e-9)
    synced = synced**cfg.power
    width = cfg.patch_beats
    if synced.shape[1] < width:
        synced = np.pad(synced, ((0, 0), (0, width - synced.shape[1])))
    starts = range(0, synced.shape[1] - width + 1, max(1, width // 5))
    patches = np.stack([np.abs(np.fft.fft2(synced[:, s : s + width])) for s in starts])
    fingerprint = np.median(patches, axis=0).ravel().astype(np.float32)
    return l2_normalise(fingerprint)


def _embed_shard(cfg: LiviConfig, shard: str, ingest: Artifact, output: Artifact) -> dict:
    tracks = shard_tracks(ingest, shard)
    embeddings, kept, failed = [], [], []
    for row in tqdm(tracks.itertuples(), total=len(tracks), desc=f"2D-FTM {shard}", unit="track", disable=None):
        try:
            audio = load_audio(row.uri, max_duration_s=cfg.baseline.max_duration_s)
            embeddings.append(chroma_2dftm(audio, cfg.baseline))
            kept.append({"track_id": row.track_id, "work_id": row.work_id})
        except (AudioError, ValueError) as exc:
            log.warning("baseline: %s failed: %s", row.track_id, exc)
            failed.append({"track_id": row.track_id, "reason": str(exc)})
    dim = 12 * cfg.baseline.patch_beats
    output.write_array("track_embeddings", np.stack(embeddings) if embeddings else np.zeros((0, dim), np.float32))
    output.write_table("tracks", pd.DataFrame(kept, columns=["track_id", "work_id"]))
    return {"tracks": len(kept), "failed": write_failed_tracks(output, failed)}


def embed_baseline(cfg: LiviConfig, catalogue: str, shard: str, store: ArtifactStore | None = None) -> dict:
    """Compute the 2D-FTM chroma fingerprints of one shard's tracks."""
    return run_shard_stage(
        cfg, store, catalogue, STAGE, shard, lambda ingest, out: _embed_shard(cfg, shard, ingest, out)
    )
