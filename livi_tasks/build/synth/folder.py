"""What every catalogue generator shares: checked counts, and a folder built beside its place and
renamed in, never written over a user's files."""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Callable

import numpy as np


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
