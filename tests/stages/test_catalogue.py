import os

import pandas as pd
import pytest
from livi_testing import write_tone

from livi_tasks.core.store import ArtifactStore
from livi_tasks.stages.catalogue import CatalogueError, ingest_catalogue
from livi_tasks.stages.lineage import current_ingest


def _artifact_files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def broken_catalogue(tmp_path):
    root = tmp_path / "cat"
    write_tone(root / "good1.wav", seconds=2.0)
    write_tone(root / "good2.flac", seconds=1.5, rate=44_100, channels=2)
    (root / "zero.wav").write_bytes(b"")
    (root / "text.mp3").write_text("this is not audio, just text renamed to mp3\n" * 20)
    full = (root / "good1.wav").read_bytes()
    (root / "truncated.wav").write_bytes(full[:30])
    write_tone(root / "short.wav", seconds=0.5)
    (tmp_path / "outside.wav").write_bytes(full)
    rows = [
        ("g1", "w1", "good1.wav"),
        ("g2", "w1", "good2.flac"),
        ("zero", "w2", "zero.wav"),
        ("text", "w2", "text.mp3"),
        ("trunc", "w2", "truncated.wav"),
        ("short", "w3", "short.wav"),
        ("missing", "w3", "nope.wav"),
        ("escape", "w3", "../outside.wav"),
        ("g1", "w4", "good1.wav"),
    ]
    manifest = root / "manifest.csv"
    pd.DataFrame(rows, columns=["track_id", "work_id", "path"]).to_csv(manifest, index=False)
    return manifest


def test_broken_files_are_quarantined_with_reasons(cfg, broken_catalogue):
    result = ingest_catalogue(cfg, broken_catalogue, "broken")
    assert result["tracks"] == 2 and result["quarantined"] == 7
    artifact = ArtifactStore(cfg.store.root).artifact("broken", "ingest", "all", result["fingerprint"])
    tracks = artifact.read_table("tracks")
    assert tracks["track_id"].tolist() == ["g1", "g2"]
    assert tracks.loc[1, "sample_rate"] == 44_100 and tracks.loc[1, "channels"] == 2
    assert tracks["duration_s"].round(2).tolist() == [2.0, 1.5]
    reasons = artifact.read_table("quarantine").set_index("track_id")["reason"]
    assert reasons["zero"].startswith("unreadable audio")
    assert reasons["text"].startswith("unreadable audio")
    assert reasons["trunc"].startswith(("unreadable audio", "empty audio"))
    assert reasons["short"].startswith("too short")
    assert reasons["missing"] == "missing file"
    assert reasons["escape"] == "path escapes the catalogue root"
    assert reasons["g1"] == "duplicate track_id"


def test_rerun_writes_nothing(cfg, broken_catalogue):
    first = ingest_catalogue(cfg, broken_catalogue, "broken")
    data = cfg.store.root
    before = {p: os.stat(os.path.join(data, p)).st_mtime_ns for p in _artifact_files(__import__("pathlib").Path(data))}
    second = ingest_catalogue(cfg, broken_catalogue, "broken")
    assert second["skipped"] and second["fingerprint"] == first["fingerprint"]
    after = {p: os.stat(os.path.join(data, p)).st_mtime_ns for p in before}
    changed = [p for p in before if before[p] != after[p]]
    # Only the catalogue's pointer is refreshed; no artifact file is rewritten.
    assert all(p.endswith("CURRENT_INGEST.json") for p in changed)


def test_changed_file_gives_a_new_ingest(cfg, broken_catalogue):
    first = ingest_catalogue(cfg, broken_catalogue, "broken")
    write_tone(broken_catalogue.parent / "good1.wav", seconds=3.0)
    second = ingest_catalogue(cfg, broken_catalogue, "broken")
    assert second["fingerprint"] != first["fingerprint"] and not second["skipped"]
    assert current_ingest(ArtifactStore(cfg.store.root), "broken")["fingerprint"] == second["fingerprint"]


def test_folder_layout_and_shards(cfg, tmp_path):
    root = tmp_path / "covers"
    for work in ("songA", "songB"):
        for version in range(3):
            write_tone(root / work / f"v{version}.wav", seconds=1.2)
    cfg = cfg.model_copy(update={"ingest": cfg.ingest.model_copy(update={"shard_size": 4})})
    result = ingest_catalogue(cfg, root)
    assert result["catalogue"] == "covers" and result["tracks"] == 6
    assert result["shards"] == ["shard-00000", "shard-00001"]


def test_manifest_without_columns_is_one_clear_error(cfg, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,path\na,x.wav\n")
    with pytest.raises(CatalogueError, match="missing column"):
        ingest_catalogue(cfg, manifest, "m")


def test_demo_catalogue_ingests_cleanly(cfg, demo_catalogue):
    result = ingest_catalogue(cfg, demo_catalogue, "demo")
    assert result["quarantined"] == 0
    assert result["tracks"] == 4 * 2 + 1 + 1
