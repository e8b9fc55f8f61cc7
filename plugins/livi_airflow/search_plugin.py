"""The search service's page in the Airflow UI: "LIVI search" in the navigation (an Airflow 3
external view) shows the page of `livi serve` in a frame at /plugin/livi-search.

``LIVI_SEARCH_URL`` is the page's address as the user's browser reaches it (default
http://127.0.0.1:8000/); it is read when the api-server loads plugins.
"""

from __future__ import annotations

import os

from airflow.plugins_manager import AirflowPlugin

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
