"""Sampled instruments: note events played through FluidSynth (pyfluidsynth over Debian's
libfluidsynth) with a General MIDI SoundFont (Debian's fluid-soundfont-gm and
musescore-general-soundfont-small), one stem at a time so that the mix can pan and level them.

Each track gets a freshly loaded SoundFont and plays its stems in a fixed order: FluidSynth
prepares a sample the first time it plays it, which changes that note's audio a little (up to
8e-4), and it starts notes at its 64-sample blocks; so a synth shared between tracks would make
a track's audio depend on the tracks rendered before it. Its own reverb and chorus stay off (the
families add their rooms).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SOUNDFONTS = {
    "fluidr3": Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    "musescore": Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"),
}
PACKAGES = {"fluidr3": "fluid-soundfont-gm", "musescore": "musescore-general-soundfont-small"}
DRUM_CHANNEL = 9
FLUSH_SAMPLES = 4096  # played after a reset: the fade-outs of the stem before, thrown away
_CREATION = threading.Lock()


class SoundfontMissing(RuntimeError):
    """FluidSynth or a SoundFont is not installed; the message names the Debian package."""


@dataclass(frozen=True)
class Note:
    """One note: General MIDI program (ignored on the drum channel), key, start and length in beats."""

    channel: int
    program: int
    key: int
    start_beats: float
    length_beats: float
    velocity: int = 90


def render_stems(
    stems: dict[str, list[Note]], tempo_bpm: float, soundfont: str, rate: int, length_s: float
) -> dict[str, np.ndarray]:
    """Mono float64 audio of each stem's notes, ``length_s`` long (later notes are cut)."""
    path = SOUNDFONTS[soundfont]
    try:
        import fluidsynth
    except (ImportError, OSError):
        raise SoundfontMissing("sampled instruments need libfluidsynth: apt-get install fluidsynth") from None
    if not path.is_file():
        raise SoundfontMissing(f"sampled instruments need: apt-get install {PACKAGES[soundfont]}")
    # FluidSynth fills global tables when its first synth is made, unguarded: two threads making
    # their first synths at once could render with half-filled ones. Synths are made one at a time.
    with _CREATION:
        synth = fluidsynth.Synth(
            gain=0.5, samplerate=float(rate), **{"synth.reverb.active": 0, "synth.chorus.active": 0}
        )
        font = synth.sfload(str(path))
    try:
        return {name: _play(synth, font, notes, tempo_bpm, rate, length_s) for name, notes in stems.items()}
    finally:
        with _CREATION:
            synth.delete()


def render(notes: list[Note], tempo_bpm: float, soundfont: str, rate: int, length_s: float) -> np.ndarray:
    """One stem's audio (``render_stems`` of one stem)."""
    return render_stems({"stem": notes}, tempo_bpm, soundfont, rate, length_s)["stem"]


def _play(synth, font: int, notes: list[Note], tempo_bpm: float, rate: int, length_s: float) -> np.ndarray:
    synth.system_reset()
    synth.get_samples(FLUSH_SAMPLES)
    for channel, program in sorted({(note.channel, note.program) for note in notes}):
        drums = channel == DRUM_CHANNEL
        synth.program_select(channel, font, 128 if drums else 0, 0 if drums else program)
    seconds_per_beat = 60.0 / tempo_bpm
    events = []  # (sample, 0 note-off / 1 note-on, channel, key, velocity)
    for note in notes:
        start = int(round(note.start_beats * seconds_per_beat * rate))
        end = max(start + 1, int(round((note.start_beats + note.length_beats) * seconds_per_beat * rate)))
        key, velocity = int(np.clip(note.key, 0, 127)), int(np.clip(note.velocity, 1, 127))
        events += [(start, 1, note.channel, key, velocity), (end, 0, note.channel, key, 0)]
    total = int(round(length_s * rate))
    blocks, cursor = [], 0
    for sample, kind, channel, key, velocity in sorted(events):
        if sample >= total:
            break
        if sample > cursor:
            blocks.append(synth.get_samples(sample - cursor))
            cursor = sample
        if kind:
            synth.noteon(channel, key, velocity)
        else:
            synth.noteoff(channel, key)
    blocks.append(synth.get_samples(total - cursor))
    stereo = np.concatenate(blocks).astype(np.float64).reshape(-1, 2) / 32768.0
    return stereo.mean(axis=1)
