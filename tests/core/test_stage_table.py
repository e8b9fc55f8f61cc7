"""The stage table: every row names a real entry function, a config section and a parent, and the
CLI offers its command; a new stage is its module plus one row."""

from __future__ import annotations

import inspect

import pytest
from typer.testing import CliRunner

from livi_tasks.cli import app
from livi_tasks.core.config import LiviConfig
from livi_tasks.core.stage_table import (
    CATALOGUE_STEPS,
    SHARD_STAGES,
    Stage,
    catalogue_step,
    import_entry,
    shard_stage,
    stages_down_to,
)
from livi_tasks.core.store import ArtifactStore
from livi_tasks.pipeline import run_stage_over_shards
from livi_tasks.stages.lineage import artifact_for, parent_stage


@pytest.mark.parametrize("name", list(SHARD_STAGES))
def test_each_stage_row_is_runnable(name):
    stage = SHARD_STAGES[name]
    parameters = list(inspect.signature(stage.function()).parameters)
    assert parameters[:4] == ["cfg", "catalogue", "shard", "store"]
    assert stage.section in LiviConfig.model_fields
    assert stage.parent == "ingest" or stage.parent in SHARD_STAGES
    musicnn = LiviConfig.model_validate({"vocal": {"method": "zero_shot"}})  # no one-pass redirect of embed
    assert parent_stage(musicnn, name) == stage.parent  # lineage reads the table
    if stage.command:
        done = CliRunner().invoke(app, [stage.command, "--help"])
        assert done.exit_code == 0 and "--catalogue" in done.output


def test_unknown_stage_is_a_one_line_error():
    with pytest.raises(ValueError, match="unknown stage 'vocals': one of vocal, segments"):
        shard_stage("vocals")
    with pytest.raises(ValueError, match="unknown catalogue step 'indexes': one of index, evaluate"):
        catalogue_step("indexes")


@pytest.mark.parametrize("name", list(CATALOGUE_STEPS))
def test_each_catalogue_step_takes_the_config_and_a_store(name):
    parameters = inspect.signature(import_entry(catalogue_step(name))).parameters
    assert list(parameters)[0] == "cfg" and "store" in parameters


def test_a_new_stage_is_its_module_and_one_row(monkeypatch, demo_cfg, demo_ingested):
    row = Stage(
        "loudness",
        "ingest",
        "ingest",
        "example_stage:measure_loudness",
        "measure-loudness",
        "RMS level of every track.",
    )
    monkeypatch.setitem(SHARD_STAGES, row.name, row)

    first = run_stage_over_shards(demo_cfg, "loudness", demo_ingested)
    again = run_stage_over_shards(demo_cfg, "loudness", demo_ingested)

    assert [summary["skipped"] for summary in first + again] == [False] * len(first) + [True] * len(again)
    store = ArtifactStore(demo_cfg.store.root)
    ingested = artifact_for(demo_cfg, store, demo_ingested, "ingest", "all").read_table("tracks")
    levels = [
        artifact_for(demo_cfg, store, demo_ingested, "loudness", summary["shard"]).read_table("loudness")
        for summary in first
    ]
    assert sum(len(level) for level in levels) == len(ingested) and all((level.rms_db < 0).all() for level in levels)


def test_the_lyrics_path_follows_the_parents():
    assert stages_down_to("text") == ["vocal", "segments", "transcribe", "text"]
    assert stages_down_to("baseline") == ["baseline"]
