"""Whole songs and the kinds of versions real covers are: the ``broad`` training family and the
evaluation-only ``foreign2`` family.

A work is lyrics in sections (two verses, a chorus, a bridge), a chord progression per section
and a tune per line. A version arranges it: a song form (short: verse, chorus, verse, chorus; or
full, 2-5 minutes: intro, verses, a chorus that comes back, bridge, an instrumental solo, outro),
a kind (studio; live, with a crowd, applause and a hall; acoustic, with acoustic instruments and
no kit; remix, 25% faster or slower with electronic drums; duet, two singers trading sections
and joining on the last chorus), a key, a tempo, one or two voices, a way of singing (a spoken line
bent along the tune, or word by word, each word held for its note), doubled or harmonised choruses,
sampled (SoundFont) or synthesised instruments, a mix (vocal -3..+10 dB over the band, EQ,
compression, rooms) and a codec (MP3, Opus, Vorbis, FLAC at several rates).

Lines are sung on the bar grid of their section, so a version's vocal timeline (``vocals.csv``)
is exact. The two families share no voice, SoundFont, kit, lyric templates or words: ``foreign2``
sings Kokoro's two voices that ``broad`` never uses, over the MuseScore SoundFont, with the
evaluation-only fifth of the vocabulary (``lyrics``) and its own templates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy import signal

from livi_tasks.build.synth import effects, soundfont
from livi_tasks.build.synth.folder import write_audio, write_csv
from livi_tasks.build.synth.instruments import INSTRUMENTS, KITS, PROGRESSIONS, SCALES, add_at, hz, scale_step
from livi_tasks.build.synth.lyrics import write_lyrics
from livi_tasks.build.synth.soundfont import DRUM_CHANNEL, Note
from livi_tasks.build.synth.voices import Voice, sing_bent, sing_on_notes

GENERATOR_VERSION = 1
SECTION_LINES = {"verse1": 4, "verse2": 4, "chorus": 4, "bridge": 2}
FORMS = {
    "brief": ("verse1", "chorus"),
    "short": ("verse1", "chorus", "verse2", "chorus"),
    "full": ("intro", "verse1", "chorus", "verse2", "chorus", "bridge", "solo", "chorus", "chorus", "outro"),
}
INSTRUMENTAL_BARS = {"intro": 4, "solo": 8, "outro": 4}
BARS_PER_LINE = 2
GM_DRUMS = {"kick": 36, "snare": 38, "side": 37, "hat": 42, "open_hat": 46, "crash": 49, "clap": 39, "ride": 51}
# The synthesised kits stand for GM drum keys when a version plays no SoundFont.
KIT_SOUNDS = {36: 0, 38: 1, 37: 1, 39: 1, 42: 2, 46: 2, 49: 2, 51: 2}


@dataclass(frozen=True)
class SongFamily:
    name: str
    vocabulary: str  # the ``lyrics`` family whose words and templates it sings
    voices: tuple[tuple[str, tuple[str, ...], float], ...]  # (engine, its voices, share of singers)
    soundfonts: tuple[str, ...]  # "" stands for the synthesised instruments of ``instruments``
    programs: dict[str, tuple[int, ...]]  # General MIDI programs per role and kind
    synth_instruments: tuple[str, ...]
    kinds: tuple[tuple[str, float], ...]  # version kinds and their probabilities
    forms: tuple[float, float, float]  # shares of the brief, short and full forms
    singing: tuple[str, ...]  # bend | notes
    formats: tuple[tuple[str, int], ...]  # (format, sample rate)
    snr_db: tuple[float, float]


SONG_FAMILIES = {
    "broad": SongFamily(
        name="broad",
        vocabulary="broad",
        # Kokoro renders about 1.3x slower than real time on one core: an eighth of the singers.
        voices=(
            (
                "espeak-ng",
                tuple(
                    a + v
                    for a in ("en", "en-us", "en-gb-x-rp", "en-029", "en-gb-scotland")
                    for v in ("", "+m3", "+f2", "+m7", "+f4")
                ),
                0.65,
            ),
            ("flite", ("awb", "rms"), 0.22),
            (
                "kokoro",
                (
                    "jf_alpha",
                    "jf_gongitsune",
                    "jf_nezumi",
                    "jf_alpha+jf_nezumi",
                    "jf_gongitsune+jf_nezumi",
                    "jf_alpha+jf_gongitsune",
                ),
                0.13,
            ),
        ),
        soundfonts=("fluidr3", "fluidr3", ""),
        programs={
            "chords": (0, 1, 4, 5, 16, 18, 24, 25, 26, 27, 48, 49, 61, 88, 89),
            "acoustic_chords": (0, 24, 25, 46, 48),
            "remix_chords": (80, 81, 88, 89, 90, 91),
            "bass": (32, 33, 34, 35, 38, 39, 43),
            "lead": (56, 65, 66, 71, 73, 80, 81, 29, 30),
        },
        synth_instruments=("additive", "fm_brass", "organ", "filtered_saw"),
        kinds=(("studio", 0.4), ("live", 0.15), ("acoustic", 0.15), ("remix", 0.15), ("duet", 0.15)),
        forms=(0.25, 0.4, 0.35),
        singing=("bend", "notes"),
        formats=(
            ("wav", 22_050),
            ("flac", 44_100),
            ("mp3", 44_100),
            ("mp3", 22_050),
            ("ogg", 44_100),
            ("opus", 48_000),
        ),
        snr_db=(-3.0, 10.0),
    ),
    "foreign2": SongFamily(
        name="foreign2",
        vocabulary="foreign2",
        voices=(("kokoro", ("jf_tebukuro", "jm_kumo", "jf_tebukuro+jm_kumo"), 1.0),),
        soundfonts=("musescore",),
        programs={
            "chords": (2, 3, 7, 11, 19, 21, 28, 50, 52, 62),
            "acoustic_chords": (2, 21, 105, 106, 110),
            "remix_chords": (82, 84, 86, 92, 94),
            "bass": (36, 37, 40, 42, 87),
            "lead": (57, 64, 68, 69, 74, 78, 82, 84),
        },
        synth_instruments=(),
        kinds=(("studio", 0.2), ("live", 0.2), ("acoustic", 0.2), ("remix", 0.2), ("duet", 0.2)),
        forms=(0.25, 0.25, 0.5),
        singing=("bend", "notes"),
        formats=(("mp3", 44_100), ("mp3", 32_000), ("opus", 48_000), ("flac", 48_000)),
        snr_db=(0.0, 9.0),
    ),
}


@dataclass(frozen=True)
class Work:
    lines: dict[str, tuple[str, ...]]  # section -> its lines
    tunes: dict[str, tuple[tuple[int, ...], ...]]  # section -> per line, scale-free semitone offsets
    key_root: int
    mode: str
    tempo_bpm: float
    progressions: dict[str, tuple[int, ...]]  # section -> scale degrees of its bars


@dataclass(frozen=True)
class Sung:
    """One singer of a version and how they sing."""

    voice: Voice
    style: str  # bend | notes


@dataclass(frozen=True)
class SongPlan:
    family: str
    track_id: str
    work_id: str
    kind: str  # studio | live | acoustic | remix | duet | instrumental | hard_negative
    form: tuple[str, ...]
    tempo_bpm: float
    transpose: int
    singers: tuple[Sung, ...]  # empty for instrumentals
    doubled: bool
    harmony: bool
    soundfont: str
    programs: tuple[int, int, int]  # chords, bass, lead
    synth: tuple[str, str, str]  # synthesised chords, bass, lead (when soundfont is "")
    kit: str  # acoustic | electronic | none
    drum_pattern: int
    format: str
    sample_rate: int
    channels: int
    snr_db: float
    seed: int
    backing_work: str = ""  # hard negatives: the work whose backing they reuse

    @property
    def relpath(self) -> str:
        extension = "ogg" if self.format == "opus" else self.format
        return f"audio/{self.work_id}/{self.track_id}.{extension}"


def _pick(rng: np.random.Generator, options: tuple):
    return options[int(rng.integers(len(options)))]


def _tune(rng: np.random.Generator) -> tuple[int, ...]:
    notes, count = [0], int(rng.integers(5, 9))
    for _ in range(count - 1):
        notes.append(int(np.clip(notes[-1] + rng.choice([-3, -2, -1, 0, 1, 2, 3, 4]), -5, 7)))
    return tuple(notes)


def plan_work(rng: np.random.Generator, spec: SongFamily, work_id: str) -> Work:
    sections = write_lyrics(rng, spec.vocabulary, [f"{work_id}/{section}" for section in SECTION_LINES])
    lines = {section: tuple(sections[f"{work_id}/{section}"][:count]) for section, count in SECTION_LINES.items()}
    mode = str(_pick(rng, tuple(SCALES)))
    progressions = {
        section: PROGRESSIONS[mode][int(rng.integers(len(PROGRESSIONS[mode])))]
        for section in ("verse", "chorus", "bridge")
    }
    return Work(
        lines=lines,
        tunes={section: tuple(_tune(rng) for _ in section_lines) for section, section_lines in lines.items()},
        key_root=int(rng.integers(12)),
        mode=mode,
        tempo_bpm=float(rng.integers(70, 140)),
        progressions=progressions,
    )


def _singer(rng: np.random.Generator, spec: SongFamily, avoid: Voice | None = None) -> Sung:
    shares = np.array([share for _, _, share in spec.voices])
    engine, names, _ = spec.voices[int(rng.choice(len(shares), p=shares / shares.sum()))]
    choices = [name for name in names if avoid is None or (engine, name) != (avoid.engine, avoid.name)] or list(names)
    name = choices[int(rng.integers(len(choices)))]
    voice = Voice.drawn(rng, engine, name, max_stretch=1.4, max_gap=4)
    # Word by word means a call per word: cheap for the subprocess engines, slow for the neural one.
    return Sung(voice, "bend" if engine == "kokoro" else str(_pick(rng, spec.singing)))


def plan_version(
    rng: np.random.Generator, spec: SongFamily, track_id: str, work_id: str, work: Work, kind: str
) -> SongPlan:
    """Every random choice of one version of ``work``."""
    form_name = str(rng.choice(list(FORMS), p=spec.forms))
    full = form_name == "full"
    form = FORMS[form_name]
    if kind == "live" and full:
        form = (*form[:-1], "chorus", "outro")  # the crowd gets the chorus once more
    if kind == "acoustic":
        form = tuple(section for section in form if section != "solo")
    tempo = work.tempo_bpm * float(rng.uniform(0.75, 1.25) if kind == "remix" else rng.uniform(0.92, 1.08))
    singers = (_singer(rng, spec),)
    if kind == "duet":
        singers = (singers[0], _singer(rng, spec, avoid=singers[0].voice))
    role = {"acoustic": "acoustic_chords", "remix": "remix_chords"}.get(kind, "chords")
    sf_name = str(_pick(rng, spec.soundfonts))
    synth = tuple(str(_pick(rng, spec.synth_instruments or ("additive",))) for _ in range(3))
    format_, rate = spec.formats[int(rng.integers(len(spec.formats)))]
    kit = "none" if kind == "acoustic" and rng.random() < 0.6 else ("electronic" if kind == "remix" else "acoustic")
    return SongPlan(
        family=spec.name,
        track_id=track_id,
        work_id=work_id,
        kind=kind,
        form=form,
        tempo_bpm=round(min(max(tempo, 60.0), 175.0), 1),
        transpose=int(rng.integers(-4, 5)),
        singers=singers,
        doubled=bool(rng.random() < 0.3),
        harmony=bool(rng.random() < 0.3),
        soundfont=sf_name,
        programs=(
            int(_pick(rng, spec.programs[role])),
            int(_pick(rng, spec.programs["bass"])),
            int(_pick(rng, spec.programs["lead"])),
        ),
        synth=synth,
        kit=kit,
        drum_pattern=int(rng.integers(4)),
        format=format_,
        sample_rate=rate,
        channels=int(rng.choice([1, 2], p=[0.4, 0.6])),
        snr_db=round(float(rng.uniform(*spec.snr_db)), 2),
        seed=int(rng.integers(2**31)),
    )


def _section_kind(section: str) -> str:
    return "verse" if section.startswith("verse") else section


def _bars(section: str, work: Work) -> int:
    return INSTRUMENTAL_BARS.get(section) or BARS_PER_LINE * len(work.lines[section])


def timeline(plan: SongPlan, work: Work) -> list[tuple[str, float, int]]:
    """(section, start beat, bars) in playing order."""
    out, beat = [], 0.0
    for section in plan.form:
        bars = _bars(section, work)
        out.append((section, beat, bars))
        beat += 4 * bars
    return out


def song_seconds(plan: SongPlan, work: Work) -> float:
    """Length of the version: its sections and a bar of ending."""
    return (sum(4 * bars for _, _, bars in timeline(plan, work)) + 4) * 60.0 / plan.tempo_bpm


def backing_notes(plan: SongPlan, work: Work, rng: np.random.Generator) -> dict[str, list[Note]]:
    """Note events per stem (chords, bass, drums, lead) on the section grid."""
    scale = SCALES[work.mode]
    root = work.key_root + plan.transpose
    stems: dict[str, list[Note]] = {"chords": [], "bass": [], "drums": [], "lead": []}
    chords_program, bass_program, lead_program = plan.programs
    style = "strum" if plan.kind == "acoustic" else str(_pick(rng, ("pad", "stabs", "arpeggio")))
    kicks, snares, hat_step = (
        ((0.0, 1.0, 2.0, 3.0), (1.0, 3.0), 0.5)
        if plan.kind == "remix"
        else (
            ((0.0, 2.0), (1.0, 3.0), 0.5),
            ((0.0, 1.5, 2.0), (1.0, 3.0), 0.25),
            ((0.0, 2.5), (1.0, 3.0, 3.5), 0.5),
            ((0.0,), (2.0,), 1.0),
        )[plan.drum_pattern]
    )
    for section, start, bars in timeline(plan, work):
        kind = _section_kind(section)
        progression = work.progressions.get(kind, work.progressions["verse"])
        for bar in range(bars):
            beat0 = start + 4 * bar
            degree = progression[bar % len(progression)]
            chord = [48 + root + scale_step(scale, degree + step) for step in (0, 2, 4)]
            if style == "pad":
                stems["chords"] += [Note(0, chords_program, key, beat0, 3.9, 70) for key in chord]
            elif style == "stabs":
                stems["chords"] += [
                    Note(0, chords_program, key, beat0 + hit, 0.45, 85) for hit in range(4) for key in chord
                ]
            elif style == "strum":
                stems["chords"] += [
                    Note(0, chords_program, key, beat0 + hit + 0.02 * i, 0.9, 80 - 10 * (hit % 2))
                    for hit in (0, 1, 2, 3)
                    for i, key in enumerate(chord)
                ]
            else:
                stems["chords"] += [
                    Note(0, chords_program, chord[e % 3] + (12 if e >= 4 else 0), beat0 + 0.5 * e, 0.5, 80)
                    for e in range(8)
                ]
            bass_root = 36 + root + scale_step(scale, degree)
            step = 1.0 if plan.kind == "acoustic" else 0.5
            stems["bass"] += [
                Note(
                    1,
                    bass_program,
                    bass_root + (12 if plan.kind == "remix" and e % 2 else 0),
                    beat0 + e,
                    0.9 * step,
                    90,
                )
                for e in np.arange(0, 4, step)
            ]
            if plan.kit != "none" and section not in ("intro",):
                stems["drums"] += [Note(DRUM_CHANNEL, 0, GM_DRUMS["kick"], beat0 + k, 0.2, 110) for k in kicks]
                snare = GM_DRUMS["clap" if plan.kind == "remix" else "snare"]
                stems["drums"] += [Note(DRUM_CHANNEL, 0, snare, beat0 + s, 0.2, 100) for s in snares]
                stems["drums"] += [
                    Note(DRUM_CHANNEL, 0, GM_DRUMS["hat"], beat0 + h, 0.1, int(rng.integers(60, 90)))
                    for h in np.arange(0, 4, hat_step)
                ]
                if bar == 0 and kind in ("chorus", "bridge"):
                    stems["drums"].append(Note(DRUM_CHANNEL, 0, GM_DRUMS["crash"], beat0, 1.0, 100))
        if section == "solo":  # the lead plays the chorus tune
            for index, tune in enumerate(work.tunes["chorus"]):
                for n, offset in enumerate(tune):
                    key = 60 + root + scale_step(scale, 7 + offset) - 12
                    stems["lead"].append(Note(2, lead_program, key, start + 8 * (index % 2) + n, 0.9, 95))
    return stems


def _synthesised_stem(notes: list[Note], plan: SongPlan, rate: int, seconds: float, rng) -> np.ndarray:
    """A stem played by the synthesised instruments and kits of ``instruments``."""
    out = np.zeros(int(round(seconds * rate)))
    beat = 60.0 / plan.tempo_bpm
    kit = KITS["electronic" if plan.kit == "electronic" else "acoustic"](rng, rate)
    cache: dict[tuple[int, int, float], np.ndarray] = {}
    for note in notes:
        start = int(round(note.start_beats * beat * rate))
        if note.channel == DRUM_CHANNEL:
            add_at(out, kit[KIT_SOUNDS.get(note.key, 2)] * note.velocity / 110, start)
            continue
        key = (note.channel, note.key, round(note.length_beats, 3))
        if key not in cache:
            cache[key] = INSTRUMENTS[plan.synth[note.channel]](hz(note.key), note.length_beats * beat, rate, rng)
        add_at(out, cache[key] * note.velocity / 100, start)
    return out


def _sing_line(sung: Sung, text: str, tune: tuple[int, ...], plan: SongPlan, work: Work, slot_s: float, rng, rate):
    """A line sung by one singer, at most ``slot_s`` long."""
    beat = 60.0 / plan.tempo_bpm
    semitones = tuple(note + plan.transpose for note in tune)
    if sung.style == "notes":
        words = len(text.replace(",", "").split())
        line = sing_on_notes(sung.voice, text, semitones, min(beat, slot_s / max(words, 1)), rng, rate)
    else:
        line = sing_bent(sung.voice, text, semitones, beat, rng, rate)
    return line[: int(slot_s * rate)]


def render_vocals(plan: SongPlan, work: Work, lyrics: dict[str, tuple[str, ...]], total: int, rng) -> tuple:
    """(lead vocal track, harmony/double track, sung lines [(start_s, end_s, text)]) on the grid."""
    rate, beat = plan.sample_rate, 60.0 / plan.tempo_bpm
    lead, extra = np.zeros(total), np.zeros(total)
    sung_lines: list[tuple[float, float, str]] = []
    choruses = sum(1 for section in plan.form if section == "chorus")
    chorus_number = 0
    singers_in = {}
    vocal_sections = [entry for entry in timeline(plan, work) if entry[0] in lyrics]
    for number, (section, start, bars) in enumerate(vocal_sections):
        chorus_number += section == "chorus"
        last_chorus = section == "chorus" and chorus_number == choruses
        singer = plan.singers[number % len(plan.singers)]
        slot_s = BARS_PER_LINE * 4 * beat - 0.25
        for index, (text, tune) in enumerate(zip(lyrics[section], work.tunes[section])):
            key = (singer, section, index)
            if key not in singers_in:  # a repeated chorus is sung the same way
                singers_in[key] = _sing_line(singer, text, tune, plan, work, slot_s, rng, rate)
            audio = singers_in[key]
            begin = int(round((start + BARS_PER_LINE * 4 * index) * beat * rate + 0.1 * rate))
            if begin >= total:
                break
            add_at(lead, audio, begin)
            sung_lines.append((begin / rate, min(begin + len(audio), total) / rate, text))
            if section == "chorus" and (plan.harmony or plan.doubled or (last_chorus and len(plan.singers) > 1)):
                add_at(extra, _second_voice(plan, work, singer, text, tune, slot_s, rng, rate, last_chorus), begin)
    return lead, extra, sung_lines


def _second_voice(plan, work, singer: Sung, text, tune, slot_s, rng, rate, last_chorus: bool) -> np.ndarray:
    """The other singer of a duet on the last chorus, a harmony a third above, or a double."""
    if last_chorus and len(plan.singers) > 1:
        return 0.8 * _sing_line(plan.singers[1], text, tune, plan, work, slot_s, rng, rate)
    if plan.harmony:
        third = 4 if work.mode == "major" else 3
        harmonised = replace(plan, transpose=plan.transpose + third)
        return 0.5 * _sing_line(singer, text, tune, harmonised, work, slot_s, rng, rate)
    double = _sing_line(singer, text, tune, plan, work, slot_s, rng, rate)
    delay = int(0.025 * rate)
    return 0.6 * np.concatenate([np.zeros(delay), double])


def crowd(total: int, rate: int, rng: np.random.Generator, song_start_s: float, song_end_s: float) -> np.ndarray:
    """A hall's crowd: a murmur bed, and applause (dense filtered clicks) before and after the song."""
    murmur = signal.sosfilt(
        signal.butter(2, [250, 2500], "bandpass", fs=rate, output="sos"), rng.standard_normal(total)
    )
    murmur *= 0.02 * (1 + 0.5 * np.sin(2 * np.pi * 0.2 * np.arange(total) / rate))
    clicks = (rng.random(total) < 0.02) * rng.standard_normal(total)
    applause = signal.sosfilt(signal.butter(2, [800, 6000], "bandpass", fs=rate, output="sos"), clicks)
    times = np.arange(total) / rate
    swell = np.clip(1 - np.abs(times - song_start_s + 2) / 3, 0, 1) + np.clip(
        1 - np.abs(times - song_end_s - 2) / 4, 0, 1
    )
    return murmur + 0.5 * applause * swell


@dataclass(frozen=True)
class SongCorpusPlan:
    family: str
    works: dict[str, Work]  # every work, hard negatives' own lyrics included
    tracks: tuple[SongPlan, ...]

    def lyrics(self) -> dict[str, list[str]]:
        """work -> its distinct lines, section by section."""
        return {
            work_id: [line for lines in work.lines.values() for line in lines] for work_id, work in self.works.items()
        }


def plan_songs(
    family: str, works: int, versions: int, seed: int, instrumentals: int = 0, hard_negatives: int = 0
) -> SongCorpusPlan:
    """Every random choice of a song catalogue; rendering it is then deterministic."""
    spec = SONG_FAMILIES[family]
    rng = np.random.default_rng([seed, 2 if family == "broad" else 3])
    kinds, weights = zip(*spec.kinds)
    all_works: dict[str, Work] = {}
    tracks: list[SongPlan] = []
    for index in range(1, works + 1):
        work_id = f"work-{index:03d}"
        all_works[work_id] = plan_work(rng, spec, work_id)
        for version in range(1, versions + 1):
            kind = str(rng.choice(kinds, p=np.array(weights) / sum(weights)))
            tracks.append(plan_version(rng, spec, f"{work_id}-v{version}", work_id, all_works[work_id], kind))
    for index in range(1, instrumentals + 1):
        work_id = f"instrumental-{index:03d}"
        all_works[work_id] = plan_work(rng, spec, work_id)
        plan = plan_version(rng, spec, work_id, work_id, all_works[work_id], "studio")
        tracks.append(replace(plan, kind="instrumental", singers=(), doubled=False, harmony=False))
    sung = [track for track in tracks if track.singers]
    for index, source in enumerate(rng.choice(len(sung), size=min(hard_negatives, len(sung)), replace=False), 1):
        work_id = f"hardneg-{index:03d}"
        all_works[work_id] = plan_work(rng, spec, work_id)
        original = sung[int(source)]
        tracks.append(
            replace(original, track_id=work_id, work_id=work_id, kind="hard_negative", backing_work=original.work_id)
        )
    return SongCorpusPlan(family, all_works, tuple(tracks))


def render_song(plan: SongPlan, corpus: SongCorpusPlan) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """(mastered audio (samples, channels) float32, sung lines) of one planned track."""
    # A hard negative plays its source's backing and tunes, with its own lyrics.
    work = corpus.works[plan.backing_work or plan.work_id]
    lyrics = corpus.works[plan.work_id].lines
    rng = np.random.default_rng(plan.seed)
    rate = plan.sample_rate
    seconds = song_seconds(plan, work) + (6.0 if plan.kind == "live" else 0.0)
    total = int(round(seconds * rate))
    offset = int(round((3.0 if plan.kind == "live" else 0.0) * rate))  # a live take starts with the crowd
    stems = backing_notes(plan, work, rng)
    if plan.kind == "instrumental":
        stems["lead"] += _lead_over_lines(plan, work)
    if plan.soundfont:
        layers = soundfont.render_stems(stems, plan.tempo_bpm, plan.soundfont, rate, seconds)
    else:
        layers = {name: _synthesised_stem(notes, plan, rate, seconds, rng) for name, notes in stems.items()}
    lead, extra, sung = (
        (np.zeros(total), np.zeros(total), []) if not plan.singers else render_vocals(plan, work, lyrics, total, rng)
    )
    vocals = _vocal_chain(lead + extra, rate, rng, plan.family)
    pans = {"chords": -0.35, "bass": 0.0, "drums": 0.1, "lead": 0.3}
    levels = {"chords": 0.25, "bass": 0.3, "drums": 0.35 if plan.kind != "remix" else 0.5, "lead": 0.3}
    band = np.zeros((total, plan.channels))
    for name, layer in layers.items():
        layer = levels[name] * layer / max(np.abs(layer).max(initial=0.0), 1e-9)
        angle = (pans[name] + 1) * np.pi / 4
        gains = (1.0,) if plan.channels == 1 else (np.sqrt(2) * np.cos(angle), np.sqrt(2) * np.sin(angle))
        for channel, gain in enumerate(gains):
            add_at(band[:, channel], gain * layer, offset)
    if sung:
        vocals = effects.level_over(vocals, np.roll(band.mean(axis=1), -offset), sung, rate, plan.snr_db)
    mixed = band + np.roll(vocals, offset)[:, None]
    sung = [(s + offset / rate, e + offset / rate, text) for s, e, text in sung]
    if plan.kind == "live":
        for channel in range(mixed.shape[1]):
            mixed[:, channel] = effects.reverb(mixed[:, channel], rate, rng, rt60_s=rng.uniform(1.5, 2.8), wet=0.35)
        mixed += 0.15 * np.abs(mixed).max() * crowd(total, rate, rng, offset / rate, seconds - 3.0)[:, None]
    for channel in range(mixed.shape[1]):
        mixed[:, channel] = effects.compress(mixed[:, channel], rate, threshold_db=-14, ratio=2.5)
    fade = np.clip((total - np.arange(total)) / (2.0 * rate), 0, 1)
    return (0.89 * mixed * fade[:, None] / max(np.abs(mixed).max(), 1e-9)).astype(np.float32), sung


def _lead_over_lines(plan: SongPlan, work: Work) -> list[Note]:
    """An instrumental's lead plays every line's tune in the voice's range where a voice would sing."""
    scale = SCALES[work.mode]
    notes = []
    for section, start, _ in timeline(plan, work):
        for index, tune in enumerate(work.tunes.get(section, ())):
            for n, offset in enumerate(tune):
                key = 60 + work.key_root + plan.transpose + scale_step(scale, 7 + offset) - 12
                notes.append(Note(2, plan.programs[2], key, start + BARS_PER_LINE * 4 * index + n, 0.9, 90))
    return notes


def _vocal_chain(vocals: np.ndarray, rate: int, rng: np.random.Generator, family: str) -> np.ndarray:
    if not vocals.any():
        return vocals
    if family == "broad":
        return effects.studio_vocal_chain(vocals, rate, rng, 0.7, (-24, -8), (2, 8), (0.2, 2.2), (0.05, 0.5))
    # foreign2: a broadcast chain: high-passed, presence lift, hard compression, a long plate.
    vocals = effects.band_limit(vocals, rate, 150, 0.45 * rate)
    vocals = effects.equalise(vocals, rate, (("peak", 3000, 4.0), ("high_shelf", 9000, -3.0)))
    vocals = effects.compress(vocals, rate, threshold_db=-20, ratio=8)
    return effects.reverb(vocals, rate, rng, rt60_s=rng.uniform(1.8, 2.6), wet=rng.uniform(0.15, 0.3))


def track_row(plan: SongPlan, work: Work) -> dict:
    """The track's line of ``tracks.csv``."""
    voices = " & ".join(s.voice.label for s in plan.singers)
    return {
        "track_id": plan.track_id,
        "work_id": plan.work_id,
        "kind": plan.kind,
        "family": plan.family,
        "engine": plan.singers[0].voice.engine if plan.singers else "",
        "voice": plan.singers[0].voice.name if plan.singers else "",
        "voices": voices,
        "singing": "/".join(s.style for s in plan.singers),
        "form": {len(sections): name for name, sections in FORMS.items()}.get(len(plan.form), "full"),
        "transpose": plan.transpose,
        "key": f"{work.key_root}:{work.mode}",
        "tempo": plan.tempo_bpm,
        "instruments": plan.soundfont or "synthesised",
        "programs": "/".join(map(str, plan.programs)),
        "kit": plan.kit,
        "doubled": plan.doubled,
        "harmony": plan.harmony,
        "duration_s": round(song_seconds(plan, work) + (6.0 if plan.kind == "live" else 0.0), 2),
        "sample_rate": plan.sample_rate,
        "channels": plan.channels,
        "format": plan.format,
        "snr_db": plan.snr_db,
        "backing_of": plan.backing_work,
    }


def write_song(plan: SongPlan, corpus: SongCorpusPlan, root: Path) -> list[tuple[float, float, str]]:
    """Render one track and write it in its format; returns its sung lines."""
    audio, sung = render_song(plan, corpus)
    compression = float(np.random.default_rng([plan.seed, 7]).uniform(0.1, 0.9))  # 64-192 kbit/s or so
    write_audio(root / plan.relpath, audio, plan.sample_rate, plan.format, compression)
    return sung


def write_song_tables(root: Path, corpus: SongCorpusPlan, sung: dict[str, list[tuple[float, float, str]]]) -> None:
    """manifest.csv, vocals.csv, tracks.csv and lyrics.json, as every catalogue generator writes them."""
    tracks = corpus.tracks
    write_csv(
        root, "manifest.csv", ["track_id", "work_id", "path"], [[t.track_id, t.work_id, t.relpath] for t in tracks]
    )
    write_csv(
        root,
        "vocals.csv",
        ["track_id", "start_s", "end_s"],
        [[t.track_id, f"{s:.3f}", f"{e:.3f}"] for t in tracks for s, e, _ in sung[t.track_id]],
    )
    rows = [track_row(t, corpus.works[t.backing_work or t.work_id]) for t in tracks]
    write_csv(root, "tracks.csv", list(rows[0]), [list(row.values()) for row in rows])
    lyrics = {
        "works": corpus.lyrics(),
        "tracks": {t.track_id: [text for _, _, text in sung[t.track_id]] for t in tracks},
    }
    (root / "lyrics.json").write_text(json.dumps(lyrics, indent=2) + "\n")
