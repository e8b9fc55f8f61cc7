"""Singing from the frozen Whisper encoder's frame states: the vocal detector of the one-pass path.

The ASR-free path runs Whisper's encoder anyway. A linear probe on its frame states (50 per
second) says which frames hold singing, so the vocal filter, the frames the head pools and the
embedding all come from one encoder pass per 30 s of track: Musicnn, most of the ASR-free path's
time (BENCHMARKS.md), is not needed. The probe is logistic regression on standardised frame
states, trained on the randomised song family against the generator's ground-truth sung lines
(``vocals.csv``), its output smoothed over ``smooth_frames``. It is stored as arrays and JSON
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
import pandas as pd

from .atomic import write_bytes_atomic

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
    return Path(__file__).resolve().parent / "models" / "shipped" / whisper_model


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


def frame_labels(regions: np.ndarray, chunks: int, frames_per_chunk: int) -> np.ndarray:
    """(chunks, frames) true where a frame's centre lies in a sung region ((k, 2) start/end seconds)."""
    centres = (np.arange(chunks * frames_per_chunk) + 0.5) / FRAMES_PER_SECOND
    inside = np.zeros(len(centres), bool)
    for start, end in regions:
        inside |= (centres >= start) & (centres < end)
    return inside.reshape(chunks, frames_per_chunk)


def fit_probe(
    states: np.ndarray, labels: np.ndarray, whisper: dict, smooth_frames: int = 25, seed: int = 0
) -> VocalProbe:
    """Logistic regression of ``labels`` (frames,) on frame ``states`` (frames, width)."""
    from sklearn.linear_model import LogisticRegression

    mean = states.mean(axis=0).astype(np.float32)
    scale = np.maximum(states.std(axis=0), 1e-6).astype(np.float32)
    model = LogisticRegression(C=0.1, max_iter=500, class_weight="balanced", random_state=seed)
    model.fit((states - mean) / scale, labels)
    return VocalProbe(
        weight=model.coef_[0].astype(np.float32),
        bias=float(model.intercept_[0]),
        mean=mean,
        scale=scale,
        whisper=whisper,
        smooth_frames=smooth_frames,
    )


def corpus_frames(
    encoder_states, manifest: Path, every: int = 1
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[str]]:
    """Per track of a generated corpus: frame states, frame labels and audio frames per chunk.

    ``encoder_states(chunks) -> (chunks, frames, width)`` runs the frozen encoder; ``every``
    keeps one frame in that many (neighbouring frames are nearly equal).
    """
    from .audio import load_audio

    root = manifest.parent
    tracks = pd.read_csv(manifest)
    regions = pd.read_csv(root / "vocals.csv")
    by_track = {track: group[["start_s", "end_s"]].to_numpy() for track, group in regions.groupby("track_id")}
    states_out, labels_out, frames_out = [], [], []
    for row in tracks.itertuples():
        audio = load_audio(str(root / row.path))
        chunks, audio_frames = whole_track_chunks(audio)
        states = encoder_states(chunks)
        labels = frame_labels(by_track.get(row.track_id, np.zeros((0, 2))), len(chunks), states.shape[1])
        states_out.append(states[:, ::every])
        labels_out.append(labels[:, ::every])
        frames_out.append(audio_frames)
    return states_out, labels_out, frames_out, list(tracks.track_id)


def probe_digest(folder: Path) -> str:
    """Short hash of a probe's files: the vocal stage's key changes when the probe does."""
    _require_probe_files(folder)
    digest = hashlib.sha256()
    for name in PROBE_FILES:
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()[:16]


def encoder_states_of(whisper_model: str, models_dir: str, batch: int = 8):
    """A function chunks -> (chunks, frames, width) float16 frame states of the frozen encoder."""
    from .models.encoder import encode_frames
    from .models.whisper_weights import cached_whisper

    model = cached_whisper(whisper_model, models_dir)

    def states(chunks: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [
                encode_frames(model, chunks[i : i + batch]).numpy().astype(np.float16)
                for i in range(0, len(chunks), batch)
            ]
        )

    return states


def frame_scores(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Frame precision and recall of the vocal class, and accuracy."""
    true_positive = float((predicted & labels).sum())
    return {
        "precision": true_positive / max(1.0, float(predicted.sum())),
        "recall": true_positive / max(1.0, float(labels.sum())),
        "accuracy": float((predicted == labels).mean()),
        "frames": int(labels.size),
    }


def build_vocal_probe(
    cfg, whisper_model: str, work_dir: str | Path, works: int = 40, seed: int = 300, every: int = 5
) -> dict:
    """Train the shipped probe of one Whisper model on a randomised-family corpus; write it and its card.

    The corpus (``works`` x 2 versions + ``works // 4`` instrumentals, ``seed``) is made under
    ``work_dir`` and kept; a fifth of the works is held out to score the probe's frames.
    """
    from .default_heads import _code_commit
    from .models.whisper_weights import whisper_identity
    from .synth.corpus import make_corpus

    work_dir = Path(work_dir)
    instrumentals = max(1, works // 4)
    manifest = make_corpus(
        work_dir / f"probe-corpus-{seed}", "randomised", works, versions=2, seed=seed, instrumentals=instrumentals
    )
    whisper = whisper_identity(whisper_model, cfg.models_dir)
    states, labels, audio_frames, track_ids = corpus_frames(encoder_states_of(whisper_model, cfg.models_dir), manifest)
    works_of = pd.read_csv(manifest).set_index("track_id")["work_id"].fillna("")
    held_out = {
        work for work in sorted(set(works_of)) if work and int(hashlib.sha256(work.encode()).hexdigest(), 16) % 5 == 0
    }

    def stacked(selected: list[int], stride: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = [], []
        for i in selected:
            in_audio = np.arange(states[i].shape[1])[None, :] < audio_frames[i][:, None]
            x.append(states[i][:, ::stride][in_audio[:, ::stride]])
            y.append(labels[i][:, ::stride][in_audio[:, ::stride]])
        return np.concatenate(x).astype(np.float32), np.concatenate(y)

    train = [i for i, track in enumerate(track_ids) if works_of[track] not in held_out]
    validation = [i for i, track in enumerate(track_ids) if works_of[track] in held_out]
    x, y = stacked(train, every)
    probe = fit_probe(x, y, whisper, seed=seed)
    predicted, truth = [], []
    for i in validation:
        in_audio = np.arange(states[i].shape[1])[None, :] < audio_frames[i][:, None]
        predicted.append((probe.frame_vocalness(states[i]) >= probe.threshold)[in_audio])
        truth.append(labels[i][in_audio])
    scores = frame_scores(np.concatenate(predicted), np.concatenate(truth)) if validation else {}
    card = {
        "command": f"livi build-vocal-probe --whisper-model {whisper_model} --works {works} --seed {seed}",
        "data": {
            "family": "randomised",
            "works": works,
            "versions": 2,
            "instrumentals": instrumentals,
            "seed": seed,
            "tracks": len(track_ids),
            "training_frames": int(len(y)),
            "every_nth_frame": every,
            "held_out_works": sorted(held_out),
        },
        "model": "logistic regression (C=0.1, balanced classes) on standardised frame states, smoothed over 0.5 s",
        "validation_frames": scores,
        "commit": _code_commit(),
    }
    probe = VocalProbe(**{**probe.__dict__, "card": card})
    probe.save(shipped_probe_dir(whisper_model))
    log.info("vocal probe for %s: held-out frames %s", whisper_model, scores)
    return {"whisper": whisper, "validation_frames": scores, "folder": str(shipped_probe_dir(whisper_model))}
