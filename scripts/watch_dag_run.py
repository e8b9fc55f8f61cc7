"""Print a DAG run's task instances as they start and finish, while another process runs the DAG.

Usage: ``python scripts/watch_dag_run.py DAG_ID --pid PID [--since TIME] [--log FILE]``: follows the
newest run of DAG_ID started after ``--since`` in the local metadata database
($AIRFLOW_HOME/airflow.db, SQLite, read only) until process PID (``airflow dags test``) exits, then
prints a summary line and, for each failed task, the end of its part of the run's log FILE. It
only reads: the run itself is untouched. Used by ``make demo``, whose run logs to a file.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

POLL_S = 2.0
FINISHED = {"success", "failed", "skipped", "upstream_failed", "removed"}


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def read_run(database: Path, dag_id: str, since: str) -> tuple[str | None, list[tuple]]:
    """The newest run's state and (task_id, map_index, state, start, end) of its task instances."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as connection:
        run = connection.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id = ? AND COALESCE(queued_at, start_date) >= ? "
            "ORDER BY id DESC LIMIT 1",
            (dag_id, since),
        ).fetchone()
        if run is None:
            return None, []
        instances = connection.execute(
            "SELECT task_id, map_index, state, start_date, end_date FROM task_instance "
            "WHERE dag_id = ? AND run_id = ? ORDER BY start_date",
            (dag_id, run[0]),
        ).fetchall()
    return run[1], instances


def label(task_id: str, map_index: int) -> str:
    return task_id if map_index < 0 else f"{task_id}[{map_index}]"


def task_log_tail(log: Path, dag_id: str, name: str, lines: int = 30) -> list[str]:
    """The last lines ``airflow dags test`` logged while running task ``name`` (``task`` or ``task[i]``)."""
    task_id, _, index = name.rstrip("]").partition("[")
    start = f"[DAG TEST] running task <TaskInstance: {dag_id}.{task_id} "
    end = f"[DAG TEST] end task task_id={task_id} map_index={index or -1} "
    inside, found = False, []
    for line in log.read_text(errors="replace").splitlines():
        if start in line and (not index or f"map_index={index} " in line):
            inside, found = True, []
        if inside:
            found.append(line)
        if end in line:
            inside = False
    return found[-lines:]


def watch(database: Path, dag_id: str, pid: int, since: str, log: Path | None = None) -> int:
    started = time.monotonic()
    shown: dict[str, str] = {}
    run_state = None
    failed: list[str] = []
    while True:
        alive = process_alive(pid)
        try:
            run_state, instances = read_run(database, dag_id, since) if database.exists() else (None, [])
        except sqlite3.OperationalError:  # the writer holds the lock or is creating the tables
            instances = []
        for task_id, map_index, state, start, end in instances:
            name = label(task_id, map_index)
            if state is None or shown.get(name) == state or (state not in FINISHED and state != "running"):
                continue
            if state == "running":
                print(f"  {time.monotonic() - started:6.0f} s  {name:<28} started", flush=True)
            else:
                took = (
                    (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
                    if start and end
                    else 0.0
                )
                print(f"  {time.monotonic() - started:6.0f} s  {name:<28} {state} ({took:.1f} s)", flush=True)
                if state == "failed":
                    failed.append(name)
            shown[name] = state
        if not alive:
            break
        time.sleep(POLL_S)
    print(
        f"{dag_id}: {run_state or 'no run'} after {time.monotonic() - started:.0f} s"
        + (f"; failed: {', '.join(failed)}" if failed else ""),
        flush=True,
    )
    for name in failed if log and log.exists() else []:
        print(f"--- end of {name}'s log ({log}):", *task_log_tail(log, dag_id, name), sep="\n", flush=True)
    return 0 if run_state == "success" else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dag_id", help="The DAG whose run to follow.")
    parser.add_argument("--pid", type=int, required=True, help="Process running the DAG; watching stops when it exits.")
    parser.add_argument(
        "--since",
        default=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        help="Follow only a run started at or after this UTC time, 'YYYY-MM-DD HH:MM:SS' (default: now).",
    )
    parser.add_argument("--log", type=Path, help="The run's log, from which a failed task's lines are shown.")
    args = parser.parse_args()
    database = Path(os.environ.get("AIRFLOW_HOME", "airflow_home")) / "airflow.db"
    sys.exit(watch(database, args.dag_id, args.pid, args.since, args.log))


if __name__ == "__main__":
    main()
