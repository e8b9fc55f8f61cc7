"""The current encoder model: promoted first, else the shipped default head, checked against its card."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from livi_tasks.core.config import load_config
from livi_tasks.core.store import ArtifactStore
from livi_tasks.models.registry import (
    SHIPPED_DIR,
    NoEncoderModel,
    ShippedModelError,
    current_model,
    head_digest,
    install_shipped_model,
    model_artifact,
    promote_model,
    shipped_head,
)

SHIPPED = ("base", "tiny.en")
MAX_SHIPPED_BYTES = 20_000_000  # the "all weights together <= 20 MB"


@pytest.mark.parametrize("whisper", SHIPPED)
def test_shipped_head_matches_its_card(whisper):
    weights, config, card = shipped_head(whisper)
    assert head_digest(weights, config) == card["head_sha256"]
    assert card["whisper"]["name"] == whisper and card["text_model"]["dim"] == 384
    for field in ("data", "training", "code_commit", "command", "teacher", "evaluation"):
        assert card[field], field
    assert card["data"]["examples"] > 0 and card["training"]["seconds"] > 0 and card["training"]["machine"]["cpus"]
    losses, seed = card["training"]["seed_selection"]["best_val_loss_by_seed"], card["training"]["seed"]
    if isinstance(seed, list):  # an ensemble of every seed tried
        assert sorted(map(str, seed)) == sorted(losses) and json.loads(config)["members"] == len(seed)
    else:
        assert losses[str(seed)] == min(losses.values())  # chosen by validation loss alone
    for family in ("randomised", "broad", "foreign", "foreign2", "demo"):  # every evaluation family, scored
        scores = card["evaluation"][family]
        low, high = scores["livi_audio_ci95"]
        assert low <= scores["methods"]["livi_audio"] <= high and scores["vocal_sung_kept"] >= 0.97


def test_shipped_heads_are_small():
    assert sum(path.stat().st_size for path in SHIPPED_DIR.rglob("*") if path.is_file()) <= MAX_SHIPPED_BYTES


def test_the_shipped_head_loads_and_embeds(cfg):
    import numpy as np

    from livi_tasks.stages.audio_embed import embed_clips, load_encoder

    cfg = cfg.model_copy(update={"transcribe": cfg.transcribe.model_copy(update={"whisper_model": "tiny.en"})})
    store = ArtifactStore(cfg.store.root)
    loaded = load_encoder(cfg, store)
    assert loaded.info["shipped"] and loaded.info["fingerprint"].startswith("shipped-")
    vectors = embed_clips(loaded, np.zeros((1, 16_000 * 30), np.float16))
    assert vectors.shape == (1, 384) and abs(float(np.linalg.norm(vectors[0])) - 1) < 1e-4


def _copy_shipped(tmp_path, whisper="tiny.en"):
    root = tmp_path / "shipped"
    shutil.copytree(SHIPPED_DIR / whisper, root / whisper)
    return root


def test_current_model_prefers_the_promoted_one(cfg, tmp_path):
    cfg = cfg.model_copy(update={"transcribe": cfg.transcribe.model_copy(update={"whisper_model": "tiny.en"})})
    store = ArtifactStore(cfg.store.root)
    shipped = current_model(cfg, store)
    assert shipped.startswith("shipped-") and model_artifact(store, shipped).is_complete()
    assert install_shipped_model(cfg, store) == shipped  # installed once, keyed by content
    promote_model(store, shipped)
    assert current_model(cfg, store) == shipped
    assert current_model(cfg, store, "given") == "given"


def test_no_model_for_an_unshipped_whisper_is_a_clear_error(tmp_path):
    cfg = load_config(
        overrides={
            "store": {"root": str(tmp_path / "data")},
            "transcribe": {"whisper_model": str(tmp_path / "custom.pt")},
        },
        environ={},
    )
    with pytest.raises(NoEncoderModel, match="no head is shipped"):
        current_model(cfg, ArtifactStore(cfg.store.root))
    assert current_model(cfg, ArtifactStore(cfg.store.root), required=False) is None


def test_corrupted_shipped_head_names_the_file_and_the_fix(tmp_path):
    root = _copy_shipped(tmp_path)
    weights = root / "tiny.en" / "head.pt"
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ShippedModelError) as error:
        shipped_head("tiny.en", root)
    message = str(error.value)
    assert "\n" not in message and str(weights) in message and "livi build-default-heads" in message


def test_missing_shipped_file_names_it(tmp_path):
    root = _copy_shipped(tmp_path)
    (root / "tiny.en" / "head.json").unlink()
    with pytest.raises(ShippedModelError, match=r"head\.json: missing"):
        shipped_head("tiny.en", root)
    card = root / "tiny.en" / "card.json"
    (root / "tiny.en" / "head.json").write_bytes((SHIPPED_DIR / "tiny.en" / "head.json").read_bytes())
    card.write_text(json.dumps({"no": "hash"}))
    with pytest.raises(ShippedModelError, match=r"card\.json: not a model card"):
        shipped_head("tiny.en", root)


def test_cli_prints_a_corrupted_shipped_head_as_one_line(tmp_path, monkeypatch):
    # The real package's files are left alone: the CLI runs on a copy of the package whose head is damaged.
    import livi_tasks

    package = tmp_path / "pkg" / "livi_tasks"
    shutil.copytree(livi_tasks.__path__[0], package, ignore=shutil.ignore_patterns("__pycache__", "base"))
    head = package / "models" / "shipped" / "tiny.en" / "head.pt"
    head.write_bytes(b"not a head")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from livi_tasks.cli import main; main()",
            "--data-root",
            str(tmp_path / "data"),
            "--set",
            "transcribe.whisper_model=tiny.en",
            "build-index",
            "--catalogue",
            "none",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(package.parent), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("error: ")
        and "head.pt" in lines[0]
        and "livi build-default-heads" in lines[0]
    )
