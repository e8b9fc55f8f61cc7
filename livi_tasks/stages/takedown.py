"""Taking a track down and restoring it: the record (``core.takedowns``), then the index.

``take_down`` records who, when and why, then publishes a new index without the track (the
published one plus a delete: nothing is rebuilt). Running services leave it out of answers as
soon as they see the record (the service that took the DELETE at once, others within
``serve.refresh_s``) and swap in the new index when it is published. Later ingests of the
catalogue quarantine the track and later index builds leave it out, until ``restore``. A track
the catalogue's current ingest does not hold (or a catalogue not ingested yet) can be taken down
ahead of its ingest; the answer then carries a warning, since a mistyped name would otherwise be
recorded without a word.
"""

from __future__ import annotations

import logging

from livi_tasks.core.config import LiviConfig
from livi_tasks.core.store import ArtifactMissing, ArtifactStore
from livi_tasks.core.takedowns import TakedownError, active_takedowns, check_track, record_action
from livi_tasks.stages.lineage import INGEST_SHARD, artifact_for
from livi_tasks.stages.retrieval import build_catalogue_index, current_index

log = logging.getLogger(__name__)


def _published_members(store: ArtifactStore) -> dict | None:
    try:
        pointer, _ = current_index(store)
    except ArtifactMissing:
        return None
    return pointer


def reindex_published(cfg: LiviConfig, store: ArtifactStore) -> dict | None:
    """Publish the current index again under the takedowns recorded now (a delete or a restore on
    the published one); None when there is no index yet."""
    pointer = _published_members(store)
    if pointer is None:
        return None
    # The index as it is published: its model and its backend, whatever this process's config says.
    backend = cfg.index_backend.model_copy(
        update={"name": pointer.get("backend", "faiss"), "milvus_uri": pointer.get("uri") or None}
    )
    cfg = cfg.model_copy(update={"index_backend": backend})
    return build_catalogue_index(cfg, sorted(pointer["members"]), store=store, model=pointer["model"])


def _not_ingested(cfg: LiviConfig, store: ArtifactStore, catalogue: str, track_id: str) -> str:
    """Why the track is not among the catalogue's current ingest (its tracks and its quarantine);
    "" when it is."""
    try:
        ingest = artifact_for(cfg, store, catalogue, "ingest", INGEST_SHARD)
    except ArtifactMissing:
        return f"catalogue {catalogue!r} has not been ingested into {store.root}"
    if any((ingest.read_table(table)["track_id"] == track_id).any() for table in ("tracks", "quarantine")):
        return ""
    return f"track {track_id!r} is not in catalogue {catalogue!r} as last ingested"


def _republish(cfg: LiviConfig, store: ArtifactStore) -> dict:
    """``reindex_published`` summarised; when a member catalogue's embeddings are not there (it was
    ingested again and not yet embedded) the record stands and the next index build applies it."""
    try:
        result = reindex_published(cfg, store)
    except ArtifactMissing as exc:
        log.warning("index not republished now (%s); the next index build applies the takedowns", exc)
        return {"republished": False, "reason": str(exc)}
    keys = ("fingerprint", "tracks", "deleted", "restored", "skipped", "backend")
    return {"republished": True, **{key: result.get(key) for key in keys}}


def take_down(cfg: LiviConfig, catalogue: str, track_id: str, reason: str, by: str, **options) -> dict:
    """Record a takedown and publish the index without the track (``reindex=False``: at the next
    index build). Options: ``via`` (cli, api), ``store``, ``reindex``."""
    return _act(cfg, "remove", catalogue, track_id, reason, by, **options)


def restore(cfg: LiviConfig, catalogue: str, track_id: str, reason: str, by: str, **options) -> dict:
    """Record a restore of a taken-down track and publish the index with it again (options as take_down)."""
    return _act(cfg, "restore", catalogue, track_id, reason, by, **options)


def _act(
    cfg: LiviConfig,
    action: str,
    catalogue: str,
    track_id: str,
    reason: str,
    by: str,
    via: str = "cli",
    store: ArtifactStore | None = None,
    reindex: bool = True,
) -> dict:
    store = store or ArtifactStore(cfg.store.root)
    check_track(catalogue, track_id)
    active = active_takedowns(store, [catalogue]).get((catalogue, track_id))
    if action == "remove" and active is not None:
        raise TakedownError(f"{catalogue}/{track_id} is already taken down (by {active.by} at {active.at})")
    if action == "restore" and active is None:
        raise TakedownError(f"{catalogue}/{track_id} is not taken down")
    record = record_action(store, catalogue, track_id, action, reason, by, via)
    log.info("%s %s/%s (by %s: %s)", action, catalogue, track_id, record.by, record.reason)
    unknown = _not_ingested(cfg, store, catalogue, track_id) if action == "remove" else ""
    if unknown:
        log.warning("%s: recorded all the same, it applies when the track is ingested (check the name)", unknown)
    pointer = _published_members(store)
    indexed = pointer is not None and catalogue in pointer["members"]
    result = {"record": record.as_dict(), "index": _republish(cfg, store) if reindex and indexed else None}
    return {**result, "warning": f"{unknown}: recorded; it applies when the track is ingested"} if unknown else result
