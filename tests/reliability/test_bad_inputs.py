"""One test per bad-input corpus item: the recorded quarantine reason, or the correct result.

Broken files stop at ingestion with a reason; valid-but-odd files are ingested as they are and go
through the vocal and segments stages without a failure (tracks without vocals are excluded by the
lambda filter, with that reason). Nothing the manifest names outside the catalogue root is read.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import pandas as pd
import pytest
from reliability_corpus import PYTHON, REPO, SPEECH_SECONDS, TWO_HOURS_RATE, TWO_HOURS_S, config_for, write_long_silence

from livi_tasks.core.audio import SAMPLE_RATE
from livi_tasks.core.metrics import encode_labels
from livi_tasks.core.store import ArtifactStore
from livi_tasks.pipeline import run_stage_over_shards
from livi_tasks.stages.catalogue import CatalogueError, ingest_catalogue
from livi_tasks.stages.lineage import artifact_for

SEGMENT_SAMPLES = 30 * SAMPLE_RATE


def reason(run, track_id: str) -> str:
    assert track_id not in run.tracks.index, f"{track_id} was ingested"
    return run.quarantine[track_id]


# Broken files: quarantined at ingestion, each with its reason.


def test_zero_byte_file(corpus_run):
    assert reason(corpus_run, "zero_bytes") == "unreadable audio (Format not recognised.)"


@pytest.mark.parametrize("suffix", ["wav", "flac"])
def test_random_bytes_wav_flac(corpus_run, suffix):
    assert reason(corpus_run, f"random_{suffix}") == "unreadable audio (Format not recognised.)"


def test_random_bytes_mp3(corpus_run):
    # libsndfile's MPEG reader words this "file does not exist"; the reason says what is wrong.
    assert reason(corpus_run, "random_mp3") == "unreadable audio (no decodable audio stream)"


def test_truncated_wav_header(corpus_run):
    assert reason(corpus_run, "truncated_header") == "unreadable audio (Error in WAV file. No 'data' chunk marker.)"


def test_half_second_clip(corpus_run):
    assert reason(corpus_run, "half_second") == "too short (0.50 s < 1 s)"


def test_silence_of_normal_length(corpus_run):
    assert reason(corpus_run, "silence") == "silent (peak below -80 dBFS)"


def test_nan_and_inf_samples(corpus_run):
    assert reason(corpus_run, "nan_inf") == "non-finite samples (NaN or inf)"


# Damaged but decodable: ingested with what is really there.


def test_truncated_mp3_keeps_the_frames_that_decode(corpus_run):
    track = corpus_run.tracks.loc["truncated_mp3"]
    # Half the bytes of a 7 s mp3: the header still claims 7 s, the ingest records what decodes.
    assert track["format"] == "mp3" and 3.0 < track["duration_s"] < 4.0
    assert corpus_run.vocal.loc["truncated_mp3", "status"] in {"kept", "excluded"}


def test_wav_with_lying_header_length(corpus_run):
    # The data chunk claims ten times the bytes that follow: the real 7 s are read, nothing more.
    track = corpus_run.tracks.loc["lying_header"]
    assert track["duration_s"] == pytest.approx(SPEECH_SECONDS)
    assert corpus_run.vocal.loc["lying_header", "status"] == "kept"


# Valid but odd: ingested as they are, through the vocal and segments stages without failing.


def assert_through_stages(run, track_id: str, sample_rate: int, channels: int) -> None:
    track = run.tracks.loc[track_id]
    assert (track["sample_rate"], track["channels"]) == (sample_rate, channels)
    assert track["duration_s"] == pytest.approx(SPEECH_SECONDS, abs=1e-3)
    vocal = run.vocal.loc[track_id]
    assert vocal["status"] == "kept", vocal["reason"]
    windows = run.windows[run.windows["track_id"] == track_id]
    assert windows["window"].tolist() == [0, 1, 2] and windows["end_s"].iloc[-1] == pytest.approx(
        SPEECH_SECONDS, abs=1e-3
    )
    segments = run.segments[run.segments["track_id"] == track_id]
    assert len(segments) == 1 and segments["end_s"].iloc[0] <= SPEECH_SECONDS + 1e-3
    assert track_id not in set(run.segments_failed["track_id"])


@pytest.mark.parametrize(
    ("track_id", "sample_rate", "channels"),
    [
        ("rate_8k", 8_000, 1),
        ("rate_48k", 48_000, 1),
        ("six_channels", 16_000, 6),
        ("pcm_u8", 16_000, 1),
        ("clipped_speech", 16_000, 1),
    ],
)
def test_odd_format_goes_through_the_stages(corpus_run, track_id, sample_rate, channels):
    assert_through_stages(corpus_run, track_id, sample_rate, channels)


def test_unicode_and_spaces_in_names(corpus_run, corpus):
    assert corpus_run.tracks.loc["unicode", "relpath"] == "dossier à espaces/Café – 日本 ünïcode.wav"
    assert os.path.isfile(corpus_run.tracks.loc["unicode", "uri"])
    assert_through_stages(corpus_run, "unicode", 16_000, 1)


def test_white_noise_is_excluded_by_the_vocal_seconds_rule(corpus_run):
    vocal = corpus_run.vocal.loc["white_noise"]
    assert vocal["status"] == "excluded" and vocal["mean_vocalness"] < 0.2
    assert vocal["vocal_s"] < 9 and "below vocal.min_vocal_s 9" in vocal["reason"]
    assert "white_noise" not in set(corpus_run.segments["track_id"])


def test_clipped_tone_goes_through_without_failing(corpus_run):
    # A hard-clipped 220 Hz tone is a buzzing square wave; zero-shot Musicnn hears a voice in it
    # (mean vocalness about 0.88, see docs/ROBUSTNESS.md). What matters here: nothing fails.
    vocal = corpus_run.vocal.loc["clipped_tone"]
    assert vocal["status"] in {"kept", "excluded"}
    assert "clipped_tone" not in set(corpus_run.segments_failed["track_id"])


def test_no_stage_failed_on_the_corpus(corpus_run):
    assert sum(s["failed"] for s in corpus_run.summaries["vocal"]) == 0
    assert sum(s["failed"] for s in corpus_run.summaries["segments"]) == 0
    assert corpus_run.segments["segment_id"].is_unique


# Hostile and malformed manifest rows.


def test_symlink_out_of_the_root(corpus_run):
    assert reason(corpus_run, "symlink_out") == "path escapes the catalogue root"


def test_dotdot_path(corpus_run):
    assert reason(corpus_run, "dotdot") == "path escapes the catalogue root"


def test_absolute_path(corpus_run):
    assert reason(corpus_run, "absolute") == "absolute path not allowed (paths are relative to the catalogue root)"


def test_nothing_outside_the_root_is_ingested(corpus_run, corpus):
    root = str(corpus.root.resolve()) + os.sep
    assert all(uri.startswith(root) for uri in corpus_run.tracks["uri"])


def test_duplicate_track_id(corpus_run):
    # The first row of the id is ingested, the second is refused.
    assert corpus_run.tracks.loc["rate_48k", "sample_rate"] == 48_000
    assert corpus_run.quarantine["rate_48k"] == "duplicate track_id"


def test_empty_work_id_is_an_unlabelled_track(corpus_run):
    assert corpus_run.tracks.loc["empty_work_id", "work_id"] == ""
    assert corpus_run.vocal.loc["empty_work_id", "status"] == "kept"
    # Unlabelled: no relevant items, never grouped with other unlabelled tracks.
    assert encode_labels(["", "", "w"]).tolist() == [-1, -1, 0]


def test_ingest_summary(corpus_run):
    assert corpus_run.ingest["tracks"] == len(corpus_run.tracks) == 11
    assert corpus_run.ingest["quarantined"] == len(corpus_run.quarantine) == 12


def ingest_rows(cfg, tmp_path, body: bytes, name: str = "m"):
    manifest = tmp_path / f"{name}.csv"
    manifest.write_bytes(body)
    result = ingest_catalogue(cfg, manifest, name)
    artifact = ArtifactStore(cfg.store.root).artifact(name, "ingest", "all", result["fingerprint"])
    return result, artifact.read_table("tracks"), artifact.read_table("quarantine").set_index("track_id")["reason"]


@pytest.fixture
def small_catalogue(tmp_path, corpus):
    (tmp_path / "ok.wav").write_bytes((corpus.root / corpus.paths["rate_8k"]).read_bytes())
    return tmp_path


def test_manifest_with_a_missing_column(cfg, small_catalogue):
    manifest = small_catalogue / "m.csv"
    manifest.write_text("track_id,path\na,ok.wav\n")
    with pytest.raises(
        CatalogueError, match=r"manifest m.csv: missing column\(s\) work_id; expected track_id,work_id,path"
    ):
        ingest_catalogue(cfg, manifest, "m")


def test_manifest_with_a_bom_and_padded_header(cfg, small_catalogue):
    result, tracks, _ = ingest_rows(cfg, small_catalogue, "\ufefftrack_id, work_id ,path\na,w,ok.wav\n".encode())
    assert result["tracks"] == 1 and tracks["track_id"].tolist() == ["a"] and tracks["work_id"].tolist() == ["w"]


def test_empty_catalogue(cfg, small_catalogue):
    result, tracks, quarantine = ingest_rows(cfg, small_catalogue, b"track_id,work_id,path\n")
    assert (result["tracks"], result["quarantined"], result["shards"]) == (0, 0, [])
    assert tracks.empty and quarantine.empty
    # Per-shard stages have nothing to do, and say so without failing.
    assert run_stage_over_shards(cfg, "vocal", "m") == []


def test_empty_manifest_file(cfg, small_catalogue):
    manifest = small_catalogue / "m.csv"
    manifest.write_bytes(b"")
    with pytest.raises(CatalogueError, match="missing column"):
        ingest_catalogue(cfg, manifest, "m")


def test_manifest_not_utf8(cfg, small_catalogue):
    manifest = small_catalogue / "m.csv"
    manifest.write_bytes(b"track_id,work_id,path\na,w,\xff\xfe.wav\n")
    with pytest.raises(CatalogueError, match=r"manifest m.csv: not UTF-8 text \(byte 26"):
        ingest_catalogue(cfg, manifest, "m")


def test_hostile_rows_are_quarantined_not_crashing(cfg, small_catalogue):
    os.mkfifo(small_catalogue / "pipe.wav")  # opening a FIFO would block the ingest forever
    (small_catalogue / "folder.wav").mkdir()
    body = (
        "track_id,work_id,path\n"
        "nul,w,ok\x00.wav\n"
        f"long,w,{'x' * 5000}.wav\n"
        "fifo,w,pipe.wav\n"
        "folder,w,folder.wav\n"
        "text,w,m.csv\n"
        "commas,w,my, song.wav\n"
        "short,w\n"
        ",w,ok.wav\n"
        "inside,w,sub/../ok.wav\n"
    )
    result, tracks, reasons = ingest_rows(cfg, small_catalogue, body.encode())
    assert tracks["track_id"].tolist() == ["inside"]
    assert reasons.to_dict() == {
        "nul": "invalid path (NUL character)",
        "long": "missing file",
        "fifo": "not a regular file",
        "folder": "not a regular file",
        "text": "unsupported file type .csv",
        "commas": "malformed manifest row (4 fields, expected 3; quote paths with commas)",
        "short": "empty path",
        "": "empty track_id",
    }


def test_file_vanished_after_ingest(tmp_path, corpus):
    """A file deleted between stages fails that track in the stage, with a reason; the rest goes on."""
    cfg = config_for(tmp_path / "data")
    for name in ("a.wav", "b.wav"):
        (tmp_path / name).write_bytes((corpus.root / corpus.paths["rate_8k"]).read_bytes())
    manifest = tmp_path / "m.csv"
    manifest.write_text("track_id,work_id,path\na,w,a.wav\nb,w,b.wav\n")
    ingest_catalogue(cfg, manifest, "gone")
    (tmp_path / "a.wav").unlink()
    [vocal] = run_stage_over_shards(cfg, "vocal", "gone")
    assert (vocal["kept"], vocal["failed"]) == (1, 1)
    (tmp_path / "b.wav").unlink()
    [segments] = run_stage_over_shards(cfg, "segments", "gone")
    assert (segments["segments"], segments["failed"]) == (0, 1)
    store = ArtifactStore(cfg.store.root)
    vocal_tracks = artifact_for(cfg, store, "gone", "vocal", "shard-00000").read_table("tracks").set_index("track_id")
    assert vocal_tracks.loc["a", "reason"] == "missing file"
    failed = artifact_for(cfg, store, "gone", "segments", "shard-00000").read_table("failed")
    assert failed.to_dict("records") == [{"track_id": "b", "reason": "audio decode failed: missing file"}]


# Two hours of silence: refused by the duration cap with bounded memory.

# ru_maxrss survives execve, so a child of this (Musicnn-sized) pytest process would report the
# parent's peak: the probe resets and reads the kernel's per-process high-water mark instead.
MEMORY_PROBE = textwrap.dedent(
    r"""
    import io, json, re, sys
    import pandas as pd
    from livi_tasks.core.audio import load_audio
    from livi_tasks.stages.catalogue import ingest_catalogue
    from livi_tasks.core.config import load_config

    def kib(field):
        return int(re.search(field + r":\s+(\d+) kB", open("/proc/self/status").read()).group(1))

    def growth_kib(run):
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # reset VmHWM to the current RSS
        before = kib("VmRSS")
        result = run()
        return result, kib("VmHWM") - before

    manifest, data_root = sys.argv[1:]
    audio = manifest.replace("manifest.csv", "long.wav")
    cfg = load_config(overrides={"store": {"root": data_root}}, environ={})
    # Warm up every code path on a few seconds first, so that imports do not count as growth.
    load_audio(audio, max_duration_s=5)
    pd.DataFrame({"warm": [1]}).to_parquet(io.BytesIO())
    result, ingest_kib = growth_kib(lambda: ingest_catalogue(cfg, manifest, "long"))
    head, head_kib = growth_kib(lambda: load_audio(audio, max_duration_s=60))
    capped, capped_kib = growth_kib(lambda: load_audio(audio, max_duration_s=cfg.ingest.max_duration_s))
    print(json.dumps({"result": result, "ingest_kib": ingest_kib, "head_kib": head_kib, "head_samples": len(head),
                      "capped_kib": capped_kib, "capped_samples": len(capped)}))
    """
)


@pytest.fixture
def two_hours_of_silence(tmp_path):
    folder = tmp_path / "long"
    folder.mkdir()
    path = write_long_silence(folder / "long.wav")
    (folder / "manifest.csv").write_text("track_id,work_id,path\nlong,w,long.wav\n")
    yield folder
    path.unlink()


def test_two_hours_of_silence_is_refused_with_bounded_memory(two_hours_of_silence, tmp_path):
    size = (two_hours_of_silence / "long.wav").stat().st_size
    assert size > 110e6
    out = subprocess.run(
        [PYTHON, "-c", MEMORY_PROBE, str(two_hours_of_silence / "manifest.csv"), str(tmp_path / "data")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    assert probe["result"]["tracks"] == 0 and probe["result"]["quarantined"] == 1
    quarantine = pd.read_parquet(next((tmp_path / "data" / "long" / "ingest").rglob("quarantine.parquet")))
    assert quarantine["reason"].tolist() == ["longer than the maximum duration (1200 s)"]
    decoded_mib = TWO_HOURS_S * TWO_HOURS_RATE * 4 / 2**20  # float32 at the file's own rate: 220 MiB
    ingest_mib, head_mib, capped_mib = (probe[key] / 1024 for key in ("ingest_kib", "head_kib", "capped_kib"))
    print(
        f"2 h file ({size / 2**20:.0f} MiB, {decoded_mib:.0f} MiB decoded): "
        f"peak RSS growth of ingest {ingest_mib:.1f} MiB, "
        f"60 s load {head_mib:.1f} MiB, load capped at max_duration_s {capped_mib:.1f} MiB"
    )
    assert ingest_mib < decoded_mib / 10
    # The stages' loader stops at max_duration_s, and its memory follows that cap, not the file.
    assert probe["head_samples"] == 60 * SAMPLE_RATE and head_mib < decoded_mib / 10
    capped_array_mib = 1200 * SAMPLE_RATE * 4 / 2**20
    assert probe["capped_samples"] == 1200 * SAMPLE_RATE
    # The meter sees real growth: the 1200 s array itself, plus its pieces before concatenation at most.
    assert capped_array_mib * 0.9 < capped_mib < 2.5 * capped_array_mib
