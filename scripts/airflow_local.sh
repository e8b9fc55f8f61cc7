#!/usr/bin/env bash
# Start Airflow locally (api-server, scheduler, dag-processor, triggerer) on 127.0.0.1 with the
# repository's DAGs: `scripts/airflow_local.sh` (Ctrl-C stops everything). Local development only.
set -euo pipefail
source "$(dirname "$0")/airflow_env.sh"
livi_airflow_prepare
PASSWORDS="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
cat <<INFO
Airflow UI:   http://$AIRFLOW__API__HOST:$AIRFLOW__API__PORT
Log in as:    admin, password in $PASSWORDS (written on first start)
DAGs:         $AIRFLOW__CORE__DAGS_FOLDER    data: $LIVI__STORE__ROOT
Trigger:      livi_pipeline with catalogue_source = a catalogue folder or manifest.
INFO
exec airflow standalone
