import numpy as np
import pandas as pd
import pytest
from livi_testing import run_stages

from livi_tasks.core.config import VocalConfig
from livi_tasks.core.store import ArtifactStore
from livi_tasks.core.vocal_labels import precision_recall, window_coverage, window_labels
from livi_tasks.stages.lineage import artifact_for, shard_ids
from livi_tasks.stages.vocal import track_decision
from livi_tasks.stages.vocal_head import train_vocal_head


def _vocal_tables(cfg, catalogue):
    store = ArtifactStore(cfg.store.root)
    artifacts = [artifact_for(cfg, store, catalogue, "vocal", shard) for shard in shard_ids(store, catalogue)]
    windows = pd.concat([a.read_table("windows") for a in artifacts], ignore_index=True)
    tracks = pd.concat([a.read_table("tracks") for a in artifacts], ignore_index=True)
    return windows, tracks


@pytest.fixture(scope="module")
def vocal_done(demo_cfg, demo_ingested):
    return run_stages(demo_cfg, demo_ingested, "vocal")["vocal"]


@pytest.fixture(scope="module")
def musicnn_cfg(demo_cfg):
    return demo_cfg.model_copy(update={"vocal": demo_cfg.vocal.model_copy(update={"method": "zero_shot"})})


@pytest.fixture(scope="module")
def musicnn_done(musicnn_cfg, demo_ingested):
    return run_stages(musicnn_cfg, demo_ingested, "vocal")["vocal"]


@pytest.mark.parametrize("detector", ["default", "musicnn"])
def test_window_detection_and_track_filter(detector, request, demo_ingested, demo_catalogue):
    # The default detector is the Whisper encoder probe; Musicnn (zero-shot tags) stays the paper's.
    cfg = request.getfixturevalue("demo_cfg" if detector == "default" else "musicnn_cfg")
    request.getfixturevalue("vocal_done" if detector == "default" else "musicnn_done")
    assert cfg.vocal.method == ("encoder_probe" if detector == "default" else "zero_shot")
    windows, tracks = _vocal_tables(cfg, demo_ingested)
    labels = window_labels(window_coverage(windows, pd.read_csv(demo_catalogue.parent / "vocals.csv")))
    scores = precision_recall((windows["vocalness"].to_numpy() >= cfg.vocal.window_threshold).astype(int), labels)
    print(f"{cfg.vocal.method} window detection:", scores)
    assert scores["precision"] >= 0.9 and scores["recall"] >= 0.9
    status = tracks.set_index("track_id")["status"]
    assert (status[status.index.str.startswith("instrumental")] == "excluded").all()
    assert (status[~status.index.str.startswith("instrumental")] == "kept").all()
    excluded = tracks[tracks.status == "excluded"]
    assert excluded["reason"].str.contains("below vocal.min_vocal_s").all()


def test_windows_and_musicnn_features_are_aligned(musicnn_cfg, demo_ingested, musicnn_done):
    store = ArtifactStore(musicnn_cfg.store.root)
    for shard in shard_ids(store, demo_ingested):
        vocal = artifact_for(musicnn_cfg, store, demo_ingested, "vocal", shard)
        windows = vocal.read_table("windows")
        assert vocal.read_array("features").shape == (len(windows), 200)
        for _, group in windows.groupby("track_id"):
            assert np.allclose(group["start_s"], 3.0 * group["window"])


def test_rerun_is_skipped(demo_cfg, demo_ingested, vocal_done):
    again = run_stages(demo_cfg, demo_ingested, "vocal")["vocal"]
    assert all(summary["skipped"] for summary in again)


def test_trained_head_detects_vocals(demo_cfg, demo_ingested, demo_catalogue, musicnn_done, tmp_path):
    regions = demo_catalogue.parent / "vocals.csv"
    # Trained from the Musicnn features whatever the configured detector is.
    result = train_vocal_head(demo_cfg, demo_ingested, regions, tmp_path / "head.pt")
    print("trained head:", result)
    assert result["validation"]["precision"] >= 0.9 and result["validation"]["recall"] >= 0.9
    head_cfg = demo_cfg.model_copy(
        update={
            "vocal": demo_cfg.vocal.model_copy(
                update={"method": "trained_head", "head_path": str(tmp_path / "head.pt")}
            )
        }
    )
    run_stages(head_cfg, demo_ingested, "vocal")
    windows, tracks = _vocal_tables(head_cfg, demo_ingested)
    labels = window_labels(window_coverage(windows, pd.read_csv(regions)))
    scores = precision_recall((windows["vocalness"].to_numpy() >= 0.5).astype(int), labels)
    assert scores["precision"] >= 0.9 and scores["recall"] >= 0.9
    assert (tracks.loc[tracks.track_id.str.startswith("instrumental"), "status"] == "excluded").all()


def test_vocal_seconds_rule_keeps_a_song_with_a_long_instrumental_part():
    # 60 s: 12 s sung (4 windows at 0.9), the rest instrumental (0.1): mean 0.26, 12 s of singing.
    scores = np.array([0.9] * 4 + [0.1] * 16)
    mean, vocal_s, reason = track_decision(scores, 60.0, VocalConfig())
    assert reason == "" and vocal_s == 12.0 and mean == pytest.approx(0.26)
    _, _, reason = track_decision(scores, 60.0, VocalConfig(track_rule="mean"))
    assert reason == "mean vocalness 0.260 below lambda 0.5"  # the paper's rule drops it
    _, vocal_s, reason = track_decision(np.array([0.1, 0.7, 0.2, 0.6]), 10.0, VocalConfig())
    assert (
        vocal_s == 4.0 and reason == "4 s in vocal windows, below vocal.min_vocal_s 9 (half of its 10 s)"
    )  # the last window is 1 s long
    # A 7 s spoken clip, voiced throughout: short, but mostly voice, so kept.
    assert track_decision(np.array([0.9, 0.8, 0.7]), 7.0, VocalConfig())[2] == ""
