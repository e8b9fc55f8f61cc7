"""Start and stop real Airflow components for tests, and talk to them over the REST API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import requests
from airflow_testing import REPO, VENV_BIN

TERMINAL_STATES = {"success", "failed"}
BACKFILL_ATTEMPTS = 12
# Longer than any lock wait (the SQLite busy timeout is 60 s) or slow loop seen on 2 cores.
SCHEDULER_SILENCE_S = 180
# Routine lines that would push what matters out of a failure's tail: HTTP access lines (the test
# polls every few seconds) and the dag-processor's rescan of the DAGs folder.
ROUTINE_LOG_LINES = ("[http.access]", "Refreshing bundle", "Searching for files in", "files for bundle")


class AirflowProcesses:
    """Airflow components started by a test, each in its own process group, all stopped on exit."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env = env
        self.log_dir = log_dir
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.base_url = f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}"
        self.token: str | None = None

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        log = open(self.log_dir / f"{name}.log", "w")
        process = subprocess.Popen(
            [str(VENV_BIN / "airflow"), *args],
            env=env or self.env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append((name, process))

    def stop(self) -> None:
        for _, process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for _, process in self.processes:
            try:
                process.wait(timeout=max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        # Children that outlived their group leader (task supervisors) are in the same groups.
        for _, process in self.processes:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def logs(self, lines: int = 25) -> str:
        """The last lines of each component, the scheduler's last: standalone interleaves them
        ("scheduler  | ..."), and chatty components would otherwise hide what the scheduler last said."""
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            by_component: dict[str, list[str]] = {}
            for line in path.read_text(errors="replace").splitlines():
                if any(routine in line for routine in ROUTINE_LOG_LINES):
                    continue
                component = line.split(" | ", 1)[0].strip() if " | " in line[:20] else path.stem
                by_component.setdefault(component, []).append(line[:400])
            for component, component_lines in sorted(by_component.items(), key=lambda item: item[0] == "scheduler"):
                parts.append(f"--- {path.name}: {component}\n" + "\n".join(component_lines[-lines:]))
        return "\n".join(parts)

    def check_alive(self) -> None:
        for name, process in self.processes:
            if process.poll() is not None and name != "standalone-setup":
                raise AssertionError(f"airflow {name} exited with {process.returncode}:\n{self.logs()}")
        self.check_scheduler_heartbeat()

    def check_scheduler_heartbeat(self) -> None:
        """`airflow standalone` outlives a scheduler that died (it only relays its components' output),
        so a dead or stuck scheduler shows as runs queued for ever; say so at once, with its log."""
        if self.token is None:
            return
        beat = self.request("GET", "/monitor/health").json()["scheduler"]["latest_scheduler_heartbeat"]
        if beat is None:
            return
        silence = (datetime.now(timezone.utc) - datetime.fromisoformat(beat)).total_seconds()
        if silence > SCHEDULER_SILENCE_S:
            raise AssertionError(f"the scheduler's last heartbeat was {silence:.0f} s ago:\n{self.logs()}")

    def wait_for_api(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if requests.get(f"{self.base_url}/api/v2/version", timeout=5).status_code in (200, 401, 403):
                    return
            except requests.ConnectionError:
                pass
            time.sleep(2)
        raise AssertionError(f"api-server not up after {timeout} s:\n{self.logs()}")

    def admin_password(self) -> str:
        """The password `airflow standalone` generated for user admin (written at its first start)."""
        generated = Path(self.env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
        return json.loads(generated.read_text())["admin"]

    def browser_page(self, browser, password: str):
        """A page of ``browser`` (Playwright) signed in as admin on the UI's start page."""
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(self.base_url)
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/auth/login" not in url)
        return page

    def login(self, username: str, password: str) -> None:
        response = requests.post(
            f"{self.base_url}/auth/token", json={"username": username, "password": password}, timeout=30
        )
        response.raise_for_status()
        self.token = response.json()["access_token"]

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        # Longer than SQLite's 60 s busy timeout: a request waiting for the write lock is not lost.
        return requests.request(method, f"{self.base_url}/api/v2{path}", headers=headers, timeout=120, **kwargs)

    def wait_for_dag(self, dag_id: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if self.request("GET", f"/dags/{dag_id}").status_code == 200:
                return
            time.sleep(3)
        raise AssertionError(f"{dag_id} not parsed after {timeout} s:\n{self.logs()}")

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()

    def trigger(self, dag_id: str, conf: dict) -> str:
        response = self.request("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        response.raise_for_status()
        return response.json()["dag_run_id"]

    def backfill(self, dag_id: str, from_date: str, to_date: str) -> dict:
        """POST /backfills: what `airflow backfill create` does, through the api-server (a CLI
        process writing beside the running components can hit SQLite's single-writer lock)."""
        payload = {
            "dag_id": dag_id,
            "from_date": f"{from_date}T00:00:00Z",
            "to_date": f"{to_date}T00:00:00Z",
            "max_active_runs": 2,
        }
        # On SQLite the api-server answers 503 "Database is locked" while the scheduler holds the
        # single write lock; the request is safe to repeat, as a client of a busy server would.
        for attempt in range(1, BACKFILL_ATTEMPTS + 1):
            response = self.request("POST", "/backfills", json=payload)
            if response.status_code != 503 or attempt == BACKFILL_ATTEMPTS:
                break
            time.sleep(5)
        response.raise_for_status()
        return response.json()

    def dag_runs(self, dag_id: str) -> list[dict]:
        response = self.request("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})
        response.raise_for_status()
        return response.json()["dag_runs"]

    def wait_for_runs(self, dag_id: str, count: int, timeout: float, run_type: str | None = None) -> list[dict]:
        """Wait until ``count`` runs of ``dag_id`` (of ``run_type``, if given) exist and all have finished."""
        deadline = time.monotonic() + timeout
        runs: list[dict] = []
        while time.monotonic() < deadline:
            self.check_alive()
            runs = [run for run in self.dag_runs(dag_id) if run_type is None or run["run_type"] == run_type]
            if len(runs) >= count and all(run["state"] in TERMINAL_STATES for run in runs):
                return runs
            time.sleep(5)
        raise AssertionError(f"{dag_id} runs not finished after {timeout} s: {runs}\n{self.logs()}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        response = self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})
        response.raise_for_status()
        return response.json()["task_instances"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1):
        response = self.request(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
            params={"map_index": map_index, "deserialize": True},
        )
        response.raise_for_status()
        value = response.json()["value"]
        return json.loads(value) if isinstance(value, str) else value
