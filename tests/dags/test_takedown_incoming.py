"""A takedown survives a rerun of livi_incoming: the rerun's ingest quarantines the track and the
index that livi_index then publishes leaves it out (dag.test, as the other DAG runs are tested)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
from airflow_testing import VENV_BIN, airflow_env, local_airflow, migrated_sqlite, run_dag_test, small_catalogue, xcom

from livi_tasks.core.config import load_config
from livi_tasks.core.store import ArtifactStore
from livi_tasks.stages.lineage import current_ingest
from livi_tasks.stages.retrieval import current_index, open_published_index

DAY = "2026-01-02"
ARRIVAL = "arrival"


def succeeded(report: dict) -> None:
    failed = [task for task in report["tasks"] if task["state"] not in ("success", "skipped")]
    assert report["state"] == "success", (failed, report["log"][-5000:])


def test_a_takedown_survives_a_rerun_of_livi_incoming(local_airflow, small_catalogue: Path, tmp_path: Path):
    env = {**local_airflow, "LIVI_INCOMING_ROOT": str(tmp_path / "incoming")}
    for row in pd.read_csv(small_catalogue).itertuples():
        target = tmp_path / "incoming" / DAY / ARRIVAL / row.work_id / Path(row.path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(small_catalogue.parent / row.path, target)
    cfg = load_config(environ=env)
    store = ArtifactStore(cfg.store.root)

    succeeded(run_dag_test(env, "livi_incoming", {}, tmp_path / "incoming-1.json", logical_date=DAY))
    first = run_dag_test(env, "livi_index", {}, tmp_path / "index-1.json")
    succeeded(first)
    indexed = xcom(first, "index")[0]
    published = open_published_index(cfg, store)
    gone = published.index.rows["track_id"].iloc[0]

    done = subprocess.run(
        [str(VENV_BIN / "livi"), "remove", "--catalogue", ARRIVAL, "--track", gone, "--reason", "licence expired"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout[done.stdout.index("{") :])["index"]["tracks"] == indexed["tracks"] - 1

    # The same day again (a rerun, as a backfill or a cleared run makes): the track is quarantined...
    rerun = run_dag_test(env, "livi_incoming", {}, tmp_path / "incoming-2.json", logical_date=DAY)
    succeeded(rerun)
    (summary,) = xcom(rerun, "ingest", "summaries")[0]
    assert not summary["skipped"] and summary["quarantined"] == 1
    ingest = store.artifact(ARRIVAL, "ingest", "all", current_ingest(store, ARRIVAL)["fingerprint"])
    quarantine = ingest.read_table("quarantine").set_index("track_id")["reason"]
    assert quarantine[gone].startswith("taken down by ") and "licence expired" in quarantine[gone]
    # ... and the index livi_index publishes next leaves it out.
    second = run_dag_test(env, "livi_index", {}, tmp_path / "index-2.json")
    succeeded(second)
    reindexed = xcom(second, "index")[0]
    assert reindexed["tracks"] == indexed["tracks"] - 1 and reindexed["takedowns"] == [f"{ARRIVAL}/{gone}"]
    pointer, _ = current_index(store)
    assert pointer["fingerprint"] == reindexed["fingerprint"]
    assert gone not in set(open_published_index(cfg, store).index.live_rows()["track_id"])
