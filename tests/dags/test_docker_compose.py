"""docker-compose.yaml and Dockerfile describe the official Airflow 3 Celery layout (Docker cannot run here)."""

from __future__ import annotations

import yaml
from airflow_testing import REPO

AIRFLOW_SERVICES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
}


def load_compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def test_services_of_the_official_layout_plus_mlflow():
    services = load_compose()["services"]
    assert AIRFLOW_SERVICES | {"postgres", "redis", "mlflow"} <= set(services)


def test_airflow_services_share_the_project_image_and_celery_settings():
    services = load_compose()["services"]
    for name in AIRFLOW_SERVICES:
        service = services[name]
        env = service["environment"]
        assert service["build"] in (".", {"context": "."}) or service["build"]["context"] == ".", name
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false", name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://"), name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql"), name
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000", name
    assert services["airflow-init"]["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"


def test_gpu_worker_is_optional_and_serves_the_gpu_queue():
    services = load_compose()["services"]
    gpu = services["airflow-worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert "--queues gpu" in gpu["command"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    # Everything else starts without a profile, except the optional debugging/monitoring services.
    assert {name for name, service in services.items() if "profiles" in service} == {
        "airflow-worker-gpu",
        "airflow-cli",
        "flower",
        "milvus",
    }


def test_ports_bound_to_localhost_and_credentials_marked_local_only():
    text = (REPO / "docker-compose.yaml").read_text()
    services = load_compose()["services"]
    for service in services.values():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), port
    assert "LOCAL DEVELOPMENT ONLY" in text
    assert text.count("local-dev only") >= 2


def test_dockerfile_builds_on_airflow_3_with_pinned_cpu_torch_first():
    lines = (REPO / "Dockerfile").read_text().splitlines()
    assert (
        lines[[i for i, line in enumerate(lines) if line.startswith("FROM")][0]]
        == "FROM apache/airflow:3.3.2-python3.11"
    )
    torch_line = next(i for i, line in enumerate(lines) if "torch==2.13.0" in line)
    requirements_line = next(i for i, line in enumerate(lines) if "-r /opt/livi/requirements.txt" in line)
    assert torch_line < requirements_line
    assert "whl/cpu" in "\n".join(lines)


def test_search_service_shares_the_artifact_volume_with_a_healthcheck_and_a_token():
    services = load_compose()["services"]
    search = services["livi-search"]
    assert "livi-data:/opt/livi-data" in search["volumes"]
    assert search["environment"]["LIVI__STORE__ROOT"] == services["airflow-worker"]["environment"]["LIVI__STORE__ROOT"]
    assert "/health" in " ".join(search["healthcheck"]["test"])
    assert search["command"][:2] == ["livi", "serve"] and "0.0.0.0" in search["command"]  # the container's: never bound
    # A non-loopback bind needs a token: the service gets one, the same as the workers' refresh task.
    assert (
        search["environment"]["LIVI__SERVE__TOKEN"] == services["airflow-worker"]["environment"]["LIVI__SERVE__TOKEN"]
    )
    assert services["airflow-apiserver"]["environment"]["LIVI_SEARCH_URL"].startswith("${LIVI_SEARCH_URL:-http")


def test_milvus_profile_is_what_the_milvus_backend_points_at():
    services = load_compose()["services"]
    assert services["milvus"]["profiles"] == ["milvus"]
    assert "19530" in services["airflow-worker"]["environment"]["LIVI__INDEX_BACKEND__MILVUS_URI"]
    assert services["livi-search"]["environment"]["LIVI__INDEX_BACKEND__NAME"] == "${LIVI_INDEX_BACKEND:-faiss}"
