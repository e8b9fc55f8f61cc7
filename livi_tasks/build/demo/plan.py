"""The plan of a demo catalogue: every random choice drawn from one generator seeded by ``seed``,
so that rendering it is deterministic (espeak-ng is too) and one seed gives the same bytes."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from livi_tasks.build.demo.backing import HAT_STEPS, KICK_PATTERNS, PROGRESSIONS, SNARE_PATTERNS, BackingSpec
from livi_tasks.build.demo.voice import distinct_voices
from livi_tasks.build.demo.words import write_lyrics
from livi_tasks.build.synth.folder import check_counts
from livi_tasks.build.synth.instruments import SCALES

MIN_TRACK_DURATION_S = 8.0  # the longest lyric line at the slowest voice must fit after the intro
MAX_TRACK_DURATION_S = 600.0


@dataclass(frozen=True)
class TrackSpec:
    """A planned track: the backing, and for sung tracks the voice and the lines to try to fit."""

    track_id: str
    work_id: str
    kind: str  # version | instrumental | hard_negative
    backing: BackingSpec
    audio_format: str  # wav | flac
    backing_of: str = ""  # hard negatives: the version whose backing they reuse
    voice: str = ""
    speed_wpm: int = 0
    word_gap: int = 0  # espeak-ng -g: extra pause between words in 10 ms units, a sung cadence
    pitch: int = 0
    intro_s: float = 0.0
    target_snr_db: float = float("nan")
    planned_lines: tuple[str, ...] = ()
    line_pitch_offsets: tuple[int, ...] = ()  # espeak -p offset per planned line: the melody
    vocal_seed: int = 0

    @property
    def relpath(self) -> str:
        return f"audio/{self.work_id}/{self.track_id}.{self.audio_format}"


@dataclass(frozen=True)
class DemoPlan:
    lyrics: dict[str, list[str]]
    tracks: tuple[TrackSpec, ...]


@dataclass(frozen=True)
class DemoParameters:
    """What a demo catalogue is made from (checked here: a bad value is an error naming it)."""

    works: int = 12  # songs, each with its own lyrics
    versions: int = 3  # covers per work
    seed: int = 0  # the same seed gives the same catalogue
    instrumentals: int = 3  # tracks without a voice
    hard_negatives: int = 3  # a version's backing sung with other lyrics
    min_duration_s: float = 40.0
    max_duration_s: float = 60.0

    def __post_init__(self) -> None:
        lowest = {"works": 1, "versions": 1, "seed": 0, "instrumentals": 0, "hard_negatives": 0}
        for name, value in check_counts({name: (getattr(self, name), low) for name, low in lowest.items()}).items():
            object.__setattr__(self, name, value)
        for name in ("min_duration_s", "max_duration_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ValueError(f"{name}: expected a number of seconds, got {value!r}")
            if not MIN_TRACK_DURATION_S <= value <= MAX_TRACK_DURATION_S:
                raise ValueError(f"{name}: must lie in [{MIN_TRACK_DURATION_S}, {MAX_TRACK_DURATION_S}] s, got {value}")
            object.__setattr__(self, name, float(value))
        if self.max_duration_s < self.min_duration_s:
            raise ValueError(
                f"max_duration_s: must be at least min_duration_s ({self.min_duration_s}), got {self.max_duration_s}"
            )
        if self.hard_negatives > self.works * self.versions:
            raise ValueError(
                f"hard_negatives: at most works * versions ({self.works * self.versions}) backings to reuse, "
                f"got {self.hard_negatives}"
            )


def plan_demo_catalogue(**parameters: int | float) -> DemoPlan:
    """Draw every random choice of the catalogue (``parameters``: those of ``DemoParameters``);
    rendering the plan is then deterministic."""
    return _draw_plan(DemoParameters(**parameters))


def _draw_plan(parameters: DemoParameters) -> DemoPlan:
    works, versions, seed = parameters.works, parameters.versions, parameters.seed
    instrumentals, hard_negatives = parameters.instrumentals, parameters.hard_negatives
    min_duration_s, max_duration_s = parameters.min_duration_s, parameters.max_duration_s
    rng = np.random.default_rng(seed)
    work_ids = [f"work-{index:02d}" for index in range(1, works + 1)]
    negative_ids = [f"hardneg-{index:02d}" for index in range(1, hard_negatives + 1)]
    lyrics = write_lyrics(rng, work_ids + negative_ids)

    tracks: list[TrackSpec] = []
    for work_id in work_ids:
        mode = str(rng.choice(list(SCALES)))
        progression = _choice(rng, PROGRESSIONS[mode])
        keys = rng.choice(12, size=versions, replace=versions > 12)
        voices = distinct_voices(rng, versions)
        for version, (key_root, voice) in enumerate(zip(keys, voices), start=1):
            backing = _draw_backing(rng, min_duration_s, max_duration_s, int(key_root), mode, progression, lead=False)
            tracks.append(
                _draw_sung_track(rng, f"{work_id}-v{version}", work_id, "version", backing, voice, lyrics[work_id])
            )
    for index in range(1, instrumentals + 1):
        mode = str(rng.choice(list(SCALES)))
        progression = _choice(rng, PROGRESSIONS[mode])
        key_root = int(rng.integers(12))
        backing = _draw_backing(rng, min_duration_s, max_duration_s, key_root, mode, progression, lead=True)
        work_id = f"instrumental-{index:02d}"
        tracks.append(TrackSpec(work_id, work_id, "instrumental", backing, _draw_format(rng)))
    versions_so_far = [track for track in tracks if track.kind == "version"]
    sources = rng.choice(len(versions_so_far), size=hard_negatives, replace=False)
    for work_id, source_index in zip(negative_ids, sources):
        source = versions_so_far[int(source_index)]
        voice = distinct_voices(rng, 1)[0]
        track = _draw_sung_track(rng, work_id, work_id, "hard_negative", source.backing, voice, lyrics[work_id])
        tracks.append(replace(track, backing_of=source.track_id))
    return DemoPlan(lyrics=lyrics, tracks=tuple(tracks))


def _draw_backing(
    rng: np.random.Generator,
    min_duration_s: float,
    max_duration_s: float,
    key_root: int,
    mode: str,
    progression: tuple[int, ...],
    lead: bool,
) -> BackingSpec:
    return BackingSpec(
        seed=int(rng.integers(2**31)),
        sample_rate=int(rng.choice([22_050, 44_100])),
        channels=int(rng.choice([1, 2], p=[0.65, 0.35])),
        duration_s=round(float(rng.uniform(min_duration_s, max_duration_s)), 2),
        key_root=key_root,
        mode=mode,
        progression=tuple(int(degree) for degree in progression),
        tempo_bpm=float(rng.integers(78, 141)),
        chord_harmonics=int(rng.integers(2, 7)),
        chord_stabs=bool(rng.random() < 0.4),
        kick_pattern=_choice(rng, KICK_PATTERNS),
        snare_pattern=_choice(rng, SNARE_PATTERNS),
        hat_step_beats=float(_choice(rng, HAT_STEPS)),
        lead_melody=lead,
    )


def _draw_sung_track(
    rng: np.random.Generator,
    track_id: str,
    work_id: str,
    kind: str,
    backing: BackingSpec,
    voice: str,
    lines: list[str],
) -> TrackSpec:
    duration = backing.duration_s
    intro_s = round(float(rng.uniform(min(3.0, 0.1 * duration), min(12.0, 0.2 * duration))), 2)
    melody = rng.integers(-15, 16, size=len(lines))
    planned: list[str] = []
    offsets: list[int] = []
    # Two passes over the lyrics, each leaving some lines out and doubling others, with the
    # opening lines back as a chorus in between; rendering stops where the track ends.
    for _ in range(2):
        for index, line in enumerate(lines):
            if rng.random() < 0.12:
                continue
            repeats = 2 if rng.random() < 0.15 else 1
            planned.extend([line] * repeats)
            offsets.extend([int(melody[index])] * repeats)
        planned.extend(lines[:2])
        offsets.extend(int(offset) for offset in melody[:2])
    return TrackSpec(
        track_id=track_id,
        work_id=work_id,
        kind=kind,
        backing=backing,
        audio_format=_draw_format(rng),
        voice=voice,
        speed_wpm=int(rng.integers(110, 161)),
        word_gap=int(rng.integers(0, 7)),
        pitch=int(rng.integers(30, 71)),
        intro_s=intro_s,
        target_snr_db=round(float(rng.uniform(2.0, 6.0)), 2),
        planned_lines=tuple(planned),
        line_pitch_offsets=tuple(offsets),
        vocal_seed=int(rng.integers(2**31)),
    )


def _draw_format(rng: np.random.Generator) -> str:
    return "flac" if rng.random() < 0.3 else "wav"


def _choice(rng: np.random.Generator, options: tuple) -> tuple:
    return options[int(rng.integers(len(options)))]
