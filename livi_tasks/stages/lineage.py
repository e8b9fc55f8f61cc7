"""Which artifact each stage reads and writes: the pipeline's lineage in one place.

A stage's fingerprint is its config section hashed with its parent's fingerprint (and any extra
identity, such as a model checkpoint's hash), so a change anywhere upstream gives every stage
below new keys and nothing stale is ever read. The per-catalogue ingest pointer names the
current ingest and its shards; everything else is derived from the configuration.

Artifact contents (file names without extension). No track is dropped silently: a stage with a
row per track gives it a status and reason (vocal ``tracks``, embed ``decisions``); the others
record what failed in a ``failed`` table (``core.runner.write_failed_tracks``).
- ingest (shard ``all``): tables ``tracks`` (track_id, work_id, uri, relpath, sha256,
  duration_s, sample_rate, channels, format, status, shard), ``quarantine`` (track_id, work_id,
  path, reason); JSON ``shards`` ({shard: [track_id, ...]}).
- vocal: tables ``windows`` (track_id, window, start_s, end_s, vocalness) and ``tracks``
  (track_id, work_id, uri, duration_s, mean_vocalness, vocal_s, status kept|excluded|failed, reason).
- segments: table ``segments`` (segment_id, track_id, work_id, index, start_s, end_s,
  region_start_s, region_end_s, pad_before_s, pad_after_s, zero_pad_s); array ``audio``
  float16 (n_segments, segment samples at 16 kHz), rows aligned with the table; table
  ``failed`` (track_id, reason).
- transcribe: table ``transcripts`` (segment_id, track_id, work_id, text, language,
  avg_logprob, no_speech_prob, compression_ratio, temperature, kept, reason).
- text: array ``segment_embeddings`` float32 + table ``segments`` (segment_id, track_id,
  work_id) for kept segments; array ``track_embeddings`` + table ``tracks`` (track_id,
  work_id); JSON ``model`` ({name, dim}).
- features: array ``states`` float16 (n_segments, frames, width) aligned with the segments
  table; JSON ``checkpoint``.
- baseline: the audio-only 2D-FTM chroma baseline; array ``track_embeddings`` + table
  ``tracks`` (track_id, work_id) + table ``failed`` (track_id, reason).
- embed: same layout as text (``segment_embeddings``, ``segments``, ``track_embeddings``,
  ``tracks``, ``model``). With ``vocal.method: encoder_probe`` it reads the ingested tracks
  (``parent_stage``), its ``segments`` are the one-pass chunks that were pooled (segment_id
  ``<track>#chunkNNN``), and table ``decisions`` has the vocal stage's ``tracks`` columns for
  every track of the shard (kept, excluded with the reason, or failed).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from livi_tasks.core.config import LiviConfig
from livi_tasks.core.runner import produce_artifact
from livi_tasks.core.stage_table import shard_stage
from livi_tasks.core.store import Artifact, ArtifactMissing, ArtifactStore

# Identities only: these two modules load no model (lineage is read by light callers).
from livi_tasks.models.identity import whisper_identity
from livi_tasks.models.vocal_probe import probe_digest, shipped_probe_dir

INGEST_SHARD = "all"


def one_pass_embedding(cfg: LiviConfig) -> bool:
    """With the encoder probe, the embed stage reads the ingested tracks and embeds each in one
    encoder pass per 30 s, deciding from the same frame states whether it is sung (the vocal
    stage's rule), as `livi query` does; otherwise it embeds the segments stage's vocal segments."""
    return cfg.vocal.method == "encoder_probe"


def parent_stage(cfg: LiviConfig, stage: str) -> str:
    """The stage whose artifacts ``stage`` reads."""
    if stage == "embed" and one_pass_embedding(cfg):
        return "ingest"
    return shard_stage(stage).parent


def pointer_name(catalogue: str) -> str:
    return f"{catalogue}/CURRENT_INGEST.json"


def current_ingest(store: ArtifactStore, catalogue: str) -> dict:
    """The ingest pointer: {"fingerprint": ..., "shards": [...]}."""
    try:
        return store.read_pointer(pointer_name(catalogue))
    except ArtifactMissing:
        raise ArtifactMissing(
            f"catalogue {catalogue!r} has not been ingested into {store.root}: run `livi ingest`"
        ) from None


def shard_ids(store: ArtifactStore, catalogue: str) -> list[str]:
    return list(current_ingest(store, catalogue)["shards"])


def file_identity(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None


def intrinsic_identity(cfg: LiviConfig, stage: str) -> tuple[str, ...]:
    """Inputs named by the config whose content matters: a file replaced at the same path must
    give new keys to the stage and everything below it."""
    if stage == "vocal" and cfg.vocal.method == "trained_head":
        return (file_identity(cfg.vocal.head_path),)
    if stage == "vocal" and cfg.vocal.method == "encoder_probe":
        name = cfg.transcribe.whisper_model
        identity = (whisper_identity(name, cfg.models_dir)["id"], probe_digest(shipped_probe_dir(name)))
        # int8 moves the frame states the probe reads; fp32 keeps the keys it had before the setting.
        precision = cfg.encoder.inference_precision
        return identity if precision == "fp32" else (*identity, precision)
    if stage == "embed" and one_pass_embedding(cfg):
        # The embed stage then makes the vocal stage's decision itself.
        return (cfg.vocal.fingerprint("vocal", *intrinsic_identity(cfg, "vocal")),)
    if stage in ("transcribe", "features"):
        return (whisper_identity(cfg.transcribe.whisper_model, cfg.models_dir)["id"],)
    return ()


def fingerprint(cfg: LiviConfig, store: ArtifactStore, catalogue: str, stage: str, extra: tuple[str, ...] = ()) -> str:
    """Fingerprint of ``stage`` for the catalogue's current ingest; ``extra`` adds identities
    the config does not hold (a trained model's fingerprint)."""
    if stage == "ingest":
        return current_ingest(store, catalogue)["fingerprint"]
    parent = fingerprint(cfg, store, catalogue, parent_stage(cfg, stage))
    section = getattr(cfg, shard_stage(stage).section)
    return section.fingerprint(stage, parent, *intrinsic_identity(cfg, stage), *extra)


def artifact_for(
    cfg: LiviConfig, store: ArtifactStore, catalogue: str, stage: str, shard: str, extra: tuple[str, ...] = ()
) -> Artifact:
    shard = INGEST_SHARD if stage == "ingest" else shard
    return store.artifact(catalogue, stage, shard, fingerprint(cfg, store, catalogue, stage, extra))


def input_of(cfg: LiviConfig, store: ArtifactStore, catalogue: str, stage: str, shard: str) -> Artifact:
    """The completed parent artifact a stage reads; a clear error if it is not there yet."""
    return artifact_for(cfg, store, catalogue, parent_stage(cfg, stage), shard).require()


def run_shard_stage(
    cfg: LiviConfig,
    store: ArtifactStore | None,
    catalogue: str,
    stage: str,
    shard: str,
    work: Callable[[Artifact, Artifact], dict],
    extra: tuple[str, ...] = (),
) -> dict:
    """Run ``work(input_artifact, output_artifact) -> summary`` unless the output is committed."""
    store = store or ArtifactStore(cfg.store.root)
    output = artifact_for(cfg, store, catalogue, stage, shard, extra)
    # The parent is looked up only when there is work: a committed output needs no input.
    return produce_artifact(output, lambda target: work(input_of(cfg, store, catalogue, stage, shard), target))


def track_segment_embeddings(artifacts: list[Artifact], track_ids) -> list[np.ndarray]:
    """Each track's ``segment_embeddings`` rows (its chunks or vocal segments) from a method's
    per-shard artifacts (embed or text), in the order of ``track_ids``; none for a track without."""
    vectors = [a.read_array("segment_embeddings") for a in artifacts]
    owners = pd.concat([a.read_table("segments")["track_id"] for a in artifacts], ignore_index=True)
    dim = next((v.shape[1] for v in vectors if v.ndim == 2), 0)
    matrix = np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32)
    by_track = pd.Series(np.arange(len(owners))).groupby(owners.astype(str).to_numpy()).indices
    none = np.zeros(0, np.int64)
    return [matrix[by_track.get(str(track_id), none)] for track_id in track_ids]
