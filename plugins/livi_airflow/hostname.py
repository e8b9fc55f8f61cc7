"""Task-instance hostnames that tell workers apart when several run on one machine.

Set ``AIRFLOW__CORE__HOSTNAME_CALLABLE=livi_airflow.hostname.worker_hostname`` and give each worker
``LIVI_WORKER_NAME``; without it the machine's FQDN is used, as Airflow does by default.
"""

from __future__ import annotations

import os
import socket


def worker_hostname() -> str:
    return os.environ.get("LIVI_WORKER_NAME") or socket.getfqdn()
