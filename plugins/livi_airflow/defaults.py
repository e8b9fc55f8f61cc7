"""Task defaults shared by the LIVI DAGs: retries with exponential backoff and where heavy work runs."""

from __future__ import annotations

import os
from datetime import timedelta

# Whisper-backed tasks (transcription, encoder features, audio embedding) share this pool so a
# worker never holds more Whisper models than it has memory for. Created by scripts/airflow_local.sh
# and the compose airflow-init service; its size is the number of concurrent Whisper tasks.
WHISPER_POOL = "whisper"

# Celery queue of the Whisper-backed tasks: "gpu" when a GPU worker serves it (compose profile gpu),
# else the default queue. Read when the DAG is parsed, so set it for the dag-processor.
HEAVY_QUEUE = os.environ.get("LIVI_HEAVY_QUEUE", "default")

DEFAULT_ARGS = {
    "owner": "livi",
    "retries": int(os.environ.get("LIVI_TASK_RETRIES", "2")),
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}

HEAVY_ARGS = {"pool": WHISPER_POOL, "queue": HEAVY_QUEUE}
