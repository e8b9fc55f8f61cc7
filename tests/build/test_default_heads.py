"""`livi build-default-heads` end to end on a tiny corpus: segments with their sung text, cached
states, a trained head written with a card that the registry accepts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from livi_tasks.build.default_heads import (
    EVALUATION_SEED,
    Chunk,
    build_default_heads,
    ground_truth_segments,
    prepare_chunk,
)
from livi_tasks.build.synth.corpus import make_corpus
from livi_tasks.models.registry import head_digest, shipped_head

FAST = {"epochs": 2, "batch_size": 4, "hidden_dim": 32, "attention_heads": 2, "patience": 2, "device": "cpu"}


def test_ground_truth_segments_carry_the_lines_they_hold(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", "randomised", works=1, versions=2, seed=4, instrumentals=1).parent
    table, audio = ground_truth_segments(corpus)
    lyrics = json.loads((corpus / "lyrics.json").read_text())
    assert len(table) == len(audio) > 0 and audio.shape[1] == 30 * 16_000 and audio.dtype == np.float16
    assert not table["track_id"].str.startswith("instrumental").any()  # nothing sung, nothing to learn
    for row in table.itertuples():
        sung = " ".join(lyrics["tracks"][row.track_id])
        assert row.text and row.text in sung


def test_build_writes_a_head_the_registry_accepts(cfg, tmp_path):
    cfg = cfg.model_copy(update={"encoder": cfg.encoder.model_copy(update=FAST)})
    cards = build_default_heads(cfg, tmp_path / "work", ("tiny.en",), chunks=((7, 3),), out_root=tmp_path / "shipped")
    card = cards["tiny.en"]
    weights, config, loaded_card = shipped_head("tiny.en", tmp_path / "shipped")
    assert loaded_card == card and head_digest(weights, config) == card["head_sha256"]
    segments = pd.read_parquet(tmp_path / "work" / "cache" / "randomised_seed7" / "segments.parquet")
    assert card["data"]["segments"] == len(segments) == card["data"]["train_pairs"] + card["data"]["validation_pairs"]
    assert card["data"]["chunks"] == [
        {
            "seed": 7,
            "works": 3,
            "family": "randomised",
            "segments": len(segments),
            "tracks": segments["track_id"].nunique(),
        }
    ]
    assert card["training"]["epochs_run"] == 2 and card["encoder_settings"]["hidden_dim"] == 32
    assert card["whisper"]["name"] == "tiny.en" and card["code_commit"]


@pytest.mark.parametrize("chunk", [Chunk(0, 4, "demo"), Chunk(EVALUATION_SEED, 4), Chunk(EVALUATION_SEED, 4, "demo")])
def test_a_chunk_on_an_evaluation_seed_is_refused_before_any_work(cfg, tmp_path, chunk):
    with pytest.raises(ValueError, match="^chunk: "):
        prepare_chunk(cfg, chunk, tmp_path, ("tiny.en",))
    assert not any(tmp_path.iterdir())
