#!/usr/bin/env bash
# `make demo`: the whole pipeline through Airflow (`airflow dags test`, one process, SQLite) on a
# generated demo catalogue; prints where the report is and the headline metrics.
# Usage: scripts/airflow_demo.sh [OUT_DIR]   (default demo_out)
#   LIVI_DEMO_CONF: extra Params as JSON, e.g. '{"whisper_model": "tiny.en"}' or '{"retrain": true}' to train
#   a head on the demo itself instead of embedding with the shipped one
#   LIVI_DEMO_ARGS: options of `livi demo-catalogue` (default: 6 works x 2 versions + 2 distractors)
set -euo pipefail
OUT="${1:-$(dirname "$0")/../demo_out}"
OUT="$(mkdir -p "$OUT" && cd "$OUT" && pwd)"
# Before airflow_env.sh, which derives the database URL from AIRFLOW_HOME.
export AIRFLOW_HOME="$OUT/airflow_home" LIVI__STORE__ROOT="$OUT/data"
export MLFLOW_TRACKING_URI="sqlite:///$OUT/data/mlflow.db"
source "$(dirname "$0")/airflow_env.sh"
livi_airflow_prepare
if [ ! -f "$OUT/catalogue/manifest.csv" ]; then
  # shellcheck disable=SC2086  # LIVI_DEMO_ARGS is a list of options
  livi demo-catalogue "$OUT/catalogue" ${LIVI_DEMO_ARGS:---works 6 --versions 2 --instrumentals 1 --hard-negatives 1}
fi
CONF="$(python - "$OUT/catalogue/manifest.csv" <<'PY'
import json, os, sys
conf = {"catalogue_source": sys.argv[1], "catalogue_name": "demo", "retrain": False}
conf.update(json.loads(os.environ.get("LIVI_DEMO_CONF", "{}")))
print(json.dumps(conf))
PY
)"
LOG="$OUT/airflow_dags_test.log"
echo "running livi_pipeline with $CONF"
echo "tasks as they start and finish (full log: $LOG):"
SINCE="$(date -u '+%Y-%m-%d %H:%M:%S')"
airflow dags test livi_pipeline -c "$CONF" > "$LOG" 2>&1 &
RUN_PID=$!
WATCH_STATUS=0
python "$REPO/scripts/watch_dag_run.py" livi_pipeline --pid "$RUN_PID" --since "$SINCE" --log "$LOG" || WATCH_STATUS=$?
RUN_STATUS=0
wait "$RUN_PID" || RUN_STATUS=$?
if [ "$RUN_STATUS" != 0 ] || [ "$WATCH_STATUS" != 0 ]; then
  echo "pipeline failed: full log in $LOG" >&2; exit 1
fi
python - "$LIVI__STORE__ROOT" <<'PY'
import sys
from livi_tasks.stages.evaluate import format_metrics
from livi_tasks.core.store import ArtifactStore
evaluation = ArtifactStore(sys.argv[1]).read_pointer("demo/LATEST_EVALUATION.json")
print(format_metrics(evaluation))
print(f"report: {evaluation['report']}")
PY
echo "query a track: .venv/bin/livi --data-root $LIVI__STORE__ROOT query $OUT/catalogue/audio/work-01/work-01-v1.wav"
