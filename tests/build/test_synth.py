"""Song families: deterministic, well-formed catalogues whose training and evaluation parts never meet."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from livi_tasks.build.synth import effects, piper
from livi_tasks.build.synth.corpus import FAMILIES, make_corpus, plan_corpus
from livi_tasks.build.synth.instruments import pluck
from livi_tasks.build.synth.lyrics import TEMPLATES, family_words
from livi_tasks.build.synth.voices import Voice, melody_contour, sing, sing_on_notes, speak
from livi_tasks.core.audio import load_audio

TINY = {"works": 2, "versions": 2, "instrumentals": 1, "hard_negatives": 1}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def corpus(request, tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp(request.param) / "corpus", request.param, seed=3, **TINY).parent


def test_tables_describe_every_track(corpus):
    manifest = pd.read_csv(corpus / "manifest.csv")
    tracks = pd.read_csv(corpus / "tracks.csv").set_index("track_id")
    lyrics = json.loads((corpus / "lyrics.json").read_text())
    vocals = pd.read_csv(corpus / "vocals.csv")
    assert len(manifest) == 2 * 2 + 1 + 1
    assert sorted(tracks["kind"].value_counts().items()) == [("hard_negative", 1), ("instrumental", 1), ("version", 4)]
    for row in manifest.itertuples():
        audio = load_audio(str(corpus / row.path))
        sung = vocals[vocals.track_id == row.track_id]
        assert len(sung) == len(lyrics["tracks"][row.track_id]) == tracks.loc[row.track_id, "lines_sung"]
        if tracks.loc[row.track_id, "kind"] == "instrumental":
            assert sung.empty
        else:
            assert len(sung) >= 4 and sung.end_s.max() <= len(audio) / 16_000 + 0.1
            assert set(lyrics["tracks"][row.track_id]) <= set(lyrics["works"][row.work_id])
    negative = tracks[tracks.kind == "hard_negative"].iloc[0]
    assert negative.backing_of in tracks.index and negative.name.startswith("hardneg")


def test_same_seed_same_bytes(corpus, tmp_path):
    family = pd.read_csv(corpus / "tracks.csv")["family"].iloc[0]
    again = make_corpus(tmp_path / "again", family, seed=3, **TINY).parent
    for name in ("manifest.csv", "vocals.csv", "lyrics.json", "tracks.csv"):
        assert (again / name).read_bytes() == (corpus / name).read_bytes(), name
    # Decoded samples, not file bytes: an Ogg stream carries a random serial number.
    for path in sorted((corpus / "audio").rglob("*.*")):
        first, _ = sf.read(path)
        second, _ = sf.read(again / path.relative_to(corpus))
        assert np.array_equal(first, second), path.name


def test_families_share_no_part():
    train, foreign = FAMILIES["randomised"], FAMILIES["foreign"]
    assert not {engine for engine, _ in train.voices} & {engine for engine, _ in foreign.voices}
    for part in ("chord_instruments", "bass_instruments", "lead_instruments", "kits"):
        assert not set(getattr(train, part)) & set(getattr(foreign, part)), part
    assert not set(family_words("randomised")) & set(family_words("foreign"))
    assert len(family_words("foreign")) > 2000 and len(family_words("randomised")) > 4 * 2000
    assert not set(TEMPLATES["randomised"]) & set(TEMPLATES["foreign"])


def test_piper_family_changes_only_the_singer():
    """The Piper family is the training world with another synthesis method: the same works for a
    seed as far as the singer draw allows, and an engine no evaluation-only family sings with."""
    world, sung_by_piper = FAMILIES["randomised"], FAMILIES["piper"]
    assert sung_by_piper.world == "randomised" and sung_by_piper.voices == (("piper", "joe"),)
    for part in ("chord_instruments", "bass_instruments", "lead_instruments", "kits", "formats", "snr_db"):
        assert getattr(sung_by_piper, part) == getattr(world, part), part
    assert "piper" not in {engine for engine, _ in FAMILIES["foreign"].voices}
    plan = plan_corpus("piper", works=2, versions=2, seed=4)
    glue = {token.strip(",") for template in TEMPLATES["randomised"] for token in template.split()}
    sung = {word.strip(",") for lines in plan.lyrics.values() for line in lines for word in line.split()} - glue
    assert sung and sung <= set(family_words("randomised"))
    assert {track.voice.engine for track in plan.tracks} == {"piper"}


def test_notes_family_changes_only_the_way_of_singing():
    world, notes = FAMILIES["randomised"], FAMILIES["notes"]
    assert (world.singing, notes.singing) == ("bend", "notes")
    assert replace(notes, name="randomised", singing="bend") == world
    assert replace(FAMILIES["piper_notes"], name="piper", singing="bend") == FAMILIES["piper"]


def test_words_sung_on_notes_last_their_notes_at_their_pitch():
    """Each word lasts its note whatever its pitch (the last word twice as long, a short breath
    after each), and a tune an octave up sings an octave up."""
    import librosa

    text, rate, note_s = "hold the lantern and carry the river", 16_000, 0.4
    voice = Voice("espeak-ng", "en-us")
    low = sing_on_notes(voice, text, (0,), note_s, np.random.default_rng(0), rate)
    high = sing_on_notes(voice, text, (12,), note_s, np.random.default_rng(0), rate)
    expected_s = (7 + 1) * note_s * 0.92 + 7 * 0.08 * note_s
    for line in (low, high):
        assert abs(len(line) / rate - expected_s) < 0.05 * expected_s

    pitch = [float(np.median(librosa.yin(line.astype(np.float32), fmin=60, fmax=800, sr=rate))) for line in (low, high)]
    assert abs(pitch[1] / pitch[0] - 2.0) < 0.2


def test_piper_speaks_english_at_its_pace():
    text = "hold the lantern and carry the river home"
    speech, rate = speak(Voice("piper", "joe"), text)
    slower, _ = speak(Voice("piper", "joe", stretch=1.4), text)
    assert rate == piper.SAMPLE_RATE and 1.0 < len(speech) / rate < 5.0
    assert 1.2 < len(slower) / len(speech) < 1.6
    assert np.array_equal(piper.speak(text)[0], piper.speak(text)[0])  # noise off: one line, one rendering
    with pytest.raises(ValueError, match="piper voice"):
        piper.speak(text, "lessac")


def test_versions_change_what_a_cover_changes():
    plan = plan_corpus("randomised", works=3, versions=3, seed=11)
    for work in ("work-001", "work-002", "work-003"):
        versions = [t for t in plan.tracks if t.work_id == work]
        assert len({t.backing.progression for t in versions}) == 1  # the harmony is the song's
        assert len({(t.voice, t.backing.tempo_bpm, t.backing.key_root, t.lines) for t in versions}) == 3


def test_pluck_and_echo_blocks_equal_the_sample_recursions():
    from scipy import signal

    rng = np.random.default_rng(0)
    x = rng.standard_normal(3000)
    delay, feedback = 37, 0.4
    denominator = np.zeros(delay + 1)
    denominator[0], denominator[delay] = 1.0, -feedback
    reference = x + 0.3 * signal.lfilter([1.0], denominator, np.concatenate([np.zeros(delay), x[:-delay]]))
    np.testing.assert_allclose(effects.echo(x, 1000, delay / 1000, feedback, 0.3), reference, atol=1e-12)
    string = pluck(441.0, 0.5, 44_100, np.random.default_rng(1))
    lags = np.arange(50, 200)
    correlation = [np.dot(string[:-lag], string[lag:]) for lag in lags]
    assert abs(lags[int(np.argmax(correlation))] - 100) <= 1  # a period of 100 samples: 441 Hz


def test_singing_follows_the_melody():
    speech, rate = speak(Voice("espeak-ng", "en-us"), "hold the lantern and carry the river")
    up = sing(speech, rate, melody_contour(np.array([12]), np.array([10.0]), rate, 0.04, 0.0, 5.0), rate)
    # An octave up reads the speech twice as fast: half the length.
    assert abs(len(up) / len(speech) - 0.5) < 0.02
