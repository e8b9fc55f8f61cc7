"""Features -> training -> ASR-free embeddings on the real demo catalogue (tiny.en for speed).

The text stage's output is stood in for by one fixed random unit vector per work (the tests
check the pipeline's mechanics; retrieval quality is the benchmark's job).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from livi_tasks.core.config import load_config
from livi_tasks.core.store import ArtifactStore
from livi_tasks.models.registry import promote_model, promoted_model
from livi_tasks.stages.audio_embed import NoEncoderModel, embed_audio, embed_file, file_segments
from livi_tasks.stages.catalogue import ingest_catalogue
from livi_tasks.stages.features import cache_encoder_features
from livi_tasks.stages.lineage import artifact_for, shard_ids
from livi_tasks.stages.segments import extract_vocal_segments
from livi_tasks.stages.train_encoder import train
from livi_tasks.stages.vocal import detect_vocals

TEXT_DIM = 24


@pytest.fixture(scope="module")
def pipeline(demo_catalogue, tmp_path_factory):
    root = tmp_path_factory.mktemp("embed")
    cfg = load_config(
        overrides={
            "store": {"root": str(root / "data")},
            "ingest": {"shard_size": 2},
            "transcribe": {"whisper_model": "tiny.en"},
            "encoder": {
                "epochs": 3,
                "batch_size": 4,
                "hidden_dim": 32,
                "attention_heads": 2,
                "patience": 2,
                "device": "cpu",
            },
        },
        environ={},
    )
    store = ArtifactStore(cfg.store.root)
    ingest_catalogue(cfg, _two_works(demo_catalogue), "demo", store)
    rng = np.random.default_rng(0)
    work_vectors: dict[str, np.ndarray] = {}
    for shard in shard_ids(store, "demo"):
        detect_vocals(cfg, "demo", shard, store)
        extract_vocal_segments(cfg, "demo", shard, store)
        segments = artifact_for(cfg, store, "demo", "segments", shard).require().read_table("segments")
        _write_text_stand_in(cfg, store, shard, segments, work_vectors, rng)
    return cfg, store, root


def _two_works(manifest):
    """Two works' versions of the demo catalogue (speed: every track costs Musicnn and Whisper time)."""
    tracks = pd.read_csv(manifest)
    first_works = sorted(tracks["work_id"].unique())[:2]
    subset = manifest.with_name("manifest_two_works.csv")
    tracks[tracks["work_id"].isin(first_works)].to_csv(subset, index=False)
    return subset


def _write_text_stand_in(cfg, store, shard, segments: pd.DataFrame, work_vectors: dict, rng) -> None:
    vectors = []
    for work in segments["work_id"]:
        if work not in work_vectors:
            vector = rng.standard_normal(TEXT_DIM)
            work_vectors[work] = (vector / np.linalg.norm(vector)).astype(np.float32)
        vectors.append(work_vectors[work])
    text = artifact_for(cfg, store, "demo", "text", shard)
    text.write_array("segment_embeddings", np.array(vectors, dtype=np.float32).reshape(-1, TEXT_DIM))
    text.write_table("segments", segments[["segment_id", "track_id", "work_id"]])
    text.write_json("model", {"name": "stand-in", "dim": TEXT_DIM})
    text.commit({"stand_in": True})


def test_embed_needs_a_model(pipeline):
    cfg, store, _ = pipeline
    # No head is shipped for the multilingual tiny checkpoint: nothing to fall back on.
    unshipped = cfg.model_copy(update={"transcribe": cfg.transcribe.model_copy(update={"whisper_model": "tiny"})})
    if promoted_model(store) is None:
        with pytest.raises(NoEncoderModel, match="train-encoder"):
            embed_audio(unshipped, "demo", shard_ids(store, "demo")[0], store)


def test_features_train_embed_end_to_end(pipeline, demo_catalogue):
    cfg, store, root = pipeline
    shard = shard_ids(store, "demo")[0]
    features = cache_encoder_features(cfg, "demo", shard, store)
    assert not features["skipped"] and features["width"] == 384 and features["frames"] == 1500
    states = artifact_for(cfg, store, "demo", "features", shard).read_array("states", mmap=True)
    assert states.dtype == np.float16 and states.shape[0] == features["segments"]
    assert cache_encoder_features(cfg, "demo", shard, store)["skipped"]

    trained = train(cfg, ["demo"], store, out_dir=root / "training")  # computes the other shards' features
    assert not trained["skipped"] and trained["epochs_run"] == 3 and len(trained["history"]) == 3
    assert trained["text_model"] == {"name": "stand-in", "dim": TEXT_DIM}
    assert (root / "training" / "metrics.jsonl").read_text().count("\n") == 3
    assert train(cfg, ["demo"], store)["skipped"]  # same data, same settings: nothing to do

    promote_model(store, trained["fingerprint"])
    assert promoted_model(store) == trained["fingerprint"]
    for each in shard_ids(store, "demo"):
        result = embed_audio(cfg, "demo", each, store)
        assert result["encoder"] == trained["fingerprint"]
    output = artifact_for(cfg, store, "demo", "embed", shard, (trained["fingerprint"],)).require()
    tracks = output.read_table("tracks")
    track_vectors = output.read_array("track_embeddings")
    segment_vectors = output.read_array("segment_embeddings")
    assert segment_vectors.shape == (len(output.read_table("segments")), TEXT_DIM)
    assert np.allclose(np.linalg.norm(track_vectors, axis=1), 1, atol=1e-5)
    assert output.read_json("model")["encoder"] == trained["fingerprint"]

    # The query path gives the stage's embedding: one encoder pass per 30 s with the default
    # detector (the encoder probe), decode -> Musicnn -> segments -> encoder with Musicnn.
    ingested = artifact_for(cfg, store, "demo", "ingest", shard).read_table("tracks").set_index("track_id")
    track_id = tracks["track_id"].iloc[0]
    assert output.read_table("segments")["segment_id"].str.startswith(f"{track_id}#chunk").any()
    # One pass decides as the vocal stage does: the same probe frames, windows and rule.
    decisions = output.read_table("decisions").set_index("track_id")
    vocal = artifact_for(cfg, store, "demo", "vocal", shard).read_table("tracks").set_index("track_id")
    assert decisions["status"].to_dict() == vocal["status"].to_dict()
    assert np.allclose(decisions["vocal_s"], vocal.loc[decisions.index, "vocal_s"])
    assert set(tracks["track_id"]) == set(decisions.index[decisions["status"] == "kept"])
    from_file = embed_file(cfg, ingested.loc[track_id, "uri"], store)
    assert float(from_file.embedding @ track_vectors[0]) > 0.999
    # The chunks a query is re-ranked by are the ones the embed stage stored for the track.
    stored_chunks = output.read_array("segment_embeddings")[
        (output.read_table("segments")["track_id"] == track_id).to_numpy()
    ]
    np.testing.assert_allclose(from_file.chunks, stored_chunks, atol=1e-4)
    musicnn = cfg.model_copy(update={"vocal": cfg.vocal.model_copy(update={"method": "zero_shot"})})
    detect_vocals(musicnn, "demo", shard, store)
    extract_vocal_segments(musicnn, "demo", shard, store)
    embed_audio(musicnn, "demo", shard, store)
    musicnn_output = artifact_for(musicnn, store, "demo", "embed", shard, (trained["fingerprint"],)).require()
    musicnn_tracks = musicnn_output.read_table("tracks")
    assert musicnn_output.read_table("segments")["segment_id"].str.match(r".*#\d{3}$").all()
    first = musicnn_tracks["track_id"].iloc[0]
    from_file = embed_file(musicnn, ingested.loc[first, "uri"], store)
    assert float(from_file.embedding @ musicnn_output.read_array("track_embeddings")[0]) > 0.999


def test_file_without_vocals_falls_back_to_whole_file_chunks(pipeline, caplog):
    cfg, _, _ = pipeline
    rate = 16_000
    t = np.arange(65 * rate) / rate
    hum = (0.2 * np.sin(2 * np.pi * 110 * t)).astype(np.float32)
    with caplog.at_level("WARNING"):
        clips = file_segments(cfg, hum, name="hum")
    assert clips.shape == (3, 30 * rate)
    assert "falling back" in caplog.text
