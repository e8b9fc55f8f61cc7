"""Library calls inside task processes: progress bars logged at INFO, and a native crash that fails."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import textwrap

# Configures logging as in a task process before caplog attaches; after airflow_testing set AIRFLOW_HOME.
import airflow.configuration  # noqa: E402, F401, I001
from airflow_testing import REPO
from tqdm import tqdm

from livi_airflow.task_runtime import LogLineWriter, running_library, task_threads


def test_progress_bars_become_a_few_info_lines(caplog):
    log = logging.getLogger("livi-task")
    with caplog.at_level(logging.INFO, logger="livi-task"), running_library(log):
        for _ in tqdm(range(200), desc="outer", mininterval=0):
            for _ in tqdm(range(3), desc="inner", leave=False, mininterval=0):
                pass
        print("a notice on stderr", file=sys.stderr)
    messages = [record.getMessage() for record in caplog.records]
    assert all(record.levelno == logging.INFO for record in caplog.records)
    assert any(message.startswith("outer: 100%") and "200/200" in message for message in messages)
    assert "a notice on stderr" in messages
    # Hundreds of redraws, throttled to the first state, finished bars and the message.
    assert len(messages) < 10, messages
    assert not any("\x1b" in message or "\r" in message for message in messages)


def test_a_bar_without_total_ends_with_its_last_state(caplog):
    log = logging.getLogger("livi-task")
    writer = LogLineWriter(log, every_s=3600)
    with caplog.at_level(logging.INFO, logger="livi-task"):
        for _ in tqdm(iter(range(50)), desc="files", file=writer, mininterval=0):
            pass
        writer.close()
    assert caplog.records[-1].getMessage().startswith("files: 50it")


def test_a_segfault_in_library_code_ends_the_task_process_instead_of_spinning():
    # What Airflow leaves behind after parsing the DAG file: a Python-level SIGSEGV handler, under
    # which a fault in native code re-executes forever.
    code = textwrap.dedent(
        """
        import ctypes, logging, signal, sys
        sys.path.insert(0, sys.argv[1])
        from livi_airflow.task_runtime import running_library
        signal.signal(signal.SIGSEGV, lambda signum, frame: None)
        with running_library(logging.getLogger("task")):
            ctypes.string_at(0)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(REPO / "plugins")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == -signal.SIGSEGV
    assert "Segmentation fault" in done.stderr and "string_at" in done.stderr


def test_printed_log_records_and_warnings_keep_their_level(caplog):
    import warnings

    log = logging.getLogger("livi-task")
    with caplog.at_level(logging.INFO), running_library(log):
        print(
            "2026/12/01 03:24:50 INFO mlflow.store.db.utils: Creating initial MLflow database tables...",
            file=sys.stderr,
        )
        print("WARNING: a library's own warning line", file=sys.stderr)
        warnings.warn("a deprecated option", UserWarning)
    assert [record.levelno for record in caplog.records if "mlflow" in record.getMessage()] == [logging.INFO]
    assert [record.levelno for record in caplog.records if "own warning" in record.getMessage()] == [logging.WARNING]
    assert [record.levelno for record in caplog.records if "deprecated option" in record.getMessage()] == [
        logging.WARNING
    ]


def test_a_task_gets_the_cores_shared_among_the_worker_slots(monkeypatch):
    monkeypatch.delenv("LIVI_TASK_THREADS", raising=False)
    assert task_threads(cores=16, slots=4) == 4
    assert task_threads(cores=2, slots=4) == 1
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    monkeypatch.setenv("AIRFLOW__CELERY__WORKER_CONCURRENCY", "2")
    assert task_threads(cores=8) == 4
    monkeypatch.setenv("LIVI_TASK_THREADS", "3")
    assert task_threads(cores=8) == 3


def test_library_code_in_a_task_runs_with_its_thread_budget():
    code = textwrap.dedent(
        """
        import logging, os, sys
        sys.path.insert(0, sys.argv[1])
        os.environ.pop("OMP_NUM_THREADS", None)
        os.environ["LIVI_TASK_THREADS"] = "1"
        from livi_airflow.task_runtime import running_library
        with running_library(logging.getLogger("task")):
            import torch
            print(torch.get_num_threads())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(REPO / "plugins")], capture_output=True, text=True, timeout=120
    )
    assert done.stdout.strip() == "1", done.stderr
