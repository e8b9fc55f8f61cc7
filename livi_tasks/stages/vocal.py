"""Vocal filtering: Musicnn vocalness per non-overlapping 3 s window, and the track filter.

Each window gets a vocalness v in [0, 1], either zero-shot from the MTT taggram (vocal tags against
the no-vocal tags) or from a trained linear head on Musicnn's penultimate features (the paper's
design; see ``vocal_head``). A track is excluded, with its reason recorded, when it has less than
``vocal.min_vocal_s`` seconds in vocal windows (v >= ``vocal.window_threshold``): instrumentals
carry no lyrics to match. The paper's rule, mean vocalness below lambda
(``vocal.track_rule: mean``), also dropped sung tracks with long intros, breaks or a voice the
model scores low (22% of the sung tracks of one foreign set); seconds of singing do not depend on
how much of the track is instrumental (a track shorter than 18 s needs half its length instead).
9 s is the smallest multiple of the window above every training-family instrumental (at most 6 s
of vocal windows; sung tracks had 18 s or more). The penultimate features are kept with the
windows so that a head can be trained later without running Musicnn again.
"""

from __future__ import annotations

import functools
import logging

import numpy as np
import pandas as pd
from tqdm import tqdm

from livi_tasks.core.audio import SAMPLE_RATE, AudioError, load_audio
from livi_tasks.core.config import LiviConfig, VocalConfig
from livi_tasks.core.runner import shard_tracks
from livi_tasks.core.store import Artifact, ArtifactStore
from livi_tasks.models.musicnn import (
    TAGS,
    WINDOW_SECONDS,
    VocalHead,
    load_musicnn,
    log_mel_windows,
    predict_windows,
    window_count,
    zero_shot_vocalness,
)
from livi_tasks.stages.lineage import run_shard_stage

log = logging.getLogger(__name__)

STAGE = "vocal"
WINDOW_COLUMNS = ["track_id", "window", "start_s", "end_s", "vocalness"]
TRACK_COLUMNS = ["track_id", "work_id", "uri", "duration_s", "mean_vocalness", "vocal_s", "status", "reason"]
FEATURE_DIM = 200
SHORT_TRACK_VOCAL_SHARE = 0.5


@functools.lru_cache(maxsize=2)
def _musicnn(name: str, models_dir: str):
    return load_musicnn(name, models_dir)


@functools.lru_cache(maxsize=2)
def _head(path: str, musicnn_model: str) -> VocalHead:
    head = VocalHead.load(path)
    if head.musicnn_model != musicnn_model:
        raise ValueError(
            f"vocal.head_path {path} was trained on {head.musicnn_model} features, "
            f"but vocal.musicnn_model is {musicnn_model}"
        )
    return head


def window_vocalness(audio_16k: np.ndarray, cfg: LiviConfig) -> tuple[np.ndarray, np.ndarray]:
    """(vocalness (n,), Musicnn's penultimate features (n, 200), or (n, 0) for the encoder probe)
    of the 3 s windows of a 16 kHz signal."""
    if cfg.vocal.method == "encoder_probe":
        return probe_window_vocalness(audio_16k, cfg), np.zeros((window_count(len(audio_16k)), 0), np.float32)
    models_dir, cfg = cfg.models_dir, cfg.vocal
    windows = log_mel_windows(audio_16k)
    if not len(windows):
        return np.zeros(0, np.float32), np.zeros((0, FEATURE_DIM), np.float32)
    taggram, features = predict_windows(_musicnn(cfg.musicnn_model, models_dir), windows, cfg.batch_windows)
    if cfg.method == "trained_head":
        scores = _head(cfg.head_path, cfg.musicnn_model).vocalness(features)
    else:
        scores = zero_shot_vocalness(taggram, TAGS[cfg.musicnn_model])
    return scores.astype(np.float32), features


def probe_window_vocalness(audio_16k: np.ndarray, cfg: LiviConfig) -> np.ndarray:
    """Mean of the vocal probe's frame vocalness over each 3 s window (Whisper's encoder over 30 s chunks)."""
    from livi_tasks.models.encoder import encode_frames, inference_encoder, resolve_device
    from livi_tasks.models.identity import whisper_identity
    from livi_tasks.models.vocal_probe import load_probe, whole_track_chunks, window_scores
    from livi_tasks.models.whisper_weights import cached_whisper

    name = cfg.transcribe.whisper_model
    probe = load_probe(name, whisper_identity(name, cfg.models_dir)["id"])
    chunks, audio_frames = whole_track_chunks(audio_16k)
    device = resolve_device(cfg.encoder.device)
    encoder = inference_encoder(cached_whisper(name, cfg.models_dir, device), cfg.encoder.inference_precision, device)
    frames = probe.frame_vocalness(encode_frames(encoder, chunks).cpu().numpy())
    return window_scores(frames, audio_frames, window_count(len(audio_16k)), WINDOW_SECONDS)


def track_decision(scores: np.ndarray, duration_s: float, cfg: VocalConfig) -> tuple[float, float, str]:
    """(mean vocalness, seconds in vocal windows, "" to keep or the reason to exclude) of a track."""
    mean = float(scores.mean()) if len(scores) else 0.0
    ends = np.minimum((np.arange(len(scores)) + 1) * WINDOW_SECONDS, duration_s)
    lengths = np.clip(ends - np.arange(len(scores)) * WINDOW_SECONDS, 0, None)
    vocal_s = float(lengths[scores >= cfg.window_threshold].sum())
    if cfg.track_rule == "mean" and mean < cfg.min_track_vocalness:
        return mean, vocal_s, f"mean vocalness {mean:.3f} below lambda {cfg.min_track_vocalness:g}"
    # A track shorter than twice min_vocal_s needs half of its length in vocal windows instead.
    needed = min(cfg.min_vocal_s, SHORT_TRACK_VOCAL_SHARE * duration_s)
    if cfg.track_rule == "vocal_seconds" and vocal_s < needed:
        return (
            mean,
            vocal_s,
            f"{vocal_s:g} s in vocal windows, below vocal.min_vocal_s {cfg.min_vocal_s:g}"
            + ("" if needed == cfg.min_vocal_s else f" (half of its {duration_s:g} s)"),
        )
    return mean, vocal_s, ""


def _detect_shard(cfg: LiviConfig, shard: str, ingest: Artifact, output: Artifact) -> dict:
    tracks = shard_tracks(ingest, shard)
    window_rows, track_rows, feature_blocks = [], [], []
    for row in tqdm(tracks.itertuples(), total=len(tracks), desc=f"vocal {shard}", unit="track", disable=None):
        base = {"track_id": row.track_id, "work_id": row.work_id, "uri": row.uri, "duration_s": row.duration_s}
        try:
            audio = load_audio(row.uri, max_duration_s=cfg.ingest.max_duration_s)
            scores, features = window_vocalness(audio, cfg)
        except AudioError as exc:
            log.warning("vocal: %s failed: %s", row.track_id, exc)
            track_rows.append(
                {**base, "mean_vocalness": np.nan, "vocal_s": np.nan, "status": "failed", "reason": str(exc)}
            )
            continue
        duration = len(audio) / SAMPLE_RATE
        for index, score in enumerate(scores):
            start = index * WINDOW_SECONDS
            window_rows.append(
                {
                    "track_id": row.track_id,
                    "window": index,
                    "start_s": start,
                    "end_s": min(start + WINDOW_SECONDS, duration),
                    "vocalness": float(score),
                }
            )
        feature_blocks.append(features.astype(np.float16))
        mean, vocal_s, reason = track_decision(scores, duration, cfg.vocal)
        if reason:
            log.info("vocal: %s excluded: %s", row.track_id, reason)
        track_rows.append(
            {
                **base,
                "mean_vocalness": mean,
                "vocal_s": vocal_s,
                "status": "excluded" if reason else "kept",
                "reason": reason,
            }
        )
    table = pd.DataFrame(track_rows, columns=TRACK_COLUMNS)
    output.write_table("windows", pd.DataFrame(window_rows, columns=WINDOW_COLUMNS))
    output.write_table("tracks", table)
    output.write_array(
        "features", np.concatenate(feature_blocks) if feature_blocks else np.zeros((0, FEATURE_DIM), np.float16)
    )
    counts = table["status"].value_counts()
    return {
        "tracks": len(table),
        "kept": int(counts.get("kept", 0)),
        "excluded": int(counts.get("excluded", 0)),
        "failed": int(counts.get("failed", 0)),
        "windows": len(window_rows),
    }


def detect_vocals(cfg: LiviConfig, catalogue: str, shard: str, store: ArtifactStore | None = None) -> dict:
    """Score one shard's tracks for vocals and decide which go on to segmentation."""
    return run_shard_stage(
        cfg, store, catalogue, STAGE, shard, lambda ingest, out: _detect_shard(cfg, shard, ingest, out)
    )
