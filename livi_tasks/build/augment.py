"""Audio augmentation of training tracks before the frozen encoder: the sound changes, the words don't.

A chain drawn per track from a seed: pitch shift (+-3 semitones), time stretch (0.85-1.15x, the
sung lines' times scaled with it), a room (reverb), a band limit (telephone to full band), noise
(10-35 dB below the music), a lossy codec round trip (MP3 or Opus at a low to middling bitrate)
and gain. Each augmented copy of a corpus is encoded once and cached like the original
(``chunk_data.chunk_dataset``), so training epochs stay cheap.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from livi_tasks.build.synth import effects
from livi_tasks.core.audio import SAMPLE_RATE


@dataclass(frozen=True)
class Augmentation:
    """What was done to one track; ``time_scale`` multiplies every time in it."""

    semitones: float
    time_scale: float
    reverb_s: float
    band_hz: tuple[float, float]
    noise_db: float
    codec: str
    gain_db: float


def draw(rng: np.random.Generator) -> Augmentation:
    return Augmentation(
        semitones=float(rng.uniform(-3, 3)),
        time_scale=float(rng.uniform(0.85, 1.15)),
        reverb_s=float(rng.choice([0.0, rng.uniform(0.3, 2.5)])),
        band_hz=(float(rng.uniform(60, 400)), float(rng.uniform(3400, 7900))) if rng.random() < 0.4 else (20.0, 7990.0),
        noise_db=float(rng.uniform(10, 35)),
        codec=str(rng.choice(["none", "mp3", "opus"])),
        gain_db=float(rng.uniform(-12, 0)),
    )


def _codec(audio: np.ndarray, codec: str, rng: np.random.Generator) -> np.ndarray:
    """A round trip through MP3 (at 16 kHz) or Opus (at 48 kHz, resampled back), in memory."""
    if codec == "none":
        return audio
    rate = 48_000 if codec == "opus" else SAMPLE_RATE
    signal = audio if rate == SAMPLE_RATE else soxr.resample(audio, SAMPLE_RATE, rate)
    buffer = io.BytesIO()
    container, subtype = ("OGG", "OPUS") if codec == "opus" else ("MP3", "MPEG_LAYER_III")
    level = float(rng.uniform(0.4, 0.95))  # low to middling bitrates
    sf.write(buffer, signal, rate, format=container, subtype=subtype, compression_level=level)
    buffer.seek(0)
    decoded, _ = sf.read(buffer, dtype="float32")
    decoded = decoded if rate == SAMPLE_RATE else soxr.resample(decoded, rate, SAMPLE_RATE)
    out = np.zeros_like(audio)
    out[: min(len(out), len(decoded))] = decoded[: len(out)]
    return out


def augment(audio_16k: np.ndarray, seed: int) -> tuple[np.ndarray, Augmentation]:
    """The augmented track (16 kHz float32) and what was done; deterministic in ``seed``."""
    import librosa

    rng = np.random.default_rng(seed)
    chosen = draw(rng)
    audio = np.asarray(audio_16k, np.float32)
    if abs(chosen.semitones) > 0.05:
        audio = librosa.effects.pitch_shift(audio, sr=SAMPLE_RATE, n_steps=chosen.semitones)
    if abs(chosen.time_scale - 1) > 0.005:
        audio = librosa.effects.time_stretch(audio, rate=1.0 / chosen.time_scale)
    audio = audio.astype(np.float64)
    if chosen.reverb_s:
        audio = effects.reverb(audio, SAMPLE_RATE, rng, rt60_s=chosen.reverb_s, wet=float(rng.uniform(0.1, 0.4)))
    if chosen.band_hz != (20.0, 7990.0):
        audio = effects.band_limit(audio, SAMPLE_RATE, *chosen.band_hz)
    rms = float(np.sqrt(np.mean(audio**2))) or 1e-9
    audio = audio + rng.standard_normal(len(audio)) * rms * 10 ** (-chosen.noise_db / 20)
    audio = audio * 10 ** (chosen.gain_db / 20) / max(np.abs(audio).max(), 1e-9) * 0.9
    return _codec(audio.astype(np.float32), chosen.codec, rng), chosen
