"""Ingestion: turn a folder or CSV manifest of audio into the catalogue table, quarantine and shards.

Two layouts are accepted:
- a folder ``<root>/<work_id>/<track file>`` (the Covers80 layout): track_id is
  ``<work_id>/<file stem>``;
- a CSV manifest with columns ``track_id,work_id,path`` (work_id may be empty; paths relative to
  the manifest's folder, which is the catalogue root) and optionally ``title`` (what the search
  service shows and finds tracks by).

Every entry is decoded once to check it; anything unusable lands in the quarantine table with its
reason and the rest of the catalogue goes on. No path may resolve outside the catalogue root.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from livi_tasks.core.audio import AudioError, probe_audio
from livi_tasks.core.config import LiviConfig
from livi_tasks.core.names import CATALOGUE_NAME_CHARS, CATALOGUE_NAME_PATTERN, CATALOGUE_NAME_RULE
from livi_tasks.core.runner import produce_artifact
from livi_tasks.core.store import Artifact, ArtifactStore
from livi_tasks.core.takedowns import TakedownRecord, active_takedowns
from livi_tasks.stages.lineage import INGEST_SHARD, pointer_name

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}
MANIFEST_COLUMNS = ("track_id", "work_id", "path")
CATALOGUE_NAME = re.compile(CATALOGUE_NAME_PATTERN)
TRACK_COLUMNS = [
    "track_id",
    "work_id",
    "uri",
    "relpath",
    "sha256",
    "duration_s",
    "sample_rate",
    "channels",
    "format",
    "status",
    "title",
    "shard",
]
QUARANTINE_COLUMNS = ["track_id", "work_id", "path", "reason"]


class CatalogueError(ValueError):
    """The catalogue as a whole cannot be read (no such folder, a manifest without its columns)."""


@dataclass(frozen=True)
class CatalogueEntry:
    track_id: str
    work_id: str
    path: str  # as written in the manifest or relative to the root
    problem: str = ""  # why the manifest row itself is unusable (recorded as its quarantine reason)
    title: str = ""  # the manifest's optional title column


def catalogue_name_for(source: str | Path) -> str:
    source = Path(source)
    name = (source.parent.name if source.is_file() else source.name) or "catalogue"
    return re.sub(f"[^{CATALOGUE_NAME_CHARS}]", "_", name).lstrip("._-") or "catalogue"


def validate_catalogue_name(name: str) -> str:
    if not CATALOGUE_NAME.match(name):
        raise CatalogueError(f"catalogue name {name!r}: use {CATALOGUE_NAME_RULE}")
    return name


def read_entries(source: str | Path) -> tuple[Path, list[CatalogueEntry]]:
    """The catalogue root and its entries, from a folder or a CSV manifest."""
    source = Path(source)
    if source.is_dir():
        return source.resolve(), _folder_entries(source)
    if source.is_file():
        return source.parent.resolve(), _manifest_entries(source)
    raise CatalogueError(f"catalogue source {source}: no such folder or manifest file")


def _folder_entries(root: Path) -> list[CatalogueEntry]:
    entries = []
    for work_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for track in sorted(p for p in work_dir.iterdir() if not p.name.startswith(".")):
            if track.is_dir():
                continue
            entries.append(
                CatalogueEntry(f"{work_dir.name}/{track.stem}", work_dir.name, f"{work_dir.name}/{track.name}")
            )
    return entries


def _manifest_entries(manifest: Path) -> list[CatalogueEntry]:
    # utf-8-sig: spreadsheet exports often start with a byte-order mark.
    try:
        with manifest.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in (reader.fieldnames or [])]
            missing = [column for column in MANIFEST_COLUMNS if column not in header]
            if missing:
                raise CatalogueError(
                    f"manifest {manifest.name}: missing column(s) {', '.join(missing)}; "
                    f"expected {','.join(MANIFEST_COLUMNS)}"
                )
            rows = list(reader)
    except UnicodeDecodeError as exc:
        raise CatalogueError(f"manifest {manifest.name}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except csv.Error as exc:
        raise CatalogueError(f"manifest {manifest.name}: not a readable CSV ({exc})") from None
    return [_manifest_entry(row, len(reader.fieldnames)) for row in rows]


def _manifest_entry(row: dict, width: int) -> CatalogueEntry:
    # DictReader files surplus fields under the key None (an unquoted comma in a path, usually).
    surplus = row.pop(None, [])
    values = {key.strip(): (value or "").strip() for key, value in row.items()}
    problem = (
        f"malformed manifest row ({width + len(surplus)} fields, expected {width}; quote paths with commas)"
        if surplus
        else ""
    )
    return CatalogueEntry(values["track_id"], values["work_id"], values["path"], problem, values.get("title", ""))


def resolve_inside(root: Path, relpath: str) -> Path:
    """The real path of ``relpath`` under ``root``; AudioError when it leaves the root."""
    if not relpath:
        raise AudioError("empty path")
    if "\x00" in relpath:
        raise AudioError("invalid path (NUL character)")
    candidate = Path(relpath)
    if candidate.is_absolute():
        raise AudioError("absolute path not allowed (paths are relative to the catalogue root)")
    real = Path(os.path.realpath(root / candidate))
    if not real.is_relative_to(root):
        raise AudioError("path escapes the catalogue root")
    return real


def _sha256(path: Path, chunk: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _source_fingerprint(
    cfg: LiviConfig, root: Path, entries: list[CatalogueEntry], taken_down: list[str] | None = None
) -> str:
    """Cheap identity of the catalogue as it is now: entries plus each file's size and mtime, and
    which of its tracks are taken down (only when some are: other keys stay what they were)."""
    listing = []
    for entry in entries:
        try:
            stat = (root / entry.path).stat()
            listing.append((entry.track_id, entry.work_id, entry.path, stat.st_size, stat.st_mtime_ns))
        except (OSError, ValueError):
            listing.append((entry.track_id, entry.work_id, entry.path, None, None))
        if entry.title:  # only then: catalogues without titles keep the keys they had
            listing[-1] = (*listing[-1], entry.title)
    extra = (json.dumps(taken_down),) if taken_down else ()
    return cfg.ingest.fingerprint("ingest", str(root), json.dumps(listing), *extra)


def _takedown_reason(record: TakedownRecord) -> str:
    return f"taken down by {record.by} at {record.at}: {record.reason} (`livi restore` brings it back)"


def ingest_catalogue(
    cfg: LiviConfig, source: str | Path, catalogue: str | None = None, store: ArtifactStore | None = None
) -> dict:
    """Ingest ``source`` as ``catalogue``; skip when this exact catalogue was already ingested."""
    store = store or ArtifactStore(cfg.store.root)
    catalogue = validate_catalogue_name(catalogue or catalogue_name_for(source))
    root, entries = read_entries(source)
    # A taken-down track stays out of every later ingest of its catalogue until it is restored.
    taken = {track: record for (_, track), record in active_takedowns(store, [catalogue]).items()}
    listed = sorted({entry.track_id for entry in entries} & set(taken))
    fingerprint = _source_fingerprint(cfg, root, entries, listed)
    artifact = store.artifact(catalogue, "ingest", INGEST_SHARD, fingerprint)

    def ingest(output: Artifact) -> dict:
        tracks, quarantine = _probe_entries(cfg, root, entries, catalogue, {t: taken[t] for t in listed})
        table = (
            pd.DataFrame(tracks, columns=TRACK_COLUMNS[:-1])
            .sort_values("track_id", kind="stable")
            .reset_index(drop=True)
        )
        table["shard"] = [f"shard-{i // cfg.ingest.shard_size:05d}" for i in range(len(table))]
        shards = {shard: group["track_id"].tolist() for shard, group in table.groupby("shard", sort=True)}
        output.write_table("tracks", table)
        output.write_table("quarantine", pd.DataFrame(quarantine, columns=QUARANTINE_COLUMNS))
        output.write_json("shards", shards)
        return {"tracks": len(table), "quarantined": len(quarantine), "shards": sorted(shards), "source": str(source)}

    # Two runs over one catalogue at once: the second waits, then finds the work committed.
    result = produce_artifact(artifact, ingest, pointer=pointer_name(catalogue))
    log.info(
        "ingest of %s: %d tracks in %d shards, %d quarantined",
        catalogue,
        result["tracks"],
        len(result["shards"]),
        result["quarantined"],
    )
    return result


def _probe_entries(
    cfg: LiviConfig,
    root: Path,
    entries: list[CatalogueEntry],
    catalogue: str,
    taken_down: dict[str, TakedownRecord] | None = None,
) -> tuple[list[dict], list[dict]]:
    """The manifest's playable tracks, and a quarantine row (with its reason) for every other
    entry: unusable ones and those ``taken_down``."""
    tracks, quarantine, seen = [], [], set()
    taken_down = taken_down or {}
    for entry in tqdm(entries, desc=f"ingest {catalogue}", unit="track", disable=None):
        try:
            if entry.problem:
                raise AudioError(entry.problem)
            if entry.track_id in taken_down:
                raise AudioError(_takedown_reason(taken_down[entry.track_id]))
            if not entry.track_id:
                raise AudioError("empty track_id")
            if entry.track_id in seen:
                raise AudioError("duplicate track_id")
            path = resolve_inside(root, entry.path)
            if path.suffix.lower() not in AUDIO_SUFFIXES:
                raise AudioError(f"unsupported file type {path.suffix or '(none)'}")
            probe = probe_audio(str(path), cfg.ingest.min_duration_s, cfg.ingest.max_duration_s)
        except AudioError as exc:
            log.warning("quarantined %s (%s): %s", entry.track_id, entry.path, exc)
            quarantine.append(
                {"track_id": entry.track_id, "work_id": entry.work_id, "path": entry.path, "reason": str(exc)}
            )
            continue
        seen.add(entry.track_id)
        tracks.append(
            {
                "track_id": entry.track_id,
                "work_id": entry.work_id,
                "uri": str(path),
                "relpath": entry.path,
                "sha256": _sha256(path, cfg.ingest.hash_chunk_bytes),
                "duration_s": probe.duration_s,
                "sample_rate": probe.sample_rate,
                "channels": probe.channels,
                "format": probe.format,
                "status": "ok",
                "title": entry.title,
            }
        )
    return tracks, quarantine
