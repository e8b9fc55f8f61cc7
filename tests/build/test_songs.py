"""The song families (broad: training; foreign2: evaluation-only): whole songs, version kinds,
voices, sampled instruments and codecs, made deterministically and described exactly."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from livi_tasks.build.synth import kokoro, soundfont
from livi_tasks.build.synth.corpus import FAMILIES, make_corpus
from livi_tasks.build.synth.lyrics import TEMPLATES, family_words
from livi_tasks.build.synth.songs import FORMS, SONG_FAMILIES, plan_songs, song_seconds
from livi_tasks.build.synth.voices import Voice, speak
from livi_tasks.core.audio import load_audio

# Seeds and shapes whose versions are brief or short songs, Kokoro sung in both families (a live
# take and a duet in foreign2): three minutes in all.
SHAPES = {
    "broad": {"works": 1, "versions": 3, "instrumentals": 1, "hard_negatives": 1, "seed": 9},
    "foreign2": {"works": 1, "versions": 2, "instrumentals": 1, "hard_negatives": 1, "seed": 41},
}


@pytest.fixture(scope="module", params=sorted(SONG_FAMILIES))
def songs(request, tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp(request.param) / "corpus", request.param, **SHAPES[request.param]).parent


def test_tables_describe_every_track(songs):
    manifest = pd.read_csv(songs / "manifest.csv")
    tracks = pd.read_csv(songs / "tracks.csv").set_index("track_id")
    lyrics = json.loads((songs / "lyrics.json").read_text())
    vocals = pd.read_csv(songs / "vocals.csv")
    family = tracks["family"].iloc[0]
    assert len(manifest) == SHAPES[family]["versions"] + 1 + 1
    assert (tracks["kind"] == "instrumental").sum() == 1 and (tracks["kind"] == "hard_negative").sum() == 1
    for row in manifest.itertuples():
        audio = load_audio(str(songs / row.path))
        assert abs(len(audio) / 16_000 - tracks.loc[row.track_id, "duration_s"]) < 0.1
        sung = vocals[vocals.track_id == row.track_id]
        assert len(sung) == len(lyrics["tracks"][row.track_id])
        if tracks.loc[row.track_id, "kind"] == "instrumental":
            assert sung.empty
            continue
        assert len(sung) >= 8 and sung.end_s.max() <= len(audio) / 16_000 + 0.05
        assert (sung.start_s.diff().dropna() > 0).all()  # lines in order, on the grid
        assert set(lyrics["tracks"][row.track_id]) <= set(lyrics["works"][row.work_id])
        inside = np.zeros(len(audio), bool)
        for start, end in zip(sung.start_s, sung.end_s):
            inside[int(start * 16_000) : int(end * 16_000)] = True
        assert inside.mean() > 0.2  # sung most bars but the intros, solos, breaks and endings
    negative = tracks[tracks.kind == "hard_negative"].iloc[0]
    assert negative.backing_of == "work-001" and negative.name.startswith("hardneg")
    assert set(tracks["voice"].dropna()) and set(tracks["engine"].dropna()) <= {"espeak-ng", "flite", "kokoro"}


def test_same_seed_same_bytes(songs, tmp_path):
    family = pd.read_csv(songs / "tracks.csv")["family"].iloc[0]
    if family == "foreign2":  # its Kokoro voices take minutes: the plan is compared, the audio in broad
        assert plan_songs(family, **SHAPES[family]) == plan_songs(family, **SHAPES[family])
        return
    again = make_corpus(tmp_path / "again", family, **SHAPES[family]).parent
    for name in ("manifest.csv", "vocals.csv", "lyrics.json", "tracks.csv"):
        assert (again / name).read_bytes() == (songs / name).read_bytes(), name
    for path in sorted((songs / "audio").rglob("*.*")):
        first, _ = sf.read(path)
        second, _ = sf.read(again / path.relative_to(songs))
        assert np.array_equal(first, second), path.name


def test_the_evaluation_family_shares_no_part_with_training():
    train, held_out = SONG_FAMILIES["broad"], SONG_FAMILIES["foreign2"]
    voices = {
        family: {(engine, name) for engine, names, _ in spec.voices for name in names}
        for family, spec in SONG_FAMILIES.items()
    }
    assert not voices["broad"] & voices["foreign2"]
    styles = {name: {part for _, voice in voices[name] for part in voice.split("+")} for name in voices}
    assert not styles["broad"] & styles["foreign2"] & set(kokoro.STYLES)  # no Kokoro style reaches both
    assert not {engine for engine, _, _ in train.voices} & {engine for engine, _ in FAMILIES["foreign"].voices}
    assert not set(train.soundfonts) & set(held_out.soundfonts)
    for role in train.programs:
        assert not set(train.programs[role]) & set(held_out.programs[role]), role
    assert not set(TEMPLATES["broad"]) & set(TEMPLATES["foreign2"])
    assert not set(family_words("broad")) & set(family_words("foreign2"))


def test_versions_are_the_kinds_covers_are():
    plan = plan_songs("broad", works=12, versions=4, seed=5)
    versions = [track for track in plan.tracks if track.work_id == "work-001"]
    assert len({(t.tempo_bpm, t.transpose, t.singers) for t in versions}) == 4
    kinds = {track.kind for track in plan.tracks}
    assert kinds == {"studio", "live", "acoustic", "remix", "duet"}
    for track in plan.tracks:
        work = plan.works[track.work_id]
        if track.kind == "remix":
            assert 0.74 * work.tempo_bpm <= track.tempo_bpm <= 1.26 * work.tempo_bpm
        if track.kind == "duet":
            assert len(track.singers) == 2 and track.singers[0].voice != track.singers[1].voice
        if track.kind == "acoustic":
            assert "solo" not in track.form and track.kit in ("none", "acoustic")
    lengths = [song_seconds(track, plan.works[track.work_id]) for track in plan.tracks]
    assert min(lengths) < 60 and max(lengths) > 150  # brief songs and full-length ones
    assert {len(track.form) for track in plan.tracks} >= {len(FORMS["brief"]), len(FORMS["full"])}


def test_kokoro_speaks_english_from_phonemes():
    speech, rate = speak(Voice("kokoro", "jf_alpha+jm_kumo"), "hold the lantern and carry the river home")
    assert rate == kokoro.SAMPLE_RATE and 1.0 < len(speech) / rate < 5.0
    with pytest.raises(ValueError, match="unknown style"):
        kokoro.style_of("af_heart")


def test_soundfont_notes_sound_at_their_pitch():
    rate = 22_050
    audio = soundfont.render([soundfont.Note(0, 0, 69, 0.0, 2.0, 100)], 60.0, "fluidr3", rate, 2.0)  # A4, a piano
    spectrum = np.abs(np.fft.rfft(audio[: rate // 2] * np.hanning(rate // 2)))
    peak = np.fft.rfftfreq(rate // 2, 1 / rate)[np.argmax(spectrum)]
    assert abs(peak - 440.0) < 6.0
    drums = soundfont.render([soundfont.Note(soundfont.DRUM_CHANNEL, 0, 38, 0.5, 0.2, 110)], 60.0, "fluidr3", rate, 1.0)
    assert np.abs(drums[: rate // 2 - 200]).max() < 1e-3 < np.abs(drums[rate // 2 :]).max()  # the snare, on time
