"""The search service where users look: the Airflow UI's "LIVI search" nav entry opens the
service's page (`livi serve`, a real process over the indexed demo catalogue), where a user finds a
demo track, uploads a demo file and sees another version of its work in the top 3 (Playwright
driving Debian's chromium, as the UI test does). Screenshots go to the test's folder, or to
$LIVI_UI_SCREENSHOTS when set."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import requests
from airflow_services import AirflowProcesses
from airflow_testing import REPO, airflow_env, free_port, local_airflow, migrated_sqlite  # noqa: F401  (fixtures)
from livi_testing import copy_served_store

from livi_tasks.service.app import wait_until_ready

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def start_service(cfg, port: int, log: Path) -> subprocess.Popen:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LIVI"))},
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
        "LIVI_TASK_THREADS": "1",
    }
    command = [sys.executable, "-m", "livi_tasks.cli", "--data-root", cfg.store.root, "serve", "--port", str(port)]
    return subprocess.Popen(
        command, env=env, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )


def a_track_with_a_version_near(url: str) -> tuple[str, str]:
    """A demo track whose stored embedding has another version of its work in its top 2 (the
    upload of its file then ranks the file itself first and that version within the top 3)."""
    found = requests.get(f"{url}/v1/tracks", params={"q": "-v", "limit": 50}, timeout=30).json()["tracks"]
    for track in found:
        versions = requests.get(f"{url}/v1/tracks/demo/{track['track_id']}/versions", params={"k": 2}, timeout=30)
        if any(v["work_id"] == track["work_id"] for v in versions.json()["versions"]):
            return track["track_id"], track["work_id"]
    raise AssertionError(f"no demo track has a version of its work in its top 2: {found}")


@pytest.mark.airflow
def test_from_the_airflow_nav_find_a_track_upload_a_file_see_a_version_in_the_top_3(
    local_airflow, demo_indexed, demo_catalogue, tmp_path
):
    playwright = pytest.importorskip("playwright.sync_api")
    assert Path(CHROMIUM).exists(), "chromium not installed: `make test` installs it (Debian package chromium)"
    shots = Path(os.environ.get("LIVI_UI_SCREENSHOTS", tmp_path / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    cfg = copy_served_store(demo_indexed["cfg"], tmp_path / "served-data")
    manifest = pd.read_csv(demo_catalogue)

    port = free_port()
    search_url = f"http://127.0.0.1:{port}"
    service_log = tmp_path / "livi-serve.log"
    service = start_service(cfg, port, service_log)
    services = AirflowProcesses({**local_airflow, "LIVI_SEARCH_URL": f"{search_url}/"}, tmp_path)
    try:
        services.start("standalone", "standalone")
        wait_until_ready(search_url, service, service_log)
        track_id, work_id = a_track_with_a_version_near(search_url)
        track_file = demo_catalogue.parent / manifest.set_index("track_id").loc[track_id, "path"]
        services.wait_for_api()
        with playwright.sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = services.browser_page(browser, services.admin_password())

            # The navigation entry the plugin adds, then the service's page in its frame.
            page.get_by_role("link", name="LIVI search").first.click()
            page.wait_for_url(lambda url: "/plugin/livi-search" in url)
            frame = page.frame_locator("iframe[title='LIVI search']")
            frame.get_by_text("demo:").first.wait_for()
            page.screenshot(path=shots / "1-nav-entry.png")

            frame.get_by_label("Find a track").fill(track_id)
            frame.get_by_role("button", name="Find", exact=True).click()
            found = frame.locator(f"#found tr.found[data-track-id='{track_id}']")
            found.get_by_role("button", name="versions").click()
            frame.locator("#results tr.version").first.wait_for()
            listed = frame.locator("#results tr.version").evaluate_all("rows => rows.map(r => r.dataset.trackId)")
            assert track_id not in listed
            page.screenshot(path=shots / "2-versions-of-a-track.png")

            frame.get_by_label("Audio file").set_input_files(str(track_file))
            frame.get_by_role("button", name="Find its versions").click()
            frame.get_by_text(f"Versions of {track_file.name}").wait_for(timeout=180_000)
            rows = frame.locator("#results tr.version").evaluate_all(
                "rows => rows.map(r => [r.dataset.trackId, r.dataset.workId])"
            )
            page.screenshot(path=shots / "3-versions-of-an-upload.png")
            top3 = rows[:3]
            assert any(work == work_id and track != track_id for track, work in top3), (track_id, work_id, rows)
            assert frame.locator("#results audio").count() == len(rows)  # a player per version
            browser.close()
    finally:
        services.stop()
        if service.poll() is None:
            os.killpg(service.pid, signal.SIGTERM)
            service.wait(timeout=60)


def test_refresh_search_asks_the_service_to_swap_in_the_published_index(demo_indexed, tmp_path, monkeypatch):
    """livi_index's refresh_search task against a real service (no encoder: serve.audio_queries off)."""
    from pydantic import SecretStr

    from livi_airflow.search import refresh_search
    from livi_tasks.service.app import BackgroundServer, create_app
    from livi_tasks.stages.retrieval import build_catalogue_index

    cfg = copy_served_store(demo_indexed["cfg"], tmp_path / "served-data")
    token = "refresh-test-token-0123456789"
    serve = cfg.serve.model_copy(update={"token": SecretStr(token), "audio_queries": False, "refresh_s": 0})
    app = create_app(cfg.model_copy(update={"serve": serve}))
    with BackgroundServer(app) as url:
        deadline = time.monotonic() + 120
        while requests.get(f"{url}/ready", timeout=5).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        before = requests.get(f"{url}/ready", timeout=5).json()["index"]
        published = build_catalogue_index(
            cfg.model_copy(update={"index": cfg.index.model_copy(update={"kind": "hnsw"})}), ["demo"]
        )
        assert published["fingerprint"] != before
        monkeypatch.setenv("LIVI_SEARCH_API_URL", url)
        monkeypatch.setenv("LIVI__SERVE__TOKEN", token)
        answer = refresh_search.function(published)
        assert answer["outcome"] == "index" and answer["index"] == published["fingerprint"]
        assert requests.get(f"{url}/ready", timeout=5).json()["index"] == published["fingerprint"]
        monkeypatch.delenv("LIVI_SEARCH_API_URL")
        from airflow.sdk.exceptions import AirflowSkipException

        with pytest.raises(AirflowSkipException, match="LIVI_SEARCH_API_URL"):
            refresh_search.function(published)
