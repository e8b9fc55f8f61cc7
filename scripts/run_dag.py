"""Run one DAG in this process with ``dag.test()`` and write what happened as JSON.

Usage: ``python scripts/run_dag.py DAG_ID --conf '{"...": ...}' [--logical-date 2026-01-02] --out result.json``.
The JSON holds the run's state, every task instance (state, map index, hostname, pid) and the
return value XComs, so tests and scripts can check a run without parsing logs. Run it with the
environment of scripts/airflow_env.sh (AIRFLOW_HOME, DAGS_FOLDER, PLUGINS_FOLDER).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone


def run(dag_id: str, conf: dict, logical_date: datetime | None) -> dict:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    bag = DagBag()
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag(dag_id)
    dag_run = dag.test(run_conf=conf, **({"logical_date": logical_date} if logical_date else {}))
    with create_session() as session:
        instances = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=dag_run.run_id).all()
        xcoms = session.query(XComModel).filter_by(dag_id=dag_id, run_id=dag_run.run_id).all()
        return {
            "dag_id": dag_id,
            "run_id": dag_run.run_id,
            "state": str(dag_run.state),
            "tasks": [
                {
                    "task_id": ti.task_id,
                    "map_index": ti.map_index,
                    "state": str(ti.state),
                    "hostname": ti.hostname,
                    "pid": ti.pid,
                }
                for ti in instances
            ],
            "xcom": [
                {"task_id": x.task_id, "map_index": x.map_index, "key": x.key, "value": XComModel.deserialize_value(x)}
                for x in xcoms
            ],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dag_id")
    parser.add_argument("--conf", default="{}", help="Params as JSON.")
    parser.add_argument("--logical-date", type=lambda value: datetime.fromisoformat(value).replace(tzinfo=timezone.utc))
    parser.add_argument("--out", required=True, help="Where to write the JSON result.")
    args = parser.parse_args()
    result = run(args.dag_id, json.loads(args.conf), args.logical_date)
    with open(args.out, "w") as handle:
        json.dump(result, handle, indent=2, default=str)
    print(f"{args.dag_id}: {result['state']}")


if __name__ == "__main__":
    main()
