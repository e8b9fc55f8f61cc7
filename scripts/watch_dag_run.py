"""Print a DAG run's task instances as they start and finish, while another process runs the DAG.

Usage: ``python scripts/watch_dag_run.py DAG_ID --pid PID [--since ISO_TIME]``: follows the newest run
of DAG_ID created after ``--since`` in the local metadata database ($AIRFLOW_HOME/airflow.db, SQLite,
read only) until process PID (e.g. ``airflow dags test``) exits, then prints a summary line. It
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


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value).replace(tzinfo=timezone.utc) if "+" not in value else datetime.fromisoformat(value)


def read_run(database: Path, dag_id: str, since: str) -> tuple[str | None, list[tuple]]:
    """The newest run's state and (task_id, map_index, state, start, end) of its task instances."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as connection:
        run = connection.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id = ? AND queued_at >= ? ORDER BY id DESC LIMIT 1",
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


def watch(database: Path, dag_id: str, pid: int, since: str) -> int:
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
                took = (parse_time(end) - parse_time(start)).total_seconds() if start and end else 0.0
                print(f"  {time.monotonic() - started:6.0f} s  {name:<28} {state} ({took:.1f} s)", flush=True)
                if state == "failed":
                    failed.append(name)
            shown[name] = state
        if not alive:
            break
        time.sleep(POLL_S)
    print(f"{dag_id}: {run_state or 'no run'} after {time.monotonic() - started:.0f} s"
          + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return 0 if run_state == "success" else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dag_id", help="The DAG whose run to follow.")
    parser.add_argument("--pid", type=int, required=True, help="Process running the DAG; watching stops when it exits.")
    parser.add_argument(
        "--since", default=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        help="Follow only a run queued at or after this UTC time (default: now).",
    )
    args = parser.parse_args()
    database = Path(os.environ.get("AIRFLOW_HOME", "airflow_home")) / "airflow.db"
    sys.exit(watch(database, args.dag_id, args.pid, args.since))


if __name__ == "__main__":
    main()
