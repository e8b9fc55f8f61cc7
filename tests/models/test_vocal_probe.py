"""The vocal probe on Whisper frame states: labels, chunks, fitting, storage without pickle, checks."""

from __future__ import annotations

import numpy as np
import pytest

from livi_tasks.build.vocal_probe import build_vocal_probe, fit_probe, frame_labels
from livi_tasks.core.config import load_config
from livi_tasks.models.vocal_probe import (
    FRAMES_PER_SECOND,
    PROBE_FILES,
    ProbeMissing,
    VocalProbe,
    load_probe,
    shipped_probe_dir,
    whole_track_chunks,
)


def test_frames_are_labelled_sung_inside_the_regions_only():
    labels = frame_labels(np.array([[1.0, 2.0], [31.0, 31.5]]), chunks=2, frames_per_chunk=1500)
    assert labels.shape == (2, 1500)
    assert labels[0].sum() == FRAMES_PER_SECOND and labels[0, 50] and not labels[0, 49] and not labels[0, 100]
    assert labels[1].sum() == FRAMES_PER_SECOND // 2 and labels[1, 50]


def test_a_track_is_cut_into_chunks_that_know_where_its_audio_ends():
    audio = np.ones(16_000 * 45, np.float32)
    chunks, audio_frames = whole_track_chunks(audio, 16_000 * 30)
    assert chunks.shape == (2, 480_000)
    assert list(audio_frames) == [1500, 750]
    assert chunks[1, 16_000 * 15 :].sum() == 0


def test_probe_separates_what_it_was_fitted_on_and_survives_a_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.random(4000) < 0.4
    states = rng.normal(size=(4000, 16)).astype(np.float32)
    states[labels, 3] += 3.0  # one direction carries the singing
    probe = fit_probe(states, labels, {"name": "tiny.en", "id": "abc"}, smooth_frames=1)
    predicted = probe.frame_vocalness(states[None])[0] >= probe.threshold
    assert (predicted == labels).mean() > 0.9
    probe.save(tmp_path)
    assert {path.name for path in tmp_path.iterdir()} == set(PROBE_FILES)
    loaded = VocalProbe.load(tmp_path)  # np.load(allow_pickle=False): arrays and JSON only
    np.testing.assert_allclose(loaded.frame_vocalness(states[None]), probe.frame_vocalness(states[None]), rtol=1e-6)


def test_a_missing_probe_or_one_for_another_checkpoint_says_how_to_rebuild(tmp_path):
    with pytest.raises(ProbeMissing, match="livi build-vocal-probe"):
        VocalProbe.load(tmp_path)
    if (shipped_probe_dir("tiny.en") / PROBE_FILES[0]).exists():
        with pytest.raises(ProbeMissing, match="livi build-vocal-probe"):
            load_probe("tiny.en", "not-the-checkpoint")


@pytest.mark.parametrize("family", ["foreign2", "folk"])
def test_the_probe_never_trains_on_an_evaluation_family_and_says_which_it_can(tmp_path, family):
    with pytest.raises(ValueError, match=r"song_family: expected a training song family \['broad'\]"):
        build_vocal_probe(load_config(), "tiny.en", tmp_path, song_family=family, song_works=3)
    assert not any(tmp_path.iterdir())  # refused before any corpus is made
