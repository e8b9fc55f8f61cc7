"""The search service in Airflow: its page in the UI's navigation, and a nudge after a new index.

``LiviSearchPlugin`` adds "LIVI search" to the Airflow UI's navigation (an Airflow 3 external view):
the service's page (`livi serve`), shown in a frame at /plugin/livi-search. ``LIVI_SEARCH_URL`` is
the page's address as the user's browser reaches it (default http://127.0.0.1:8000/); it is read
when the api-server loads plugins.

``refresh_search`` asks a running service to look for the index just published (POST
/v1/admin/reload with the service's token) so that it swaps it in at once rather than within its
``serve.refresh_s``. It needs ``LIVI_SEARCH_API_URL`` (the service as the worker reaches it, e.g.
http://livi-search:8000) and ``LIVI__SERVE__TOKEN``; without them it skips.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import task
from airflow.sdk.exceptions import AirflowSkipException

log = logging.getLogger(__name__)

DEFAULT_SEARCH_URL = "http://127.0.0.1:8000/"
NAV_ROUTE = "livi-search"


def search_url() -> str:
    return os.environ.get("LIVI_SEARCH_URL") or DEFAULT_SEARCH_URL


class LiviSearchPlugin(AirflowPlugin):
    name = "livi_search"
    external_views = [
        {
            "name": "LIVI search",
            "href": search_url(),
            "icon": search_url().rstrip("/") + "/icon.svg",
            "destination": "nav",
            "url_route": NAV_ROUTE,
            "nav_top_level": True,
        }
    ]


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
