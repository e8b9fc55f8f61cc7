"""The demo catalogue: deterministic, well-formed, with the vocal levels and hard cases it promises."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from livi_tasks.build.demo import (
    LINE_TEMPLATES,
    make_demo_catalogue,
    plan_demo_catalogue,
    render_track_stems,
    synthesise_backing,
)

TINY = {
    "works": 2,
    "versions": 2,
    "instrumentals": 1,
    "hard_negatives": 1,
    "min_duration_s": 9,
    "max_duration_s": 12,
}


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _audio_hashes(root: Path) -> dict[str, str]:
    return {
        row["track_id"]: hashlib.sha256((root / row["path"]).read_bytes()).hexdigest()
        for row in _rows(root / "manifest.csv")
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_catalogue(tmp_path_factory.mktemp("demo") / "seed0", seed=0, **TINY).parent


def test_same_seed_gives_the_same_bytes(tiny: Path, tmp_path: Path) -> None:
    again = make_demo_catalogue(tmp_path / "again", seed=0, **TINY).parent
    for name in ("manifest.csv", "lyrics.json", "vocals.csv", "tracks.csv", "demo.json"):
        assert (again / name).read_bytes() == (tiny / name).read_bytes(), name
    assert _audio_hashes(again) == _audio_hashes(tiny)


def test_another_seed_gives_other_songs(tiny: Path, tmp_path: Path) -> None:
    other = make_demo_catalogue(tmp_path / "other", seed=1, **TINY).parent
    first, second = _audio_hashes(tiny), _audio_hashes(other)
    assert first.keys() == second.keys()
    assert all(first[track] != second[track] for track in first)
    lyrics = [json.loads((root / "lyrics.json").read_text())["works"] for root in (tiny, other)]
    assert lyrics[0] != lyrics[1]


def test_layout_and_tables_agree(tiny: Path) -> None:
    manifest = _rows(tiny / "manifest.csv")
    tracks = {row["track_id"]: row for row in _rows(tiny / "tracks.csv")}
    assert [row["track_id"] for row in manifest] == list(tracks)
    kinds = [row["kind"] for row in tracks.values()]
    assert kinds.count("version") == 4 and kinds.count("instrumental") == 1 and kinds.count("hard_negative") == 1
    for row in manifest:
        path = tiny / row["path"]
        assert row["path"] == f"audio/{row['work_id']}/{path.name}" and path.suffix in (".wav", ".flac")
        info = sf.info(path)
        meta = tracks[row["track_id"]]
        assert info.samplerate == int(meta["sample_rate"]) and info.channels == int(meta["channels"])
        assert info.duration == pytest.approx(float(meta["duration_s"]), abs=0.01)
    works = [row["work_id"] for row in manifest]
    non_versions = [row["work_id"] for row in tracks.values() if row["kind"] != "version"]
    assert all(works.count(work) == 1 for work in non_versions), "instrumentals and hard negatives version nothing"


def test_vocal_regions_lie_inside_tracks_and_match_the_lyrics(tiny: Path) -> None:
    tracks = {row["track_id"]: row for row in _rows(tiny / "tracks.csv")}
    sung = json.loads((tiny / "lyrics.json").read_text())["tracks"]
    regions: dict[str, list[tuple[float, float]]] = {track: [] for track in tracks}
    for row in _rows(tiny / "vocals.csv"):
        regions[row["track_id"]].append((float(row["start_s"]), float(row["end_s"])))
    for track, meta in tracks.items():
        spans = regions[track]
        assert len(spans) == len(sung[track]) == int(meta["lines_sung"])
        if meta["kind"] == "instrumental":
            assert not spans
            continue
        assert spans, f"{track} sings nothing"
        assert spans[0][0] >= float(meta["intro_s"]) - 1e-3
        ends = [0.0] + [end for _, end in spans[:-1]]
        for (start, end), previous_end in zip(spans, ends):
            assert previous_end <= start < end <= float(meta["duration_s"])


def test_vocals_sit_a_few_db_above_the_backing(tiny: Path) -> None:
    plan = plan_demo_catalogue(seed=0, **TINY)
    for spec in plan.tracks:
        stems = render_track_stems(spec)
        if spec.kind == "instrumental":
            assert not stems.lines and not stems.vocals.any()
            continue
        measured = stems.vocal_to_backing_db()
        assert 2.0 - 1e-6 <= measured <= 6.0 + 1e-6
        assert measured == pytest.approx(spec.target_snr_db, abs=1e-6)
    recorded = [float(row["snr_db"]) for row in _rows(tiny / "tracks.csv") if row["snr_db"]]
    assert recorded and all(2.0 - 0.01 <= value <= 6.0 + 0.01 for value in recorded)


def test_hard_negative_reuses_a_versions_backing_with_other_lyrics(tiny: Path) -> None:
    tracks = {row["track_id"]: row for row in _rows(tiny / "tracks.csv")}
    lyrics = json.loads((tiny / "lyrics.json").read_text())
    negative = next(row for row in tracks.values() if row["kind"] == "hard_negative")
    source = tracks[negative["backing_of"]]
    assert source["kind"] == "version" and negative["backing_seed"] == source["backing_seed"]
    assert set(lyrics["works"][negative["work_id"]]).isdisjoint(lyrics["works"][source["work_id"]])

    plan = {spec.track_id: spec for spec in plan_demo_catalogue(seed=0, **TINY).tracks}
    backing = synthesise_backing(plan[negative["track_id"]].backing)
    assert np.array_equal(backing, synthesise_backing(plan[source["track_id"]].backing))


def test_works_share_few_content_words() -> None:
    plan = plan_demo_catalogue(seed=0, works=12, versions=1, instrumentals=0, hard_negatives=0)
    glue = {word for template in LINE_TEMPLATES for word in template.split() if word not in "NVA"} | {"an"}
    vocabularies = [
        {word for line in lines for word in re.findall(r"[a-z]+", line.lower())} - glue
        for lines in plan.lyrics.values()
    ]
    for lines in plan.lyrics.values():
        assert 6 <= len(lines) <= 10 and all(5 <= len(line.split()) <= 9 for line in lines)
    overlaps = [len(a & b) / len(a | b) for i, a in enumerate(vocabularies) for b in vocabularies[i + 1 :]]
    assert max(overlaps) < 0.1


def test_existing_catalogue_is_kept_and_other_parameters_rebuild(tiny: Path, tmp_path: Path) -> None:
    target = tmp_path / "catalogue"
    small = {**TINY, "works": 1, "hard_negatives": 0, "instrumentals": 0}
    manifest = make_demo_catalogue(target, seed=3, **small)
    stamp = manifest.stat().st_mtime_ns
    assert make_demo_catalogue(target, seed=3, **small) == manifest and manifest.stat().st_mtime_ns == stamp
    make_demo_catalogue(target, seed=4, **small)
    assert json.loads((target / "demo.json").read_text())["parameters"]["seed"] == 4
    assert not [entry for entry in tmp_path.iterdir() if entry.name.startswith(".")], "no staging left behind"


def test_refuses_to_overwrite_a_folder_that_is_not_a_demo(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="out_dir"):
        make_demo_catalogue(tmp_path, **TINY)
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"works": 0}, "works"),
        ({"versions": -1}, "versions"),
        ({"works": 1.5}, "works"),
        ({"seed": -2}, "seed"),
        ({"instrumentals": -1}, "instrumentals"),
        ({"hard_negatives": 5, "works": 2, "versions": 2}, "hard_negatives"),
        ({"min_duration_s": 2}, "min_duration_s"),
        ({"min_duration_s": 50, "max_duration_s": 40}, "max_duration_s"),
        ({"max_duration_s": "60"}, "max_duration_s"),
    ],
)
def test_bad_parameters_are_named(tmp_path: Path, arguments: dict, named: str) -> None:
    with pytest.raises(ValueError, match=f"^{named}:"):
        make_demo_catalogue(tmp_path / "never", **arguments)
    assert not (tmp_path / "never").exists()
