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
