"""What the service answers from, and how a new index replaces it without downtime.

``ServiceState`` is immutable: the published index (with the takedowns it leaves out), the encoder
model it was built with, and the ingest rows of its catalogues (titles, audio files). A request
takes the current state once and uses it to the end. ``IndexWatcher`` makes new states in the
background (a new index published by ``livi_index`` or ``livi build-index``; a takedown recorded
by ``livi remove``) and swaps them in with one assignment: requests in flight finish on the state
they took. An index no request uses any more is closed (a milvus-lite copy removed).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from functools import cached_property
from typing import Callable, Iterator
from urllib.parse import quote

import numpy as np
import pandas as pd

from livi_tasks.core.config import LiviConfig
from livi_tasks.core.store import MARKER, ArtifactMissing, ArtifactStore
from livi_tasks.core.takedowns import TakedownRecord, active_takedowns, keys_text, takedown_state
from livi_tasks.stages.index_artifacts import close_index
from livi_tasks.stages.lineage import INGEST_SHARD, current_ingest
from livi_tasks.stages.retrieval import POINTER, PublishedIndex, current_index, open_published_index

log = logging.getLogger(__name__)

TRACK_COLUMNS = ["catalogue", "track_id", "work_id", "title", "uri", "duration_s"]


class NotReady(RuntimeError):
    """No index is loaded yet (the message says why)."""


class IndexHandle:
    """One opened index and the requests using it; closed once retired and unused. Holds what an
    answer needs per row, looked up once when the index loads (never per request): the row
    columns as arrays, and the titles and audio files of the ingest tables."""

    def __init__(self, index, tracks: pd.DataFrame) -> None:
        self.index = index
        self.users = 0
        self.retired = False
        self.closed = False
        rows = index.rows
        self.catalogue = rows["catalogue"].to_numpy(object)
        self.track_id = rows["track_id"].to_numpy(object)
        self.work_id = rows["work_id"].to_numpy(object)
        keys = list(zip(tracks["catalogue"], tracks["track_id"]))
        self.titles = {key: title for key, title in zip(keys, tracks["title"].fillna("")) if title}
        self.audio = {key: uri for key, uri in zip(keys, tracks["uri"]) if isinstance(uri, str) and uri}
        # What a track search looks in: id, work and title of each row, lower-cased once.
        titles = [self.titles.get(key, "") for key in zip(self.catalogue, self.track_id)]
        self.haystack = (
            rows["track_id"].astype(str) + "\x1f" + rows["work_id"].fillna("").astype(str) + "\x1f" + pd.Series(titles)
        ).str.lower()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            close_index(self.index)


@dataclass(frozen=True)
class ServiceState:
    published: PublishedIndex
    handle: IndexHandle
    model: str
    loaded_at: str
    indexed_at: str | None
    takedown_token: str = ""

    @property
    def fingerprint(self) -> str:
        return self.published.fingerprint

    def track(self, position: int) -> dict:
        """What an answer says of the track at a row position (no audio_url without its file)."""
        handle = self.handle
        key = (handle.catalogue[position], handle.track_id[position])
        return {
            "catalogue": key[0],
            "track_id": key[1],
            "work_id": handle.work_id[position],
            "title": handle.titles.get(key, ""),
            "audio_url": f"/v1/audio/{quote(key[0])}/{quote(key[1])}" if key in handle.audio else None,
        }

    def hits(self, ids: np.ndarray, scores: np.ndarray) -> list[dict]:
        """Ranked answers of one query's ids and scores (-1: an empty slot)."""
        return [
            {"rank": rank, "score": round(float(score), 6), **self.track(int(position))}
            for rank, (position, score) in enumerate(((p, s) for p, s in zip(ids, scores) if p >= 0), start=1)
        ]

    def audio_file(self, catalogue: str, track_id: str) -> str | None:
        return self.handle.audio.get((catalogue, track_id))

    def find(self, text: str, catalogue: str | None, limit: int) -> np.ndarray:
        """Row positions of live tracks whose id, work or title contains ``text`` (any case)."""
        match = self.handle.haystack.str.contains(text.lower(), regex=False).to_numpy() & self.live_mask()
        if catalogue is not None:
            match &= self.handle.catalogue == catalogue
        return np.flatnonzero(match)[:limit]

    @cached_property
    def catalogue_counts(self) -> dict[str, int]:
        """Live tracks per catalogue (computed once per state)."""
        rows = self.published.index.rows
        return {str(k): int(v) for k, v in rows.loc[self.live_mask(), "catalogue"].value_counts().items()}

    def live_mask(self) -> np.ndarray:
        """Which rows of the index a search can return (removed and taken-down rows are not)."""
        live = ~self.published.index.removed.copy()
        live[self.published.excluded] = False
        return live

    def is_live(self, catalogue: str, track_id: str) -> int | None:
        """The track's row position when a search can return it, else None."""
        position = self.published.index.position(catalogue, track_id)
        if position is None or self.published.index.removed[position]:
            return None
        excluded = self.published.excluded  # sorted
        at = int(np.searchsorted(excluded, position))
        return None if at < len(excluded) and excluded[at] == position else position


def _ingest_rows(store: ArtifactStore, catalogue: str) -> pd.DataFrame:
    """The catalogue's current ingest table as TRACK_COLUMNS; empty when it has none (an index built
    from embeddings alone, as the benchmark's)."""
    try:
        pointer = current_ingest(store, catalogue)
        table = store.artifact(catalogue, "ingest", INGEST_SHARD, pointer["fingerprint"]).read_table("tracks")
    except (ArtifactMissing, KeyError) as exc:
        log.warning("no ingest table for %s (%s): its tracks have no audio or title here", catalogue, exc)
        return pd.DataFrame(columns=TRACK_COLUMNS)
    table = table.assign(catalogue=catalogue)
    if "title" not in table.columns:
        table["title"] = ""
    return table.reindex(columns=TRACK_COLUMNS)


class IndexWatcher:
    """Holds the current state; loads a newly published index or takedown in the background and
    swaps it in. ``prepare_model(model)`` loads an encoder before a state that needs it goes live."""

    def __init__(self, cfg: LiviConfig, store: ArtifactStore, prepare_model: Callable[[str], None]) -> None:
        self.cfg = cfg
        self.store = store
        self.prepare_model = prepare_model
        self._state: ServiceState | None = None
        self._lock = threading.Lock()
        self._check_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reindexer = ThreadPoolExecutor(1, thread_name_prefix="livi-reindex")
        self.last_error = "loading"
        self.swaps = 0

    # -- reading ------------------------------------------------------------------------------
    @property
    def state(self) -> ServiceState | None:
        return self._state

    @contextlib.contextmanager
    def using(self) -> Iterator[ServiceState]:
        """The current state for one request; its index stays open until the request is done."""
        with self._lock:
            state = self._state
            if state is None:
                raise NotReady(self.last_error)
            state.handle.users += 1
        try:
            yield state
        finally:
            with self._lock:
                state.handle.users -= 1
                close = state.handle.retired and state.handle.users == 0
            if close:
                state.handle.close()

    # -- changing -----------------------------------------------------------------------------
    def _swap(self, new: ServiceState) -> None:
        with self._lock:
            old, self._state = self._state, new
            self.swaps += 1
            retire = old is not None and old.handle is not new.handle
            if retire:
                old.handle.retired = True
                close = old.handle.users == 0
        if retire and close:
            old.handle.close()

    def _load(self, pointer: dict) -> ServiceState:
        started = time.perf_counter()
        self.prepare_model(pointer["model"])
        published = open_published_index(self.cfg, self.store, expected_model=pointer["model"])
        try:
            tracks = pd.concat(
                [_ingest_rows(self.store, name) for name in sorted(published.pointer["members"])], ignore_index=True
            )
            _, artifact = current_index(self.store)
            state = ServiceState(
                published=published,
                handle=IndexHandle(published.index, tracks),
                model=published.pointer["model"],
                loaded_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                indexed_at=self.store.modified_at(f"{artifact.url}/{MARKER}"),
                takedown_token=takedown_state(self.store),
            )
        except BaseException:
            close_index(published.index)
            raise
        log.info(
            "loaded index %s (%s, %d live tracks, model %s) in %.1f s",
            state.fingerprint,
            published.pointer.get("backend", "faiss"),
            published.live_count,
            state.model,
            time.perf_counter() - started,
        )
        return state

    def check_now(self) -> str:
        """Look for a new index or new takedowns now; returns what happened (one word)."""
        with self._check_lock:
            try:
                pointer = self.store.read_pointer(POINTER)
            except ArtifactMissing:
                self.last_error = f"no index in {self.store.root} yet: run `livi build-index --catalogue NAME`"
                return "no-index"
            current = self._state
            try:
                if current is None or pointer["fingerprint"] != current.fingerprint:
                    self._swap(self._load(pointer))
                    self.last_error = ""
                    return "index"
                token = takedown_state(self.store)
                if token != current.takedown_token:
                    active = keys_text(active_takedowns(self.store, current.published.pointer["members"]))
                    published = current.published.with_takedowns(active)
                    self._swap(replace(current, published=published, takedown_token=token))
                    log.info(
                        "takedowns now %d (%d of them still in the loaded index)", len(active), len(published.excluded)
                    )
                    return "takedowns"
            except Exception as exc:  # keep serving the state we have; /ready says what failed
                self.last_error = f"loading index {pointer.get('fingerprint')} failed: {exc}"
                log.exception("loading index %s failed; still serving the previous one", pointer.get("fingerprint"))
                return "error"
            return "unchanged"

    def take_down_now(self, record: TakedownRecord) -> None:
        """Leave a just-recorded takedown out of every answer from now on, without waiting for a poll."""
        with self._check_lock:
            current = self._state
            if current is None:
                return
            keys = set(current.published.takedowns) | {f"{record.catalogue}/{record.track_id}"}
            self._swap(replace(current, published=current.published.with_takedowns(keys)))

    def reindex_later(self, job: Callable[[], object]) -> None:
        """Run ``job`` (publishing a new index) on the one reindex thread, then look for the result."""

        def run() -> None:
            try:
                job()
            except Exception:
                log.exception("republishing the index failed; answers still leave the track out")
            self.check_now()

        self._reindexer.submit(run)

    # -- the thread ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="livi-index-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.check_now()
        interval = self.cfg.serve.refresh_s
        while interval > 0 and not self._stop.wait(interval):
            self.check_now()

    def stop(self) -> None:
        self._stop.set()
        self._reindexer.shutdown(wait=True, cancel_futures=True)
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._lock:
            state, self._state = self._state, None
        if state is not None:
            state.handle.close()
