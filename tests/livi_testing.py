"""Helpers shared by test modules (a plain module: ``conftest`` names clash between folders)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from livi_tasks.core.config import LiviConfig


def write_tone(
    path: Path,
    seconds: float = 2.0,
    rate: int = 16_000,
    channels: int = 1,
    amplitude: float = 0.3,
    subtype: str | None = None,
) -> Path:
    """A short chord (not silence) as a real audio file."""
    t = np.arange(int(seconds * rate)) / rate
    mono = amplitude * (np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 330 * t)) / 1.5
    data = np.repeat(mono[:, None], channels, axis=1) if channels > 1 else mono
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data.astype(np.float32), rate, subtype=subtype)
    return path


def run_stages(cfg: LiviConfig, catalogue: str, *stages: str) -> dict[str, list[dict]]:
    """Run per-shard stages in order over every shard (skipping what is done)."""
    from livi_tasks.pipeline import run_stage_over_shards

    return {stage: run_stage_over_shards(cfg, stage, catalogue) for stage in stages}


# Stages whose artifacts a copy of the demo store for the service leaves behind (not read by it).
UNSERVED_STAGES = {"vocal", "segments", "transcribe", "text", "features", "baseline", "train"}


def copy_served_store(cfg: LiviConfig, target: Path) -> LiviConfig:
    """A copy of the indexed demo store at ``target`` (tests may take tracks down in it) and its config."""
    import shutil

    from livi_tasks.core.config import StoreConfig

    root = target
    shutil.copytree(
        cfg.store.root,
        root,
        ignore=lambda folder, names: [n for n in names if n in UNSERVED_STAGES or n.endswith(".lock")],
    )
    return cfg.model_copy(update={"store": StoreConfig(root=str(root))})
