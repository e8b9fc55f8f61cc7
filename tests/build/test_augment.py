"""Training-time augmentation: the sound changes, deterministically; the words' times follow the tempo."""

from __future__ import annotations

import numpy as np
import pytest

from livi_tasks.build.augment import augment, draw
from livi_tasks.build.synth.voices import Voice, speak
from livi_tasks.core.audio import SAMPLE_RATE


@pytest.fixture(scope="module")
def sung_line() -> np.ndarray:
    import soxr

    speech, rate = speak(Voice("espeak-ng", "en-us"), "hold the lantern and carry the river home tonight")
    line = soxr.resample(np.asarray(speech, np.float32), rate, SAMPLE_RATE)
    return np.concatenate([np.zeros(SAMPLE_RATE, np.float32), line, np.zeros(SAMPLE_RATE, np.float32)])


@pytest.mark.parametrize("seed", range(6))
def test_a_seed_gives_one_augmentation_and_the_times_follow_the_tempo(sung_line, seed):
    audio, chosen = augment(sung_line, seed)
    again, same = augment(sung_line, seed)
    assert chosen == same and np.array_equal(audio, again)
    assert audio.dtype == np.float32 and np.isfinite(audio).all() and np.abs(audio).max() <= 1.0
    assert abs(len(audio) / len(sung_line) - chosen.time_scale) < 0.01


def test_the_chain_covers_every_kind_of_change():
    draws = [draw(np.random.default_rng(seed)) for seed in range(200)]
    assert {d.codec for d in draws} == {"none", "mp3", "opus"}
    assert min(d.semitones for d in draws) < -2.5 and max(d.semitones for d in draws) > 2.5
    assert min(d.time_scale for d in draws) < 0.87 and max(d.time_scale for d in draws) > 1.13
    assert any(d.reverb_s == 0 for d in draws) and any(d.reverb_s > 1 for d in draws)
    assert any(d.band_hz[1] < 5000 for d in draws)
