"""Song catalogues of a family: plan every random choice from a seed, render, write atomically.

A work is its lyrics, its chord progression and its melody (one tune per line). A version of it
changes everything a cover may change: singer (engine, voice, pace), key, tempo, instruments and
their playing style, drum kit and groove, song structure, mix, effects, sample rate and file
format. Hard negatives reuse a version's exact backing under other lyrics; instrumentals carry a
lead melody in the voice's range and no voice. Both get their own work ids (versions of nothing).

The written layout is the demo catalogue's: ``audio/<work>/<track>.<ext>``, ``manifest.csv``,
``lyrics.json`` ({"works": {work: lines}, "tracks": {track: lines sung, in order}}),
``vocals.csv`` (track_id, start_s, end_s per sung line), ``tracks.csv`` and ``corpus.json``.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from livi_tasks.build.synth import effects
from livi_tasks.build.synth.folder import check_counts, write_audio, write_catalogue_folder, write_csv
from livi_tasks.build.synth.instruments import PROGRESSIONS, SCALES, BackingSpec, render_backing
from livi_tasks.build.synth.lyrics import write_lyrics
from livi_tasks.build.synth.songs import GENERATOR_VERSION as SONGS_GENERATOR_VERSION
from livi_tasks.build.synth.songs import SONG_FAMILIES, plan_songs, write_song, write_song_tables
from livi_tasks.build.synth.voices import Voice, sing_bent, sing_on_notes

GENERATOR_VERSION = 1
OUTPUT_FILES = ("audio", "manifest.csv", "lyrics.json", "vocals.csv", "tracks.csv", "corpus.json")
ESPEAK_ACCENTS = (
    "en",
    "en-us",
    "en-gb-x-rp",
    "en-gb-scotland",
    "en-029",
    "en-us-nyc",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
)
ESPEAK_VARIANTS = ("", "+m1", "+m2", "+m3", "+m4", "+m6", "+m7", "+f1", "+f2", "+f3", "+f4", "+f5")


@dataclass(frozen=True)
class Family:
    """The parts a family draws from. ``randomised`` and ``foreign`` share none of their voices,
    instruments, kits, templates, words, structures or effects chains. ``world`` names the family
    whose words, templates, song structure and effects chains it follows (its own, or
    ``randomised`` for a training family that changes only the singers)."""

    name: str
    world: str
    voices: tuple[tuple[str, str], ...]  # (engine, voice)
    chord_instruments: tuple[str, ...]
    bass_instruments: tuple[str, ...]
    lead_instruments: tuple[str, ...]
    kits: tuple[str, ...]
    formats: tuple[str, ...]
    sample_rates: tuple[int, ...]
    snr_db: tuple[float, float]
    duration_s: tuple[float, float]
    singing: str = "bend"  # bend: each line's speech bent along its tune; notes: each word held on a note


FAMILIES = {
    "randomised": Family(
        name="randomised",
        world="randomised",
        voices=tuple(("espeak-ng", accent + variant) for accent in ESPEAK_ACCENTS for variant in ESPEAK_VARIANTS)
        + tuple(
            ("flite", voice) for voice in ("awb", "rms") for _ in range(12)
        ),  # flite weighted like one espeak accent each
        chord_instruments=("additive", "fm_brass", "organ", "filtered_saw"),
        bass_instruments=("additive", "filtered_saw"),
        lead_instruments=("fm_brass", "filtered_saw", "organ"),
        kits=("acoustic",),
        formats=("wav", "flac", "mp3", "ogg"),
        sample_rates=(22_050, 44_100),
        snr_db=(-2.0, 9.0),
        duration_s=(35.0, 70.0),
    ),
    "foreign": Family(
        name="foreign",
        world="foreign",
        voices=(("festival", "kal"), ("festival", "ked"), ("festival", "slt")),
        chord_instruments=("pluck", "electric_piano", "string_ensemble"),
        bass_instruments=("pluck", "electric_piano"),
        lead_instruments=("square_lead", "string_ensemble"),
        kits=("electronic",),
        formats=("flac", "ogg", "wav"),
        sample_rates=(32_000, 48_000),
        snr_db=(0.0, 8.0),
        duration_s=(45.0, 80.0),
    ),
}
# The training world sung by another synthesis method: Piper's neural voice, which neither
# evaluation-only family uses (``synth.piper``).
FAMILIES["piper"] = replace(FAMILIES["randomised"], name="piper", voices=(("piper", "joe"),))
# The training world sung word by word, each word held on a note of the tune, as the song families'
# "notes" singers do: the bent lines of the other training families never sound like that.
FAMILIES["notes"] = replace(FAMILIES["randomised"], name="notes", singing="notes")
# Both at once: Piper's neural voice sung word by word on notes.
FAMILIES["piper_notes"] = replace(FAMILIES["piper"], name="piper_notes", singing="notes")


@dataclass(frozen=True)
class TrackPlan:
    family: str
    track_id: str
    work_id: str
    kind: str  # version | instrumental | hard_negative
    backing: BackingSpec
    audio_format: str
    channels: int
    voice: Voice | None = None
    transpose: int = 0  # semitones of the melody relative to the work's tune
    lines: tuple[int, ...] = ()  # indices into the work's lyric lines, in sung order
    section_ends: tuple[int, ...] = ()  # positions in ``lines`` after which an instrumental break follows
    intro_s: float = 0.0
    snr_db: float = float("nan")
    mix_seed: int = 0
    backing_of: str = ""

    @property
    def relpath(self) -> str:
        return f"audio/{self.work_id}/{self.track_id}.{self.audio_format}"


@dataclass(frozen=True)
class CorpusPlan:
    family: str
    lyrics: dict[str, list[str]]
    melodies: dict[str, list[list[int]]]  # work -> per line, scale-free semitone offsets of its notes
    tracks: tuple[TrackPlan, ...]


def plan_corpus(
    family: str, works: int, versions: int, seed: int, instrumentals: int = 0, hard_negatives: int = 0
) -> CorpusPlan:
    """Draw every random choice; rendering the plan is then deterministic."""
    spec = FAMILIES[family]
    rng = np.random.default_rng([seed, 0 if family == "randomised" else 1])
    work_ids = [f"work-{index:03d}" for index in range(1, works + 1)]
    negative_ids = [f"hardneg-{index:03d}" for index in range(1, hard_negatives + 1)]
    lyrics = write_lyrics(rng, spec.world, work_ids + negative_ids)
    melodies = {work: [_tune(rng) for _ in lines] for work, lines in lyrics.items()}
    tracks: list[TrackPlan] = []
    for work_id in work_ids:
        mode = str(rng.choice(list(SCALES)))
        progression = PROGRESSIONS[mode][int(rng.integers(len(PROGRESSIONS[mode])))]
        for version in range(1, versions + 1):
            backing = _draw_backing(rng, spec, mode, progression, lead="")
            tracks.append(
                _draw_sung(rng, spec, f"{work_id}-v{version}", work_id, "version", backing, len(lyrics[work_id]))
            )
    for index in range(1, instrumentals + 1):
        mode = str(rng.choice(list(SCALES)))
        progression = PROGRESSIONS[mode][int(rng.integers(len(PROGRESSIONS[mode])))]
        backing = _draw_backing(rng, spec, mode, progression, lead=str(rng.choice(spec.lead_instruments)))
        work_id = f"instrumental-{index:03d}"
        tracks.append(
            TrackPlan(
                family, work_id, work_id, "instrumental", backing, _draw(rng, spec.formats), int(rng.choice([1, 2]))
            )
        )
    sung = [track for track in tracks if track.kind == "version"]
    for work_id, source in zip(negative_ids, rng.choice(len(sung), size=min(hard_negatives, len(sung)), replace=False)):
        source_track = sung[int(source)]
        track = _draw_sung(rng, spec, work_id, work_id, "hard_negative", source_track.backing, len(lyrics[work_id]))
        tracks.append(replace(track, backing_of=source_track.track_id))
    return CorpusPlan(family, lyrics, melodies, tuple(tracks))


def _draw(rng: np.random.Generator, options: tuple):
    return options[int(rng.integers(len(options)))]


def _tune(rng: np.random.Generator) -> list[int]:
    """A line's melody: 4-8 notes as semitone offsets within a sixth, mostly stepwise."""
    notes = [0]
    for _ in range(int(rng.integers(3, 8))):
        notes.append(
            int(
                np.clip(
                    notes[-1]
                    + rng.choice(
                        [-4, -3, -2, -1, 0, 1, 2, 3, 4], p=[0.04, 0.08, 0.16, 0.18, 0.08, 0.18, 0.16, 0.08, 0.04]
                    ),
                    -5,
                    5,
                )
            )
        )
    return notes


def _draw_backing(
    rng: np.random.Generator, spec: Family, mode: str, progression: tuple[int, ...], lead: str
) -> BackingSpec:
    return BackingSpec(
        seed=int(rng.integers(2**31)),
        sample_rate=int(_draw(rng, spec.sample_rates)),
        duration_s=round(float(rng.uniform(*spec.duration_s)), 2),
        key_root=int(rng.integers(12)),
        mode=mode,
        progression=tuple(int(d) for d in progression),
        tempo_bpm=float(rng.integers(72, 150)),
        chord_instrument=str(_draw(rng, spec.chord_instruments)),
        chord_style=str(_draw(rng, ("pad", "stabs", "arpeggio"))),
        bass_instrument=str(_draw(rng, spec.bass_instruments)),
        kit=str(_draw(rng, spec.kits)),
        drum_pattern=int(rng.integers(6)),
        lead_instrument=lead,
    )


def _draw_sung(
    rng: np.random.Generator,
    spec: Family,
    track_id: str,
    work_id: str,
    kind: str,
    backing: BackingSpec,
    line_count: int,
) -> TrackPlan:
    engine, name = _draw(rng, spec.voices)
    voice = Voice.drawn(rng, engine, name, max_stretch=1.5, max_gap=6)
    lines, section_ends = _structure(rng, spec.world, line_count)
    duration = backing.duration_s
    return TrackPlan(
        family=spec.name,
        track_id=track_id,
        work_id=work_id,
        kind=kind,
        backing=backing,
        audio_format=str(_draw(rng, spec.formats)),
        channels=int(rng.choice([1, 2], p=[0.6, 0.4])),
        voice=voice,
        transpose=int(rng.integers(-3, 4)),
        lines=tuple(lines),
        section_ends=tuple(section_ends),
        intro_s=round(float(rng.uniform(min(2.0, 0.08 * duration), min(12.0, 0.2 * duration))), 2),
        snr_db=round(float(rng.uniform(*spec.snr_db)), 2),
        mix_seed=int(rng.integers(2**31)),
    )


def _structure(rng: np.random.Generator, world: str, count: int) -> tuple[list[int], list[int]]:
    """Line order of one version. randomised: two passes over the lyrics with lines dropped or
    doubled and the opening pair back as a chorus; foreign: verse, chorus x2, verse, chorus x2
    (AABA-like: the chorus is the lyrics' last two lines), with the second verse reordered."""
    order: list[int] = []
    ends: list[int] = []
    if world == "randomised":
        for _ in range(2):
            for index in range(count):
                if rng.random() < 0.15:
                    continue
                order.extend([index] * (2 if rng.random() < 0.15 else 1))
            order.extend([0, 1])
            ends.append(len(order) - 1)
        return order, ends
    chorus = [count - 2, count - 1]
    verse = list(range(count - 2))
    half = max(1, len(verse) // 2)
    for part in (verse[:half], chorus * 2, list(rng.permutation(verse[half:] or verse[:half])), chorus * 2):
        order.extend(int(i) for i in part)
        ends.append(len(order) - 1)
    return order, ends


def render_stems(
    plan: TrackPlan, lyrics: dict[str, list[str]], melodies: dict[str, list[list[int]]]
) -> tuple[np.ndarray, np.ndarray, list[tuple[float, float, str]]]:
    """(vocals (n,), backing (n, channels), sung lines [(start_s, end_s, text)]) before the master."""
    rate = plan.backing.sample_rate
    layers = render_backing(plan.backing)
    total = len(layers["chords"])
    rng = np.random.default_rng(plan.mix_seed)
    vocals = np.zeros(total)
    sung: list[tuple[float, float, str]] = []
    if plan.voice is not None:
        texts, tunes = lyrics[plan.work_id], melodies[plan.work_id]
        beat = 60.0 / plan.backing.tempo_bpm
        rendered: dict[int, np.ndarray] = {}
        cursor = plan.intro_s
        latest_end = plan.backing.duration_s - max(1.5, 0.05 * plan.backing.duration_s)
        for position, line in enumerate(plan.lines):
            if line not in rendered:  # a repeated line is sung the same way, as a chorus is
                tune = tuple(note + plan.transpose for note in tunes[line])
                if FAMILIES[plan.family].singing == "notes":
                    rendered[line] = sing_on_notes(plan.voice, texts[line], tune, beat * plan.voice.stretch, rng, rate)
                else:
                    rendered[line] = sing_bent(plan.voice, texts[line], tune, beat, rng, rate)
            audio = rendered[line]
            if cursor + len(audio) / rate > latest_end:
                break
            start = int(round(cursor * rate))
            vocals[start : start + len(audio)] += audio
            sung.append((start / rate, (start + len(audio)) / rate, texts[line]))
            cursor = (
                sung[-1][1] + rng.uniform(0.3, 1.2) + (rng.uniform(1.5, 4.0) if position in plan.section_ends else 0.0)
            )
    vocals = _vocal_chain(vocals, rate, rng, FAMILIES[plan.family].world)
    backing = _place(layers, plan.channels, rate)
    if sung:
        vocals = effects.level_over(vocals, backing.mean(axis=1), sung, rate, plan.snr_db)
    return vocals, backing, sung


def _vocal_chain(vocals: np.ndarray, rate: int, rng: np.random.Generator, world: str) -> np.ndarray:
    if not vocals.any():
        return vocals
    if world == "randomised":
        return effects.studio_vocal_chain(vocals, rate, rng, 0.6, (-20, -8), (2, 6), (0.2, 1.8), (0.05, 0.45))
    vocals = effects.band_limit(vocals, rate, rng.uniform(120, 300), rng.uniform(5000, 9000))
    vocals = effects.early_reflections(vocals, rate, (7.0, 13.0, 23.0), (0.3, 0.2, 0.12))
    vocals = effects.echo(
        vocals, rate, delay_s=rng.uniform(0.09, 0.35), feedback=rng.uniform(0.2, 0.45), wet=rng.uniform(0.1, 0.3)
    )
    return effects.saturate(vocals, drive=rng.uniform(1.0, 2.5))


def _place(layers: dict[str, np.ndarray], channels: int, rate: int) -> np.ndarray:
    pans = {"chords": -0.35, "bass": 0.0, "drums": 0.15, "lead": 0.3}
    total = len(layers["chords"])
    out = np.zeros((total, channels))
    for name, layer in layers.items():
        if channels == 1:
            out[:, 0] += layer
        else:
            angle = (pans[name] + 1) * np.pi / 4  # constant-power pan
            out[:, 0] += np.sqrt(2) * np.cos(angle) * layer
            out[:, 1] += np.sqrt(2) * np.sin(angle) * layer
    fade = np.clip((total - np.arange(total)) / (2.0 * rate), 0, 1)  # a two-second fade-out
    return out * fade[:, None]


def master(plan: TrackPlan, vocals: np.ndarray, backing: np.ndarray) -> np.ndarray:
    """Mix, bus processing of the family, peak at -1 dBFS: (samples, channels) float32."""
    rng = np.random.default_rng([plan.mix_seed, 1])
    rate = plan.backing.sample_rate
    mixed = backing + vocals[:, None]
    world = FAMILIES[plan.family].world
    for channel in range(mixed.shape[1]):
        if world == "randomised" and rng.random() < 0.5:
            mixed[:, channel] = effects.compress(mixed[:, channel], rate, threshold_db=-12, ratio=3)
        elif world == "foreign":
            mixed[:, channel] = effects.equalise(
                mixed[:, channel], rate, (("peak", 900, 2.0), ("high_shelf", 6000, -4.0))
            )
    return (0.89 * mixed / max(np.abs(mixed).max(), 1e-9)).astype(np.float32)


def _render_and_write(plan: TrackPlan, corpus: CorpusPlan, root: Path) -> list[tuple[float, float, str]]:
    vocals, backing, sung = render_stems(plan, corpus.lyrics, corpus.melodies)
    write_audio(root / plan.relpath, master(plan, vocals, backing), plan.backing.sample_rate, plan.audio_format)
    return sung


def make_corpus(
    out_dir: str | Path,
    family: str,
    works: int,
    versions: int = 2,
    seed: int = 0,
    instrumentals: int = 0,
    hard_negatives: int = 0,
    workers: int | None = None,
) -> Path:
    """Write a catalogue of ``family`` songs into ``out_dir``; returns its ``manifest.csv``.

    Built in a temporary sibling folder and renamed into place; a catalogue already made with the
    same parameters is kept as it is.
    """
    if family not in FAMILIES and family not in SONG_FAMILIES:
        raise ValueError(f"family: expected one of {sorted([*FAMILIES, *SONG_FAMILIES])}, got {family!r}")
    counts = check_counts(
        {
            "works": (works, 1),
            "versions": (versions, 1),
            "seed": (seed, 0),
            "instrumentals": (instrumentals, 0),
            "hard_negatives": (hard_negatives, 0),
        }
    )
    parameters = {"family": family, **counts}

    def build(staging: Path) -> None:
        songs = family in SONG_FAMILIES
        plan = (plan_songs if songs else plan_corpus)(family, **counts)
        render = write_song if songs else _render_and_write
        sung: dict[str, list[tuple[float, float, str]]] = {}
        # Speech engines run as subprocesses and numpy releases the GIL on large arrays: threads suffice.
        with ThreadPoolExecutor(max_workers=workers or max(2, os.cpu_count() or 1)) as pool:
            futures = {pool.submit(render, track, plan, staging): track.track_id for track in plan.tracks}
            progress = tqdm(
                as_completed(futures), total=len(futures), desc=f"{family} songs", unit="track", disable=None
            )
            for future in progress:
                sung[futures[future]] = future.result()
        (write_song_tables if songs else _write_tables)(staging, plan, sung)

    version = SONGS_GENERATOR_VERSION if family in SONG_FAMILIES else GENERATOR_VERSION
    description = {"generator_version": version, "parameters": parameters}
    return write_catalogue_folder(out_dir, "corpus.json", description, OUTPUT_FILES, build)


def _write_tables(root: Path, plan: CorpusPlan, sung: dict[str, list[tuple[float, float, str]]]) -> None:
    write_csv(
        root, "manifest.csv", ["track_id", "work_id", "path"], [[t.track_id, t.work_id, t.relpath] for t in plan.tracks]
    )
    write_csv(
        root,
        "vocals.csv",
        ["track_id", "start_s", "end_s"],
        [[t.track_id, f"{s:.3f}", f"{e:.3f}"] for t in plan.tracks for s, e, _ in sung[t.track_id]],
    )
    columns = [
        "track_id",
        "work_id",
        "kind",
        "family",
        "engine",
        "voice",
        "stretch",
        "transpose",
        "key",
        "tempo",
        "chord_instrument",
        "chord_style",
        "bass_instrument",
        "lead_instrument",
        "kit",
        "duration_s",
        "sample_rate",
        "channels",
        "format",
        "snr_db",
        "lines_sung",
        "backing_of",
    ]
    rows = []
    for t in plan.tracks:
        b = t.backing
        rows.append(
            [
                t.track_id,
                t.work_id,
                t.kind,
                t.family,
                t.voice.engine if t.voice else "",
                t.voice.name if t.voice else "",
                t.voice.stretch if t.voice else "",
                t.transpose if t.voice else "",
                b.key,
                f"{b.tempo_bpm:g}",
                b.chord_instrument,
                b.chord_style,
                b.bass_instrument,
                b.lead_instrument,
                b.kit,
                f"{b.duration_s:g}",
                b.sample_rate,
                t.channels,
                t.audio_format,
                "" if np.isnan(t.snr_db) else f"{t.snr_db:g}",
                len(sung[t.track_id]),
                t.backing_of,
            ]
        )
    write_csv(root, "tracks.csv", columns, rows)
    lyrics = {
        "works": plan.lyrics,
        "tracks": {t.track_id: [text for _, _, text in sung[t.track_id]] for t in plan.tracks},
    }
    (root / "lyrics.json").write_text(json.dumps(lyrics, indent=2) + "\n")
