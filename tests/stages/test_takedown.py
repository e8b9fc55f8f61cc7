"""Takedowns of tracks the store does not hold yet: recorded, with a warning naming what is missing."""

from __future__ import annotations

from livi_testing import copy_served_store

from livi_tasks.core.store import ArtifactStore
from livi_tasks.core.takedowns import active_takedowns
from livi_tasks.stages.retrieval import open_published_index
from livi_tasks.stages.takedown import take_down


def test_a_takedown_of_an_unknown_catalogue_or_track_is_recorded_with_a_warning(demo_indexed, tmp_path):
    cfg = copy_served_store(demo_indexed["cfg"], tmp_path / "data")
    store = ArtifactStore(cfg.store.root)
    live = open_published_index(cfg, store).live_count

    ahead = take_down(cfg, "demo-next", "track-001", "licence ends", "rights", store=store)
    assert "catalogue 'demo-next' has not been ingested" in ahead["warning"]
    typo = take_down(cfg, "demo", "no-such-track", "licence ends", "rights", store=store)
    assert "track 'no-such-track' is not in catalogue 'demo'" in typo["warning"]

    recorded = set(active_takedowns(store, ["demo-next", "demo"]))
    assert recorded == {("demo-next", "track-001"), ("demo", "no-such-track")}
    assert open_published_index(cfg, store).live_count == live  # nothing indexed was taken down


def test_a_takedown_of_an_ingested_track_carries_no_warning(demo_indexed, tmp_path):
    cfg = copy_served_store(demo_indexed["cfg"], tmp_path / "data")
    store = ArtifactStore(cfg.store.root)
    index = open_published_index(cfg, store)
    track_id = index.index.rows["track_id"].iloc[0]
    removed = take_down(cfg, "demo", track_id, "dmca", "ops", store=store)
    assert "warning" not in removed and removed["index"]["republished"]
    assert open_published_index(cfg, store).live_count == index.live_count - 1
