"""Two processes run the same stage over the same catalogue at once.

They start together (both wait for a "go" file after their imports). The per-artifact lock makes
one of them do each artifact's work while the other waits and then skips it, so every artifact is
computed exactly once and the data root reads like the one of a single run.
"""

from __future__ import annotations

from collections import Counter

import pytest
from reliability_corpus import (
    CRASH_CATALOGUE,
    assert_same_artifacts,
    crash_config,
    finish_runner,
    snapshot,
    start_runner,
    wait_ready,
)

from livi_tasks.stages.catalogue import ingest_catalogue


@pytest.mark.parametrize("stage", ["ingest", "vocal"])
def test_two_concurrent_runs_do_each_artifact_once(crash_reference, tmp_path, stage):
    root = tmp_path / "data"
    reference = crash_reference.ingest if stage == "ingest" else crash_reference.vocal
    if stage != "ingest":
        ingest_catalogue(crash_config(root), crash_reference.manifest, CRASH_CATALOGUE)
    go = tmp_path / "go"
    runners = [start_runner(root, crash_reference.manifest, stage, "--go", str(go)) for _ in range(2)]
    for runner in runners:
        wait_ready(runner)
    go.touch()
    results = [finish_runner(runner) for runner in runners]
    assert [code for code, _ in results] == [0, 0]

    worked = Counter(
        summary.get("shard", "all") for _, summaries in results for summary in summaries if not summary["skipped"]
    )
    by_process = [
        sorted(summary.get("shard", "all") for summary in summaries if not summary["skipped"])
        for _, summaries in results
    ]
    print(
        f"{stage}: work done per artifact by the two processes: {dict(worked)}; "
        f"process 1 did {by_process[0]}, process 2 {by_process[1]}"
    )
    shards = {"all"} if stage == "ingest" else {"shard-00000", "shard-00001"}
    assert set(worked) == shards and all(count == 1 for count in worked.values())
    after = snapshot(root)
    assert_same_artifacts(after, reference)
    assert after.temporaries == []
