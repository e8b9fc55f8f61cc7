"""Demo catalogue generator: real, listenable songs made offline from espeak-ng and numpy.

Every work gets its own lyrics from a small grammar over its own slice of a word list, so works
differ in what is sung. Each version of a work sings those lyrics with a different espeak-ng
voice, speed and pitch over a different synthesised backing (same chord progression, other key,
tempo, timbre and drum pattern: covers share harmony, as real ones do). Vocals sit only a few dB
above the backing, lines are dropped or repeated per version and there is an instrumental intro,
so the catalogue is hard enough to exercise vocal filtering, transcription and retrieval.

Besides versions the catalogue holds instrumentals (no voice) and hard negatives (the exact
backing of some version with other lyrics), each under its own work_id so that they are
versions of nothing.

Everything random comes from one ``numpy.random.Generator`` seeded by ``seed`` and espeak-ng is
deterministic, so one seed gives the same bytes on every run.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal
from tqdm import tqdm

# Bump when the generated audio or tables change, so that an existing catalogue is rebuilt.
GENERATOR_VERSION = 2

ESPEAK_RATE = 22_050
OUTPUT_FILES = ("audio", "manifest.csv", "lyrics.json", "vocals.csv", "tracks.csv", "demo.json")
TRACK_COLUMNS = (
    "track_id",
    "work_id",
    "kind",
    "voice",
    "speed",
    "word_gap",
    "pitch",
    "key",
    "tempo",
    "intro_s",
    "duration_s",
    "sample_rate",
    "channels",
    "format",
    "backing_seed",
    "backing_of",
    "lines_sung",
    "target_snr_db",
    "snr_db",
)
MIN_TRACK_DURATION_S = 8.0  # the longest lyric line at the slowest voice must fit after the intro
MAX_TRACK_DURATION_S = 600.0

# Accents and voice variants that espeak-ng pronounces clearly (the robotic, whispering and
# croaking variants would make the demo a test of espeak, not of the pipeline).
ESPEAK_ACCENTS = ("en", "en-us", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc", "en-gb-x-gbclan")
ESPEAK_VARIANTS = ("", "+m1", "+m2", "+m3", "+m4", "+m6", "+m7", "+f1", "+f2", "+f3", "+f4", "+f5")

NOUNS = """river mountain window candle garden ocean shadow thunder winter summer harbor station
letter mirror bottle engine ribbon pocket jacket ladder meadow valley forest island desert castle
bridge tower street highway morning evening midnight sunrise moonlight rainbow feather diamond
blanket kitchen doorway chimney lantern compass anchor pillow basket bucket hammer needle
button saddle wagon tunnel canyon glacier orchard vineyard prairie pasture cottage palace
temple village market circus theater museum library hospital factory railroad airplane rocket
planet comet galaxy volcano tornado blizzard lightning snowflake raindrop puddle pebble boulder
seashell sailor soldier farmer baker doctor teacher stranger brother sister daughter mother father
tiger rabbit horse eagle falcon dolphin turtle spider beetle butterfly sparrow pigeon donkey camel
elephant lion monkey penguin guitar trumpet violin piano drummer melody picture painting statue
carpet curtain cupboard elevator umbrella necklace bracelet helmet sweater pencil notebook
envelope ticket passport suitcase paddle lemon cherry apple orange banana potato tomato carrot
onion pepper honey butter coffee biscuit sandwich""".split()

VERBS = """carry follow whisper wander gather borrow remember forget promise travel dance shine
burn break chase build paint climb cross open fill find keep lose call wait watch write read
drive ride fly swim walk rise turn hide seek steal bring send throw catch pull push touch kiss
hear taste carve plant grow sail drift dream pray fight feed greet guard heal hunt knock lift
mend miss pour race ring roll save sell shake sweep swing teach tie trust wake wash wish wrap
yell cook count dig drag fold hang jump kick laugh lead melt polish""".split()

ADJECTIVES = """golden silver lonely gentle broken quiet wild bright hollow heavy empty frozen
burning secret shallow ancient crooked distant endless faded fragile hungry humble narrow
purple restless rusty sacred scarlet silent simple sleepy smoky sudden tender tired velvet
wooden yellow bitter brave clever cloudy crimson dusty eager fierce foggy friendly happy
honest icy lazy lucky muddy noisy pale proud rainy rough salty sandy shiny sharp shy steady
stormy sunny thin windy wise cozy giant magic modern royal amber bold calm chilly dizzy fancy
gloomy graceful grumpy jolly lively mellow misty nervous peaceful precious ragged shaggy sleek
slender spicy stubborn swift tiny weary wicked""".split()

# N, V and A are filled from a work's own nouns, verbs and adjectives; the rest is shared glue.
LINE_TEMPLATES = (
    "I will V the A N tonight",
    "you V my N like a A N",
    "the N and the N are A",
    "oh my A N come V with me",
    "we V across the A N",
    "every N I V is A",
    "take me back to the A N",
    "no N can V this A N",
    "V the N and V the N",
    "down by the N we V again",
    "they V the N in the A N",
    "A N falling on the N",
    "hold the N and V the A N",
    "I V your N under a A N",
    "when the N is A we V",
)
NOUNS_PER_WORK, VERBS_PER_WORK, ADJECTIVES_PER_WORK = 8, 6, 6

PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
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


@dataclass(frozen=True)
class DemoPlan:
    lyrics: dict[str, list[str]]
    tracks: tuple[TrackSpec, ...]


def make_demo_catalogue(
    out_dir: str | Path,
    works: int = 12,
    versions: int = 3,
    seed: int = 0,
    instrumentals: int = 3,
    hard_negatives: int = 3,
    min_duration_s: float = 40,
    max_duration_s: float = 60,
) -> Path:
    """Write a demo catalogue into ``out_dir`` and return the path of its ``manifest.csv``.

    Layout: ``audio/<work_id>/<track_id>.(wav|flac)``, ``manifest.csv`` (track_id, work_id,
    path relative to the manifest), ``lyrics.json`` ({"works": {work_id: lines}, "tracks":
    {track_id: lines sung in order}}), ``vocals.csv`` (track_id, start_s, end_s per sung line),
    ``tracks.csv`` (per-track metadata) and ``demo.json`` (the parameters). The catalogue is built
    in a temporary sibling folder and renamed into place; an existing catalogue made with the same
    parameters is kept as is.
    """
    parameters = _validated_parameters(
        works, versions, seed, instrumentals, hard_negatives, min_duration_s, max_duration_s
    )
    out_dir = Path(out_dir)
    manifest = out_dir / "manifest.csv"
    description = {"generator_version": GENERATOR_VERSION, "parameters": parameters}
    if _existing_description(out_dir) == description and manifest.exists():
        return manifest
    _check_replaceable(out_dir)

    plan = plan_demo_catalogue(**parameters)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the catalogue is meant to be shared
    try:
        sung = _render_all(plan.tracks, staging)
        _write_tables(staging, plan, sung)
        (staging / "demo.json").write_text(json.dumps(description, indent=2, sort_keys=True) + "\n")
        _replace_folder(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def plan_demo_catalogue(
    works: int = 12,
    versions: int = 3,
    seed: int = 0,
    instrumentals: int = 3,
    hard_negatives: int = 3,
    min_duration_s: float = 40,
    max_duration_s: float = 60,
) -> DemoPlan:
    """Draw every random choice of the catalogue; rendering the plan is then deterministic."""
    _validated_parameters(works, versions, seed, instrumentals, hard_negatives, min_duration_s, max_duration_s)
    rng = np.random.default_rng(seed)
    work_ids = [f"work-{index:02d}" for index in range(1, works + 1)]
    negative_ids = [f"hardneg-{index:02d}" for index in range(1, hard_negatives + 1)]
    lyrics = _write_lyrics(rng, work_ids + negative_ids)

    tracks: list[TrackSpec] = []
    for work_id in work_ids:
        mode = str(rng.choice(list(SCALES)))
        progression = _choice(rng, PROGRESSIONS[mode])
        keys = rng.choice(12, size=versions, replace=versions > 12)
        voices = _distinct_voices(rng, versions)
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
        voice = _distinct_voices(rng, 1)[0]
        track = _draw_sung_track(rng, work_id, work_id, "hard_negative", source.backing, voice, lyrics[work_id])
        tracks.append(replace(track, backing_of=source.track_id))
    return DemoPlan(lyrics=lyrics, tracks=tuple(tracks))


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
            rendered[text, pitch_offset] = _sing_line(spec, text, pitch_offset, rng, rate)
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
    vocals = _add_room(vocals, rate, rng)
    mask = _region_mask(lines, rate, len(vocals))
    if mask.any():
        gain = _rms(backing.mean(axis=1)[mask]) * 10 ** (spec.target_snr_db / 20) / _rms(vocals[mask])
        vocals *= gain
    return TrackStems(rate, vocals, backing, tuple(lines))


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
        notes = [48 + spec.key_root + _scale_step(scale, degree + step) for step in (0, 2, 4)]
        bar_start = int(round(bar * 4 * beat * rate))
        # Stabs hit every beat and die quickly; pads hold the whole bar.
        hits, length_s, decay_s = ((0, 1, 2, 3), 0.45 * beat, 0.35) if spec.chord_stabs else ((0,), 4 * beat, 1.5)
        tone = sum(_harmonic_tone(_hz(note), length_s, rate, spec.chord_harmonics) for note in notes)
        tone = tone * _envelope(len(tone), rate, 0.01, decay_s)
        for hit in hits:
            _add_at(chords, tone, bar_start + int(hit * beat * rate))
        root = 36 + spec.key_root + _scale_step(scale, degree)
        for eighth in range(8):
            note = root + (12 if eighth % 4 == 3 else 0)  # an octave jump for movement
            tone = _harmonic_tone(_hz(note), 0.48 * beat, rate, 3)
            _add_at(bass, tone * _envelope(len(tone), rate, 0.005, 0.18), bar_start + int(eighth * 0.5 * beat * rate))

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


def _validated_parameters(
    works: int,
    versions: int,
    seed: int,
    instrumentals: int,
    hard_negatives: int,
    min_duration_s: float,
    max_duration_s: float,
) -> dict[str, int | float]:
    for name, value, lowest in (
        ("works", works, 1),
        ("versions", versions, 1),
        ("seed", seed, 0),
        ("instrumentals", instrumentals, 0),
        ("hard_negatives", hard_negatives, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name}: expected an integer, got {value!r}")
        if value < lowest:
            raise ValueError(f"{name}: must be at least {lowest}, got {value}")
    for name, value in (("min_duration_s", min_duration_s), ("max_duration_s", max_duration_s)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueError(f"{name}: expected a number of seconds, got {value!r}")
        if not MIN_TRACK_DURATION_S <= value <= MAX_TRACK_DURATION_S:
            raise ValueError(f"{name}: must lie in [{MIN_TRACK_DURATION_S}, {MAX_TRACK_DURATION_S}] s, got {value}")
    if max_duration_s < min_duration_s:
        raise ValueError(f"max_duration_s: must be at least min_duration_s ({min_duration_s}), got {max_duration_s}")
    if hard_negatives > works * versions:
        raise ValueError(
            f"hard_negatives: at most works * versions ({works * versions}) backings to reuse, got {hard_negatives}"
        )
    return {
        "works": int(works),
        "versions": int(versions),
        "seed": int(seed),
        "instrumentals": int(instrumentals),
        "hard_negatives": int(hard_negatives),
        "min_duration_s": float(min_duration_s),
        "max_duration_s": float(max_duration_s),
    }


def _write_lyrics(rng: np.random.Generator, work_ids: list[str]) -> dict[str, list[str]]:
    """Give each work its own vocabulary (disjoint while the word lists last) and 6-10 lines."""
    decks = {"N": _Deck(rng, NOUNS), "V": _Deck(rng, VERBS), "A": _Deck(rng, ADJECTIVES)}
    sizes = {"N": NOUNS_PER_WORK, "V": VERBS_PER_WORK, "A": ADJECTIVES_PER_WORK}
    lyrics = {}
    for work_id in work_ids:
        vocabulary = {slot: decks[slot].deal(size) for slot, size in sizes.items()}
        cursors = dict.fromkeys(vocabulary, 0)
        line_count = int(rng.integers(6, 11))
        templates = rng.permutation(len(LINE_TEMPLATES))[:line_count]
        lines = []
        for template_index in templates:
            words: list[str] = []
            for token in LINE_TEMPLATES[template_index].split():
                if token in vocabulary:
                    # Walk through the work's words so each is used before any repeats.
                    word = vocabulary[token][cursors[token] % len(vocabulary[token])]
                    cursors[token] += 1
                    if words and words[-1] == "a" and word[0] in "aeiou":
                        words[-1] = "an"
                    words.append(word)
                else:
                    words.append(token)
            lines.append(" ".join(words))
        lyrics[work_id] = lines
    return lyrics


class _Deck:
    """Deals words without replacement; reshuffles only once the list is used up."""

    def __init__(self, rng: np.random.Generator, words: list[str]):
        self.rng = rng
        self.words = words
        self.order: list[str] = []

    def deal(self, count: int) -> list[str]:
        dealt: list[str] = []
        while len(dealt) < count:
            if not self.order:
                self.order = [self.words[i] for i in self.rng.permutation(len(self.words))]
            word = self.order.pop()
            if word not in dealt:
                dealt.append(word)
        return dealt


def _distinct_voices(rng: np.random.Generator, count: int) -> list[str]:
    pool = [accent + variant for accent in ESPEAK_ACCENTS for variant in ESPEAK_VARIANTS]
    picks = rng.choice(len(pool), size=count, replace=count > len(pool))
    return [pool[int(index)] for index in picks]


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


def _sing_line(spec: TrackSpec, text: str, pitch_offset: int, rng: np.random.Generator, rate: int) -> np.ndarray:
    """Speak one line with espeak-ng, trim its silences, add vibrato and a small pitch shift."""
    pitch = int(np.clip(spec.pitch + pitch_offset, 0, 99))
    with tempfile.TemporaryDirectory(prefix="livi-espeak-") as folder:
        wav_path = Path(folder) / "line.wav"
        subprocess.run(
            [
                "espeak-ng",
                "-v",
                spec.voice,
                "-s",
                str(spec.speed_wpm),
                "-p",
                str(pitch),
                "-g",
                str(spec.word_gap),
                "-w",
                str(wav_path),
                text,
            ],
            check=True,
            capture_output=True,
        )
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


def _add_room(vocals: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A short, quiet reverb tail so the voice sits in the mix instead of on top of it."""
    tail = np.arange(int(0.5 * rate)) / rate
    response = rng.standard_normal(len(tail)) * np.exp(-tail / 0.12)
    response *= 0.25 / np.sqrt(np.sum(response**2))
    response[0] = 1.0
    return signal.oaconvolve(vocals, response)[: len(vocals)]


def _harmonic_tone(frequency: float, length_s: float, rate: int, harmonics: int) -> np.ndarray:
    times = np.arange(int(length_s * rate)) / rate
    tone = np.zeros_like(times)
    for k in range(1, harmonics + 1):
        if k * frequency < rate / 2:
            tone += np.sin(2 * np.pi * k * frequency * times) / k  # sawtooth-like rolloff
    return tone


def _envelope(length: int, rate: int, attack_s: float, decay_s: float) -> np.ndarray:
    times = np.arange(length) / rate
    attack = np.clip(times / attack_s, 0, 1)
    release = np.clip((length - np.arange(length)) / (0.01 * rate), 0, 1)  # no click at the cut
    return attack * np.exp(-times / decay_s) * release


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
        length_beats = float(_choice(rng, (0.5, 1.0, 1.0, 2.0)))
        degree = int(np.clip(degree + rng.integers(-2, 3), 0, 14))
        note = 60 + spec.key_root + _scale_step(scale, degree)
        times = np.arange(int(length_beats * beat * rate)) / rate
        vibrato = 0.004 * np.sin(2 * np.pi * 5.5 * times)
        phase = 2 * np.pi * _hz(note) * np.cumsum(1 + vibrato) / rate
        tone = np.sin(phase) + 0.3 * np.sin(2 * phase) + 0.15 * np.sin(3 * phase)
        _add_at(lead, tone * _envelope(len(tone), rate, 0.03, 0.8), cursor)
        cursor += len(times) + (int(beat * rate) if rng.random() < 0.2 else 0)
    return lead


def _scale_step(scale: tuple[int, ...], degree: int) -> int:
    return 12 * (degree // len(scale)) + scale[degree % len(scale)]


def _hz(midi_note: float) -> float:
    return 440.0 * 2 ** ((midi_note - 69) / 12)


def _add_at(target: np.ndarray, sound: np.ndarray, start: int) -> None:
    """Add ``sound`` at ``start``, wrapping around the end so a loop stays seamless when tiled."""
    end = min(len(target), start + len(sound))
    target[start:end] += sound[: end - start]
    spill = len(sound) - (end - start)
    if spill > 0 and len(target) > 0:
        target[: min(spill, len(target))] += sound[end - start : end - start + min(spill, len(target))]


def _tile(loop: np.ndarray, total: int) -> np.ndarray:
    return np.tile(loop, total // len(loop) + 1)[:total]


def _region_mask(lines: tuple[SungLine, ...] | list[SungLine], rate: int, length: int) -> np.ndarray:
    mask = np.zeros(length, dtype=bool)
    for line in lines:
        mask[int(round(line.start_s * rate)) : int(round(line.end_s * rate))] = True
    return mask


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values))))


def _db(ratio: float) -> float:
    return float(20 * np.log10(ratio))


def _render_and_write(spec: TrackSpec, root: Path) -> tuple[tuple[SungLine, ...], float]:
    stems = render_track_stems(spec)
    mixed = stems.mix()
    mixed *= 0.89 / np.abs(mixed).max()  # peak at -1 dBFS; the same gain keeps the stems' ratio
    path = root / spec.relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    data = mixed[:, 0] if mixed.shape[1] == 1 else mixed
    sf.write(path, data.astype(np.float32), spec.backing.sample_rate, "PCM_16", format=spec.audio_format.upper())
    return stems.lines, stems.vocal_to_backing_db()


def _render_all(tracks: tuple[TrackSpec, ...], root: Path) -> dict[str, tuple[tuple[SungLine, ...], float]]:
    # espeak-ng runs as subprocesses and numpy releases the GIL on large arrays, so threads suffice.
    results: dict[str, tuple[tuple[SungLine, ...], float]] = {}
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        futures = {pool.submit(_render_and_write, spec, root): spec.track_id for spec in tracks}
        for future in tqdm(as_completed(futures), total=len(futures), desc="demo tracks", unit="track"):
            results[futures[future]] = future.result()
    return results


def _write_tables(root: Path, plan: DemoPlan, sung: dict[str, tuple[tuple[SungLine, ...], float]]) -> None:
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["track_id", "work_id", "path"])
        writer.writerows([spec.track_id, spec.work_id, spec.relpath] for spec in plan.tracks)
    with open(root / "vocals.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["track_id", "start_s", "end_s"])
        for spec in plan.tracks:
            lines = sung[spec.track_id][0]
            writer.writerows([spec.track_id, f"{line.start_s:.3f}", f"{line.end_s:.3f}"] for line in lines)
    with open(root / "tracks.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, TRACK_COLUMNS, restval="")
        writer.writeheader()
        for spec in plan.tracks:
            lines, snr_db = sung[spec.track_id]
            backing = spec.backing
            row = {
                "track_id": spec.track_id,
                "work_id": spec.work_id,
                "kind": spec.kind,
                "key": backing.key,
                "tempo": f"{backing.tempo_bpm:g}",
                "duration_s": f"{backing.duration_s:g}",
                "sample_rate": backing.sample_rate,
                "channels": backing.channels,
                "format": spec.audio_format,
                "backing_seed": backing.seed,
                "backing_of": spec.backing_of,
                "lines_sung": len(lines),
            }
            if spec.kind != "instrumental":
                row |= {
                    "voice": spec.voice,
                    "speed": spec.speed_wpm,
                    "word_gap": spec.word_gap,
                    "pitch": spec.pitch,
                    "intro_s": f"{spec.intro_s:g}",
                    "target_snr_db": f"{spec.target_snr_db:g}",
                    "snr_db": f"{snr_db:.2f}",
                }
            writer.writerow(row)
    sung_lines = {spec.track_id: [line.text for line in sung[spec.track_id][0]] for spec in plan.tracks}
    lyrics = {"works": plan.lyrics, "tracks": sung_lines}
    (root / "lyrics.json").write_text(json.dumps(lyrics, indent=2) + "\n")


def _existing_description(out_dir: Path) -> dict | None:
    try:
        return json.loads((out_dir / "demo.json").read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None


def _check_replaceable(out_dir: Path) -> None:
    """Only an empty folder or an earlier demo catalogue may be replaced: never a user's files."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ValueError(f"out_dir: {out_dir} exists and is not a folder")
    foreign = sorted(entry.name for entry in out_dir.iterdir() if entry.name not in OUTPUT_FILES)
    if foreign or (any(out_dir.iterdir()) and not (out_dir / "demo.json").exists()):
        reason = ", ".join(foreign[:3]) or "no demo.json"
        raise ValueError(f"out_dir: {out_dir} holds files that are not a demo catalogue ({reason})")


def _replace_folder(staging: Path, out_dir: Path) -> None:
    if out_dir.exists():
        retired = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
        out_dir.rename(retired)
        staging.rename(out_dir)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(out_dir)
