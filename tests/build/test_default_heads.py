"""`livi build-default-heads` end to end on a tiny corpus: one-pass chunks with their sung text,
cached states, a trained head written with a card that the registry accepts."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from livi_tasks.build.chunk_data import chunk_dataset, encoder_states_of, evaluation_dataset, read_chunk_dataset
from livi_tasks.build.default_heads import (
    EVALUATION_SEED,
    LYRICS,
    Chunk,
    build_default_heads,
    chunk_cache,
    head_answers,
    prepare_chunk,
    teach,
    training_pairs,
)
from livi_tasks.build.head_eval import evaluate_head
from livi_tasks.build.synth.corpus import make_corpus
from livi_tasks.core.config import LiviConfig
from livi_tasks.models.encoder import HeadEnsemble, head_from_bytes
from livi_tasks.models.identity import whisper_identity
from livi_tasks.models.registry import SHIPPED_DIR, head_digest, shipped_head
from livi_tasks.models.vocal_probe import load_probe

FAST = {"epochs": 2, "batch_size": 4, "hidden_dim": 32, "attention_heads": 2, "patience": 2, "device": "cpu"}


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    return make_corpus(folder / "corpus", "randomised", works=1, versions=2, seed=4, instrumentals=1).parent


def test_training_chunks_are_cut_as_inference_cuts_and_carry_the_lines_they_hold(tiny_corpus, tmp_path):
    probe = load_probe("tiny.en", whisper_identity("tiny.en", LiviConfig().models_dir)["id"])
    data = chunk_dataset(tiny_corpus, tmp_path / "chunks", encoder_states_of("tiny.en", LiviConfig().models_dir), probe)
    lyrics = json.loads((tiny_corpus / "lyrics.json").read_text())
    assert len(data.table) == len(data.states) == len(data.extra["hidden"]) > 0
    assert data.states.shape[1:] == (1500, 384) and data.states.dtype == np.float16
    assert not data.table["track_id"].str.startswith("instrumental").any()  # nothing sung, nothing to learn
    for row in data.table.itertuples():
        assert row.text and row.text in " ".join(lyrics["tracks"][row.track_id])
        assert row.sung_frames == int((~data.extra["hidden"][row.Index]).sum()) >= 100  # >= 2 s pooled
    again = chunk_dataset(tiny_corpus, tmp_path / "chunks", lambda chunks: pytest.fail("recomputed"), probe)
    assert again.table.equals(data.table)  # cached: a rerun reads, never encodes


def test_training_chunks_can_keep_every_encoder_block(tiny_corpus, tmp_path):
    """The layer-mix ablation's cache: (chunks, blocks, frames, width), the same rows as the last block's."""
    probe = load_probe("tiny.en", whisper_identity("tiny.en", LiviConfig().models_dir)["id"])
    states = encoder_states_of("tiny.en", LiviConfig().models_dir, all_layers=True)
    data = chunk_dataset(tiny_corpus, tmp_path / "layers", states, probe)
    last = chunk_dataset(tiny_corpus, tmp_path / "last", encoder_states_of("tiny.en", LiviConfig().models_dir), probe)
    assert data.states.ndim == 4 and data.states.shape[2:] == (1500, 384) and data.states.shape[1] >= 4
    assert data.table.equals(last.table)
    np.testing.assert_allclose(data.states[:, -1], last.states, atol=2e-3)


def test_evaluation_chunks_score_a_head_like_the_embed_stage(tiny_corpus, tmp_path):
    cfg = LiviConfig()
    probe = load_probe("tiny.en", whisper_identity("tiny.en", cfg.models_dir)["id"])
    data = evaluation_dataset(tiny_corpus, tmp_path / "eval", encoder_states_of("tiny.en", cfg.models_dir), probe)
    assert set(data.table["track_id"]) == set(pd.read_csv(tiny_corpus / "manifest.csv")["track_id"])
    weights, config, _ = shipped_head("tiny.en")
    head = head_from_bytes(weights, config)
    scores = evaluate_head(head, data, cfg, probe.threshold)
    assert scores["queries"] == 2 and scores["excluded_tracks"] == 1  # the instrumental is ranked as zeros
    assert scores["MAP"] == 1.0 and scores["MAP_ci95"] == [1.0, 1.0]  # two versions of one work: each finds the other


def test_build_writes_a_head_the_registry_accepts(cfg, tmp_path):
    cfg = cfg.model_copy(update={"encoder": cfg.encoder.model_copy(update=FAST)})
    cards = build_default_heads(
        cfg, tmp_path / "work", ("tiny.en",), chunks=((7, 3),), out_root=tmp_path / "shipped", seeds=(0, 1)
    )
    card = cards["tiny.en"]
    weights, config, loaded_card = shipped_head("tiny.en", tmp_path / "shipped")
    assert loaded_card == card and head_digest(weights, config) == card["head_sha256"]
    examples = pd.read_parquet(chunk_cache(tmp_path / "work", Chunk(7, 3), "tiny.en") / "chunks.parquet")
    assert card["data"]["examples"] == len(examples) == card["data"]["train_pairs"] + card["data"]["validation_pairs"]
    assert card["data"]["chunks"] == [
        {
            "seed": 7,
            "works": 3,
            "family": "randomised",
            "examples": len(examples),
            "tracks": examples["track_id"].nunique(),
            "works_used": examples["work_id"].nunique(),  # the hard negative is sung: a work of its own
        }
    ]
    assert card["training"]["epochs_run"] == 2 and card["encoder_settings"]["hidden_dim"] == 32
    losses = card["training"]["seed_selection"]["best_val_loss_by_seed"]
    assert set(losses) == {"0", "1"} and losses["0"] != losses["1"]  # the seed changes the run, not the split
    assert losses[str(card["training"]["seed"])] == card["training"]["best_val_loss"] == min(losses.values())
    assert card["whisper"]["name"] == "tiny.en" and card["code_commit"]
    # The command carries the settings off their defaults (FAST's, where the model runs left out).
    assert card["command"].startswith(
        "livi --set encoder.hidden_dim=32 --set encoder.attention_heads=2 --set encoder.epochs=2 "
        "--set encoder.batch_size=4 --set encoder.patience=2 build-default-heads "
    )
    stored = torch.load(io.BytesIO(weights), weights_only=True)
    assert card["weights_stored_as"] == "float16" and {tensor.dtype for tensor in stored.values()} == {torch.float16}


def test_an_ensemble_build_ships_every_seed_as_one_head(cfg, tmp_path):
    cfg = cfg.model_copy(update={"encoder": cfg.encoder.model_copy(update=FAST)})
    work, shipped = tmp_path / "work", tmp_path / "shipped"
    build_default_heads(cfg, work, ("tiny.en",), chunks=((7, 3),), out_root=shipped, seeds=(0, 1))
    single = head_from_bytes(*shipped_head("tiny.en", shipped)[:2])
    card = build_default_heads(
        cfg, work, ("tiny.en",), chunks=((7, 3),), out_root=shipped, seeds=(0, 1), ensemble=True
    )["tiny.en"]
    weights, config, _ = shipped_head("tiny.en", shipped)
    ensemble = head_from_bytes(weights, config)
    assert isinstance(ensemble, HeadEnsemble) and len(ensemble.members) == 2
    assert card["training"]["seed"] == [0, 1] and card["command"].endswith("--ensemble")
    losses = card["training"]["seed_selection"]["best_val_loss_by_seed"]
    chosen = int(min(losses, key=losses.get))
    frames = torch.randn(3, 40, 384)
    # The same seeds retrained on the same data: the lowest-loss head is one of the members.
    assert torch.allclose(ensemble.members[chosen](frames), single(frames), atol=1e-6)
    assert not torch.allclose(ensemble(frames), single(frames), atol=1e-3)


def test_a_head_taught_by_lyrics_and_the_base_head_learns_their_normalised_mean(cfg, tmp_path):
    """tiny.en taught by the lyrics and the shipped base head (as `make default-heads` builds it):
    each chunk's target is the unit mean of its lyrics embedding and base's answer for the same
    chunk, base's chunks are prepared by the build, and the card names the teacher."""
    cfg = cfg.model_copy(update={"encoder": cfg.encoder.model_copy(update=FAST)})
    work, shipped = tmp_path / "work", tmp_path / "shipped"
    shutil.copytree(SHIPPED_DIR / "base", shipped / "base")
    card = build_default_heads(
        cfg, work, ("tiny.en",), chunks=((7, 3),), out_root=shipped, seeds=(0,), teacher=(LYRICS, "base")
    )["tiny.en"]
    assert card["teacher"].startswith("the L2-normalised mean of the chunk's ground-truth sung lyrics")
    assert card["teacher_heads"] == {"base": {"head_sha256": shipped_head("base")[2]["head_sha256"]}}
    assert card["command"].endswith("--teacher lyrics+base")

    chunks = [Chunk(7, 3)]
    pairs, _ = training_pairs(work, chunks, "tiny.en")
    lyrics = np.array(pairs.sources[0][1])
    missing, hashes = teach(pairs, work, chunks, "tiny.en", (LYRICS, "base"), shipped)
    assert missing == card["teacher_answers_missing"] and hashes == {
        "base": card["teacher_heads"]["base"]["head_sha256"]
    }
    base = read_chunk_dataset(chunk_cache(work, chunks[0], "base"), ("hidden",))
    answers = pd.DataFrame(
        head_answers(head_from_bytes(*shipped_head("base")[:2]), base), index=base.table["segment_id"]
    )
    tiny_segments = read_chunk_dataset(chunk_cache(work, chunks[0], "tiny.en"), ()).table["segment_id"]
    answered = tiny_segments.isin(answers.index).to_numpy()
    assert answered.sum() == len(tiny_segments) - card["teacher_answers_missing"] > 0
    mean = lyrics[answered] + answers.loc[tiny_segments[answered]].to_numpy()
    np.testing.assert_allclose(
        pairs.sources[0][1][answered], mean / np.linalg.norm(mean, axis=1, keepdims=True), atol=1e-5
    )
    np.testing.assert_allclose(pairs.sources[0][1][~answered], lyrics[~answered])  # no answer: the lyrics alone
    assert np.abs(np.sum(pairs.sources[0][1] * lyrics, axis=1)).min() < 0.99  # the teacher moved the targets


@pytest.mark.parametrize(
    "chunk",
    [
        Chunk(0, 4, "demo"),
        Chunk(EVALUATION_SEED, 4),
        Chunk(EVALUATION_SEED, 4, "demo"),
        Chunk(5, 4, "foreign2"),
        Chunk(5, 4, "no-such-family"),
    ],
)
def test_a_chunk_on_an_evaluation_seed_is_refused_before_any_work(cfg, tmp_path, chunk):
    with pytest.raises(ValueError, match="^chunk: "):
        prepare_chunk(cfg, chunk, tmp_path, ("tiny.en",))
    assert not any(tmp_path.iterdir())
