"""The stage table: every row names a real entry function, a config section and a parent, and the
CLI offers its command."""

from __future__ import annotations

import inspect

import pytest
from typer.testing import CliRunner

from livi_tasks.cli import app
from livi_tasks.config import LiviConfig
from livi_tasks.lineage import PARENT, SECTION
from livi_tasks.stages import SHARD_STAGES, shard_stage


@pytest.mark.parametrize("name", list(SHARD_STAGES))
def test_each_stage_row_is_runnable(name):
    stage = SHARD_STAGES[name]
    parameters = list(inspect.signature(stage.function()).parameters)
    assert parameters[:4] == ["cfg", "catalogue", "shard", "store"]
    assert stage.section in LiviConfig.model_fields
    assert stage.parent == "ingest" or stage.parent in SHARD_STAGES
    assert (PARENT[name], SECTION[name]) == (stage.parent, stage.section)  # lineage reads the table
    if stage.command:
        done = CliRunner().invoke(app, [stage.command, "--help"])
        assert done.exit_code == 0 and "--catalogue" in done.output


def test_unknown_stage_is_a_one_line_error():
    with pytest.raises(ValueError, match="unknown stage 'vocals': one of vocal, segments"):
        shard_stage("vocals")
