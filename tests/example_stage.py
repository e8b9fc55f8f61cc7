"""A stage written the way a new one is: this module, plus one row in ``livi_tasks.core.stage_table``
(``tests/core/test_stage_table.py`` adds the row for the test's duration)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from livi_tasks.core.audio import load_audio
from livi_tasks.core.config import LiviConfig
from livi_tasks.core.runner import shard_tracks
from livi_tasks.core.store import Artifact, ArtifactStore
from livi_tasks.stages.lineage import run_shard_stage

STAGE = "loudness"


def measure_loudness(cfg: LiviConfig, catalogue: str, shard: str, store: ArtifactStore | None = None) -> dict:
    """RMS level of every ingested track of the shard, in dB full scale."""

    def work(ingest: Artifact, output: Artifact) -> dict:
        tracks = shard_tracks(ingest, shard)
        levels = [float(20 * np.log10(np.sqrt(np.mean(load_audio(uri) ** 2)) + 1e-12)) for uri in tracks.uri]
        output.write_table("loudness", pd.DataFrame({"track_id": tracks.track_id, "rms_db": levels}))
        return {"tracks": len(tracks)}

    return run_shard_stage(cfg, store, catalogue, STAGE, shard, work)
