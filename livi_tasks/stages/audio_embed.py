"""ASR-free embeddings: vocal segments -> frozen Whisper encoder + trained head.

No Whisper decoding happens here: one encoder pass per segment replaces transcription and text
embedding. A track's embedding is the normalised mean of its segment embeddings, in the same
space (and the same artifact layout) as the lyrics embeddings of the text stage, so either can
be indexed and compared.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from livi_tasks.core.audio import SAMPLE_RATE, AudioError, load_audio
from livi_tasks.core.config import LiviConfig
from livi_tasks.core.runner import shard_tracks
from livi_tasks.core.store import Artifact, ArtifactStore
from livi_tasks.core.vectors import l2_normalise, pool_normalised
from livi_tasks.models.encoder import (
    LiviEncoder,
    LiviHead,
    encode_frames,
    head_from_bytes,
    inference_encoder,
    resolve_device,
)
from livi_tasks.models.identity import whisper_identity
from livi_tasks.models.registry import (
    HEAD_CONFIG_FILE,
    HEAD_WEIGHTS_FILE,
    NoEncoderModel,
    current_model,
    model_artifact,
)
from livi_tasks.models.whisper_weights import cached_whisper
from livi_tasks.stages.features import ENCODE_BATCH, SEGMENT_COLUMNS
from livi_tasks.stages.lineage import run_shard_stage

STAGE = "embed"
TRACK_COLUMNS = ["track_id", "work_id"]
# A chunk with less singing than this adds no embedding of its own to the one-pass path.
MIN_CHUNK_VOCAL_S = 2.0

log = logging.getLogger(__name__)


@dataclass
class LoadedEncoder:
    encoder: LiviEncoder
    info: dict  # the model's JSON: fingerprint, text model, whisper checkpoint, settings
    device: str


# Loaded encoders by (fingerprint, models_dir, device, precision): the fingerprint names the weights exactly.
_LOADED: dict[tuple[str, str, str, str], LoadedEncoder] = {}


def load_encoder(cfg: LiviConfig, store: ArtifactStore, model: str | None = None) -> LoadedEncoder:
    """The trained encoder (frozen Whisper + head) of a fingerprint, default the promoted one; cached per process."""
    fingerprint = current_model(cfg, store, model)
    device = resolve_device(cfg.encoder.device)
    precision = cfg.encoder.inference_precision
    cache_key = (fingerprint, cfg.models_dir, device, precision)
    if cache_key in _LOADED:
        return _LOADED[cache_key]
    artifact = model_artifact(store, fingerprint)
    if not artifact.is_complete():
        raise NoEncoderModel(f"encoder model {fingerprint} not found in {store.root}: train it first")
    info = artifact.read_json("model")
    whisper = info["whisper"]
    # The head only makes sense on the exact encoder it was trained on.
    found = whisper_identity(whisper["name"], cfg.models_dir)
    if found["id"] != whisper["id"]:
        raise ValueError(
            f"encoder model {fingerprint} was trained on Whisper {whisper}, "
            f"but {whisper['name']!r} resolves to {found['id']} here"
        )
    head = head_from_bytes(artifact.read_bytes(HEAD_WEIGHTS_FILE), artifact.read_bytes(HEAD_CONFIG_FILE))
    frozen = inference_encoder(cached_whisper(whisper["name"], cfg.models_dir, device), precision, device)
    encoder = LiviEncoder(frozen, head.to(device)).eval()
    _LOADED[cache_key] = LoadedEncoder(encoder=encoder, info=info, device=device)
    return _LOADED[cache_key]


def embed_clips(loaded: LoadedEncoder, audio: np.ndarray, description: str = "embed") -> np.ndarray:
    """Unit embeddings float32 (n, text_dim) of 30 s clips at 16 kHz (rows of ``audio``)."""
    dim = loaded.info["text_model"]["dim"]
    out = np.zeros((len(audio), dim), dtype=np.float32)
    with torch.inference_mode():
        for start in tqdm(
            range(0, len(audio), ENCODE_BATCH), desc=description, unit="batch", leave=False, disable=None
        ):
            clips = np.asarray(audio[start : start + ENCODE_BATCH], dtype=np.float32)
            out[start : start + len(clips)] = loaded.encoder(clips).cpu().numpy()
    return out


def track_embeddings(segment_embeddings: np.ndarray, segments: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Normalised mean of each track's segment embeddings, tracks in order of first appearance."""
    tracks = segments[TRACK_COLUMNS].drop_duplicates("track_id").reset_index(drop=True)
    _, vectors = pool_normalised(segment_embeddings, segments["track_id"])
    return vectors, tracks


@dataclass
class EmbeddedShard:
    segments: pd.DataFrame  # segment_id, track_id, work_id: the vocal segments, or the one-pass chunks pooled
    segment_vectors: np.ndarray
    tracks: pd.DataFrame  # track_id, work_id
    track_vectors: np.ndarray
    decisions: pd.DataFrame | None = None  # one pass: every track's vocal decision, as the vocal stage's table


def _embed_vocal_segments(loaded: LoadedEncoder, segments_artifact: Artifact, description: str) -> EmbeddedShard:
    """Every 30 s vocal segment of the segments stage through the encoder + head."""
    segments = segments_artifact.read_table("segments")
    audio = segments_artifact.read_array("audio", mmap=True)
    segment_vectors = embed_clips(loaded, audio, description=description)
    track_vectors, tracks = track_embeddings(segment_vectors, segments)
    return EmbeddedShard(segments[SEGMENT_COLUMNS].reset_index(drop=True), segment_vectors, tracks, track_vectors)


def one_pass_decision(cfg: LiviConfig, result: OnePassEmbedding, samples: int) -> tuple[float, float, str]:
    """The vocal stage's decision (mean vocalness, vocal seconds, exclusion reason or "") from a
    one-pass result: the same probe frames averaged over the same 3 s windows, the same rule."""
    from livi_tasks.models.musicnn import WINDOW_SECONDS, window_count
    from livi_tasks.models.vocal_probe import window_scores
    from livi_tasks.stages.vocal import track_decision

    scores = window_scores(result.frame_vocalness, result.audio_frames, window_count(samples), WINDOW_SECONDS)
    return track_decision(scores, samples / SAMPLE_RATE, cfg.vocal)


def _embed_tracks_one_pass(
    cfg: LiviConfig, loaded: LoadedEncoder, ingest: Artifact, shard: str, description: str
) -> EmbeddedShard:
    """Every ingested track of the shard in one encoder pass per 30 s (``embed_one_pass``): the probe
    on those frame states decides, by the vocal stage's rule, whether the track is sung; the sung
    ones keep the embedding `livi query` computes for the file. Nothing is dropped silently: the
    ``decisions`` table says why a track has no embedding."""
    from livi_tasks.models.vocal_probe import load_probe
    from livi_tasks.stages.vocal import TRACK_COLUMNS as DECISION_COLUMNS

    probe = load_probe(loaded.info["whisper"]["name"], loaded.info["whisper"]["id"])
    tracks = shard_tracks(ingest, shard)
    chunk_rows, chunk_vectors, track_rows, track_vectors, decisions = [], [], [], [], []
    for track in tqdm(tracks.itertuples(index=False), total=len(tracks), desc=description, unit="track", disable=None):
        decision = {"track_id": track.track_id, "work_id": track.work_id, "uri": track.uri}
        decision.update({"duration_s": track.duration_s, "mean_vocalness": np.nan, "vocal_s": np.nan})
        try:
            audio = load_audio(track.uri, max_duration_s=cfg.ingest.max_duration_s)
        except (AudioError, OSError) as exc:
            log.warning("embed: %s failed to decode (%s): %s", track.track_id, track.uri, exc)
            decisions.append({**decision, "status": "failed", "reason": f"audio decode failed: {exc}"})
            continue
        result = embed_one_pass(loaded, probe, audio)
        mean, vocal_s, reason = one_pass_decision(cfg, result, len(audio))
        status = "excluded" if reason else "kept"
        decisions.append({**decision, "mean_vocalness": mean, "vocal_s": vocal_s, "status": status, "reason": reason})
        if reason:
            continue
        chunk_rows.extend(
            {"segment_id": f"{track.track_id}#chunk{chunk:03d}", "track_id": track.track_id, "work_id": track.work_id}
            for chunk in result.chunks_pooled
        )
        chunk_vectors.append(result.chunk_embeddings)
        track_rows.append({"track_id": track.track_id, "work_id": track.work_id})
        track_vectors.append(result.embedding)
    dim = loaded.info["text_model"]["dim"]
    return EmbeddedShard(
        pd.DataFrame(chunk_rows, columns=SEGMENT_COLUMNS),
        np.concatenate(chunk_vectors) if chunk_vectors else np.zeros((0, dim), np.float32),
        pd.DataFrame(track_rows, columns=TRACK_COLUMNS),
        np.stack(track_vectors) if track_vectors else np.zeros((0, dim), np.float32),
        pd.DataFrame(decisions, columns=DECISION_COLUMNS),
    )


def embed_audio(
    cfg: LiviConfig, catalogue: str, shard: str, store: ArtifactStore | None = None, model: str | None = None
) -> dict:
    """The embed stage for one shard: track embeddings from the vocal segments, or with the encoder
    probe (``vocal.method: encoder_probe``) from one encoder pass per 30 s of each kept track."""
    store = store or ArtifactStore(cfg.store.root)
    fingerprint = current_model(cfg, store, model)

    def work(source: Artifact, output: Artifact) -> dict:
        loaded = load_encoder(cfg, store, fingerprint)
        description = f"embed {catalogue}/{shard}"
        if cfg.vocal.method == "encoder_probe":
            shard_result = _embed_tracks_one_pass(cfg, loaded, source, shard, description)
            output.write_table("decisions", shard_result.decisions)
        else:
            shard_result = _embed_vocal_segments(loaded, source, description)
        output.write_array("segment_embeddings", shard_result.segment_vectors)
        output.write_table("segments", shard_result.segments)
        output.write_array("track_embeddings", shard_result.track_vectors)
        output.write_table("tracks", shard_result.tracks)
        output.write_json(
            "model",
            {
                "name": "livi-audio",
                "dim": int(loaded.info["text_model"]["dim"]),
                "encoder": fingerprint,
                "text_model": loaded.info["text_model"],
            },
        )
        log.info(
            "embed %s/%s: %d segments -> %d tracks with encoder %s",
            catalogue,
            shard,
            len(shard_result.segments),
            len(shard_result.tracks),
            fingerprint,
        )
        summary = {"segments": len(shard_result.segments), "tracks": len(shard_result.tracks), "encoder": fingerprint}
        if shard_result.decisions is not None:
            summary |= {
                status: int((shard_result.decisions["status"] == status).sum()) for status in ("excluded", "failed")
            }
        return summary

    return run_shard_stage(cfg, store, catalogue, STAGE, shard, work, extra=(fingerprint,))


def file_segments(cfg: LiviConfig, audio: np.ndarray, name: str = "audio") -> np.ndarray:
    """float16 30 s clips of a track's vocal segments (the segments stage's rule); without a
    vocal segment, the whole track in consecutive 30 s chunks."""
    from livi_tasks.models.musicnn import WINDOW_SECONDS
    from livi_tasks.stages.segments import vocal_clips
    from livi_tasks.stages.vocal import track_decision, window_vocalness

    segment_samples = round(cfg.segments.segment_s * SAMPLE_RATE)
    scores, _ = window_vocalness(audio, cfg)
    clips = vocal_clips(cfg, audio, scores, WINDOW_SECONDS)
    if len(clips):
        _, _, reason = track_decision(scores, len(audio) / SAMPLE_RATE, cfg.vocal)
        if reason:
            log.info(
                "%s: the catalogue filter would exclude it (%s); embedding its %d vocal segments anyway",
                name,
                reason,
                len(clips),
            )
        return clips
    chunks = max(1, -(-len(audio) // segment_samples))
    log.warning(
        "%s: no vocal segment found; falling back to %d whole-file %g s chunks", name, chunks, cfg.segments.segment_s
    )
    padded = np.zeros(chunks * segment_samples, dtype=np.float16)
    padded[: len(audio)] = audio
    return padded.reshape(chunks, segment_samples)


@dataclass
class FileEmbedding:
    """One file's track embedding and the chunk (or vocal segment) embeddings it pools, which a
    query's candidates are re-ranked by (``core.chunk_match``)."""

    embedding: np.ndarray  # (text_dim,) unit length
    chunks: np.ndarray  # (chunks, text_dim) unit rows


def embed_file(
    cfg: LiviConfig, path: str | Path, store: ArtifactStore | None = None, model: str | None = None
) -> FileEmbedding:
    """Embeddings of one audio file: decode -> vocal windows -> segments -> encoder; with
    ``vocal.method: encoder_probe``, one encoder pass per 30 s chunk (``embed_one_pass``)."""
    audio = load_audio(str(path), max_duration_s=cfg.ingest.max_duration_s)
    return embed_samples(cfg, audio, store, model, name=str(path))


def embed_samples(
    cfg: LiviConfig, audio: np.ndarray, store: ArtifactStore | None = None, model: str | None = None, name: str = ""
) -> FileEmbedding:
    """Embeddings of decoded audio (mono float32, 16 kHz), as ``embed_file``."""
    store = store or ArtifactStore(cfg.store.root)
    loaded = load_encoder(cfg, store, model)
    if cfg.vocal.method == "encoder_probe":
        from livi_tasks.models.vocal_probe import load_probe

        probe = load_probe(loaded.info["whisper"]["name"], loaded.info["whisper"]["id"])
        result = embed_one_pass(loaded, probe, audio)
        return FileEmbedding(result.embedding, result.chunk_embeddings)
    clips = file_segments(cfg, audio, name=name or "audio")
    segments = embed_clips(loaded, clips, description=Path(name).name or "audio")
    return FileEmbedding(l2_normalise(segments.mean(axis=0)), segments)


@dataclass
class OnePassEmbedding:
    """A track's embedding from one encoder pass per 30 s, and the singing the probe found."""

    embedding: np.ndarray  # (text_dim,) unit length
    vocal_s: float  # seconds of frames the probe calls sung
    chunks: int  # encoder passes made
    fallback: bool  # no chunk had enough singing: every frame of audio was pooled
    frame_vocalness: np.ndarray  # (chunks, frames) the probe's output
    audio_frames: np.ndarray  # (chunks,) frames of each chunk that hold audio (the last is padded)
    chunks_pooled: np.ndarray  # indices of the chunks whose embeddings were averaged
    chunk_embeddings: np.ndarray  # (len(chunks_pooled), text_dim) unit vectors, one per pooled chunk


def encode_track(loaded: LoadedEncoder, audio: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """(frame states (chunks, frames, width), audio frames of each chunk): the track cut into
    consecutive 30 s chunks, Whisper's input, each through the frozen encoder once (the last padded)."""
    from livi_tasks.models.vocal_probe import whole_track_chunks

    chunks, audio_frames = whole_track_chunks(audio)
    return encode_frames(loaded.encoder.whisper_encoder, chunks), audio_frames


def pool_sung_frames(
    head: LiviHead, states: torch.Tensor, audio_frames: np.ndarray, frame_vocalness: np.ndarray, threshold: float
) -> OnePassEmbedding:
    """The head pools the sung frames (vocalness >= threshold) of a track's chunk states, per chunk
    with at least ``MIN_CHUNK_VOCAL_S`` of singing; chunk embeddings are averaged weighted by their
    sung frames. Without such a chunk every frame of audio is pooled."""
    from livi_tasks.models.vocal_probe import FRAMES_PER_SECOND

    in_audio = np.arange(frame_vocalness.shape[1])[None, :] < audio_frames[:, None]
    sung = (frame_vocalness >= threshold) & in_audio
    pooled, used = sung, sung.sum(axis=1) >= MIN_CHUNK_VOCAL_S * FRAMES_PER_SECOND
    fallback = not used.any()
    if fallback:
        pooled, used = in_audio, in_audio.any(axis=1)
    with torch.inference_mode():
        hidden = torch.as_tensor(~pooled[used], device=states.device)
        vectors = head(states[torch.as_tensor(used, device=states.device)], hidden=hidden).cpu().numpy()
    _, (embedding,) = pool_normalised(vectors, [0] * len(vectors), weights=pooled[used].sum(axis=1))
    return OnePassEmbedding(
        embedding=embedding,
        vocal_s=float(sung.sum()) / FRAMES_PER_SECOND,
        chunks=len(states),
        fallback=fallback,
        frame_vocalness=frame_vocalness,
        audio_frames=audio_frames,
        chunks_pooled=np.flatnonzero(used),
        chunk_embeddings=vectors,
    )


def embed_one_pass(loaded: LoadedEncoder, probe, audio: np.ndarray) -> OnePassEmbedding:
    """A track's embedding from one encoder pass per 30 s of audio: the vocal probe rides on the
    same frame states that the head pools, so there is no Musicnn pass and no second encoder pass
    over the vocal segments."""
    states, audio_frames = encode_track(loaded, audio)
    frame_vocalness = probe.frame_vocalness(states.cpu().numpy())
    return pool_sung_frames(loaded.encoder.head, states, audio_frames, frame_vocalness, probe.threshold)
