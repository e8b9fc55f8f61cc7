"""Backings: a 4-bar chord loop with bass and drums, and a lead melody for instrumentals.

Versions of a work share its chord progression in another key, tempo, timbre and drum pattern, as
real covers share harmony.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from livi_tasks.build.synth.instruments import PITCH_NAMES, SCALES, envelope, hz, scale_step

# Scale degrees (0-based) of the chord on each bar of the 4-bar loop.
PROGRESSIONS = {
    "major": ((0, 4, 5, 3), (5, 3, 0, 4), (0, 3, 4, 3), (1, 4, 0, 5), (0, 5, 3, 4)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2)),
}
# Onsets in beats within a 4/4 bar.
KICK_PATTERNS = ((0.0, 2.0), (0.0, 1.5, 2.0), (0.0, 1.0, 2.0, 3.0), (0.0, 2.5))
SNARE_PATTERNS = ((1.0, 3.0), (1.0, 3.0, 3.5), (3.0,))
HAT_STEPS = (0.5, 0.25, 1.0)


@dataclass(frozen=True)
class BackingSpec:
    """Everything that determines a backing; two tracks with equal specs have equal backings."""

    seed: int
    sample_rate: int
    channels: int
    duration_s: float
    key_root: int
    mode: str
    progression: tuple[int, ...]
    tempo_bpm: float
    chord_harmonics: int
    chord_stabs: bool
    kick_pattern: tuple[float, ...]
    snare_pattern: tuple[float, ...]
    hat_step_beats: float
    lead_melody: bool

    @property
    def key(self) -> str:
        return f"{PITCH_NAMES[self.key_root]} {self.mode}"


def synthesise_backing(spec: BackingSpec) -> np.ndarray:
    """Chords, bass, drums (and a lead melody for instrumentals) as a (samples, channels) array."""
    rng = np.random.default_rng(spec.seed)
    rate = spec.sample_rate
    beat = 60.0 / spec.tempo_bpm
    loop_beats = 4 * len(spec.progression)
    loop_len = int(round(loop_beats * beat * rate))
    total = int(round(spec.duration_s * rate))
    scale = SCALES[spec.mode]

    chords = np.zeros(loop_len)
    bass = np.zeros(loop_len)
    for bar, degree in enumerate(spec.progression):
        notes = [48 + spec.key_root + scale_step(scale, degree + step) for step in (0, 2, 4)]
        bar_start = int(round(bar * 4 * beat * rate))
        # Stabs hit every beat and die quickly; pads hold the whole bar.
        hits, length_s, decay_s = ((0, 1, 2, 3), 0.45 * beat, 0.35) if spec.chord_stabs else ((0,), 4 * beat, 1.5)
        tone = sum(_harmonic_tone(hz(note), length_s, rate, spec.chord_harmonics) for note in notes)
        tone = tone * envelope(len(tone), rate, 0.01, decay_s)
        for hit in hits:
            _add_at(chords, tone, bar_start + int(hit * beat * rate))
        root = 36 + spec.key_root + scale_step(scale, degree)
        for eighth in range(8):
            note = root + (12 if eighth % 4 == 3 else 0)  # an octave jump for movement
            tone = _harmonic_tone(hz(note), 0.48 * beat, rate, 3)
            _add_at(bass, tone * envelope(len(tone), rate, 0.005, 0.18), bar_start + int(eighth * 0.5 * beat * rate))

    kick, snare, hat = _drum_one_shots(rng, rate)
    drums_low = np.zeros(loop_len)
    drums_high = np.zeros(loop_len)
    for bar in range(len(spec.progression)):
        bar_beat = bar * 4
        for onset in spec.kick_pattern:
            _add_at(drums_low, kick, int((bar_beat + onset) * beat * rate))
        for onset in spec.snare_pattern:
            _add_at(drums_low, snare * rng.uniform(0.85, 1.0), int((bar_beat + onset) * beat * rate))
        for step in np.arange(0, 4, spec.hat_step_beats):
            _add_at(drums_high, hat * rng.uniform(0.6, 1.0), int((bar_beat + step) * beat * rate))

    layers = {
        "chords": 0.22 * _tile(chords, total),
        "bass": 0.30 * _tile(bass, total),
        "drums_low": _tile(drums_low, total),
        "drums_high": _tile(drums_high, total),
    }
    # Drums come in after the first bar; the song fades out over its last two seconds.
    drum_entry = np.clip((np.arange(total) - 4 * beat * rate) / (0.05 * rate), 0, 1)
    layers["drums_low"] *= drum_entry
    layers["drums_high"] *= drum_entry
    if spec.lead_melody:
        layers["lead"] = 0.25 * _lead_melody(rng, spec, total)

    pans = {"chords": -0.3, "bass": 0.0, "drums_low": 0.0, "drums_high": 0.4, "lead": 0.2}
    channels = []
    for channel in range(spec.channels):
        mixed = np.zeros(total)
        for name, layer in layers.items():
            pan = pans[name] if spec.channels == 2 else 0.0
            angle = (pan + 1) * np.pi / 4  # constant-power panning
            gain = (np.cos(angle) if channel == 0 else np.sin(angle)) * np.sqrt(2) if spec.channels == 2 else 1.0
            mixed += gain * layer
        channels.append(mixed)
    backing = np.stack(channels, axis=1)
    fade = np.clip((total - np.arange(total)) / (2.0 * rate), 0, 1) * np.clip(np.arange(total) / (0.05 * rate), 0, 1)
    return backing * fade[:, None]


def _harmonic_tone(frequency: float, length_s: float, rate: int, harmonics: int) -> np.ndarray:
    times = np.arange(int(length_s * rate)) / rate
    tone = np.zeros_like(times)
    for k in range(1, harmonics + 1):
        if k * frequency < rate / 2:
            tone += np.sin(2 * np.pi * k * frequency * times) / k  # sawtooth-like rolloff
    return tone


def _drum_one_shots(rng: np.random.Generator, rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    kick_t = np.arange(int(0.35 * rate)) / rate
    kick_hz = 45 + 90 * np.exp(-kick_t / 0.04)  # the pitch sweep that makes a kick
    kick = 0.9 * np.sin(2 * np.pi * np.cumsum(kick_hz) / rate) * np.exp(-kick_t / 0.12)
    snare_t = np.arange(int(0.25 * rate)) / rate
    snare_band = signal.butter(2, [1000, 6000], "bandpass", fs=rate, output="sos")
    snare_noise = signal.sosfilt(snare_band, rng.standard_normal(len(snare_t)))
    snare_body = 0.6 * np.sin(2 * np.pi * 185 * snare_t) * np.exp(-snare_t / 0.04)
    snare = 0.45 * (snare_noise * np.exp(-snare_t / 0.07) + snare_body)
    hat_t = np.arange(int(0.08 * rate)) / rate
    hat_band = signal.butter(2, 7000, "highpass", fs=rate, output="sos")
    hat_noise = signal.sosfilt(hat_band, rng.standard_normal(len(hat_t)))
    hat = 0.18 * hat_noise * np.exp(-hat_t / 0.02)
    return kick, snare, hat


def _lead_melody(rng: np.random.Generator, spec: BackingSpec, total: int) -> np.ndarray:
    """A voice-range synth melody, so instrumentals are not just accompaniment."""
    rate = spec.sample_rate
    beat = 60.0 / spec.tempo_bpm
    scale = SCALES[spec.mode]
    lead = np.zeros(total)
    cursor = int(4 * beat * rate)
    degree = 7
    while cursor < total:
        length_beats = float((0.5, 1.0, 1.0, 2.0)[int(rng.integers(4))])
        degree = int(np.clip(degree + rng.integers(-2, 3), 0, 14))
        note = 60 + spec.key_root + scale_step(scale, degree)
        times = np.arange(int(length_beats * beat * rate)) / rate
        vibrato = 0.004 * np.sin(2 * np.pi * 5.5 * times)
        phase = 2 * np.pi * hz(note) * np.cumsum(1 + vibrato) / rate
        tone = np.sin(phase) + 0.3 * np.sin(2 * phase) + 0.15 * np.sin(3 * phase)
        _add_at(lead, tone * envelope(len(tone), rate, 0.03, 0.8), cursor)
        cursor += len(times) + (int(beat * rate) if rng.random() < 0.2 else 0)
    return lead


def _add_at(target: np.ndarray, sound: np.ndarray, start: int) -> None:
    """Add ``sound`` at ``start``, wrapping around the end so a loop stays seamless when tiled."""
    end = min(len(target), start + len(sound))
    target[start:end] += sound[: end - start]
    spill = len(sound) - (end - start)
    if spill > 0 and len(target) > 0:
        target[: min(spill, len(target))] += sound[end - start : end - start + min(spill, len(target))]


def _tile(loop: np.ndarray, total: int) -> np.ndarray:
    return np.tile(loop, total // len(loop) + 1)[:total]
