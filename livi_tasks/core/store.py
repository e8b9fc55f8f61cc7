"""Artifact store: where every stage reads and writes, local or any fsspec URL.

An artifact is a folder ``<root>/<catalogue>/<stage>/<shard>/<fingerprint>/`` holding tables
(Parquet), arrays (.npy) and JSON. Every file is written to a temporary name and renamed, and the
artifact counts as done only once its ``_COMMITTED.json`` marker exists, written last, so a
killed writer leaves at most invisible temporaries and a rerun redoes the shard. Two writers of
the same artifact produce the same bytes (outputs are deterministic in their key); the first
marker wins and later commits are no-ops.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import uuid
from dataclasses import dataclass
from datetime import timezone
from typing import Any, Iterator

import fsspec
import numpy as np
import pandas as pd

MARKER = "_COMMITTED.json"
TMP_PREFIX = ".tmp-"


class ArtifactMissing(FileNotFoundError):
    """An artifact a stage needs has not been produced yet."""


@dataclass(frozen=True)
class ArtifactKey:
    catalogue: str
    stage: str
    shard: str
    fingerprint: str

    def as_path(self) -> str:
        return posixpath.join(self.catalogue, self.stage, self.shard, self.fingerprint)

    def to_dict(self) -> dict[str, str]:
        return {"catalogue": self.catalogue, "stage": self.stage, "shard": self.shard, "fingerprint": self.fingerprint}


class Artifact:
    """One artifact folder. Files are written atomically; ``commit`` publishes the whole."""

    def __init__(self, store: "ArtifactStore", key: ArtifactKey):
        self.store = store
        self.key = key
        self.url = store.join(key.as_path())

    def __repr__(self) -> str:
        return f"Artifact({self.url})"

    def _file(self, name: str) -> str:
        return posixpath.join(self.url, name)

    def is_complete(self) -> bool:
        return self.store.fs.exists(self._file(MARKER))

    def exists(self, name: str) -> bool:
        return self.store.fs.exists(self._file(name))

    def write_bytes(self, name: str, data: bytes) -> None:
        self.store.write_atomic(self._file(name), data)

    def read_bytes(self, name: str) -> bytes:
        try:
            with self.store.fs.open(self._file(name), "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            raise ArtifactMissing(f"{self.url}: no {name}") from None

    def write_table(self, name: str, frame: pd.DataFrame) -> None:
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        self.write_bytes(f"{name}.parquet", buffer.getvalue())

    def read_table(self, name: str) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(self.read_bytes(f"{name}.parquet")))

    def write_array(self, name: str, array: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
        self.write_bytes(f"{name}.npy", buffer.getvalue())

    def read_array(self, name: str, mmap: bool = False) -> np.ndarray:
        if mmap and self.store.is_local:
            path = self._file(f"{name}.npy")
            if not os.path.exists(path):
                raise ArtifactMissing(f"{self.url}: no {name}.npy")
            return np.load(path, mmap_mode="r", allow_pickle=False)
        return np.load(io.BytesIO(self.read_bytes(f"{name}.npy")), allow_pickle=False)

    def write_json(self, name: str, payload: Any) -> None:
        self.write_bytes(f"{name}.json", json.dumps(payload, indent=2, sort_keys=True, default=str).encode())

    def read_json(self, name: str) -> Any:
        return json.loads(self.read_bytes(f"{name}.json"))

    def local_path(self, name: str = "") -> str:
        """Filesystem path of a file, for libraries that need one (Faiss, torch); local stores only."""
        if not self.store.is_local:
            raise ValueError(f"{self.url} is not on a local filesystem")
        path = self._file(name) if name else self.url
        os.makedirs(self.url, exist_ok=True)
        return path

    def remove_temporaries(self) -> None:
        """Delete what killed writers left behind, on local stores, whose writers hold a lock
        (call only while holding it); object stores have no lock and keep theirs."""
        if not self.store.is_local:
            return
        for leftover in self.store.fs.glob(self._file(f"{TMP_PREFIX}*")):
            self.store.fs.rm(leftover)

    def commit(self, summary: dict[str, Any] | None = None) -> None:
        """Publish the artifact. Idempotent: an existing marker is kept."""
        if self.is_complete():
            return
        marker = {"key": self.key.to_dict(), "summary": summary or {}}
        self.write_bytes(MARKER, json.dumps(marker, indent=2, sort_keys=True, default=str).encode())

    def summary(self) -> dict[str, Any]:
        return json.loads(self.read_bytes(MARKER))["summary"]

    def require(self) -> "Artifact":
        if not self.is_complete():
            raise ArtifactMissing(f"{self.url} is not complete: run the {self.key.stage} stage first")
        return self


class ArtifactStore:
    """The data root. ``root`` is a local path or an fsspec URL."""

    def __init__(self, root: str):
        self.fs, self.root = fsspec.core.url_to_fs(root)
        self.is_local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))
        if self.is_local:
            self.root = os.path.abspath(self.root)
        self.fs.makedirs(self.root, exist_ok=True)

    def __repr__(self) -> str:
        return f"ArtifactStore({self.root})"

    def join(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def artifact(self, catalogue: str, stage: str, shard: str, fingerprint: str) -> Artifact:
        for label, part in (("catalogue", catalogue), ("stage", stage), ("shard", shard), ("fingerprint", fingerprint)):
            if not part or "/" in part or part in {".", ".."}:
                raise ValueError(f"artifact {label} {part!r} is not a plain name")
        return Artifact(self, ArtifactKey(catalogue, stage, shard, fingerprint))

    def write_atomic(self, url: str, data: bytes) -> None:
        """Write to a unique temporary name beside the target, then rename over it."""
        parent = posixpath.dirname(url)
        self.fs.makedirs(parent, exist_ok=True)
        tmp = posixpath.join(parent, f"{TMP_PREFIX}{uuid.uuid4().hex}-{posixpath.basename(url)}")
        if self.is_local:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, url)
        else:
            # Object stores publish a put atomically; the temporary name keeps a partial upload invisible.
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, url)

    def write_pointer(self, name: str, payload: dict[str, Any]) -> None:
        """A small JSON file outside artifacts (e.g. the current ingest of a catalogue)."""
        self.write_atomic(self.join(name), json.dumps(payload, indent=2, sort_keys=True, default=str).encode())

    def read_pointer(self, name: str) -> dict[str, Any]:
        try:
            with self.fs.open(self.join(name), "rb") as handle:
                return json.loads(handle.read())
        except FileNotFoundError:
            raise ArtifactMissing(f"{self.join(name)} not found") from None

    def modified_at(self, url: str) -> str | None:
        """When a file was last written (ISO 8601, UTC), or None where the filesystem cannot say."""
        try:
            stamp = self.fs.modified(url)
        except (NotImplementedError, FileNotFoundError, AttributeError):
            return None
        return (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)).isoformat(timespec="seconds")

    def complete_artifacts(self, catalogue: str, stage: str) -> Iterator[Artifact]:
        """Every committed artifact of a stage of a catalogue (any shard, any fingerprint)."""
        for marker in sorted(self.fs.glob(self.join(catalogue, stage, "*", "*", MARKER))):
            shard, fingerprint = marker.split("/")[-3:-1]
            yield self.artifact(catalogue, stage, shard, fingerprint)
