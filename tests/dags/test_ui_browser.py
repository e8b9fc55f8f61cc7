"""The Airflow UI as a user meets it, in a real browser (Playwright driving Debian's chromium).

Airflow starts as `make airflow` starts it (`airflow standalone`, SQLite, 127.0.0.1). The test logs
in, finds the four DAGs, fills livi_pipeline's trigger form for a four-track catalogue, triggers it
(the form unpauses the DAG), waits for the run to succeed, reads its evaluation, checks that no
task of the successful run logged an ERROR line, and submits an invalid catalogue name to see what
the user is shown. Screenshots go to the test's folder, or to $LIVI_UI_SCREENSHOTS when set.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from airflow_services import AirflowProcesses
from airflow_testing import DAG_IDS, airflow_env, local_airflow, migrated_sqlite, small_catalogue  # noqa: F401  (fixtures)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def error_lines(logs: Path) -> list[str]:
    """Task log lines (Airflow writes JSON lines) at level error or critical."""
    found = []
    for log in sorted(logs.rglob("attempt=*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{") and json.loads(line).get("level") in ("error", "critical"):
                found.append(f"{log.relative_to(logs)}: {line[:300]}")
    return found


@pytest.mark.airflow
def test_trigger_form_run_and_invalid_value_in_the_browser(local_airflow, small_catalogue: Path, tmp_path: Path):
    playwright = pytest.importorskip("playwright.sync_api")
    assert Path(CHROMIUM).exists(), "chromium not installed: `make test` installs it (Debian package chromium)"
    shots = Path(os.environ.get("LIVI_UI_SCREENSHOTS", tmp_path / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)

    services = AirflowProcesses(local_airflow, tmp_path)
    services.start("standalone", "standalone")
    try:
        services.wait_for_api()
        password = services.admin_password()
        services.login("admin", password)
        for dag_id in DAG_IDS:
            services.wait_for_dag(dag_id)

        with playwright.sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = services.browser_page(browser, password)
            page.goto(f"{services.base_url}/dags")
            for dag_id in sorted(DAG_IDS):
                page.get_by_role("link", name=dag_id, exact=True).first.wait_for()
            page.screenshot(path=shots / "1-dags.png")

            def open_trigger_form():
                page.goto(f"{services.base_url}/dags/livi_pipeline")
                page.get_by_role("button", name="Trigger").first.click()
                dialog = page.get_by_role("dialog")
                dialog.locator("#element_catalogue_source").wait_for()
                return dialog

            dialog = open_trigger_form()
            assert "null" not in dialog.inner_text()
            assert dialog.get_by_label("Unpause livi_pipeline on trigger").is_checked()
            dialog.locator("#element_catalogue_source").fill(str(small_catalogue))
            dialog.locator("#element_catalogue_name").fill("small")
            page.screenshot(path=shots / "2-trigger-form.png")
            dialog.get_by_role("button", name="Trigger", exact=True).click()
            dialog.wait_for(state="hidden")

            (run,) = services.wait_for_runs("livi_pipeline", 1, timeout=900)
            assert run["state"] == "success", services.logs()
            assert run["conf"]["catalogue_source"] == str(small_catalogue)
            evaluation = services.xcom("livi_pipeline", run["dag_run_id"], "evaluate")
            assert 0 <= evaluation["methods"]["livi_audio"]["MAP"] <= 1
            assert Path(evaluation["report"]).is_file()
            page.goto(f"{services.base_url}/dags/livi_pipeline/runs/{run['dag_run_id']}")
            page.get_by_text("success").first.wait_for()
            page.screenshot(path=shots / "3-successful-run.png")
            assert error_lines(Path(local_airflow["AIRFLOW_HOME"]) / "logs" / "dag_id=livi_pipeline") == []

            dialog = open_trigger_form()
            dialog.locator("#element_catalogue_source").fill(str(small_catalogue))
            dialog.locator("#element_catalogue_name").fill("bad name!")
            dialog.get_by_role("button", name="Trigger", exact=True).click()
            refusal = dialog.get_by_text("Invalid input for param catalogue_name")
            refusal.wait_for()
            assert page.get_by_text("Failed to Trigger Dag").first.is_visible()
            refusal.scroll_into_view_if_needed()
            page.screenshot(path=shots / "4-invalid-value.png")
            assert len(services.dag_runs("livi_pipeline")) == 1
            browser.close()
    finally:
        services.stop()
