"""Voices: espeak-ng speaking a line at a pitch, trimmed, with vibrato and a small pitch shift,
then a short room; each version of a work has its own accent, variant, speed and pitch."""

from __future__ import annotations

import subprocess
import tempfile
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

# Accents and voice variants that espeak-ng pronounces clearly (the robotic, whispering and
# croaking variants would make the demo a test of espeak, not of the pipeline).
ESPEAK_ACCENTS = ("en", "en-us", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc", "en-gb-x-gbclan")
ESPEAK_VARIANTS = ("", "+m1", "+m2", "+m3", "+m4", "+m6", "+m7", "+f1", "+f2", "+f3", "+f4", "+f5")


def distinct_voices(rng: np.random.Generator, count: int) -> list[str]:
    pool = [accent + variant for accent in ESPEAK_ACCENTS for variant in ESPEAK_VARIANTS]
    picks = rng.choice(len(pool), size=count, replace=count > len(pool))
    return [pool[int(index)] for index in picks]


def sing_line(
    text: str, voice: str, speed_wpm: int, pitch: int, word_gap: int, rng: np.random.Generator, rate: int
) -> np.ndarray:
    """Speak one line with espeak-ng, trim its silences, add vibrato and a small pitch shift."""
    with tempfile.TemporaryDirectory(prefix="livi-espeak-") as folder:
        wav_path = Path(folder) / "line.wav"
        command = ["espeak-ng", "-v", voice, "-s", str(speed_wpm), "-p", str(pitch), "-g", str(word_gap)]
        subprocess.run([*command, "-w", str(wav_path), text], check=True, capture_output=True)
        speech, speech_rate = sf.read(wav_path, dtype="float64")
    if speech.ndim == 2:
        speech = speech.mean(axis=1)
    loud = np.flatnonzero(np.abs(speech) > 0.02 * np.abs(speech).max())
    speech = speech[loud[0] : loud[-1] + 1]
    shift_cents = rng.uniform(-80, 80)
    sung = _vibrato(speech, speech_rate, shift_cents, depth_cents=rng.uniform(15, 40), rate_hz=rng.uniform(4.5, 6.5))
    common = gcd(rate, speech_rate)
    return signal.resample_poly(sung, rate // common, speech_rate // common)


def _vibrato(audio: np.ndarray, rate: int, shift_cents: float, depth_cents: float, rate_hz: float) -> np.ndarray:
    """Pitch-shift by resampling with a slowly wobbling read speed (shifts formants a little too)."""
    mean_speed = 2 ** (shift_cents / 1200)
    out_len = int(len(audio) / mean_speed * 1.02) + 1
    times = np.arange(out_len) / rate
    speed = 2 ** ((shift_cents + depth_cents * np.sin(2 * np.pi * rate_hz * times)) / 1200)
    positions = np.concatenate([[0.0], np.cumsum(speed[:-1])])
    positions = positions[positions <= len(audio) - 1]
    return np.interp(positions, np.arange(len(audio)), audio)


def add_room(vocals: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A short, quiet reverb tail so the voice sits in the mix instead of on top of it."""
    tail = np.arange(int(0.5 * rate)) / rate
    response = rng.standard_normal(len(tail)) * np.exp(-tail / 0.12)
    response *= 0.25 / np.sqrt(np.sum(response**2))
    response[0] = 1.0
    return signal.oaconvolve(vocals, response)[: len(vocals)]
