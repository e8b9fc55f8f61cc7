"""Security checks: safe deserialisation only, no secrets in the repository, nothing read outside a
catalogue root, and no index or model from another configuration used silently."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from reliability_corpus import REPO, config_for

from livi_tasks.core.store import ArtifactStore
from livi_tasks.stages.catalogue import ingest_catalogue

CODE_FOLDERS = ("livi_tasks", "plugins", "dags", "scripts", "benchmarks")
# Well-known placeholders that docker-compose.yaml may carry, under its "local development only" note.
LOCAL_DEV_VALUES = {"airflow", "admin", "admin:admin", "local-dev-only-change-me", ""}
SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{40,})\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "OpenAI/Anthropic key": re.compile(r"\bsk-(?:ant-)?[A-Za-z0-9_-]{32,}"),
    "Hugging Face token": re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"),
    "credentials in a URL": re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s:/@'\"]+:([^\s@/'\"$]+)@"),
}
ASSIGNED_SECRET = re.compile(
    r"(?i)\b[\w-]*(?:password|passwd|secret|token|api_key|apikey)[\w-]*\s*[:=]\s*['\"]?([^\s'\"#,}]+)"
)


def compose_credentials(text: str) -> list[tuple[int, str, str]]:
    """(line number, line, value) of each credential-looking setting of a compose file, comments skipped."""
    return [
        (number, line.strip(), match.group(1))
        for number, line in enumerate(text.splitlines(), 1)
        if not line.lstrip().startswith("#")
        for match in ASSIGNED_SECRET.finditer(line)
    ]


def python_files() -> list[Path]:
    return sorted(path for folder in CODE_FOLDERS if (REPO / folder).is_dir() for path in (REPO / folder).rglob("*.py"))


def repository_files() -> list[Path]:
    """Tracked files plus untracked ones git would pick up: everything that could be committed."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    )
    files = [REPO / name for name in listing.stdout.decode().split("\0") if name]
    return [path for path in files if path.is_file() and path.stat().st_size < 2_000_000]


def calls(tree: ast.AST, module: str, function: str):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == function:
            if isinstance(node.func.value, ast.Name) and node.func.value.id == module:
                yield node


def keyword(call: ast.Call, name: str):
    return next((kw.value for kw in call.keywords if kw.arg == name), None)


def test_every_torch_load_is_weights_only():
    unsafe, count = [], 0
    for path in python_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        for call in calls(tree, "torch", "load"):
            count += 1
            value = keyword(call, "weights_only")
            if not (isinstance(value, ast.Constant) and value.value is True):
                unsafe.append(f"{path.relative_to(REPO)}:{call.lineno}")
    assert count >= 4, "expected the project's torch.load calls to be found"
    assert unsafe == [], f"torch.load without weights_only=True: {unsafe}"


def test_no_pickle_deserialisation():
    found = []
    for path in python_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            found += [
                f"{path.relative_to(REPO)}:{node.lineno} imports {name}"
                for name in names
                if name.split(".")[0] in {"pickle", "dill", "cloudpickle", "joblib", "shelve"}
            ]
        for call in calls(tree, "np", "load"):
            value = keyword(call, "allow_pickle")
            if isinstance(value, ast.Constant) and value.value is True:
                found.append(f"{path.relative_to(REPO)}:{call.lineno} np.load(allow_pickle=True)")
        found += [f"{path.relative_to(REPO)}:{c.lineno} pd.read_pickle" for c in calls(tree, "pd", "read_pickle")]
        found += [
            f"{path.relative_to(REPO)}:{c.lineno} yaml.{c.func.attr}"
            for name in ("load", "unsafe_load", "full_load")
            for c in calls(tree, "yaml", name)
        ]
    assert found == []


def test_no_secrets_in_the_repository():
    leaks = []
    for path in repository_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        name = str(path.relative_to(REPO))
        for label, pattern in SECRET_PATTERNS.items():
            for match in pattern.finditer(text):
                value = match.group(1) if pattern.groups else match.group(0)
                if not (label == "credentials in a URL" and (value in LOCAL_DEV_VALUES or value.startswith("$"))):
                    leaks.append(f"{name}: {label}")
        if path.name == "docker-compose.yaml":
            for number, line, value in compose_credentials(text):
                if value not in LOCAL_DEV_VALUES and not value.startswith("$"):
                    leaks.append(f"{name}:{number}: {line!r} is not a marked local-dev placeholder")
    assert leaks == []


def test_docker_compose_marks_its_credentials_local_dev_only():
    text = (REPO / "docker-compose.yaml").read_text()
    credentials = compose_credentials(text)
    assert credentials, "expected the compose file's local-dev credentials to be found"
    note = next(number for number, line in enumerate(text.splitlines(), 1) if "LOCAL DEVELOPMENT ONLY" in line)
    assert note < credentials[0][0]


def test_tests_bind_servers_to_localhost():
    # A line may name every interface only to test that it is refused or to read a deployment's
    # settings, and then says so: "never bound".
    offenders = [
        f"{path.relative_to(REPO)}:{number}"
        for path in sorted((REPO / "tests").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "0.0.0.0" in line and "never bound" not in line and path.name != "test_security.py"
    ]
    assert offenders == []


def test_hostile_folder_layout_cannot_reach_outside(tmp_path, corpus):
    """Folder layout: a work folder that is a symlink out of the root, and a track symlinked out."""
    secret = tmp_path / "private"
    secret.mkdir()
    (secret / "song.wav").write_bytes((corpus.root / corpus.paths["rate_8k"]).read_bytes())
    root = tmp_path / "catalogue"
    (root / "work_a").mkdir(parents=True)
    (root / "work_a" / "v1.wav").write_bytes((corpus.root / corpus.paths["rate_8k"]).read_bytes())
    (root / "work_a" / "leak.wav").symlink_to(secret / "song.wav")
    (root / "work_b").symlink_to(secret, target_is_directory=True)
    (root / "work_c").mkdir()
    (root / "work_c" / "passwd.wav").symlink_to("/etc/passwd")
    cfg = config_for(tmp_path / "data")
    result = ingest_catalogue(cfg, root, "hostile")
    artifact = ArtifactStore(cfg.store.root).artifact("hostile", "ingest", "all", result["fingerprint"])
    assert artifact.read_table("tracks")["track_id"].tolist() == ["work_a/v1"]
    reasons = artifact.read_table("quarantine").set_index("track_id")["reason"].to_dict()
    assert reasons == {
        track: "path escapes the catalogue root" for track in ("work_a/leak", "work_b/song", "work_c/passwd")
    }


def test_index_from_another_model_is_refused(tmp_path):
    from livi_tasks.core.config import IndexConfig
    from livi_tasks.core.index import IndexMismatch, TrackIndex

    rows = pd.DataFrame(
        {"catalogue": "c", "track_id": [f"t{i}" for i in range(4)], "work_id": ["w0", "w0", "w1", "w1"]}
    )
    vectors = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    TrackIndex.build(vectors, rows, IndexConfig(kind="flat"), model_id="model-a").save(tmp_path / "index")
    assert TrackIndex.load(tmp_path / "index", expected_model_id="model-a", expected_dim=8).count == 4
    with pytest.raises(IndexMismatch, match=r"index built with embedding model 'model-a', expected 'model-b'"):
        TrackIndex.load(tmp_path / "index", expected_model_id="model-b")
    with pytest.raises(IndexMismatch, match="index has dim 8, expected 384"):
        TrackIndex.load(tmp_path / "index", expected_dim=384)


def test_encoder_model_for_another_whisper_is_refused(tmp_path):
    """A trained head only fits the Whisper checkpoint it was trained on; another one is named, not used."""
    from livi_tasks.models.registry import model_artifact
    from livi_tasks.stages.audio_embed import load_encoder

    cfg = config_for(tmp_path / "data")
    store = ArtifactStore(cfg.store.root)
    artifact = model_artifact(store, "foreignmodel0000")
    artifact.write_json("model", {"whisper": {"name": "tiny.en", "id": "0123456789abcdef"}})
    artifact.commit({})
    with pytest.raises(
        ValueError, match=r"encoder model foreignmodel0000 was trained on Whisper .* but 'tiny.en' resolves to \w+ here"
    ):
        load_encoder(cfg, store, "foreignmodel0000")
