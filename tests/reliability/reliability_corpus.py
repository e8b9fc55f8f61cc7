"""The bad-input corpus, made on the fly (no committed binaries), and helpers of the reliability tests.

The corpus is one catalogue root holding broken files, valid-but-odd files and a hostile manifest
that points outside the root.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import soxr

from livi_tasks.core.config import LiviConfig, load_config
from livi_tasks.core.store import MARKER

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
SPEECH_TEXT = (
    "the river runs along the quiet valley and the morning light is falling on the stone, "
    "we sing about the river and the light"
)
SPEECH_SECONDS = 7.0
TWO_HOURS_S = 2 * 3600
TWO_HOURS_RATE = 8_000


@dataclass(frozen=True)
class Corpus:
    root: Path
    manifest: Path
    outside: Path  # a valid file beside the root, which no manifest row may reach
    paths: dict[str, str]  # track_id -> path as written in the manifest


def config_for(root: Path, **sections) -> LiviConfig:
    """Defaults with a private data root, untouched by the developer's environment."""
    return load_config(overrides={"store": {"root": str(root)}, **sections}, environ={})


def spoken(seconds: float = SPEECH_SECONDS) -> tuple[np.ndarray, int]:
    """Real speech from espeak-ng (mono float32, peak 0.5), cut or zero-padded to ``seconds``."""
    out = subprocess.run(["espeak-ng", "-s", "150", "--stdout", SPEECH_TEXT], check=True, capture_output=True).stdout
    audio, rate = sf.read(io.BytesIO(out), dtype="float32")
    audio = (
        np.resize(audio, int(seconds * rate))
        if len(audio) >= seconds * rate
        else np.pad(audio, (0, int(seconds * rate) - len(audio)))
    )
    return (0.5 * audio / np.abs(audio).max()).astype(np.float32), rate


def _write(root: Path, relpath: str, data: np.ndarray, rate: int, **kwargs) -> str:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, rate, **kwargs)
    return relpath


def _lying_wav(valid: bytes) -> bytes:
    """A canonical 44-byte-header wav whose RIFF and data chunk sizes claim ten times the data."""
    assert valid[36:40] == b"data", "expected a canonical wav header"
    size = int.from_bytes(valid[40:44], "little") * 10
    return valid[:4] + (size + 36).to_bytes(4, "little") + valid[8:40] + size.to_bytes(4, "little") + valid[44:]


def build_corpus(root: Path) -> Corpus:
    """Write every corpus item under ``root`` and a manifest listing them (plus hostile rows)."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(8)
    speech, rate = spoken()
    seconds = len(speech) / rate
    at = lambda target: soxr.resample(speech, rate, target).astype(np.float32)  # noqa: E731
    paths: dict[str, str] = {}

    # Broken files: each must land in quarantine with its reason.
    (root / "zero.wav").write_bytes(b"")
    paths["zero_bytes"] = "zero.wav"
    for suffix in ("wav", "mp3", "flac"):
        (root / f"random.{suffix}").write_bytes(rng.integers(0, 256, 64_000, dtype=np.uint8).tobytes())
        paths[f"random_{suffix}"] = f"random.{suffix}"
    valid_wav = root / "speech_16k.wav"
    _write(root, valid_wav.name, at(16_000), 16_000, subtype="PCM_16")
    (root / "truncated_header.wav").write_bytes(valid_wav.read_bytes()[:30])
    paths["truncated_header"] = "truncated_header.wav"
    _write(root, "full.mp3", speech, rate, format="MP3")
    full_mp3 = (root / "full.mp3").read_bytes()
    (root / "truncated.mp3").write_bytes(full_mp3[: len(full_mp3) // 2])
    (root / "full.mp3").unlink()
    paths["truncated_mp3"] = "truncated.mp3"
    (root / "lying_header.wav").write_bytes(_lying_wav(valid_wav.read_bytes()))
    paths["lying_header"] = "lying_header.wav"
    paths["half_second"] = _write(root, "half_second.wav", at(16_000)[:8_000], 16_000)
    paths["silence"] = _write(root, "silence.wav", np.zeros(int(seconds * 16_000), np.float32), 16_000)
    nan_audio = at(16_000)
    nan_audio[1000], nan_audio[2000] = np.nan, np.inf
    paths["nan_inf"] = _write(root, "nan_inf.wav", nan_audio, 16_000, subtype="FLOAT")

    # Valid but odd: each must be ingested as it is and pass the vocal and segments stages.
    paths["rate_8k"] = _write(root, "speech_8k.wav", at(8_000), 8_000)
    paths["rate_48k"] = _write(root, "speech_48k.flac", at(48_000), 48_000)
    paths["six_channels"] = _write(root, "six_channels.wav", np.repeat(at(16_000)[:, None], 6, axis=1), 16_000)
    paths["pcm_u8"] = _write(root, "pcm_u8.wav", at(16_000), 16_000, subtype="PCM_U8")
    paths["unicode"] = _write(root, "dossier à espaces/Café – 日本 ünïcode.wav", at(16_000), 16_000)
    paths["white_noise"] = _write(
        root, "white_noise.wav", (0.3 * rng.standard_normal(int(seconds * 16_000))).astype(np.float32), 16_000
    )
    # Speech driven 12 dB into hard clipping: a loud master, still singing.
    paths["clipped_speech"] = _write(root, "clipped_speech.wav", np.clip(4 * at(16_000), -1, 1), 16_000)
    t = np.arange(int(seconds * 16_000)) / 16_000
    paths["clipped_tone"] = _write(
        root, "clipped_tone.wav", np.clip(3 * np.sin(2 * np.pi * 220 * t), -1, 1).astype(np.float32), 16_000
    )
    paths["empty_work_id"] = paths["rate_8k"]

    # Hostile rows: nothing outside the root may be read.
    outside = root.parent / "outside.wav"
    outside.write_bytes(valid_wav.read_bytes())
    (root / "link_out.wav").symlink_to(outside)
    paths["symlink_out"] = "link_out.wav"
    paths["dotdot"] = "../outside.wav"
    paths["absolute"] = str(outside)

    work_ids = {"empty_work_id": ""}
    rows = [(track_id, work_ids.get(track_id, f"work_{track_id}"), path) for track_id, path in paths.items()]
    # A second row with the 48 kHz track's id (and another, valid file): the later row is refused.
    rows.append(("rate_48k", "work_duplicate", paths["six_channels"]))
    manifest = root / "manifest.csv"
    pd.DataFrame(rows, columns=["track_id", "work_id", "path"]).to_csv(manifest, index=False)
    return Corpus(root=root, manifest=manifest, outside=outside, paths=paths)


CRASH_TRACKS = ("rate_8k", "clipped_speech", "white_noise")  # three tracks in two shards
CRASH_SHARD_SIZE = 2
CRASH_CATALOGUE = "crash"
RUNNER = Path(__file__).with_name("run_stage.py")
ARTIFACT_DEPTH = 5  # <catalogue>/<stage>/<shard>/<fingerprint>/<file>


def crash_config(root: Path) -> LiviConfig:
    """The config of the crash and concurrency tests: small shards, so a run has several."""
    return config_for(root, ingest={"shard_size": CRASH_SHARD_SIZE})


def write_crash_manifest(corpus: Corpus) -> Path:
    manifest = corpus.root / "crash.csv"
    rows = [(track_id, f"work_{track_id}", corpus.paths[track_id]) for track_id in CRASH_TRACKS]
    pd.DataFrame(rows, columns=["track_id", "work_id", "path"]).to_csv(manifest, index=False)
    return manifest


def write_long_silence(path: Path, seconds: int = TWO_HOURS_S, rate: int = TWO_HOURS_RATE) -> Path:
    """Hours of 16-bit digital silence, written a minute at a time (never held in memory)."""
    minute = np.zeros(60 * rate, dtype=np.int16)
    with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16") as handle:
        for _ in range(seconds // 60):
            handle.write(minute)
    return path


@dataclass(frozen=True)
class Snapshot:
    files: dict[str, object]  # relative path -> decoded content (table, array, JSON)
    temporaries: list[str]  # hidden .tmp- files a killed writer left behind
    uncommitted: list[str]  # artifact folders holding visible files but no commit marker


def snapshot(root: Path) -> Snapshot:
    """Everything a reader of the data root can see, decoded; commit markers without their timings."""
    files, temporaries, folders = {}, [], set()
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.is_dir() or path.suffix == ".lock":
            continue
        if path.name.startswith(".tmp-"):
            temporaries.append(name)
            continue
        if path.suffix == ".parquet":
            files[name] = pd.read_parquet(path)
        elif path.suffix == ".npy":
            files[name] = np.load(path, allow_pickle=False)
        else:
            content = json.loads(path.read_text())
            if path.name == MARKER:
                content["summary"].pop("seconds", None)
            files[name] = content
        if len(path.relative_to(root).parts) == ARTIFACT_DEPTH:
            folders.add(path.parent)
    uncommitted = sorted(str(folder.relative_to(root)) for folder in folders if not (folder / MARKER).exists())
    return Snapshot(files=files, temporaries=temporaries, uncommitted=uncommitted)


def assert_same_artifacts(actual: Snapshot, expected: Snapshot) -> None:
    """Same visible files with the same contents, every artifact folder committed."""
    assert actual.uncommitted == [], f"artifact folders without a commit marker: {actual.uncommitted}"
    assert sorted(actual.files) == sorted(expected.files)
    for name, content in expected.files.items():
        if isinstance(content, pd.DataFrame):
            pd.testing.assert_frame_equal(actual.files[name], content, check_exact=True, obj=name)
        elif isinstance(content, np.ndarray):
            np.testing.assert_array_equal(actual.files[name], content, err_msg=name)
        else:
            assert actual.files[name] == content, name
    # A killed writer may leave hidden temporaries; they are never visible as artifact files.
    assert all(Path(name).name.startswith(".tmp-") for name in actual.temporaries)


def start_runner(data_root: Path, manifest: Path, stage: str, *options: str) -> subprocess.Popen:
    """``run_stage.py`` in its own process; it prints READY once its imports are done."""
    return subprocess.Popen(
        [PYTHON, str(RUNNER), str(data_root), str(manifest), stage, *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def wait_ready(process: subprocess.Popen) -> None:
    """Block until the runner has done its imports (it prints READY); a runner that dies first fails the test."""
    for line in process.stdout:
        if line.strip() == "READY":
            return
    process.wait()
    raise AssertionError(f"runner exited {process.returncode} before READY: {process.stderr.read()[-2000:]}")


def finish_runner(process: subprocess.Popen, timeout_s: float = 300.0) -> tuple[int, list[dict]]:
    """(return code, the runner's summaries; empty when it was killed)."""
    try:
        out, err = process.communicate(timeout=timeout_s)
    except BaseException:
        process.kill()  # never leave a runner behind a failed or interrupted test
        process.wait()
        raise
    lines = [line for line in out.splitlines() if line.startswith("[")]
    if process.returncode == 0:
        assert lines, f"runner printed no summaries: {err[-2000:]}"
    elif process.returncode != -signal.SIGKILL:
        raise AssertionError(f"runner failed with {process.returncode}: {err[-3000:]}")
    return process.returncode, json.loads(lines[-1]) if lines else []
