"""Backings: chords, bass, drums and (for instrumentals) a lead line, from several synthesis methods.

Each instrument is a function ``(frequency_hz, length_s, rate, rng) -> mono array`` with its own
envelope; the families in ``corpus`` draw them from disjoint sets, so the evaluation family's
timbres are never heard in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import signal

PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
# Scale degrees of the chord of each bar of the loop.
PROGRESSIONS = {
    "major": ((0, 4, 5, 3), (5, 3, 0, 4), (0, 3, 4, 3), (1, 4, 0, 5), (0, 5, 3, 4), (0, 0, 3, 4), (0, 3, 0, 4)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2), (0, 5, 3, 4)),
}
DRUM_PATTERNS = (  # (kick onsets, snare onsets, hat step) in beats of a 4/4 bar
    ((0.0, 2.0), (1.0, 3.0), 0.5),
    ((0.0, 1.5, 2.0), (1.0, 3.0), 0.25),
    ((0.0, 1.0, 2.0, 3.0), (1.0, 3.0), 0.5),
    ((0.0, 2.5), (1.0, 3.0, 3.5), 0.5),
    ((0.0, 0.75, 2.5), (1.0, 3.0), 0.25),
    ((0.0,), (2.0,), 1.0),
)


def _times(length_s: float, rate: int) -> np.ndarray:
    return np.arange(max(1, int(length_s * rate))) / rate


def envelope(length: int, rate: int, attack_s: float, decay_s: float, release_s: float = 0.01) -> np.ndarray:
    times = np.arange(length) / rate
    attack = np.clip(times / max(attack_s, 1e-4), 0, 1)
    release = np.clip((length - np.arange(length)) / max(release_s * rate, 1.0), 0, 1)
    return attack * np.exp(-times / decay_s) * release


def additive(frequency: float, length_s: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Sawtooth-like harmonic series with a soft decay."""
    times = _times(length_s, rate)
    tone = sum(np.sin(2 * np.pi * k * frequency * times) / k for k in range(1, 7) if k * frequency < rate / 2)
    return tone * envelope(len(times), rate, 0.01, 1.2)


def fm_brass(frequency: float, length_s: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Two-operator FM, ratio 1:1, with the index following the envelope (brassy swell)."""
    times = _times(length_s, rate)
    env = envelope(len(times), rate, 0.05, 1.5)
    return np.sin(2 * np.pi * frequency * times + 3.0 * env * np.sin(2 * np.pi * frequency * times)) * env


def organ(frequency: float, length_s: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Drawbar organ: octave-related sines at fixed levels, no decay."""
    times = _times(length_s, rate)
    tone = sum(
        level * np.sin(2 * np.pi * ratio * frequency * times)
        for ratio, level in ((0.5, 0.5), (1, 1.0), (2, 0.6), (3, 0.3), (4, 0.25))
        if ratio * frequency < rate / 2
    )
    return tone * envelope(len(times), rate, 0.008, 30.0, 0.02)


def filtered_saw(frequency: float, length_s: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Subtractive: a sawtooth through a low-pass whose cutoff sits a few harmonics up."""
    times = _times(length_s, rate)
    saw = 2 * ((frequency * times) % 1.0) - 1
    sos = signal.butter(2, min(0.45 * rate, frequency * 4), "lowpass", fs=rate, output="sos")
    return signal.sosfilt(sos, saw) * envelope(len(times), rate, 0.02, 0.9)


def pluck(frequency: float, length_s: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Karplus-Strong plucked string: a noise burst through a damped delay-line loop.

    y[n] = x[n] + 0.497 (y[n-P] + y[n-P-1]) is computed a period P at a time: each block needs
    only the block before it, so the loop runs per period instead of per sample.
    """
    length = max(1, int(length_s * rate))
    period = max(2, int(round(rate / frequency)))
    blocks = -(-length // period) + 1
    out = np.zeros((blocks + 1) * period)
    out[period : 2 * period] = rng.uniform(-1, 1, period)
    for start in range(2 * period, len(out), period):
        out[start : start + period] = 0.497 * (out[start - period : start] + out[start - period - 1 : start - 1])
    return out[period : period + length] * envelope(length, rate, 0.001, 3.0)


def electric_piano(frequency: float, length_s: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """FM tine (ratio 1:14, fast-decaying index) with tremolo."""
    times = _times(length_s, rate)
    index = 1.8 * np.exp(-times / 0.08)
    tone = np.sin(2 * np.pi * frequency * times + index * np.sin(2 * np.pi * 14 * frequency * times))
    return tone * envelope(len(times), rate, 0.002, 0.9) * (1 + 0.25 * np.sin(2 * np.pi * 5.0 * times))


def string_ensemble(frequency: float, length_s: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Three detuned sawtooths with a slow attack and a band-pass: a bowed pad."""
    times = _times(length_s, rate)
    saws = sum(
        2 * ((frequency * (1 + detune) * times + phase) % 1.0) - 1
        for detune, phase in ((-0.006, 0.0), (0.0, 0.33), (0.007, 0.71))
    )
    sos = signal.butter(
        2, [max(40.0, 0.7 * frequency), min(0.45 * rate, 6 * frequency)], "bandpass", fs=rate, output="sos"
    )
    return signal.sosfilt(sos, saws) * envelope(len(times), rate, 0.25, 6.0, 0.15)


def square_lead(frequency: float, length_s: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Pulse wave with a light low-pass: a chiptune-like lead."""
    times = _times(length_s, rate)
    pulse = np.where((frequency * times) % 1.0 < 0.3, 1.0, -1.0)
    sos = signal.butter(2, min(0.45 * rate, 3500), "lowpass", fs=rate, output="sos")
    return 0.6 * signal.sosfilt(sos, pulse) * envelope(len(times), rate, 0.01, 2.0)


INSTRUMENTS: dict[str, Callable[[float, float, int, np.random.Generator], np.ndarray]] = {
    "additive": additive,
    "fm_brass": fm_brass,
    "organ": organ,
    "filtered_saw": filtered_saw,
    "pluck": pluck,
    "electric_piano": electric_piano,
    "string_ensemble": string_ensemble,
    "square_lead": square_lead,
}


def acoustic_kit(rng: np.random.Generator, rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kick (pitch sweep), snare (band-passed noise and body), closed hat (high-passed noise)."""
    kick_t = _times(0.35, rate)
    kick = 0.9 * np.sin(2 * np.pi * np.cumsum(45 + 90 * np.exp(-kick_t / 0.04)) / rate) * np.exp(-kick_t / 0.12)
    snare_t = _times(0.25, rate)
    noise = signal.sosfilt(
        signal.butter(2, [1000, 6000], "bandpass", fs=rate, output="sos"), rng.standard_normal(len(snare_t))
    )
    snare = 0.45 * (noise * np.exp(-snare_t / 0.07) + 0.6 * np.sin(2 * np.pi * 185 * snare_t) * np.exp(-snare_t / 0.04))
    hat_t = _times(0.08, rate)
    hat = (
        0.18
        * signal.sosfilt(signal.butter(2, 7000, "highpass", fs=rate, output="sos"), rng.standard_normal(len(hat_t)))
        * np.exp(-hat_t / 0.02)
    )
    return kick, snare, hat


def electronic_kit(rng: np.random.Generator, rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Long sine kick, clap (three quick noise bursts), shaker (band-passed noise swell)."""
    kick_t = _times(0.7, rate)
    kick = np.sin(2 * np.pi * np.cumsum(50 + 60 * np.exp(-kick_t / 0.015)) / rate) * np.exp(-kick_t / 0.35)
    clap_t = _times(0.3, rate)
    burst = sum(np.where((clap_t >= d) & (clap_t < d + 0.008), 1.0, 0.0) for d in (0.0, 0.012, 0.024)) + np.exp(
        -clap_t / 0.09
    )
    clap = (
        0.4
        * signal.sosfilt(
            signal.butter(2, [800, 3000], "bandpass", fs=rate, output="sos"), rng.standard_normal(len(clap_t))
        )
        * burst
    )
    shaker_t = _times(0.12, rate)
    shaker = 0.15 * signal.sosfilt(
        signal.butter(2, [4000, 9000], "bandpass", fs=rate, output="sos"), rng.standard_normal(len(shaker_t))
    )
    shaker *= np.sin(np.pi * shaker_t / shaker_t[-1]) ** 2 if len(shaker_t) > 1 else 1.0
    return kick, clap, shaker


KITS = {"acoustic": acoustic_kit, "electronic": electronic_kit}


@dataclass(frozen=True)
class BackingSpec:
    """Everything that determines a backing; equal specs render equal audio."""

    seed: int
    sample_rate: int
    duration_s: float
    key_root: int
    mode: str
    progression: tuple[int, ...]
    tempo_bpm: float
    chord_instrument: str
    chord_style: str  # pad | stabs | arpeggio
    bass_instrument: str
    kit: str
    drum_pattern: int
    lead_instrument: str = ""  # instrumentals: a voice-range melody

    @property
    def key(self) -> str:
        return f"{PITCH_NAMES[self.key_root]} {self.mode}"


def scale_step(scale: tuple[int, ...], degree: int) -> int:
    return 12 * (degree // len(scale)) + scale[degree % len(scale)]


def hz(midi_note: float) -> float:
    return 440.0 * 2 ** ((midi_note - 69) / 12)


def add_at(target: np.ndarray, sound: np.ndarray, start: int) -> None:
    """Add ``sound`` at ``start``, cut at the end of ``target``."""
    if start >= len(target) or start < 0:
        return
    end = min(len(target), start + len(sound))
    target[start:end] += sound[: end - start]


def render_backing(spec: BackingSpec) -> dict[str, np.ndarray]:
    """The backing's layers (chords, bass, drums, lead), each mono at ``spec.sample_rate``."""
    rng = np.random.default_rng(spec.seed)
    rate, beat = spec.sample_rate, 60.0 / spec.tempo_bpm
    total = int(round(spec.duration_s * rate))
    scale = SCALES[spec.mode]
    bar_s = 4 * beat
    layers = {name: np.zeros(total) for name in ("chords", "bass", "drums")}
    kick, snare, hat = KITS[spec.kit](rng, rate)
    kicks, snares, hat_step = DRUM_PATTERNS[spec.drum_pattern]
    bars = int(np.ceil(spec.duration_s / bar_s))
    cache: dict[tuple[str, int, float], np.ndarray] = {}

    def tone(kind: str, note: int, length_s: float) -> np.ndarray:
        key = (kind, note, round(length_s, 4))
        if key not in cache:
            cache[key] = INSTRUMENTS[kind](hz(note), length_s, rate, rng)
        return cache[key]

    for bar in range(bars):
        degree = spec.progression[bar % len(spec.progression)]
        start = int(round(bar * bar_s * rate))
        notes = [48 + spec.key_root + scale_step(scale, degree + step) for step in (0, 2, 4)]
        if spec.chord_style == "pad":
            for note in notes:
                add_at(layers["chords"], tone(spec.chord_instrument, note, bar_s), start)
        elif spec.chord_style == "stabs":
            for hit in range(4):
                for note in notes:
                    add_at(
                        layers["chords"], tone(spec.chord_instrument, note, 0.45 * beat), start + int(hit * beat * rate)
                    )
        else:  # arpeggio in eighths
            for eighth in range(8):
                note = notes[eighth % 3] + (12 if eighth >= 4 else 0)
                add_at(
                    layers["chords"],
                    1.4 * tone(spec.chord_instrument, note, 0.5 * beat),
                    start + int(eighth * 0.5 * beat * rate),
                )
        root = 36 + spec.key_root + scale_step(scale, degree)
        for eighth in range(8):
            add_at(
                layers["bass"],
                tone(spec.bass_instrument, root + (12 if eighth % 4 == 3 else 0), 0.48 * beat),
                start + int(eighth * 0.5 * beat * rate),
            )
        if bar == 0:
            continue  # drums come in after the first bar
        for onset in kicks:
            add_at(layers["drums"], kick, start + int(onset * beat * rate))
        for onset in snares:
            add_at(layers["drums"], snare * rng.uniform(0.85, 1.0), start + int(onset * beat * rate))
        for step in np.arange(0, 4, hat_step):
            add_at(layers["drums"], hat * rng.uniform(0.6, 1.0), start + int(step * beat * rate))
    if spec.lead_instrument:
        layers["lead"] = _lead_melody(rng, spec, total)
    for name, level in (("chords", 0.22), ("bass", 0.3), ("drums", 1.0), ("lead", 0.3)):
        if name in layers:
            layers[name] *= level / max(np.abs(layers[name]).max(), 1e-9) * (0.9 if name != "drums" else 0.8)
    return layers


def _lead_melody(rng: np.random.Generator, spec: BackingSpec, total: int) -> np.ndarray:
    rate, beat = spec.sample_rate, 60.0 / spec.tempo_bpm
    scale = SCALES[spec.mode]
    lead = np.zeros(total)
    cursor, degree = int(4 * beat * rate), 7
    while cursor < total:
        length = float((0.5, 1.0, 1.0, 2.0)[int(rng.integers(4))]) * beat
        degree = int(np.clip(degree + rng.integers(-2, 3), 0, 14))
        add_at(
            lead,
            INSTRUMENTS[spec.lead_instrument](hz(60 + spec.key_root + scale_step(scale, degree)), length, rate, rng),
            cursor,
        )
        cursor += int(length * rate) + (int(beat * rate) if rng.random() < 0.2 else 0)
    return lead
