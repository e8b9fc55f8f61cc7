"""`make demo`'s script (scripts/airflow_demo.sh) on a four-track demo catalogue: it runs the pipeline
through Airflow, prints the report, and keeps Airflow's database in its own output folder."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from airflow_testing import REPO, environ_without_settings


@pytest.mark.airflow
def test_demo_script_runs_the_pipeline_and_keeps_its_database_in_its_folder(tmp_path: Path):
    repo_database = REPO / "airflow_home" / "airflow.db"
    existed = repo_database.exists()
    env = environ_without_settings()
    env.update(
        {
            "LIVI_DEMO_ARGS": "--works 2 --versions 2 --instrumentals 0 --hard-negatives 0",
            "LIVI_DEMO_CONF": '{"whisper_model": "tiny.en"}',
            "LIVI__TRANSCRIBE__TEMPERATURES": "[0.0]",
            "OMP_NUM_THREADS": "2",
        }
    )
    out = tmp_path / "demo_out"
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "airflow_demo.sh"), str(out)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "livi_pipeline: success" in done.stdout
    report = re.search(r"^report: (.+)$", done.stdout, re.MULTILINE)
    assert report and Path(report.group(1)).is_file() and Path(report.group(1)).is_relative_to(out)
    assert (out / "airflow_home" / "airflow.db").is_file()
    assert repo_database.exists() == existed
