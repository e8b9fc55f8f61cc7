"""After a new index: ask the search service to swap it in now.

``refresh_search`` asks a running service (`livi serve`) to look for the index just published
(POST /v1/admin/reload with the service's token) so that it swaps it in at once rather than within
its ``serve.refresh_s``. It needs ``LIVI_SEARCH_API_URL`` (the service as the worker reaches it,
e.g. http://livi-search:8000) and ``LIVI__SERVE__TOKEN``; without them it skips. The UI's nav entry
is ``search_plugin.py``.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request

from airflow.sdk import task
from airflow.sdk.exceptions import AirflowSkipException

log = logging.getLogger(__name__)


@task(task_id="refresh_search", retries=2)
def refresh_search(published: dict) -> dict:
    """Ask the search service to swap in the index just published; skip when no service is configured."""
    base, token = os.environ.get("LIVI_SEARCH_API_URL"), os.environ.get("LIVI__SERVE__TOKEN")
    if not base or not token:
        raise AirflowSkipException(
            "LIVI_SEARCH_API_URL or LIVI__SERVE__TOKEN not set: "
            "a running service finds the new index within serve.refresh_s"
        )
    request = urllib.request.Request(
        base.rstrip("/") + "/v1/admin/reload", method="POST", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.loads(response.read())
    except (urllib.error.URLError, OSError) as exc:
        raise RuntimeError(f"the search service at {base} did not answer: {exc}") from None
    log.info(
        "search service: %s (serving %s; published %s)",
        answer["outcome"],
        answer["index"],
        published.get("fingerprint"),
    )
    return answer
