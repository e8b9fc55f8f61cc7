"""The DAG files parse, are documented and tagged, and wire the stages as designed."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
from airflow_testing import DAG_IDS, REPO


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_every_dag_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == DAG_IDS


def test_every_dag_is_tagged_and_documented(dagbag):
    for dag_id in DAG_IDS:
        dag = dagbag.dags[dag_id]
        assert "livi" in dag.tags, dag_id
        assert dag.doc_md and len(dag.doc_md) > 200, dag_id


def test_dag_files_do_not_import_heavy_modules_when_parsed():
    """Parsing must stay cheap: no torch, whisper, sentence-transformers or LIVI stage modules."""
    code = (
        "import sys; from airflow.dag_processing.dagbag import DagBag; "
        f"bag = DagBag(dag_folder={str(REPO / 'dags')!r}); assert not bag.import_errors, bag.import_errors; "
        "heavy = [m for m in ('torch', 'whisper', 'sentence_transformers', 'faiss', 'mlflow', "
        "'livi_tasks.stages.vocal', 'livi_tasks.stages.transcribe', 'livi_tasks.stages.train_encoder') "
        "if m in sys.modules]; print(heavy); assert not heavy"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_pipeline_params_are_validated(dagbag):
    from airflow.sdk.definitions.param import ParamValidationError

    params = dagbag.dags["livi_pipeline"].params
    assert {
        "catalogue_source",
        "catalogue_name",
        "shard_size",
        "min_track_vocalness",
        "whisper_model",
        "text_model",
        "retrain",
        "alpha",
        "epochs",
        "data_root",
        "centred_retrieval",
        "chunk_rerank_weight",
    } <= set(params.keys())
    assert params["centred_retrieval"] is True and params["chunk_rerank_weight"] == 0.5
    good = {
        "catalogue_source": "/data/covers80",
        "shard_size": 8,
        "min_track_vocalness": 0.4,
        "whisper_model": "tiny.en",
        "alpha": 0.5,
        "epochs": 3,
        "retrain": True,
    }
    validated = copy.deepcopy(params)
    validated.update(good)
    assert validated.validate()["shard_size"] == 8
    for bad in (
        {"shard_size": 0},
        {"min_track_vocalness": 1.5},
        {"whisper_model": "huge"},
        {"alpha": -0.1},
        {"epochs": 0},
        {"catalogue_name": "../escape"},
        {"retrain": "yes"},
        {"centred_retrieval": "no"},
        {"chunk_rerank_weight": 1.5},
    ):
        candidate = copy.deepcopy(params)
        with pytest.raises(ParamValidationError):
            candidate.update({**good, **bad})
            candidate.validate()


def test_pipeline_wiring(dagbag):
    dag = dagbag.dags["livi_pipeline"]
    upstream = {task.task_id: task.upstream_task_ids for task in dag.tasks}
    assert dag.schedule is None if hasattr(dag, "schedule") else True
    assert upstream["lyrics.segments"] >= {"lyrics.vocal"}
    assert upstream["lyrics.transcribe"] >= {"lyrics.segments"}
    assert upstream["lyrics.text"] >= {"lyrics.transcribe"}
    assert upstream["training_needed"] == {"lyrics.text"}
    assert upstream["features"] >= {"training_needed"}
    assert upstream["train"] >= {"features"}
    assert upstream["promote"] == {"train"}
    assert upstream["embed"] >= {"lyrics.text", "promote"}
    assert upstream["index"] >= {"embed"}
    assert upstream["evaluate"] >= {"index", "baseline"}
    assert dag.get_task("lyrics.transcribe").pool == "whisper"
    # A skipped training branch must not skip embedding.
    assert dag.get_task("embed").trigger_rule == "none_failed"
    for task in dag.tasks:
        assert task.retries >= 1 and task.retry_exponential_backoff, task.task_id


def test_incoming_is_daily_by_data_interval_and_produces_the_asset(dagbag):
    from airflow.sdk import CronDataIntervalTimetable

    incoming = dagbag.dags["livi_incoming"]
    assert isinstance(incoming.timetable, CronDataIntervalTimetable)
    assert incoming.catchup is False
    assert [outlet.name for outlet in incoming.get_task("publish").outlets] == ["livi_embeddings"]
    index = dagbag.dags["livi_index"]
    assert "livi_embeddings" in repr(index.timetable)
    # Every task that publishes an index says so with the asset the search service follows.
    for dag_id in ("livi_index", "livi_pipeline", "livi_nightly_retrain"):
        assert [outlet.name for outlet in dagbag.dags[dag_id].get_task("index").outlets] == ["livi_search_index"]
    assert index.get_task("refresh_search").upstream_task_ids == {"index"}


def test_nightly_retrain_schedule_and_steps(dagbag):
    dag = dagbag.dags["livi_nightly_retrain"]
    assert "expression='0 2 * * *'" in repr(dag.timetable)
    upstream = {task.task_id: task.upstream_task_ids for task in dag.tasks}
    assert upstream["promote_if_better"] == {"train"}
    assert "promote_if_better" in upstream["embeddable_catalogues"]
    assert upstream["index"] >= {"embed"}


def test_trigger_form_fields_read_well(dagbag):
    """Every field has a title and help text; choices are enums with a real default, never "null"."""
    for dag_id in DAG_IDS:
        for name, param in dagbag.dags[dag_id].params.items():
            schema = param.schema
            assert schema.get("title") and param.description, (dag_id, name)
            if "enum" in schema:
                assert None not in schema["enum"] and param.value in schema["enum"], (dag_id, name, schema["enum"])
    params = dagbag.dags["livi_pipeline"].params
    assert params["whisper_model"] == "base" and params["vocal_rule"] == "vocal_seconds"
    assert params["min_vocal_s"] == 9 and params["shard_size"] == 16


def test_every_shard_task_runs_a_stage_of_the_table(dagbag):
    from livi_tasks.core.stage_table import SHARD_STAGES

    used = set()
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            if task.task_type != "LiviShardOperator":
                continue
            stage = getattr(task, "partial_kwargs", {}).get("stage") or getattr(task, "stage", None)
            assert stage in SHARD_STAGES, (dag.dag_id, task.task_id, stage)
            used.add(stage)
    assert used == set(SHARD_STAGES)  # every stage runs in some DAG


def test_every_catalogue_task_runs_a_step_of_the_table(dagbag):
    from livi_tasks.core.stage_table import CATALOGUE_STEPS

    used = {
        (task.step, task.entry)
        for dag in dagbag.dags.values()
        for task in dag.tasks
        if task.task_type == "LiviCatalogueOperator"
    }
    assert used == set(CATALOGUE_STEPS.items())  # every step runs in some DAG, by the table's entry
