"""The chroma 2D-FTM baseline on real demo audio: one unit fingerprint per track, key invariance, reruns skip."""

from __future__ import annotations

import numpy as np
import pandas as pd

from livi_tasks.core.audio import SAMPLE_RATE, load_audio
from livi_tasks.core.store import ArtifactStore
from livi_tasks.stages.baseline import chroma_2dftm, embed_baseline
from livi_tasks.stages.lineage import artifact_for, shard_ids


def test_every_track_of_a_shard_gets_a_unit_fingerprint_and_a_rerun_skips(demo_cfg, demo_ingested):
    store = ArtifactStore(demo_cfg.store.root)
    shard = shard_ids(store, demo_ingested)[0]
    summary = embed_baseline(demo_cfg, demo_ingested, shard, store=store)
    output = artifact_for(demo_cfg, store, demo_ingested, "baseline", shard)
    fingerprints = output.read_array("track_embeddings")
    tracks = output.read_table("tracks")
    assert summary["tracks"] == len(tracks) == len(fingerprints) > 0 and summary["failed"] == 0
    assert fingerprints.shape[1] == 12 * demo_cfg.baseline.patch_beats
    assert np.allclose(np.linalg.norm(fingerprints, axis=1), 1.0, atol=1e-5)
    assert embed_baseline(demo_cfg, demo_ingested, shard, store=store)["skipped"]


def test_fingerprint_ignores_a_transposition(demo_cfg, demo_catalogue):
    """The 2D FFT magnitude is invariant to a circular shift along chroma: a key change."""
    import librosa

    manifest = pd.read_csv(demo_catalogue)
    first = demo_catalogue.parent / manifest.path[0]
    other = demo_catalogue.parent / manifest.path[manifest.work_id != manifest.work_id[0]].iloc[0]
    audio = load_audio(str(first), max_duration_s=30)
    shifted = librosa.effects.pitch_shift(audio, sr=SAMPLE_RATE, n_steps=3)
    original = chroma_2dftm(audio, demo_cfg.baseline)
    transposed = chroma_2dftm(shifted, demo_cfg.baseline)
    unrelated = chroma_2dftm(load_audio(str(other), max_duration_s=30), demo_cfg.baseline)
    assert float(original @ transposed) > float(original @ unrelated)
