from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from livi_tasks.core.config import load_config
from livi_tasks.core.runner import shard_tracks
from livi_tasks.core.store import ArtifactStore
from livi_tasks.stages.catalogue import ingest_catalogue
from livi_tasks.stages.lineage import artifact_for, shard_ids
from livi_tasks.stages.segments import extract_vocal_segments, plan_segments

RATE = 16_000
SEGMENT_S, MAX_PAD_S, WINDOW_S = 30.0, 10.0, 3.0


def vocal_at(n_windows, *vocal_windows):
    vocalness = np.full(n_windows, 0.1)
    vocalness[list(vocal_windows)] = 0.9
    return vocalness


def plan(vocalness, duration_s, threshold=0.5):
    return plan_segments(vocalness, WINDOW_S, duration_s, threshold, SEGMENT_S, MAX_PAD_S)


def spans(plans):
    return [(p.start_s, p.end_s) for p in plans]


def test_no_vocal_windows_gives_no_segments():
    assert plan(np.full(20, 0.49), 60.0) == []
    assert plan(np.full(20, np.nan), 60.0) == []
    assert plan(np.zeros(0), 60.0) == []


def test_threshold_is_inclusive():
    assert spans(plan(np.array([0.1, 0.1, 0.5, 0.1] + [0.1] * 16), 60.0)) == [(0.0, 19.0)]


def test_vocals_at_the_very_start_lose_the_padding_before():
    (only,) = plan(vocal_at(20, 0, 1), 60.0)
    assert (only.start_s, only.end_s) == (0.0, 16.0)
    assert (only.region_start_s, only.region_end_s) == (0.0, 6.0)
    # The 10 s lost before the track start are not moved after the region: zero padding instead.
    assert (only.pad_before_s, only.pad_after_s, only.zero_pad_s) == (0.0, 10.0, 14.0)


def test_vocals_at_the_very_end_lose_the_padding_after():
    (only,) = plan(vocal_at(20, 18, 19), 60.0)
    assert (only.start_s, only.end_s) == (44.0, 60.0)
    assert (only.pad_before_s, only.pad_after_s, only.zero_pad_s) == (10.0, 0.0, 14.0)


def test_short_region_is_padded_to_exactly_one_segment():
    (only,) = plan(vocal_at(20, 5, 6, 7, 8), 60.0)  # region [15, 27]: 12 s, 9 s each side
    assert (only.start_s, only.end_s, only.pad_before_s, only.pad_after_s, only.zero_pad_s) == (
        6.0,
        36.0,
        9.0,
        9.0,
        0.0,
    )


def test_region_longer_than_a_segment_is_cut_and_the_last_piece_zero_padded():
    first, second = plan(vocal_at(20, *range(2, 15)), 60.0)  # region [6, 45]: 39 s, no padding
    assert (first.start_s, first.end_s, first.zero_pad_s) == (6.0, 36.0, 0.0)
    assert (second.start_s, second.end_s, second.zero_pad_s) == (36.0, 45.0, 21.0)
    assert [first.index, second.index] == [0, 1]
    for piece in (first, second):
        assert (piece.region_start_s, piece.region_end_s, piece.pad_before_s, piece.pad_after_s) == (
            6.0,
            45.0,
            0.0,
            0.0,
        )


def test_regions_closer_than_the_padding_merge_into_one_padded_region():
    # [9, 12] and [18, 21]: padded by 10 s each they overlap; merged [9, 21] (12 s) gets 9 s a side.
    (only,) = plan(vocal_at(20, 3, 6), 60.0)
    assert (only.region_start_s, only.region_end_s) == (9.0, 21.0)
    assert (only.start_s, only.end_s, only.zero_pad_s) == (0.0, 30.0, 0.0)


def test_regions_whose_padding_touches_merge():
    # 1 s windows: [9, 12] reaches 22 after padding, [32, 35] starts at 22: they touch, so one region [9, 35].
    (only,) = plan_segments(vocal_at(60, 9, 10, 11, 32, 33, 34), 1.0, 60.0, 0.5, SEGMENT_S, MAX_PAD_S)
    assert (only.region_start_s, only.region_end_s) == (9.0, 35.0)
    assert (only.start_s, only.end_s, only.pad_before_s, only.pad_after_s) == (7.0, 37.0, 2.0, 2.0)


def test_merged_regions_longer_than_a_segment_share_no_audio():
    # [6, 21] and [27, 42], 15 s each, padded by 7.5 s they overlap: merged [6, 42] is 36 s.
    plans = plan(vocal_at(20, *range(2, 7), *range(9, 14)), 60.0)
    assert spans(plans) == [(6.0, 36.0), (36.0, 42.0)]
    assert plans[1].zero_pad_s == 24.0


def test_distant_regions_stay_apart():
    plans = plan(vocal_at(27, 1, 15), 80.0)  # [3, 6] and [45, 48]
    assert spans(plans) == [(0.0, 16.0), (35.0, 58.0)]
    assert [(p.pad_before_s, p.pad_after_s) for p in plans] == [(3.0, 10.0), (10.0, 10.0)]


def test_track_shorter_than_a_segment():
    (only,) = plan(vocal_at(7, 2, 3), 20.0)  # 7 windows, the last [18, 20] a 2 s tail
    assert (only.start_s, only.end_s, only.pad_before_s, only.pad_after_s, only.zero_pad_s) == (
        0.0,
        20.0,
        6.0,
        8.0,
        10.0,
    )


def test_window_tail_shorter_than_a_window_ends_at_the_track_end():
    # 31.5 s: window 10 covers only [30, 31.5]; a window starting past the end is ignored.
    (only,) = plan(vocal_at(12, 10, 11), 31.5)
    assert (only.region_start_s, only.region_end_s) == (30.0, 31.5)
    assert (only.start_s, only.end_s, only.pad_after_s) == (20.0, 31.5, 0.0)
    assert only.zero_pad_s == pytest.approx(18.5)


def test_random_tracks_keep_the_invariants():
    rng = np.random.default_rng(0)
    for _ in range(300):
        duration = float(rng.uniform(1, 200))
        n_windows = int(np.ceil(duration / WINDOW_S))
        vocalness = rng.uniform(0, 1, n_windows) ** rng.uniform(0.2, 4)
        plans = plan(vocalness, duration)
        for p in plans:
            assert 0 <= p.start_s < p.end_s <= duration
            assert p.end_s - p.start_s <= SEGMENT_S + 1e-9
            assert p.end_s - p.start_s + p.zero_pad_s == pytest.approx(SEGMENT_S)
            assert p.region_start_s - p.pad_before_s <= p.start_s and p.end_s <= p.region_end_s + p.pad_after_s
            assert 0 <= p.pad_before_s <= MAX_PAD_S and 0 <= p.pad_after_s <= MAX_PAD_S
        assert [p.index for p in plans] == list(range(len(plans)))
        for earlier, later in zip(plans, plans[1:]):
            assert earlier.end_s <= later.start_s + 1e-9  # no audio in two segments
        for i in np.flatnonzero(vocalness >= 0.5):
            start, end = i * WINDOW_S, min((i + 1) * WINDOW_S, duration)
            covered = sum(max(0.0, min(end, p.end_s) - max(start, p.start_s)) for p in plans)
            assert covered == pytest.approx(end - start)


# --- the stage, on real audio files -----------------------------------------------------------

TRACKS = {  # track_id: (duration_s, vocal windows, status)
    "w1/long": (40.0, range(1, 13), "kept"),  # region [3, 39]: pieces [3, 33] and [33, 39]
    "w1/short": (25.0, [2], "kept"),  # region [6, 9] padded to [0, 19]
    "w2/instrumental": (30.0, [], "excluded"),
    "w2/broken": (20.0, [1], "kept"),  # overwritten with garbage after ingest
}


def write_noise(path: Path, seconds: float, seed: int) -> np.ndarray:
    samples = (0.3 * np.random.default_rng(seed).standard_normal(int(seconds * RATE))).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, RATE, subtype="FLOAT")  # float WAV: decoding gives these exact samples
    return samples


def write_vocal_artifact(cfg, store, catalogue, shard, ingested):
    """A vocal artifact made by hand with known vocalness, as the vocal stage would write it."""
    windows, tracks = [], []
    for track in ingested.itertuples(index=False):
        duration, vocal_windows, status = TRACKS[track.track_id]
        n_windows = int(np.ceil(duration / 3.0))
        vocalness = np.full(n_windows, 0.2)
        vocalness[list(vocal_windows)] = 0.9
        windows += [
            {
                "track_id": track.track_id,
                "window": i,
                "start_s": 3.0 * i,
                "end_s": min(3.0 * (i + 1), duration),
                "vocalness": float(v),
            }
            for i, v in enumerate(vocalness)
        ]
        tracks.append(
            {
                "track_id": track.track_id,
                "work_id": track.work_id,
                "uri": track.uri,
                "duration_s": track.duration_s,
                "mean_vocalness": float(vocalness.mean()),
                "status": status,
                "reason": "" if status == "kept" else "mean vocalness below lambda",
            }
        )
    vocal = artifact_for(cfg, store, catalogue, "vocal", shard)
    vocal.write_table("windows", pd.DataFrame(windows))
    vocal.write_table("tracks", pd.DataFrame(tracks))
    vocal.commit({"tracks": len(tracks)})


@pytest.fixture
def ingested_shard(cfg, tmp_path):
    root = tmp_path / "tiny"
    sources = {
        track_id: write_noise(root / f"{track_id}.wav", duration, seed)
        for seed, (track_id, (duration, _, _)) in enumerate(TRACKS.items())
    }
    store = ArtifactStore(cfg.store.root)
    ingest_catalogue(cfg, root, "tiny", store)
    (root / "w2" / "broken.wav").write_bytes(b"RIFF but not really a wave file" * 10)
    (shard,) = shard_ids(store, "tiny")
    ingest = artifact_for(cfg, store, "tiny", "ingest", shard)
    return store, shard, shard_tracks(ingest, shard), sources


def artifact_files(url):
    return {path: path.stat().st_mtime_ns for path in Path(url).rglob("*") if path.is_file()}


def test_stage_cuts_real_audio_at_the_planned_offsets(cfg, ingested_shard):
    store, shard, ingested, sources = ingested_shard
    write_vocal_artifact(cfg, store, "tiny", shard, ingested)

    result = extract_vocal_segments(cfg, "tiny", shard, store)

    assert (result["tracks"], result["segments"], result["failed"], result["skipped"]) == (2, 3, 1, False)
    output = artifact_for(cfg, store, "tiny", "segments", shard)
    segments = output.read_table("segments")
    audio = output.read_array("audio")
    failed = output.read_table("failed")
    assert segments["segment_id"].tolist() == ["w1/long#000", "w1/long#001", "w1/short#000"]
    assert segments["work_id"].tolist() == ["w1", "w1", "w1"]
    assert audio.dtype == np.float16 and audio.shape == (3, 30 * RATE)
    assert segments[["start_s", "end_s", "zero_pad_s"]].values.tolist() == [[3, 33, 0], [33, 39, 24], [0, 19, 11]]

    long_source, short_source = sources["w1/long"], sources["w1/short"]
    np.testing.assert_array_equal(audio[0], long_source[3 * RATE : 33 * RATE].astype(np.float16))
    np.testing.assert_array_equal(audio[1, : 6 * RATE], long_source[33 * RATE : 39 * RATE].astype(np.float16))
    np.testing.assert_array_equal(audio[2, : 19 * RATE], short_source[: 19 * RATE].astype(np.float16))
    assert not audio[1, 6 * RATE :].any() and not audio[2, 19 * RATE :].any()

    assert failed["track_id"].tolist() == ["w2/broken"]
    assert "decode" in failed["reason"].iloc[0]

    files = artifact_files(output.url)
    again = extract_vocal_segments(cfg, "tiny", shard, store)
    assert again["skipped"] is True
    assert (again["tracks"], again["segments"], again["failed"]) == (2, 3, 1)
    assert artifact_files(output.url) == files


def test_stage_without_vocal_regions_writes_an_empty_audio_array(tmp_path, ingested_shard):
    store, shard, ingested, _ = ingested_shard
    strict = load_config(overrides={"store": {"root": store.root}, "vocal": {"window_threshold": 0.95}}, environ={})
    write_vocal_artifact(strict, store, "tiny", shard, ingested)

    result = extract_vocal_segments(strict, "tiny", shard, store)

    output = artifact_for(strict, store, "tiny", "segments", shard)
    assert (result["segments"], result["failed"]) == (0, 1)
    assert output.read_array("audio").shape == (0, 30 * RATE)
    assert output.read_table("segments").empty
