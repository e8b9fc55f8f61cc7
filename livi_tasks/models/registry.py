"""Which encoder model is current: the promoted one, else the shipped default head. Torch-free.

Trained models live in the store under ``_models/encoder/all/<fingerprint>``; ``PROMOTED.json``
names the promoted one. When nothing is promoted, the head shipped inside this package for the
configured Whisper model (``models/shipped/<whisper>/``: ``head.pt``, ``head.json``, ``card.json``)
is checked against its card's hash and installed into the store as an ordinary model whose
fingerprint is ``shipped-<hash>``: lineage keys everything embedded with it by its content.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from livi_tasks.core.config import LiviConfig
from livi_tasks.core.runner import produce_artifact
from livi_tasks.core.store import Artifact, ArtifactMissing, ArtifactStore

MODELS_CATALOGUE = "_models"
MODEL_STAGE = "encoder"
MODEL_SHARD = "all"
PROMOTED_POINTER = f"{MODELS_CATALOGUE}/{MODEL_STAGE}/PROMOTED.json"
SHIPPED_DIR = Path(__file__).parent / "shipped"
HEAD_WEIGHTS_FILE = "head.pt"  # the head's state dict (torch.load(weights_only=True) reads it)
HEAD_CONFIG_FILE = "head.json"  # the LiviHead constructor arguments
SHIPPED_FILES = (HEAD_WEIGHTS_FILE, HEAD_CONFIG_FILE, "card.json")
REBUILD_HINT = (
    "reinstall livi-pipeline (git checkout livi_tasks/models/shipped) or rebuild it with `livi build-default-heads`"
)

log = logging.getLogger(__name__)


class NoEncoderModel(LookupError):
    """No encoder model was named, none is promoted and none is shipped for the Whisper model."""


class ShippedModelError(RuntimeError):
    """A shipped head is missing a file or does not match its card; the message names the file."""


def model_artifact(store: ArtifactStore, fingerprint: str) -> Artifact:
    return store.artifact(MODELS_CATALOGUE, MODEL_STAGE, MODEL_SHARD, fingerprint)


def promote_model(store: ArtifactStore, fingerprint: str) -> dict:
    """Make a trained model the default of the embed stage."""
    model_artifact(store, fingerprint).require()
    pointer = {"fingerprint": fingerprint}
    store.write_pointer(PROMOTED_POINTER, pointer)
    log.info("promoted encoder model %s", fingerprint)
    return pointer


def promoted_model(store: ArtifactStore) -> str | None:
    try:
        return store.read_pointer(PROMOTED_POINTER)["fingerprint"]
    except ArtifactMissing:
        return None


def head_digest(weights: bytes, config: bytes) -> str:
    """sha256 of a head's weights and config together: its identity."""
    return hashlib.sha256(weights + b"\0" + config).hexdigest()


def shipped_head(whisper_model: str, root: Path = SHIPPED_DIR) -> tuple[bytes, bytes, dict] | None:
    """(weights, config, card) of the head shipped for ``whisper_model``; None when none is shipped."""
    if "/" in whisper_model or whisper_model.endswith(".pt"):
        return None  # a checkpoint file of the user's: no head was trained on it
    folder = root / whisper_model
    if not folder.is_dir():
        return None
    contents = {}
    for name in SHIPPED_FILES:
        try:
            contents[name] = (folder / name).read_bytes()
        except FileNotFoundError:
            raise ShippedModelError(f"{folder / name}: missing; {REBUILD_HINT}") from None
    try:
        card = json.loads(contents["card.json"])
        expected = card["head_sha256"]
    except (ValueError, KeyError, TypeError):
        raise ShippedModelError(f"{folder / 'card.json'}: not a model card; {REBUILD_HINT}") from None
    found = head_digest(contents[HEAD_WEIGHTS_FILE], contents[HEAD_CONFIG_FILE])
    if found != expected:
        raise ShippedModelError(
            f"{folder / HEAD_WEIGHTS_FILE}: content hash {found[:12]} does not match its card ({expected[:12]}); "
            f"{REBUILD_HINT}"
        )
    return contents[HEAD_WEIGHTS_FILE], contents[HEAD_CONFIG_FILE], card


def shipped_fingerprint(card: dict) -> str:
    return f"shipped-{card['head_sha256'][:16]}"


def install_shipped_model(cfg: LiviConfig, store: ArtifactStore, root: Path = SHIPPED_DIR) -> str | None:
    """Put the shipped head of the configured Whisper model into the store; its fingerprint, or None."""
    whisper_model = cfg.transcribe.whisper_model
    shipped = shipped_head(whisper_model, root)
    if shipped is None:
        return None
    weights, config, card = shipped
    fingerprint = shipped_fingerprint(card)
    produce_artifact(model_artifact(store, fingerprint), lambda target: _install(cfg, card, weights, config, target))
    return fingerprint


def _install(cfg: LiviConfig, card: dict, weights: bytes, config: bytes, output: Artifact) -> dict:
    from livi_tasks.models.identity import whisper_identity  # resolves (converts once) the checkpoint

    whisper_model = cfg.transcribe.whisper_model
    fingerprint = output.key.fingerprint
    whisper = whisper_identity(whisper_model, cfg.models_dir)
    if whisper["id"] != card["whisper"]["id"]:
        # The checkpoint is converted here from the same pinned package; a different file hash
        # means a different conversion of the same weights, which the head still fits.
        log.warning(
            "shipped head %s was trained on Whisper %s; %r resolves to %s here",
            fingerprint,
            card["whisper"],
            whisper_model,
            whisper["id"],
        )
    output.write_bytes(HEAD_WEIGHTS_FILE, weights)
    output.write_bytes(HEAD_CONFIG_FILE, config)
    output.write_json(
        "model",
        {
            "fingerprint": fingerprint,
            "shipped": True,
            "encoder": card["encoder_settings"],
            "text_model": card["text_model"],
            "whisper": whisper,
            "card": card,
        },
    )
    log.info("installed the shipped %s head as encoder model %s", whisper_model, fingerprint)
    return {"fingerprint": fingerprint, "shipped": True, "head_sha256": card["head_sha256"]}


def current_model(cfg: LiviConfig, store: ArtifactStore, model: str | None = None, required: bool = True) -> str | None:
    """The given fingerprint, else the promoted one, else the shipped head's (installed on first use)."""
    fingerprint = model or promoted_model(store) or install_shipped_model(cfg, store)
    if fingerprint is None and required:
        raise NoEncoderModel(
            "no encoder model: none given, none promoted and no head is shipped "
            f"for Whisper {cfg.transcribe.whisper_model!r}: "
            "run `livi train-encoder` (it promotes the result) or pass --model"
        )
    return fingerprint
