"""Training and evaluation data the way inference sees audio: consecutive 30 s chunks.

At query time (and in the embed stage with the encoder probe) a track is cut into consecutive
30 s chunks, each goes once through the frozen Whisper encoder, the vocal probe marks the sung
frames and the head pools only those (``stages.audio_embed.pool_sung_frames``). The shipped heads
learn from the same thing:

- ``chunk_dataset``: for every sung track of a generated corpus, the frame states of each chunk
  with at least ``MIN_CHUNK_VOCAL_S`` of singing, the frames the probe does not call sung (hidden
  from the head's pooling, as at inference), and the chunk's teacher: the sung lines lying
  mostly inside it, which the generator knows exactly;
- ``evaluation_dataset``: every track of an evaluation catalogue in chunks, with the probe's frame
  vocalness, so that any head is scored on it in seconds (``build.head_eval``).

Frame states are float16 arrays written to a temporary file and renamed (a killed build leaves
nothing half-written); each step is skipped when its files exist.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import soundfile as sf
from tqdm import tqdm

from livi_tasks.build.augment import augment
from livi_tasks.core.atomic import write_atomic
from livi_tasks.core.audio import load_audio
from livi_tasks.models.vocal_probe import FRAMES_PER_SECOND, VocalProbe, whole_track_chunks
from livi_tasks.stages.audio_embed import MIN_CHUNK_VOCAL_S

log = logging.getLogger(__name__)

CHUNK_SECONDS = 30.0
MIN_LINE_SHARE = 0.5  # a line is a chunk's teacher when at least this share of it lies inside
CHUNK_TABLE = "chunks.parquet"
EncoderStates = Callable[[np.ndarray], np.ndarray]  # chunks (n, samples) -> (n, frames, width) float16


@dataclass(frozen=True)
class ChunkArrays:
    """A cached dataset: its table and memory-mapped arrays."""

    table: pd.DataFrame
    states: np.ndarray  # (n, frames, width) float16
    extra: dict[str, np.ndarray]


def encoder_states_of(
    whisper_model: str, models_dir: str, precision: str = "fp32", batch: int = 8, all_layers: bool = False
) -> EncoderStates:
    """A function chunks -> (chunks, frames, width) float16 frame states of the frozen encoder, run
    at ``precision`` (``encoder.inference_precision``: fp32, int8 or bf16); with ``all_layers``,
    (chunks, layers, frames, width), every block's output."""
    from livi_tasks.models.encoder import encode_frames, inference_encoder, resolve_device
    from livi_tasks.models.whisper_weights import cached_whisper

    device = resolve_device("auto")
    encoder = inference_encoder(cached_whisper(whisper_model, models_dir, device), precision, device)

    def states(chunks: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [
                encode_frames(encoder, chunks[i : i + batch], all_layers).cpu().numpy().astype(np.float16)
                for i in range(0, len(chunks), batch)
            ]
        )

    return states


def sung_lines(corpus_dir: Path) -> dict[str, list[tuple[float, float, str]]]:
    """track_id -> [(start_s, end_s, text)] in sung order, from vocals.csv and lyrics.json."""
    texts = json.loads((corpus_dir / "lyrics.json").read_text())["tracks"]
    times = pd.read_csv(corpus_dir / "vocals.csv")
    lines: dict[str, list[tuple[float, float, str]]] = {}
    for track_id, group in times.groupby("track_id", sort=False):
        spans = group[["start_s", "end_s"]].to_numpy()
        lines[track_id] = [(float(s), float(e), text) for (s, e), text in zip(spans, texts[track_id])]
    return lines


def lines_inside(lines: list[tuple[float, float, str]], start_s: float, end_s: float) -> list[str]:
    """The lines with at least ``MIN_LINE_SHARE`` of their length between start_s and end_s."""
    return [text for s, e, text in lines if min(e, end_s) - max(s, start_s) >= MIN_LINE_SHARE * (e - s)]


def save_npy(path: Path, array: np.ndarray) -> None:
    def write(temporary: Path) -> None:
        with open(temporary, "wb") as handle:
            np.save(handle, array)

    write_atomic(path, write)


class _StateWriter:
    """Frame states appended chunk by chunk into a .npy on disk: a corpus's states can be many GB."""

    def __init__(self, path: Path, capacity: int, *row_shape: int):
        """``row_shape``: one chunk's states, (frames, width) or (layers, frames, width)."""
        self.path = path
        self.temporary = path.with_name(path.name + ".partial")
        self.array = np.lib.format.open_memmap(self.temporary, "w+", np.float16, (capacity, *row_shape))
        self.count = 0

    def append(self, states: np.ndarray) -> None:
        self.array[self.count : self.count + len(states)] = states
        self.count += len(states)

    def close(self) -> None:
        """Write the first ``count`` rows as the final file (a rename when it is full)."""
        self.array.flush()
        if self.count == len(self.array):
            del self.array
            self.temporary.replace(self.path)
            return
        save_npy(self.path, np.asarray(self.array[: self.count]))
        del self.array
        self.temporary.unlink()


def read_chunk_dataset(folder: Path, extra: tuple[str, ...]) -> ChunkArrays:
    """A cached dataset, its arrays memory-mapped."""
    return ChunkArrays(
        table=pd.read_parquet(folder / CHUNK_TABLE),
        states=np.load(folder / "states.npy", mmap_mode="r"),
        extra={name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in extra},
    )


def _track_chunks(
    audio: np.ndarray, encoder_states: EncoderStates, probe: VocalProbe
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(states float16, probe vocalness float16, audio frames per chunk) of one track."""
    chunks, audio_frames = whole_track_chunks(audio)
    states = encoder_states(chunks)
    last = states[:, -1] if states.ndim == 4 else states  # the probe reads the encoder's output
    return states, probe.frame_vocalness(last).astype(np.float16), audio_frames


def _track_seed(augment_seed: int, track_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{augment_seed}:{track_id}".encode()).digest()[:8], "little")


def _sung(vocalness: np.ndarray, audio_frames: np.ndarray, threshold: float) -> np.ndarray:
    in_audio = np.arange(vocalness.shape[1])[None, :] < audio_frames[:, None]
    return (vocalness >= threshold) & in_audio


def chunk_dataset(
    corpus_dir: Path,
    out_dir: Path,
    encoder_states: EncoderStates,
    probe: VocalProbe,
    description: str = "chunks",
    augment_seed: int | None = None,
) -> ChunkArrays:
    """Training chunks of a corpus's sung tracks (cached in ``out_dir``): table (segment_id,
    track_id, work_id, chunk, sung_frames, text), ``states`` and ``hidden`` (frames not sung).
    With ``augment_seed``, every track is first augmented (``build.augment``; its lines' times follow)."""
    if (out_dir / CHUNK_TABLE).exists():
        return read_chunk_dataset(out_dir, ("hidden",))
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = pd.read_csv(corpus_dir / "manifest.csv")
    lines = sung_lines(corpus_dir)
    sung_tracks = manifest[manifest["track_id"].map(lambda track: bool(lines.get(track)))]
    rows, hidden = [], []
    writer: _StateWriter | None = None
    for track in tqdm(sung_tracks.itertuples(index=False), total=len(sung_tracks), desc=description, unit="track"):
        audio, time_scale = load_audio(str(corpus_dir / track.path)), 1.0
        if augment_seed is not None:
            audio, augmentation = augment(audio, _track_seed(augment_seed, track.track_id))
            time_scale = augmentation.time_scale
        track_lines = [(start * time_scale, end * time_scale, text) for start, end, text in lines[track.track_id]]
        states, vocalness, audio_frames = _track_chunks(audio, encoder_states, probe)
        sung = _sung(vocalness, audio_frames, probe.threshold)
        if writer is None:  # sized for the corpus: about two chunks a track, grown if needed
            capacity = sum(
                np.ceil(1.2 * sf.info(str(corpus_dir / path)).duration / CHUNK_SECONDS) for path in sung_tracks.path
            )
            writer = _StateWriter(out_dir / "states.npy", int(capacity) + 8, *states.shape[1:])
        for chunk in range(len(states)):
            text = lines_inside(track_lines, chunk * CHUNK_SECONDS, (chunk + 1) * CHUNK_SECONDS)
            if sung[chunk].sum() < MIN_CHUNK_VOCAL_S * FRAMES_PER_SECOND or not text:
                continue
            if writer.count == len(writer.array):
                raise RuntimeError(
                    f"{corpus_dir}: more than {len(writer.array)} chunks; tracks are longer than planned"
                )
            writer.append(states[chunk : chunk + 1])
            hidden.append(~sung[chunk])
            rows.append(
                {
                    "segment_id": f"{track.track_id}#chunk{chunk:03d}",
                    "track_id": track.track_id,
                    "work_id": track.work_id,
                    "chunk": chunk,
                    "sung_frames": int(sung[chunk].sum()),
                    "text": " ".join(text),
                }
            )
    if writer is None:
        raise ValueError(f"{corpus_dir}: no sung track to learn from")
    writer.close()
    save_npy(out_dir / "hidden.npy", np.stack(hidden))
    table = pd.DataFrame(rows)
    write_atomic(out_dir / CHUNK_TABLE, lambda temporary: table.to_parquet(temporary, index=False))
    return read_chunk_dataset(out_dir, ("hidden",))


def evaluation_dataset(
    corpus_dir: Path, out_dir: Path, encoder_states: EncoderStates, probe: VocalProbe, description: str = "evaluation"
) -> ChunkArrays:
    """Every track of an evaluation catalogue in chunks (cached in ``out_dir``): table (track_id,
    work_id, chunk, audio_frames, samples), ``states`` and ``vocalness`` (the probe's output)."""
    if (out_dir / CHUNK_TABLE).exists():
        return read_chunk_dataset(out_dir, ("vocalness",))
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = pd.read_csv(corpus_dir / "manifest.csv")
    rows, vocalness_rows = [], []
    writer: _StateWriter | None = None
    for track in tqdm(manifest.itertuples(index=False), total=len(manifest), desc=description, unit="track"):
        audio = load_audio(str(corpus_dir / track.path))
        states, vocalness, audio_frames = _track_chunks(audio, encoder_states, probe)
        if writer is None:
            durations = [sf.info(str(corpus_dir / path)).duration for path in manifest["path"]]
            capacity = int(sum(np.ceil(np.array(durations) / CHUNK_SECONDS))) + len(durations)
            writer = _StateWriter(out_dir / "states.npy", capacity, *states.shape[1:])
        writer.append(states)
        vocalness_rows.append(vocalness)
        for chunk, frames in enumerate(audio_frames):
            rows.append(
                {
                    "track_id": track.track_id,
                    "work_id": "" if pd.isna(track.work_id) else track.work_id,
                    "chunk": chunk,
                    "audio_frames": int(frames),
                    "samples": len(audio),
                }
            )
    writer.close()
    save_npy(out_dir / "vocalness.npy", np.concatenate(vocalness_rows))
    table = pd.DataFrame(rows)
    write_atomic(out_dir / CHUNK_TABLE, lambda temporary: table.to_parquet(temporary, index=False))
    return read_chunk_dataset(out_dir, ("vocalness",))
