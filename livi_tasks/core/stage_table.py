"""The per-shard stages in one table: lineage, the in-process pipeline, the `livi` CLI and the
Airflow operators all read it; and the catalogue-level steps the DAGs run over whole catalogues.

A stage is named once (its artifact folder), reads its parent's artifacts, is keyed by one config
section, and runs through one entry function with the per-shard signature
``(cfg, catalogue, shard, store=None, **kwargs) -> summary dict``. Adding a stage means writing
its module and adding one row here (plus, for a CLI command with options of its own, a command).

This module imports nothing heavy: the entry functions are imported when a stage runs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Stage:
    name: str  # artifact folder and lineage name
    parent: str  # the stage whose artifacts it reads (``lineage.parent_stage`` may redirect embed)
    section: str  # the config section whose fingerprint keys its artifacts
    entry: str  # "module:function"
    command: str | None  # its `livi` subcommand when the generic one fits (catalogue, --shard)
    help: str

    def function(self) -> Callable[..., dict]:
        """The entry function, imported now (heavy modules load only when a stage is used)."""
        return import_entry(self.entry)


def import_entry(entry: str) -> Callable[..., dict]:
    """The function a ``"module:function"`` entry names, imported now."""
    module, name = entry.split(":")
    return getattr(importlib.import_module(module), name)


SHARD_STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage(
            "vocal",
            "ingest",
            "vocal",
            "livi_tasks.stages.vocal:detect_vocals",
            "detect-vocals",
            "Score 3 s windows for vocals (vocal.method: the Whisper-encoder probe, or Musicnn) and exclude tracks "
            "with too little singing (vocal.track_rule).",
        ),
        Stage(
            "segments",
            "vocal",
            "segments",
            "livi_tasks.stages.segments:extract_vocal_segments",
            "segment",
            "Cut 30 s segments around the vocal regions (padded, last piece zero-padded).",
        ),
        Stage(
            "transcribe",
            "segments",
            "transcribe",
            "livi_tasks.stages.transcribe:transcribe_segments",
            "transcribe",
            "Transcribe each vocal segment with Whisper, keeping only credible lyrics.",
        ),
        Stage(
            "text",
            "transcribe",
            "text",
            "livi_tasks.stages.text_embed:embed_lyrics",
            "embed-lyrics",
            "Embed the kept transcripts into the fixed text space (per segment and per track).",
        ),
        Stage(
            "features",
            "segments",
            "segments",
            "livi_tasks.stages.features:cache_encoder_features",
            "cache-features",
            "Cache the frozen Whisper encoder's frame states of every segment (float16).",
        ),
        Stage(
            "embed",
            "segments",
            "encoder",
            "livi_tasks.stages.audio_embed:embed_audio",
            None,  # `livi embed-audio` has a --model option of its own
            "ASR-free track embeddings (one encoder pass per 30 s with the encoder probe).",
        ),
        Stage(
            "baseline",
            "ingest",
            "baseline",
            "livi_tasks.stages.baseline:embed_baseline",
            "baseline",
            "Compute the audio-only 2D-FTM chroma baseline fingerprints.",
        ),
    )
}


def shard_stage(name: str) -> Stage:
    """The table's row for ``name``; an unknown name is a one-line error listing the known ones."""
    try:
        return SHARD_STAGES[name]
    except KeyError:
        raise ValueError(f"unknown stage {name!r}: one of {', '.join(SHARD_STAGES)}") from None


# Steps over whole catalogues, ``(cfg, ..., store=None) -> summary``, that DAGs run by name.
# Ingest and training have operators of their own (arrivals, MLflow tracking).
CATALOGUE_STEPS: dict[str, str] = {
    "index": "livi_tasks.stages.retrieval:build_catalogue_index",
    "evaluate": "livi_tasks.stages.evaluate:evaluate_catalogue",
}


def catalogue_step(name: str) -> str:
    """The entry of catalogue-level step ``name``; an unknown name is a one-line error listing the known ones."""
    try:
        return CATALOGUE_STEPS[name]
    except KeyError:
        raise ValueError(f"unknown catalogue step {name!r}: one of {', '.join(CATALOGUE_STEPS)}") from None


def stages_down_to(name: str) -> list[str]:
    """The shard stages from the ingested tracks down to ``name``, in running order (by the table's parents)."""
    chain = []
    while name != "ingest":
        chain.append(name)
        name = shard_stage(name).parent
    return chain[::-1]
