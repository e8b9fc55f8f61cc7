"""`livi serve`: the search service (FastAPI + uvicorn), an entry point beside the CLI.

- ``app``: the HTTP API and the web page (``static/index.html``), security (bearer token, loopback
  without one, upload limits, no request path reaching the filesystem);
- ``state``: the loaded index and its swap when a new one is published (``IndexWatcher``);
- ``queries``: audio queries in a pool bounded by the thread budget (503 when full);
- ``reports``: evaluation reports and the metrics of every evaluated run.
"""
