"""What every catalogue generator shares: checked counts, and a folder built beside its place and
renamed in, never written over a user's files."""

from __future__ import annotations

import csv
import io
import json
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf


def check_counts(counts: dict[str, tuple[int, int]]) -> dict[str, int]:
    """``{name: (value, lowest)}`` -> ``{name: value}`` once each value is an integer of at least
    ``lowest``; otherwise an error naming the first that is not."""
    for name, (value, lowest) in counts.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name}: expected an integer, got {value!r}")
        if value < lowest:
            raise ValueError(f"{name}: must be at least {lowest}, got {value}")
    return {name: int(value) for name, (value, _) in counts.items()}


def write_catalogue_folder(
    out_dir: str | Path,
    description_file: str,
    description: dict,
    output_files: tuple[str, ...],
    build: Callable[[Path], None],
) -> Path:
    """Let ``build`` write a catalogue into a temporary sibling of ``out_dir``, then rename it into
    place; returns its ``manifest.csv``.

    A catalogue whose ``description_file`` holds ``description`` is kept as it is. Only an empty
    folder or an earlier catalogue of the same generator (nothing but ``output_files``, the
    description among them) may be replaced.
    """
    out_dir = Path(out_dir)
    manifest = out_dir / "manifest.csv"
    if _read_description(out_dir / description_file) == description and manifest.exists():
        return manifest
    _check_replaceable(out_dir, description_file, output_files)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the catalogue is meant to be shared
    try:
        build(staging)
        (staging / description_file).write_text(json.dumps(description, indent=2, sort_keys=True) + "\n")
        _replace_folder(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _read_description(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None


def _check_replaceable(out_dir: Path, description_file: str, output_files: tuple[str, ...]) -> None:
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ValueError(f"out_dir: {out_dir} exists and is not a folder")
    foreign = sorted(entry.name for entry in out_dir.iterdir() if entry.name not in output_files)
    if foreign or (any(out_dir.iterdir()) and not (out_dir / description_file).exists()):
        reason = ", ".join(foreign[:3]) or f"no {description_file}"
        raise ValueError(f"out_dir: {out_dir} holds files that are not a generated catalogue ({reason})")


def _replace_folder(staging: Path, out_dir: Path) -> None:
    if out_dir.exists():
        retired = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
        out_dir.rename(retired)
        staging.rename(out_dir)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(out_dir)


WRITE_BLOCK = 16_384  # frames per write
CODECS = {  # format -> (libsndfile container, subtype)
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "ogg": ("OGG", "VORBIS"),
    "opus": ("OGG", "OPUS"),
}


def write_audio(path: Path, audio: np.ndarray, rate: int, audio_format: str, compression: float | None = None) -> None:
    """(samples, channels) float audio into a file of ``audio_format``; ``compression`` (0 best
    quality .. 1 smallest) sets the bitrate of the lossy codecs."""
    container, subtype = CODECS[audio_format]
    data = audio[:, 0] if audio.ndim == 2 and audio.shape[1] == 1 else audio
    channels = 1 if data.ndim == 1 else data.shape[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {} if compression is None or audio_format in ("wav", "flac") else {"compression_level": compression}
    # In blocks: libsndfile 1.2's Vorbis encoder crashes on one long write at 44.1/48 kHz.
    with sf.SoundFile(path, "w", rate, channels, subtype=subtype, format=container, **options) as handle:
        for start in range(0, len(data), WRITE_BLOCK):
            handle.write(data[start : start + WRITE_BLOCK])


def write_csv(root: Path, name: str, header: list[str], rows: list[list]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    (root / name).write_text(buffer.getvalue())
