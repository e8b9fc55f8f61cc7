"""Frozen-feature cache: Whisper encoder frame states of every segment, computed once.

The Whisper encoder is frozen during training, so its output for a segment never changes; the
head trains for many epochs on cached states instead of re-running the encoder (the expensive
part) every epoch. The checkpoint's content hash is part of the artifact key, so another
checkpoint never reads stale states. Full 1500-frame states are kept: the head attends over
frames, and inference feeds it the same unpooled states.
"""

from __future__ import annotations

import logging

import numpy as np
from tqdm import tqdm
from whisper.model import Whisper

from livi_tasks.core.config import LiviConfig
from livi_tasks.core.store import Artifact, ArtifactStore
from livi_tasks.models.encoder import encode_frames, resolve_device
from livi_tasks.models.identity import whisper_identity
from livi_tasks.models.whisper_weights import cached_whisper
from livi_tasks.stages.lineage import run_shard_stage

STAGE = "features"
ENCODE_BATCH = 8  # segments per encoder call: bounds activation memory (8 x 1500 frames)
SEGMENT_COLUMNS = ["segment_id", "track_id", "work_id"]

log = logging.getLogger(__name__)


def encode_segments(
    whisper_model: Whisper, audio: np.ndarray, batch: int = ENCODE_BATCH, description: str = "encoder"
) -> np.ndarray:
    """Frame states float16 (n_segments, frames, width) of 30 s segments (rows of ``audio``)."""
    width = whisper_model.dims.n_audio_state
    states = np.zeros((len(audio), whisper_model.dims.n_audio_ctx, width), dtype=np.float16)
    for start in tqdm(range(0, len(audio), batch), desc=description, unit="batch", leave=False):
        clips = np.asarray(audio[start : start + batch], dtype=np.float32)
        states[start : start + len(clips)] = encode_frames(whisper_model, clips).cpu().numpy().astype(np.float16)
    return states


def cache_encoder_features(cfg: LiviConfig, catalogue: str, shard: str, store: ArtifactStore | None = None) -> dict:
    """Write the frozen encoder's frame states of one shard's segments."""
    identity = whisper_identity(cfg.transcribe.whisper_model, cfg.models_dir)

    def work(segments: Artifact, output: Artifact) -> dict:
        table = segments.read_table("segments")
        audio = segments.read_array("audio", mmap=True)
        device = resolve_device(cfg.encoder.device)
        model = cached_whisper(cfg.transcribe.whisper_model, cfg.models_dir, device)
        states = encode_segments(model, audio, description=f"features {catalogue}/{shard}")
        output.write_array("states", states)
        output.write_table("segments", table[SEGMENT_COLUMNS].reset_index(drop=True))
        output.write_json("checkpoint", identity)
        log.info("features %s/%s: %d segments, states %s with %s", catalogue, shard, len(table), states.shape, identity)
        return {
            "segments": int(len(table)),
            "frames": int(states.shape[1]),
            "width": int(states.shape[2]),
            "checkpoint": identity,
        }

    return run_shard_stage(cfg, store, catalogue, STAGE, shard, work)
