"""Speech engines as singers: speak a line, then bend it along a melody.

Five engines with different synthesis methods: espeak-ng (formant synthesis), flite (CMU
clustergen statistical voices), Festival (diphone concatenation and HTS), Kokoro-82M (a neural
model, ``kokoro``) and Piper's ``joe`` (a VITS model, ``piper``). No engine sings, so
the line is spoken at the version's pace and then resampled along a pitch contour that steps
through the melody's notes with short glides and a delayed vibrato: pitch follows the tune, and
the formants move with it a little, as in a pitch-shifted recording.
"""

from __future__ import annotations

import functools
import subprocess
import tempfile
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from livi_tasks.build.synth import kokoro, piper

ENGINES = ("espeak-ng", "flite", "festival", "kokoro", "piper")
FESTIVAL_VOICES = {"kal": "kal_diphone", "ked": "ked_diphone", "slt": "cmu_us_slt_arctic_hts"}


class EngineMissing(RuntimeError):
    """A speech engine or voice is not installed; the message names the Debian package."""


@dataclass(frozen=True)
class Voice:
    """A speaker: engine, voice name and how it is driven (pace and, for espeak-ng, base pitch)."""

    engine: str
    name: str
    stretch: float = 1.0  # > 1 sings slower
    word_gap: int = 0  # espeak-ng only: extra pause between words in 10 ms units
    pitch: int = 50  # espeak-ng only: base pitch 0-99

    @property
    def label(self) -> str:
        return f"{self.engine}:{self.name}"

    @classmethod
    def drawn(cls, rng: np.random.Generator, engine: str, name: str, max_stretch: float, max_gap: int) -> "Voice":
        """The voice sung at a pace, word gap and base pitch drawn from ``rng`` (in that order)."""
        return cls(
            engine,
            name,
            stretch=round(float(rng.uniform(0.9, max_stretch)), 3),
            word_gap=int(rng.integers(0, max_gap)),
            pitch=int(rng.integers(25, 75)),
        )


@functools.lru_cache(maxsize=256)
def speak(voice: Voice, text: str) -> tuple[np.ndarray, int]:
    """Mono float64 speech of ``text`` and its sample rate, leading and trailing silence trimmed
    (the last lines asked for are kept: a chorus, a double or a harmony speaks once)."""
    if voice.engine == "kokoro":
        speech, rate = kokoro.speak(text, voice.name, speed=1.0 / voice.stretch)
        return _trimmed(speech, voice, text), rate
    if voice.engine == "piper":
        speech, rate = piper.speak(text, voice.name, length_scale=voice.stretch)
        return _trimmed(speech, voice, text), rate
    with tempfile.TemporaryDirectory(prefix="livi-voice-") as folder:
        wav = Path(folder) / "line.wav"
        try:
            subprocess.run(_command(voice, text, Path(folder), wav), check=True, capture_output=True, timeout=60)
        except FileNotFoundError as exc:
            raise EngineMissing(f"{voice.engine} is not installed: apt-get install {_package(voice.engine)}") from exc
        except subprocess.CalledProcessError as exc:
            detail = exc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
            raise EngineMissing(
                f"{voice.label} failed ({detail[0]}): apt-get install {_package(voice.engine)}"
            ) from exc
        speech, rate = sf.read(wav, dtype="float64")
    if speech.ndim == 2:
        speech = speech.mean(axis=1)
    return _trimmed(speech, voice, text), int(rate)


def _trimmed(speech: np.ndarray, voice: Voice, text: str) -> np.ndarray:
    loud = np.flatnonzero(np.abs(speech) > 0.02 * max(np.abs(speech).max(initial=0.0), 1e-9))
    if not len(loud):
        raise EngineMissing(f"{voice.label} produced silence for {text!r}")
    trimmed = speech[loud[0] : loud[-1] + 1].copy()
    trimmed.setflags(write=False)  # cached and shared: nobody may change it
    return trimmed


def _command(voice: Voice, text: str, folder: Path, wav: Path) -> list[str]:
    if voice.engine == "espeak-ng":
        speed = int(round(150 / voice.stretch))
        return [
            "espeak-ng",
            "-v",
            voice.name,
            "-s",
            str(speed),
            "-p",
            str(voice.pitch),
            "-g",
            str(voice.word_gap),
            "-w",
            str(wav),
            text,
        ]
    if voice.engine == "flite":
        return [
            "flite",
            "-voice",
            voice.name,
            "--setf",
            f"duration_stretch={voice.stretch:.3f}",
            "-t",
            text,
            "-o",
            str(wav),
        ]
    if voice.engine == "festival":
        script = folder / "line.txt"
        script.write_text(text + "\n")
        return [
            "text2wave",
            "-o",
            str(wav),
            "-eval",
            f"(voice_{FESTIVAL_VOICES[voice.name]})",
            "-eval",
            f"(Parameter.set 'Duration_Stretch {voice.stretch:.3f})",
            str(script),
        ]
    raise ValueError(f"engine: expected one of {ENGINES}, got {voice.engine!r}")


def _package(engine: str) -> str:
    return {
        "espeak-ng": "espeak-ng",
        "flite": "flite",
        "festival": "festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts",
        "kokoro": "espeak-ng (phonemes); " + kokoro.INSTALL_HINT,
        "piper": "espeak-ng (phonemes); " + piper.INSTALL_HINT,
    }[engine]


def melody_contour(
    notes: np.ndarray, note_s: np.ndarray, rate: int, glide_s: float, vibrato_cents: float, vibrato_hz: float
) -> np.ndarray:
    """Pitch in cents per output sample: held notes joined by ``glide_s`` glides, vibrato after 150 ms."""
    steps = np.repeat(
        100.0 * np.asarray(notes, dtype=np.float64), np.maximum(1, np.round(np.asarray(note_s) * rate).astype(int))
    )
    width = max(1, int(glide_s * rate))
    glided = signal.oaconvolve(
        np.pad(steps, (width // 2, width - width // 2 - 1), mode="edge"), np.ones(width) / width, mode="valid"
    )
    times = np.arange(len(glided)) / rate
    onset = np.clip((times % max(float(np.mean(note_s)), 1e-3) - 0.15) / 0.1, 0, 1)
    return glided + vibrato_cents * onset * np.sin(2 * np.pi * vibrato_hz * times)


def sing(speech: np.ndarray, speech_rate: int, contour_cents: np.ndarray, out_rate: int) -> np.ndarray:
    """Read ``speech`` at a speed of 2^(cents/1200) per output sample, then resample to ``out_rate``.

    The contour is given at ``speech_rate``; when the speech outlasts it, the last note is held.
    """
    need = int(len(speech) / 2 ** (contour_cents.min() / 1200) * 1.05) + 2 if len(contour_cents) else len(speech)
    if len(contour_cents) < need:
        contour_cents = np.concatenate(
            [contour_cents, np.full(need - len(contour_cents), contour_cents[-1] if len(contour_cents) else 0.0)]
        )
    positions = np.concatenate([[0.0], np.cumsum(2 ** (contour_cents[:-1] / 1200))])
    positions = positions[positions <= len(speech) - 1]
    sung = np.interp(positions, np.arange(len(speech)), speech)
    common = gcd(out_rate, speech_rate)
    return signal.resample_poly(sung, out_rate // common, speech_rate // common)


def sing_bent(
    voice: Voice, text: str, semitones: tuple[int, ...], beat: float, rng: np.random.Generator, out_rate: int
) -> np.ndarray:
    """``text`` spoken as one line and bent along ``semitones``, each note a half or a whole beat
    at the singer's pace, with glides and vibrato."""
    speech, speech_rate = speak(voice, text)
    note_s = rng.choice([0.5, 1.0], size=len(semitones)) * beat * voice.stretch
    contour = melody_contour(
        np.resize(np.array(semitones), 64),
        np.resize(note_s, 64),
        speech_rate,
        0.04,
        rng.uniform(15, 45),
        rng.uniform(4.5, 6.5),
    )
    return sing(speech, speech_rate, contour, out_rate)


def sing_on_notes(
    voice: Voice, text: str, semitones: tuple[int, ...], note_s: float, rng: np.random.Generator, out_rate: int
) -> np.ndarray:
    """``text`` sung word by word, each word held on the next note of ``semitones`` (cycled) for
    ``note_s`` and the last word twice as long, with a short breath between words."""
    words = text.replace(",", "").split()
    pieces = []
    for index, word in enumerate(words):
        speech, speech_rate = speak(voice, word)
        semitone = semitones[index % len(semitones)]
        held = note_s * (2.0 if index == len(words) - 1 else 1.0)
        # sing() reads faster to go higher: stretch the word first so it lasts its note.
        stretched = _stretch_speech(speech, speech_rate, held * 2 ** (semitone / 12) * 0.92)
        vibrato = rng.uniform(10, 40)
        contour = melody_contour(np.array([semitone]), np.array([held]), speech_rate, 0.03, vibrato, 5.5)
        pieces.append(sing(stretched, speech_rate, contour, out_rate))
        pieces.append(np.zeros(int(0.08 * note_s * out_rate)))
    return np.concatenate(pieces) if pieces else np.zeros(0)


def _stretch_speech(speech: np.ndarray, rate: int, seconds: float) -> np.ndarray:
    """``speech`` time-stretched to ``seconds`` (phase vocoder; pitch kept)."""
    import librosa

    target = max(seconds, 0.05)
    factor = float(np.clip(len(speech) / rate / target, 0.25, 4.0))
    stretched = librosa.effects.time_stretch(speech.astype(np.float32), rate=factor, n_fft=512, hop_length=128)
    return stretched.astype(np.float64)
