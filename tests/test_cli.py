"""The `livi` command as a user meets it: help on everything, user errors as one line, a real stage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

from livi_tasks.cli import app

LIVI = Path(sys.executable).parent / "livi"
runner = CliRunner()


def test_every_command_and_option_explains_itself():
    group = typer.main.get_command(app)
    assert group.help
    for name, command in group.commands.items():
        assert command.help, name
        for param in command.params:
            if isinstance(param, click.Option) or isinstance(param, click.Argument):
                assert getattr(param, "help", None), f"{name} {param.name}"
        done = runner.invoke(app, [name, "--help"])
        assert done.exit_code == 0, (name, done.output)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--set", "vocal.window_threshold=2", "detect-vocals", "--catalogue", "demo"], "vocal.window_threshold"),
        (["--set", "vocal.window_threshold", "detect-vocals", "--catalogue", "demo"], "expected section.field=value"),
        (["ingest", "/no/such/catalogue"], "/no/such/catalogue"),
        (["ingest", ".", "--catalogue", "../escape"], "'../escape': use letters"),
        (["song-corpus", "corpus", "--family", "nope"], "family: expected one of"),
        (["build-default-heads", "--whisper", "tiny.en", "--teacher", "lyrics+nope"], "--teacher: 'nope'"),
        (["build-default-heads", "--whisper", "base", "--teacher", "lyrics+base"], "--teacher: 'base'"),
    ],
)
def test_a_user_error_is_one_line_and_exit_status_2(args, named, tmp_path):
    done = subprocess.run([str(LIVI), "--data-root", str(tmp_path), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], done.stderr


@pytest.mark.parametrize(
    ("args", "named"), [(["query", "x.wav", "--top-k", "0"], "--top-k"), (["--threads", "0", "doctor"], "--threads")]
)
def test_a_bad_option_value_names_the_option(args, named):
    done = runner.invoke(app, args)
    assert done.exit_code == 2
    assert named in done.output


def test_ingest_runs_on_the_demo_catalogue_and_a_rerun_skips(demo_catalogue, tmp_path):
    args = ["--data-root", str(tmp_path / "data"), "ingest", str(demo_catalogue), "--catalogue", "demo"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    summary = json.loads(first.output[first.output.index("{") :])
    assert summary["catalogue"] == "demo" and summary["tracks"] > 0 and not summary["skipped"]
    second = runner.invoke(app, args)
    assert json.loads(second.output[second.output.index("{") :])["skipped"]
