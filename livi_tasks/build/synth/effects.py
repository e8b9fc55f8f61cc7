"""Mixing effects: rooms, EQ, compression, saturation, echo. Each takes and returns mono float64."""

from __future__ import annotations

import numpy as np
from scipy import signal


def reverb(audio: np.ndarray, rate: int, rng: np.random.Generator, rt60_s: float, wet: float) -> np.ndarray:
    """Exponentially decaying noise as the room's impulse response (RT60 = 60 dB of decay)."""
    tail = np.arange(int(min(3.0, rt60_s) * rate)) / rate
    response = rng.standard_normal(len(tail)) * np.exp(-6.91 * tail / rt60_s)
    response = signal.sosfilt(signal.butter(1, 5000, "lowpass", fs=rate, output="sos"), response)
    response *= wet / max(np.sqrt(np.sum(response**2)), 1e-9)
    response[0] += 1.0
    return signal.oaconvolve(audio, response)[: len(audio)]


def early_reflections(
    audio: np.ndarray, rate: int, delays_ms: tuple[float, ...], gains: tuple[float, ...]
) -> np.ndarray:
    """A few discrete reflections: a small hard room rather than a diffuse tail."""
    out = audio.copy()
    for delay_ms, gain in zip(delays_ms, gains):
        shift = int(delay_ms * rate / 1000)
        out[shift:] += gain * audio[: len(audio) - shift]
    return out


def echo(audio: np.ndarray, rate: int, delay_s: float, feedback: float, wet: float) -> np.ndarray:
    """Feedback delay (a slap-back or tempo echo): y[n] = x[n - d] + feedback * y[n - d].

    Computed a delay length at a time, since each block depends only on the one before it.
    """
    shift = max(1, int(delay_s * rate))
    echoes = np.zeros(len(audio) + shift)
    for start in range(shift, len(echoes), shift):
        block = echoes[start : start + shift]
        block += (
            audio[start - shift : start - shift + len(block)]
            + feedback * echoes[start - shift : start - shift + len(block)]
        )
    return audio + wet * echoes[: len(audio)]


def _biquad(kind: str, frequency: float, gain_db: float, rate: int, q: float = 0.707) -> np.ndarray:
    """RBJ cookbook peaking / shelving filter as one second-order section."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * min(frequency, 0.45 * rate) / rate
    alpha = np.sin(w0) / (2 * q)
    cos = np.cos(w0)
    if kind == "peak":
        b = [1 + alpha * a, -2 * cos, 1 - alpha * a]
        d = [1 + alpha / a, -2 * cos, 1 - alpha / a]
    else:
        sign = 1 if kind == "low_shelf" else -1
        root = 2 * np.sqrt(a) * alpha
        b = [
            a * ((a + 1) - sign * (a - 1) * cos + root),
            sign * 2 * a * ((a - 1) - sign * (a + 1) * cos),
            a * ((a + 1) - sign * (a - 1) * cos - root),
        ]
        d = [
            (a + 1) + sign * (a - 1) * cos + root,
            -sign * 2 * ((a - 1) + sign * (a + 1) * cos),
            (a + 1) + sign * (a - 1) * cos - root,
        ]
    return np.concatenate([np.array(b) / d[0], np.array(d) / d[0]])[None, :]


def equalise(audio: np.ndarray, rate: int, bands: tuple[tuple[str, float, float], ...]) -> np.ndarray:
    """Apply (kind, frequency_hz, gain_db) bands in order; kind is low_shelf, high_shelf or peak."""
    for kind, frequency, gain_db in bands:
        audio = signal.sosfilt(_biquad(kind, frequency, gain_db, rate), audio)
    return audio


def band_limit(audio: np.ndarray, rate: int, low_hz: float, high_hz: float) -> np.ndarray:
    return signal.sosfilt(
        signal.butter(2, [low_hz, min(high_hz, 0.45 * rate)], "bandpass", fs=rate, output="sos"), audio
    )


def compress(audio: np.ndarray, rate: int, threshold_db: float, ratio: float, release_s: float = 0.1) -> np.ndarray:
    """Feed-forward RMS compressor with make-up gain back to the input's peak."""
    power = signal.lfilter([1 - np.exp(-1 / (release_s * rate))], [1, -np.exp(-1 / (release_s * rate))], audio**2)
    level_db = 10 * np.log10(np.maximum(power, 1e-12))
    peak_db = 20 * np.log10(max(np.abs(audio).max(), 1e-9))
    over = np.maximum(level_db - (peak_db + threshold_db), 0)
    out = audio * 10 ** (-over * (1 - 1 / ratio) / 20)
    return out * max(np.abs(audio).max(), 1e-9) / max(np.abs(out).max(), 1e-9)


def saturate(audio: np.ndarray, drive: float) -> np.ndarray:
    """tanh soft clipping (tape-like), level-matched."""
    peak = max(np.abs(audio).max(), 1e-9)
    return np.tanh(drive * audio / peak) / np.tanh(drive) * peak


def studio_vocal_chain(
    vocals: np.ndarray,
    rate: int,
    rng: np.random.Generator,
    compress_chance: float,
    threshold_db: tuple[float, float],
    ratio: tuple[float, float],
    rt60_s: tuple[float, float],
    wet: tuple[float, float],
) -> np.ndarray:
    """EQ (low shelf, presence peak, high shelf), compression some of the time, a diffuse room;
    every setting drawn from ``rng`` within the given ranges."""
    vocals = equalise(
        vocals,
        rate,
        (
            ("low_shelf", 200, rng.uniform(-6, 3)),
            ("peak", rng.uniform(1500, 4000), rng.uniform(-3, 6)),
            ("high_shelf", 8000, rng.uniform(-8, 3)),
        ),
    )
    if rng.random() < compress_chance:
        vocals = compress(vocals, rate, threshold_db=rng.uniform(*threshold_db), ratio=rng.uniform(*ratio))
    return reverb(vocals, rate, rng, rt60_s=rng.uniform(*rt60_s), wet=rng.uniform(*wet))


def level_over(vocals: np.ndarray, backing: np.ndarray, sung: list[tuple[float, float, str]], rate: int, snr_db: float):
    """``vocals`` scaled to ``snr_db`` above the mono ``backing`` where the lines are sung."""
    mask = np.zeros(len(vocals), dtype=bool)
    for start_s, end_s, _ in sung:
        mask[int(start_s * rate) : int(end_s * rate)] = True
    return vocals * (_rms(backing[mask]) * 10 ** (snr_db / 20) / max(_rms(vocals[mask]), 1e-9))


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values)))) if len(values) else 0.0
