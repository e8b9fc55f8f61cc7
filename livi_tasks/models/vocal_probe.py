"""Singing from the frozen Whisper encoder's frame states: the vocal detector of the one-pass path.

The ASR-free path runs Whisper's encoder anyway. A linear probe on its frame states (50 per
second) says which frames hold singing, so the vocal filter, the frames the head pools and the
embedding all come from one encoder pass per 30 s of track: Musicnn, most of the ASR-free path's
time (BENCHMARKS.md), is not needed. The probe is logistic regression on standardised frame
states, trained on the randomised family and on `broad` instrumentals whose lead instrument plays
the sung tune, against the generator's ground-truth sung lines (``vocals.csv``), its output
smoothed over ``smooth_frames``. It is stored as arrays and JSON
(``vocal_probe.npz`` + ``vocal_probe.json``), never pickled.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from livi_tasks.core.atomic import write_bytes_atomic

log = logging.getLogger(__name__)

FRAMES_PER_SECOND = 50  # Whisper's encoder: 1500 frames per 30 s
CHUNK_SAMPLES = 30 * 16_000  # Whisper's input: the encoder pads or trims every chunk to 30 s
PROBE_FILES = ("vocal_probe.npz", "vocal_probe.json")


class ProbeMissing(FileNotFoundError):
    """No vocal probe for a Whisper model: build it with `livi build-vocal-probe`."""


@dataclass(frozen=True)
class VocalProbe:
    """A linear read-out of singing from one Whisper checkpoint's frame states."""

    weight: np.ndarray  # (width,) on standardised states
    bias: float
    mean: np.ndarray  # (width,) standardisation of the frame states
    scale: np.ndarray  # (width,)
    whisper: dict  # {"name", "id"}: the checkpoint whose states it reads
    threshold: float = 0.5
    smooth_frames: int = 25
    card: dict = field(default_factory=dict)  # data, seed, command and scores that made it

    def frame_vocalness(self, states: np.ndarray) -> np.ndarray:
        """(chunks, frames, width) float -> (chunks, frames) probability of singing, smoothed."""
        logits = ((np.asarray(states, np.float32) - self.mean) / self.scale) @ self.weight + self.bias
        probability = 1.0 / (1.0 + np.exp(-logits))
        if self.smooth_frames <= 1:
            return probability
        kernel = np.ones(self.smooth_frames, np.float32) / self.smooth_frames
        return np.stack([np.convolve(row, kernel, mode="same") for row in probability])

    def save(self, folder: str | Path) -> None:
        """Write ``vocal_probe.npz`` and ``vocal_probe.json`` into ``folder`` (each atomically)."""
        folder = Path(folder)
        arrays = io.BytesIO()
        np.savez(arrays, weight=self.weight, mean=self.mean, scale=self.scale)
        settings = {
            "bias": self.bias,
            "threshold": self.threshold,
            "smooth_frames": self.smooth_frames,
            "whisper": self.whisper,
            "card": self.card,
        }
        write_bytes_atomic(folder / PROBE_FILES[0], arrays.getvalue())
        write_bytes_atomic(folder / PROBE_FILES[1], (json.dumps(settings, indent=2, sort_keys=True) + "\n").encode())

    @classmethod
    def load(cls, folder: str | Path) -> "VocalProbe":
        folder = Path(folder)
        _require_probe_files(folder)
        with np.load(folder / PROBE_FILES[0], allow_pickle=False) as arrays:
            weight, mean, scale = (arrays[name].astype(np.float32) for name in ("weight", "mean", "scale"))
        settings = json.loads((folder / PROBE_FILES[1]).read_text())
        return cls(
            weight=weight,
            bias=float(settings["bias"]),
            mean=mean,
            scale=scale,
            whisper=settings["whisper"],
            threshold=float(settings["threshold"]),
            smooth_frames=int(settings["smooth_frames"]),
            card=settings.get("card", {}),
        )


def _require_probe_files(folder: Path) -> None:
    if not all((folder / name).is_file() for name in PROBE_FILES):
        raise ProbeMissing(
            f"no vocal probe in {folder}: run `livi build-vocal-probe`, or set vocal.method to zero_shot (Musicnn)"
        )


def shipped_probe_dir(whisper_model: str) -> Path:
    return Path(__file__).resolve().parent / "shipped" / whisper_model


@functools.lru_cache(maxsize=4)
def load_probe(whisper_model: str, whisper_id: str) -> VocalProbe:
    """The shipped probe of a Whisper model, checked against the checkpoint it will read; read once
    per process (the vocal stage and `livi query` ask for it per track)."""
    probe = VocalProbe.load(shipped_probe_dir(whisper_model))
    if probe.whisper["id"] != whisper_id:
        raise ProbeMissing(
            f"the shipped vocal probe for {whisper_model} reads checkpoint {probe.whisper['id']}, "
            f"but {whisper_model} resolves to {whisper_id} here: rebuild it with `livi build-vocal-probe`, "
            "or set vocal.method to zero_shot (Musicnn)"
        )
    return probe


def whole_track_chunks(audio_16k: np.ndarray, chunk_samples: int = CHUNK_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """The track cut into consecutive chunks (zero-padded at the end) and each chunk's frames of audio."""
    count = max(1, -(-len(audio_16k) // chunk_samples))
    chunks = np.zeros((count, chunk_samples), np.float32)
    chunks.reshape(-1)[: len(audio_16k)] = audio_16k
    frames_per_chunk = chunk_samples * FRAMES_PER_SECOND // 16_000
    audio_frames = np.full(count, frames_per_chunk)
    audio_frames[-1] = int(np.ceil((len(audio_16k) - (count - 1) * chunk_samples) * FRAMES_PER_SECOND / 16_000))
    return chunks, np.minimum(audio_frames, frames_per_chunk)


def window_means(frame_vocalness: np.ndarray, audio_frames: np.ndarray, windows: int, window_s: float) -> np.ndarray:
    """Mean frame vocalness over each consecutive ``window_s`` window of the track's audio frames."""
    frames = np.concatenate([row[:count] for row, count in zip(frame_vocalness, audio_frames)])
    per_window = int(window_s * FRAMES_PER_SECOND)
    return np.array([frames[i * per_window : (i + 1) * per_window].mean() for i in range(windows)], np.float32)


def window_scores(frame_vocalness: np.ndarray, audio_frames: np.ndarray, windows: int, window_s: float) -> np.ndarray:
    """The probe's vocalness of each 3 s window for the vocal stage: the share of its frames that
    are sung, doubled (at most 1), so that a window a quarter sung reaches the default threshold
    0.5. A line's first syllables then keep their window, and a 30 s segment does not start after
    them: with the plain share, segments began up to a window late and Whisper lost the first words
    (the demo's ASR-lyrics MAP fell from 0.958 to 0.816; doubled, 0.958 again)."""
    return np.minimum(1.0, 2 * window_means(frame_vocalness, audio_frames, windows, window_s)).astype(np.float32)


def probe_digest(folder: Path) -> str:
    """Short hash of a probe's files: the vocal stage's key changes when the probe does."""
    _require_probe_files(folder)
    digest = hashlib.sha256()
    for name in PROBE_FILES:
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()[:16]
