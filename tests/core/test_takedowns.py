"""Takedown records: append-only, folded in time order, validated, shared by concurrent writers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from livi_tasks.core.store import ArtifactStore
from livi_tasks.core.takedowns import (
    TakedownError,
    active_takedowns,
    keys_text,
    record_action,
    takedown_log,
    takedown_state,
)


def test_remove_then_restore_keeps_the_whole_history(tmp_path):
    store = ArtifactStore(str(tmp_path))
    empty = takedown_state(store)
    first = record_action(store, "demo", "w1/v0", "remove", "licence expired", "ops@example", "cli")
    assert takedown_state(store) != empty
    assert active_takedowns(store) == {("demo", "w1/v0"): first}
    record_action(store, "demo", "w1/v0", "restore", "licence renewed", "ops@example", "api")
    assert active_takedowns(store) == {}
    history = takedown_log(store)
    assert [(r.action, r.reason, r.by, r.via) for r in history] == [
        ("remove", "licence expired", "ops@example", "cli"),
        ("restore", "licence renewed", "ops@example", "api"),
    ]
    assert history[0].at < history[1].at


def test_concurrent_writers_lose_no_record(tmp_path):
    store = ArtifactStore(str(tmp_path))
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: record_action(store, "demo", f"t{i}", "remove", "dmca", "bot", "api"), range(40)))
    assert keys_text(active_takedowns(store)) == sorted(f"demo/t{i}" for i in range(40))
    assert keys_text(active_takedowns(store, ["demo"])) == keys_text(active_takedowns(store))
    assert active_takedowns(store, ["other"]) == {}


@pytest.mark.parametrize(
    ("catalogue", "track", "reason", "by", "named"),
    [
        ("../etc", "t", "r", "me", "catalogue"),
        ("demo", "", "r", "me", "track"),
        ("demo", "t", "  ", "me", "reason"),
        ("demo", "t", "two\nlines", "me", "reason"),
        ("demo", "t", "r", "", "by"),
    ],
)
def test_a_bad_request_is_one_line_naming_the_value(tmp_path, catalogue, track, reason, by, named):
    with pytest.raises(TakedownError) as excinfo:
        record_action(ArtifactStore(str(tmp_path)), catalogue, track, "remove", reason, by, "cli")
    assert str(excinfo.value).startswith(named) and "\n" not in str(excinfo.value)
    assert takedown_log(ArtifactStore(str(tmp_path))) == []
