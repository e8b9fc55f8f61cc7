# Environment for running this repository's DAGs with a local Airflow (sourced by the other scripts).
# Everything lives under AIRFLOW_HOME (default <repo>/airflow_home); SQLite, LocalExecutor.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$REPO/airflow_home}"
export AIRFLOW__CORE__DAGS_FOLDER="$REPO/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$REPO/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR="${AIRFLOW__CORE__EXECUTOR:-LocalExecutor}"
# SQLite has one writer at a time; its driver gives up after 5 s ("database is locked"), which on a
# busy 2-core machine can fail a backfill request or stop the scheduler. Writers wait up to 60 s.
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite:///$AIRFLOW_HOME/airflow.db?timeout=60}"
# LocalExecutor starts `parallelism` worker processes (~130 MB each): a laptop needs few.
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
export AIRFLOW__API__HOST="${AIRFLOW__API__HOST:-127.0.0.1}"
export AIRFLOW__API__PORT="${AIRFLOW__API__PORT:-8080}"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="${AIRFLOW__CORE__EXECUTION_API_SERVER_URL:-http://127.0.0.1:$AIRFLOW__API__PORT/execution/}"
# The log servers cannot be bound to one address (Airflow listens on all); keep their ports explicit.
export AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT="${AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT:-8793}"
export AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT="${AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT:-8794}"
# Data and models: the DAGs' config comes from LIVI__* / LIVI_CONFIG like the CLI's.
export LIVI__STORE__ROOT="${LIVI__STORE__ROOT:-$REPO/data}"
export LIVI_INCOMING_ROOT="${LIVI_INCOMING_ROOT:-$REPO/data/incoming}"
export MLFLOW_TRACKING_URI="${MLFLOW_TRACKING_URI:-sqlite:///$LIVI__STORE__ROOT/mlflow.db}"
# `airflow standalone` starts its components as `airflow ...`: the venv's bin must come first.
if [ -x "$REPO/.venv/bin/airflow" ]; then
  export PATH="$REPO/.venv/bin:$PATH"
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$AIRFLOW_HOME" "$LIVI__STORE__ROOT"

# Create the database (idempotent) and the pool bounding concurrent Whisper tasks.
livi_airflow_prepare() {
  airflow db migrate >/dev/null
  airflow pools set whisper "${LIVI_WHISPER_SLOTS:-1}" "Concurrent Whisper tasks (transcribe, features, train, embed)" >/dev/null
}
