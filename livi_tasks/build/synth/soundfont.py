"""Sampled instruments: note events played through FluidSynth (pyfluidsynth over Debian's
libfluidsynth) with a General MIDI SoundFont (Debian's fluid-soundfont-gm and
musescore-general-soundfont-small), one stem at a time so that the mix can pan and level them.
Each thread loads a SoundFont once; FluidSynth's own reverb and chorus stay off (the families
add their rooms).
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
_LOADED = threading.local()


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


def _synth(soundfont: str, rate: int):
    """This thread's FluidSynth with ``soundfont`` loaded, at ``rate``."""
    loaded = getattr(_LOADED, "synths", None)
    if loaded is None:
        loaded = _LOADED.synths = {}
    if (soundfont, rate) not in loaded:
        path = SOUNDFONTS[soundfont]
        try:
            import fluidsynth
        except (ImportError, OSError):
            raise SoundfontMissing("sampled instruments need libfluidsynth: apt-get install fluidsynth") from None
        if not path.is_file():
            raise SoundfontMissing(f"sampled instruments need: apt-get install {PACKAGES[soundfont]}")
        synth = fluidsynth.Synth(
            gain=0.5, samplerate=float(rate), **{"synth.reverb.active": 0, "synth.chorus.active": 0}
        )
        loaded[soundfont, rate] = (synth, synth.sfload(str(path)))
    return loaded[soundfont, rate]


def render(notes: list[Note], tempo_bpm: float, soundfont: str, rate: int, length_s: float) -> np.ndarray:
    """Mono float64 audio of the notes, ``length_s`` long (later notes are cut)."""
    synth, font = _synth(soundfont, rate)
    for channel in range(16):
        synth.cc(channel, 123, 0)  # all notes off, from the stem rendered before
        synth.cc(channel, 121, 0)  # controllers reset
    for channel, program in sorted({(note.channel, note.program) for note in notes}):
        synth.program_select(
            channel, font, 128 if channel == DRUM_CHANNEL else 0, 0 if channel == DRUM_CHANNEL else program
        )
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
    if cursor < total:
        blocks.append(synth.get_samples(total - cursor))
    stereo = np.concatenate(blocks).astype(np.float64).reshape(-1, 2) / 32768.0
    return stereo.mean(axis=1)
