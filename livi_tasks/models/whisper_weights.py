"""Load a Whisper checkpoint (``identity`` says which file a name or path means) as a frozen
openai-whisper model, once per process."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import whisper
from whisper.model import ModelDimensions, Whisper

from livi_tasks.models.identity import openai_cached_file, resolve_whisper_checkpoint

log = logging.getLogger(__name__)


def load_whisper(name_or_path: str, models_dir: str | Path, device: str = "cpu") -> Whisper:
    """openai-whisper model in eval mode, float32, with its alignment heads set."""
    path = resolve_whisper_checkpoint(name_or_path, models_dir)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = Whisper(ModelDimensions(**checkpoint["dims"]))
    model.load_state_dict(checkpoint["model_state_dict"])
    if "alignment_heads" in checkpoint:
        heads = checkpoint["alignment_heads"].to(torch.bool)
        model.register_buffer("alignment_heads", heads.to_sparse(), persistent=False)
    elif name_or_path in whisper._ALIGNMENT_HEADS and path == openai_cached_file(name_or_path):
        model.set_alignment_heads(whisper._ALIGNMENT_HEADS[name_or_path])
    return model.float().to(device).eval()


_LOADED: dict[tuple[str, str], Whisper] = {}


def cached_whisper(name_or_path: str, models_dir: str | Path, device: str = "cpu") -> Whisper:
    """One loaded, frozen model per (checkpoint file, device) for the life of the process.

    Transcription, the feature cache and the ASR-free encoder all read it, so an Airflow worker
    or a `livi run` that goes through several stages holds each checkpoint once.
    """
    path = str(resolve_whisper_checkpoint(name_or_path, models_dir))
    if (path, device) not in _LOADED:
        log.info("loading Whisper %s from %s on %s", name_or_path, path, device)
        model = load_whisper(path, models_dir, device=device)
        model.requires_grad_(False)
        _LOADED[path, device] = model
    return _LOADED[path, device]
