"""The pipeline DAG end to end through ``dag.test()``: an index and metrics, then a rerun that does no work."""

from __future__ import annotations

from pathlib import Path

from airflow_testing import (
    airflow_env,
    local_airflow,
    migrated_sqlite,
    run_dag_test,
    small_catalogue,
    xcom,
)

SHARD_STAGES = ("lyrics.vocal", "lyrics.segments", "lyrics.transcribe", "lyrics.text", "features", "embed")


def test_pipeline_runs_end_to_end_and_a_rerun_does_no_stage_work(local_airflow, small_catalogue: Path, tmp_path: Path):
    local_airflow["LIVI__INGEST__SHARD_SIZE"] = "2"
    conf = {"catalogue_source": str(small_catalogue), "catalogue_name": "small", "retrain": True}

    first = run_dag_test(local_airflow, "livi_pipeline", conf, tmp_path / "first.json")
    failed = [task for task in first["tasks"] if task["state"] not in ("success", "skipped")]
    assert first["state"] == "success", (failed, first["log"][-5000:])
    units = xcom(first, "ingest")[0]
    assert len(units) == 2  # 4 tracks, 2 per shard
    for stage in SHARD_STAGES:
        summaries = xcom(first, stage)
        assert len(summaries) == len(units), stage
        assert not any(summary["skipped"] for summary in summaries), stage
    training = xcom(first, "train")[0]
    assert training["mlflow_run_id"] and training["epochs_run"] >= 1
    assert xcom(first, "promote")[0]["promoted"] == training["fingerprint"]
    index = xcom(first, "index")[0]
    assert index["tracks"] >= 1 and index["members"].keys() == {"small"}
    evaluation = xcom(first, "evaluate")[0]
    assert {"lyrics_asr", "livi_audio"} <= set(evaluation["methods"])
    for metrics in evaluation["methods"].values():
        assert 0 <= metrics["MAP"] <= 1
    assert Path(evaluation["report"]).is_file()

    second = run_dag_test(local_airflow, "livi_pipeline", conf, tmp_path / "second.json")
    assert second["state"] == "success", second["log"][-5000:]
    assert all(summary["skipped"] for summary in xcom(second, "ingest", "summaries")[0])
    for stage in SHARD_STAGES:
        assert all(summary["skipped"] for summary in xcom(second, stage)), stage
    assert (
        xcom(second, "train")[0]["skipped"] and xcom(second, "train")[0]["mlflow_run_id"] == training["mlflow_run_id"]
    )
    assert xcom(second, "index")[0]["skipped"]
    assert xcom(second, "evaluate")[0]["skipped"]
    print(f"first run {first['seconds']:.0f} s, second run {second['seconds']:.0f} s")


def test_invalid_configuration_fails_the_first_task_with_one_line(local_airflow, tmp_path: Path):
    local_airflow["LIVI__VOCAL__WINDOW_THRESHOLD"] = "2"
    report = run_dag_test(local_airflow, "livi_pipeline", {"catalogue_source": str(tmp_path)}, tmp_path / "run.json")
    states = {task["task_id"]: task["state"] for task in report["tasks"]}
    assert report["state"] == "failed"
    assert states["ingest"] == "failed"
    assert all(state == "upstream_failed" for task_id, state in states.items() if task_id.startswith("lyrics."))
    assert "invalid configuration: vocal.window_threshold: Input should be less than or equal to 1" in report["log"]
