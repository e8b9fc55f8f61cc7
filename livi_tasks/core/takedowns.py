"""Takedowns: tracks taken out of the index and of every answer, with who, when and why.

A takedown is store data, not an artifact: one small JSON record per action under
``_takedowns/<catalogue>/<time>-<id>.json``, written atomically and never rewritten, so two
writers (the CLI and the service) never lose each other's records and the history stays whole.
A track is taken down while its latest record says ``remove``; ``livi restore`` appends a
``restore`` record. Readers fold the records in time order (``active_takedowns``).

Who honours them: the ingest quarantines a taken-down track (and its key includes the takedowns
of the tracks it lists, so a rerun re-ingests without it), the index build leaves it out (its key
includes the takedowns of its members) and the search service drops it from answers at once.
"""

from __future__ import annotations

import json
import posixpath
import re
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Iterable, Literal

from livi_tasks.core.names import CATALOGUE_NAME_PATTERN, CATALOGUE_NAME_RULE
from livi_tasks.core.store import ArtifactStore

TAKEDOWN_ROOT = "_takedowns"
MAX_TEXT = 500
_CATALOGUE_NAME = re.compile(CATALOGUE_NAME_PATTERN)

Action = Literal["remove", "restore"]
TrackKey = tuple[str, str]  # (catalogue, track_id)


class TakedownError(ValueError):
    """A takedown request is malformed (the message says which value, in one line)."""


@dataclass(frozen=True)
class TakedownRecord:
    catalogue: str
    track_id: str
    action: Action
    reason: str
    by: str
    at: str  # ISO 8601, UTC
    via: str  # cli or api
    record_id: str

    @property
    def key(self) -> TrackKey:
        return (self.catalogue, self.track_id)

    def as_dict(self) -> dict:
        return asdict(self)


def track_key_text(catalogue: str, track_id: str) -> str:
    """``catalogue/track_id``: unambiguous, since a catalogue name holds no '/'."""
    return f"{catalogue}/{track_id}"


def _one_line(label: str, value: str) -> str:
    text = (value or "").strip()
    if not text:
        raise TakedownError(f"{label}: must not be empty")
    if "\n" in text or "\r" in text or len(text) > MAX_TEXT:
        raise TakedownError(f"{label}: one line of at most {MAX_TEXT} characters")
    return text


def check_track(catalogue: str, track_id: str) -> TrackKey:
    if not _CATALOGUE_NAME.match(catalogue or ""):
        raise TakedownError(f"catalogue {catalogue!r}: use {CATALOGUE_NAME_RULE}")
    if not track_id or "\x00" in track_id or len(track_id) > 1000:
        raise TakedownError("track: a track id of 1 to 1000 characters")
    return catalogue, track_id


def record_action(
    store: ArtifactStore, catalogue: str, track_id: str, action: Action, reason: str, by: str, via: str
) -> TakedownRecord:
    """Append one record; the file name orders records by time (ties by a random suffix)."""
    check_track(catalogue, track_id)
    now = time.time_ns()
    record = TakedownRecord(
        catalogue=catalogue,
        track_id=track_id,
        action=action,
        reason=_one_line("reason", reason),
        by=_one_line("by", by),
        at=datetime.fromtimestamp(now / 1e9, timezone.utc).isoformat(timespec="milliseconds"),
        via=via,
        record_id=f"{now:020d}-{uuid.uuid4().hex[:12]}",
    )
    store.write_pointer(posixpath.join(TAKEDOWN_ROOT, catalogue, f"{record.record_id}.json"), record.as_dict())
    return record


def takedown_log(store: ArtifactStore, catalogues: Iterable[str] | None = None) -> list[TakedownRecord]:
    """Every record (of ``catalogues``, default all), oldest first."""
    names = ["*"] if catalogues is None else [c for c in catalogues if _CATALOGUE_NAME.match(c)]
    paths: list[str] = []
    for name in names:
        paths.extend(store.fs.glob(store.join(TAKEDOWN_ROOT, name, "*.json")))
    records = []
    for path in paths:
        with store.fs.open(path, "rb") as handle:
            records.append(TakedownRecord(**json.loads(handle.read())))
    return sorted(records, key=lambda record: record.record_id)


def active_takedowns(store: ArtifactStore, catalogues: Iterable[str] | None = None) -> dict[TrackKey, TakedownRecord]:
    """The tracks taken down now, each with the record that took it down."""
    active: dict[TrackKey, TakedownRecord] = {}
    for record in takedown_log(store, catalogues):
        if record.action == "remove":
            active[record.key] = record
        else:
            active.pop(record.key, None)
    return active


def takedown_state(store: ArtifactStore) -> str:
    """A cheap token that changes whenever a record is added (the newest record's id and the count)."""
    paths = store.fs.glob(store.join(TAKEDOWN_ROOT, "*", "*.json"))
    return f"{len(paths)}:{max((posixpath.basename(p) for p in paths), default='')}"


def keys_text(keys: Iterable[TrackKey]) -> list[str]:
    """Sorted ``catalogue/track_id`` strings: how keys and pointers name a set of takedowns."""
    return sorted(track_key_text(*key) for key in keys)
