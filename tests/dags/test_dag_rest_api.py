"""Airflow as a user runs it: `airflow standalone` on 127.0.0.1, driven over the REST API.

One Airflow instance serves two checks (starting one costs about a minute): the pipeline triggered
with conf over REST, then a backfill of the daily incoming DAG over two past dates, whose asset
events schedule the index DAG.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from airflow_services import AirflowProcesses
from airflow_testing import airflow_env, local_airflow, migrated_sqlite, small_catalogue  # noqa: F401  (fixtures)

from livi_tasks.core.store import ArtifactStore
from livi_tasks.models.registry import promoted_model

ARRIVALS = {"2026-01-02": "arrival-a", "2026-01-03": "arrival-b"}


def make_arrivals(small_catalogue: Path, incoming: Path) -> None:
    """Two catalogues in the folder layout, one per arrival day, from the small catalogue's tracks."""
    tracks = pd.read_csv(small_catalogue)
    for (day, name), rows in zip(ARRIVALS.items(), (tracks.iloc[::2], tracks.iloc[1::2])):
        for row in rows.itertuples():
            target = incoming / day / name / row.work_id / Path(row.path).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(small_catalogue.parent / row.path, target)


@pytest.mark.airflow
def test_rest_trigger_then_backfill_of_incoming_days(local_airflow, small_catalogue: Path, tmp_path: Path):
    env = {**local_airflow, "LIVI_INCOMING_ROOT": str(tmp_path / "incoming")}
    make_arrivals(small_catalogue, tmp_path / "incoming")
    services = AirflowProcesses(env, tmp_path)
    services.start("standalone", "standalone")
    try:
        services.wait_for_api()
        passwords = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
        services.login("admin", json.loads(passwords.read_text())["admin"])
        services.wait_for_dag("livi_pipeline")

        services.unpause("livi_pipeline")
        run_id = services.trigger(
            "livi_pipeline", {"catalogue_source": str(small_catalogue), "catalogue_name": "small", "retrain": True}
        )
        (run,) = services.wait_for_runs("livi_pipeline", 1, timeout=900)
        states = {
            (ti["task_id"], ti["map_index"]): ti["state"] for ti in services.task_instances("livi_pipeline", run_id)
        }
        assert run["state"] == "success", (states, services.logs())
        evaluation = services.xcom("livi_pipeline", run_id, "evaluate")
        assert 0 <= evaluation["methods"]["livi_audio"]["MAP"] <= 1
        assert Path(evaluation["report"]).is_file()
        assert promoted_model(ArtifactStore(env["LIVI__STORE__ROOT"]))

        for dag_id in ("livi_incoming", "livi_index"):
            services.unpause(dag_id)
        backfill = services.backfill("livi_incoming", "2026-01-02", "2026-01-03")
        # Unpausing also schedules the latest day (nothing arrived then: it skips); the backfill makes two runs.
        try:
            runs = services.wait_for_runs("livi_incoming", 2, timeout=600, run_type="backfill")
        except AssertionError as exc:
            state = services.request("GET", f"/backfills/{backfill['id']}").text
            raise AssertionError(f"backfill {state}\n{exc}") from None
        assert sorted(run["logical_date"][:10] for run in runs) == sorted(ARRIVALS)
        assert all(run["state"] == "success" for run in runs), services.logs()
        for run in runs:
            ingested = services.xcom("livi_incoming", run["dag_run_id"], "ingest", key="catalogues")
            assert ingested == [ARRIVALS[run["logical_date"][:10]]]
            instances = services.task_instances("livi_incoming", run["dag_run_id"])
            states: dict[str, set[str]] = {}
            for ti in instances:
                states.setdefault(ti["task_id"], set()).add(ti["state"])
            assert states["audio.embed"] == {"success"}
            # One pass (the default detector): embed reads the ingested tracks, vocal and segments skip.
            assert states["audio.vocal"] == states["audio.segments"] == {"skipped"}

        # Each backfill run's asset event schedules livi_index; its latest run indexes both arrivals.
        deadline = time.monotonic() + 600
        while True:
            index_runs = services.wait_for_runs("livi_index", 1, timeout=600, run_type="asset_triggered")
            assert all(run["state"] == "success" for run in index_runs), services.logs()
            members = [set(services.xcom("livi_index", run["dag_run_id"], "index")["members"]) for run in index_runs]
            if any(set(ARRIVALS.values()) | {"small"} <= indexed for indexed in members):
                break
            assert time.monotonic() < deadline, (members, services.logs())
            time.sleep(10)
    finally:
        services.stop()
