"""A planned track rendered: the lines sung one after another from the end of the intro, with
breaks between verses, the vocals set a few dB above the backing over the sung regions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from livi_tasks.build.demo.backing import synthesise_backing
from livi_tasks.build.demo.plan import TrackSpec
from livi_tasks.build.demo.voice import add_room, sing_line


@dataclass(frozen=True)
class SungLine:
    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class TrackStems:
    """A track before mixing: mono vocals, backing as (samples, channels), and where lines are."""

    sample_rate: int
    vocals: np.ndarray
    backing: np.ndarray
    lines: tuple[SungLine, ...]

    def vocal_to_backing_db(self) -> float:
        """RMS of the vocals over the sung regions relative to the backing over the same regions."""
        mask = _region_mask(self.lines, self.sample_rate, len(self.vocals))
        if not mask.any():
            return float("nan")
        return _db(_rms(self.vocals[mask]) / _rms(self.backing.mean(axis=1)[mask]))

    def mix(self) -> np.ndarray:
        return self.backing + self.vocals[:, None]


def render_track_stems(spec: TrackSpec) -> TrackStems:
    """Render a planned track's vocals and backing, unmixed, with the vocals at the target level."""
    backing = synthesise_backing(spec.backing)
    rate = spec.backing.sample_rate
    vocals = np.zeros(len(backing), dtype=np.float64)
    if not spec.planned_lines:
        return TrackStems(rate, vocals, backing, ())
    rng = np.random.default_rng(spec.vocal_seed)
    rendered: dict[tuple[str, int], np.ndarray] = {}
    lines: list[SungLine] = []
    cursor_s = spec.intro_s
    outro_s = max(1.5, 0.05 * spec.backing.duration_s)
    latest_end_s = spec.backing.duration_s - outro_s
    for text, pitch_offset in zip(spec.planned_lines, spec.line_pitch_offsets):
        # A repeated line is sung the same way each time, as a chorus would be.
        if (text, pitch_offset) not in rendered:
            pitch = int(np.clip(spec.pitch + pitch_offset, 0, 99))
            rendered[text, pitch_offset] = sing_line(text, spec.voice, spec.speed_wpm, pitch, spec.word_gap, rng, rate)
        audio = rendered[text, pitch_offset]
        if cursor_s + len(audio) / rate > latest_end_s:
            break
        start = int(round(cursor_s * rate))
        vocals[start : start + len(audio)] += audio
        lines.append(SungLine(text, start / rate, (start + len(audio)) / rate))
        gap_s = rng.uniform(0.3, 1.2)
        if len(lines) % 4 == 0:
            gap_s += rng.uniform(1.5, 4.0)  # an instrumental break between verses
        cursor_s = lines[-1].end_s + gap_s
    vocals = add_room(vocals, rate, rng)
    mask = _region_mask(lines, rate, len(vocals))
    if mask.any():
        gain = _rms(backing.mean(axis=1)[mask]) * 10 ** (spec.target_snr_db / 20) / _rms(vocals[mask])
        vocals *= gain
    return TrackStems(rate, vocals, backing, tuple(lines))


def _region_mask(lines: tuple[SungLine, ...] | list[SungLine], rate: int, length: int) -> np.ndarray:
    mask = np.zeros(length, dtype=bool)
    for line in lines:
        mask[int(round(line.start_s * rate)) : int(round(line.end_s * rate))] = True
    return mask


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values))))


def _db(ratio: float) -> float:
    return float(20 * np.log10(ratio))
