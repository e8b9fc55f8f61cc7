"""Airflow test helpers and fixtures: a private AIRFLOW_HOME per test, the repository's DAGs and plugins.

Not a conftest.py: a second module named ``conftest`` would shadow tests/conftest.py for the
``from conftest import ...`` of other tests. Test modules import the fixtures they use from here.
In-process imports of Airflow read their settings from the environment set here at import time
(before anything imports airflow); runs of the scheduler, api-server and workers get their own
environment from ``airflow_env``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
DAG_IDS = {"livi_pipeline", "livi_nightly_retrain", "livi_incoming", "livi_index"}

_PARSE_HOME = tempfile.mkdtemp(prefix="livi-airflow-parse-")
for _name, _value in {
    "AIRFLOW_HOME": _PARSE_HOME,
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
}.items():
    os.environ[_name] = _value
sys.path.insert(0, str(REPO / "plugins"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environ_without_settings() -> dict[str, str]:
    """This process's environment without Airflow, LIVI and MLflow settings (a test sets its own)."""
    return {name: value for name, value in os.environ.items() if not name.startswith(("AIRFLOW", "LIVI", "MLFLOW"))}


@pytest.fixture
def airflow_env(tmp_path: Path) -> dict[str, str]:
    """Environment of a private Airflow (SQLite, LocalExecutor) and LIVI data root for one test.

    Small, fast settings: Whisper tiny.en, 2 training epochs, 4 tracks per shard, no retries.
    """
    home = tmp_path / "airflow"
    data = tmp_path / "data"
    home.mkdir()
    data.mkdir()
    env = environ_without_settings()
    api_port = free_port()
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            # As scripts/airflow_env.sh: SQLite writers wait up to 60 s for the lock instead of 5.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db?timeout=60",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "LIVI__STORE__ROOT": str(data),
            "LIVI__TRANSCRIBE__WHISPER_MODEL": "tiny.en",
            # Greedy only: the fallback's hotter attempts cost minutes per segment on 2 cores and are
            # covered by the transcription stage's own tests.
            "LIVI__TRANSCRIBE__TEMPERATURES": "[0.0]",
            "LIVI__ENCODER__EPOCHS": "2",
            "LIVI__INGEST__SHARD_SIZE": "4",
            "LIVI_TASK_RETRIES": "0",
            "MLFLOW_TRACKING_URI": f"sqlite:///{data}/mlflow.db",
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(REPO),
            "OMP_NUM_THREADS": "2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def airflow(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run an ``airflow`` CLI command; fail the test with its output when it fails."""
    done = subprocess.run(
        [str(VENV_BIN / "airflow"), *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO
    )
    if done.returncode != 0:
        pytest.fail(
            f"airflow {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done


def prepare_airflow(env: dict[str, str], whisper_slots: int = 1) -> None:
    """Create the metadata database and the Whisper pool (the CeleryExecutor test's PostgreSQL)."""
    airflow(env, "db", "migrate")
    airflow(env, "pools", "set", "whisper", str(whisper_slots), "Concurrent Whisper tasks")


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite metadata database with the whisper pool, made once (migrating takes ~20 s)."""
    home = tmp_path_factory.mktemp("airflow-template")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
    }
    prepare_airflow(env)
    return home / "airflow.db"


@pytest.fixture
def local_airflow(airflow_env: dict[str, str], migrated_sqlite: Path) -> dict[str, str]:
    """``airflow_env`` with its own copy of the migrated SQLite database."""
    shutil.copy(migrated_sqlite, Path(airflow_env["AIRFLOW_HOME"]) / "airflow.db")
    return airflow_env


def run_dag_test(
    env: dict[str, str], dag_id: str, conf: dict, out: Path, logical_date: str | None = None, timeout: float = 900
) -> dict:
    """``dag.test()`` in a subprocess (scripts/run_dag.py); returns its JSON report."""
    command = [
        sys.executable,
        str(REPO / "scripts" / "run_dag.py"),
        dag_id,
        "--conf",
        json.dumps(conf),
        "--out",
        str(out),
    ]
    if logical_date:
        command += ["--logical-date", logical_date]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if done.returncode != 0 or not out.exists():
        pytest.fail(f"{dag_id} dag.test crashed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-6000:]}")
    report = json.loads(out.read_text())
    report["seconds"] = time.perf_counter() - started
    report["log"] = done.stdout + done.stderr
    return report


def xcom(report: dict, task_id: str, key: str = "return_value") -> list:
    """The XCom values one task pushed under ``key``, in map-index order."""
    rows = sorted(
        (row for row in report["xcom"] if row["task_id"] == task_id and row["key"] == key),
        key=lambda row: row["map_index"],
    )
    return [row["value"] for row in rows]


@pytest.fixture(scope="session")
def small_catalogue(demo_catalogue: Path) -> Path:
    """Two works with two versions each, from the demo catalogue: the smallest evaluable catalogue."""
    import pandas as pd

    manifest = pd.read_csv(demo_catalogue)
    labelled = manifest[manifest["work_id"].fillna("") != ""]
    works = sorted(work for work, group in labelled.groupby("work_id") if len(group) >= 2)[:2]
    subset = pd.concat([labelled[labelled["work_id"] == work].head(2) for work in works])
    path = demo_catalogue.parent / "small.csv"
    subset[["track_id", "work_id", "path"]].to_csv(path, index=False)
    return path
