"""Training mechanics on small random frame tensors: loss, split, checkpoints, resume, early stop."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from livi_tasks.core.config import EncoderConfig
from livi_tasks.models.encoder import LiviHead
from livi_tasks.stages.train_encoder import (
    FramePairs,
    TrainingInterrupted,
    distillation_loss,
    fit_head,
    paired_order,
    split_by_work,
    version_pairs,
    without_shared_targets,
)

WIDTH, FRAMES, TEXT_DIM = 16, 12, 8


def test_loss_matches_hand_computation():
    audio = F.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8]]), dim=-1)
    text = F.normalize(torch.tensor([[0.0, 1.0], [0.6, 0.8]]), dim=-1)
    # cosines a_i.t_i = 0 and 1 -> cosine loss mean(1 - cos) = 0.5
    # A A^T = [[1, .6], [.6, 1]], T T^T = [[1, .8], [.8, 1]] -> MSE = 2 * 0.2^2 / 4 = 0.02
    for alpha in (0.0, 0.5, 1.0):
        expected = alpha * 0.5 + (1 - alpha) * 0.02
        assert math.isclose(float(distillation_loss(audio, text, alpha)), expected, rel_tol=1e-6)


def test_split_keeps_each_work_on_one_side_and_unlabelled_in_train():
    works = ["a", "a", "b", "b", "c", "c", "d", "", ""]
    train, val = split_by_work(works, 0.5, seed=3)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(works)))
    train_works = {works[i] for i in train}
    val_works = {works[i] for i in val}
    assert not (train_works & val_works)
    assert len(val_works) == 2 and "" not in val_works
    assert split_by_work(works, 0.5, seed=3)[1].tolist() == val.tolist()  # deterministic


def _pairs(n: int = 40, seed: int = 0) -> FramePairs:
    """Frame states whose mean direction determines the text vector: a learnable mapping."""
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((WIDTH, TEXT_DIM)).astype(np.float32)
    states = rng.standard_normal((n, FRAMES, WIDTH)).astype(np.float16)
    texts = states.astype(np.float32).mean(axis=1) @ mixing
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)
    rows = np.stack([np.zeros(n, np.int64), np.arange(n), np.arange(n)], axis=1)
    return FramePairs([(states, texts.astype(np.float32))], rows, [f"w{i // 2}" for i in range(n)])


def test_a_batch_holds_the_pairs_each_read_alone_gives():
    rng = np.random.default_rng(1)
    float16_states = rng.standard_normal((5, FRAMES, WIDTH)).astype(np.float16)
    float32_states = rng.standard_normal((4, FRAMES, WIDTH)).astype(np.float32)
    hidden = rng.random((4, FRAMES)) < 0.3
    sources = [
        (float16_states, rng.standard_normal((3, TEXT_DIM)).astype(np.float32)),
        (float32_states, rng.standard_normal((4, TEXT_DIM)).astype(np.float32), hidden),
    ]
    rows = np.array([[0, 4, 2], [1, 3, 0], [0, 0, 1], [1, 1, 3], [0, 4, 0]])
    pairs = FramePairs(sources, rows, ["w"] * len(rows))
    order = np.array([3, 0, 4, 1])
    states, texts, masks = pairs.batch(order, "cpu")
    for position, index in enumerate(order):
        alone = pairs[int(index)]
        assert torch.equal(states[position], alone[0]) and states.dtype == torch.float32
        assert torch.equal(texts[position], alone[1])
        assert torch.equal(masks[position], alone[2])


def test_a_teacher_text_shared_across_unrelated_works_is_dropped():
    pairs = _pairs(12)
    texts = pairs.sources[0][1].copy()
    texts[[0, 2, 4, 6]] = texts[8]  # one stock transcript in works w0..w4: five works
    texts[10] = texts[11]  # a chorus transcribed twice in one work: a song's own line
    shared = FramePairs([(pairs.sources[0][0], texts)], pairs.rows, pairs.work_ids)
    kept = without_shared_targets(shared, max_works=3)
    assert sorted(kept.rows[:, 1].tolist()) == [1, 3, 5, 7, 9, 10, 11]
    assert len(without_shared_targets(shared, max_works=5)) == 12


def _versions(texts: np.ndarray, works: list[str], tracks: list[str]) -> FramePairs:
    states = np.zeros((len(texts), FRAMES, WIDTH), np.float16)
    rows = np.stack([np.zeros(len(texts), np.int64), np.arange(len(texts)), np.arange(len(texts))], axis=1)
    return FramePairs([(states, texts.astype(np.float32))], rows, works, tracks)


def test_version_pairs_put_each_chunk_beside_the_closest_chunk_of_another_version():
    angles = np.radians([0, 40, 80, 5, 75, 0, 0, 10])
    texts = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    works = ["w", "w", "w", "w", "w", "solo", "", ""]
    tracks = ["a", "a", "a", "b", "b", "s", "u1", "u2"]
    units = version_pairs(_versions(texts, works, tracks))
    assert sorted(sorted(unit.tolist()) for unit in units) == [[0, 3], [1], [2, 4], [5], [6], [7]]
    # Two chunks of one version are never a pair, however close their lyrics (rows 0 and 1 of track a).
    same_track = version_pairs(_versions(texts[:2], ["w", "w"], ["a", "a"]))
    assert sorted(unit.tolist() for unit in same_track) == [[0], [1]]


def test_version_pairs_need_track_ids():
    with pytest.raises(ValueError, match="encoder.pair_versions"):
        version_pairs(_pairs(8))


def test_paired_order_keeps_each_pair_in_one_batch_and_covers_every_chunk():
    units = [np.array([2 * k, 2 * k + 1]) for k in range(10)] + [np.array([k]) for k in range(20, 25)]
    order = paired_order(units, np.random.default_rng(7))
    assert sorted(order.tolist()) == list(range(20)) + list(range(20, 25))
    batch_of = {int(index): position // 8 for position, index in enumerate(order)}
    assert all(batch_of[2 * k] == batch_of[2 * k + 1] for k in range(10))
    assert order.tolist() == paired_order(units, np.random.default_rng(7)).tolist()  # seeded
    assert order.tolist() != paired_order(units, np.random.default_rng(8)).tolist()


def test_training_on_version_pairs_lowers_the_loss(tmp_path):
    pairs = _pairs()
    pairs.track_ids = np.array([f"t{i % 4}" for i in range(len(pairs))], dtype=object)  # two versions per work
    settings = _settings(epochs=6, pair_versions=True)
    train_set, val_set = _split(pairs)
    result = fit_head(_fresh_head(settings), train_set, val_set, settings, tmp_path)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    with pytest.raises(ValueError, match="encoder.pair_versions"):
        fit_head(_fresh_head(settings), _split(_pairs())[0], None, settings, tmp_path / "no-tracks")


def _settings(**changes) -> EncoderConfig:
    base = dict(
        hidden_dim=16,
        attention_heads=2,
        dropout=0.1,
        lr=5e-3,
        epochs=4,
        batch_size=8,
        patience=10,
        seed=0,
        warmup_fraction=0.2,
    )
    return EncoderConfig(**{**base, **changes})


def _fresh_head(settings: EncoderConfig) -> LiviHead:
    torch.manual_seed(settings.seed)
    return LiviHead.from_settings(WIDTH, TEXT_DIM, settings)


def _split(pairs: FramePairs):
    train, val = split_by_work(pairs.work_ids, 0.25, seed=0)
    return pairs.subset(train), pairs.subset(val)


def test_training_lowers_validation_loss_and_logs_every_epoch(tmp_path):
    settings = _settings(epochs=6)
    train_set, val_set = _split(_pairs())
    result = fit_head(_fresh_head(settings), train_set, val_set, settings, tmp_path)
    assert [row["epoch"] for row in result.history] == list(range(6))
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines == result.history
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 5


def test_resume_after_interruption_gives_the_same_weights(tmp_path):
    settings = _settings(epochs=4, frame_mask=0.3)  # the random frame mask must resume exactly too
    train_set, val_set = _split(_pairs())
    reference = fit_head(_fresh_head(settings), train_set, val_set, settings, tmp_path / "straight")

    def crash_in_epoch_two(epoch: int, batch: int) -> None:
        if epoch == 2 and batch == 1:
            raise TrainingInterrupted("simulated kill")

    interrupted_dir = tmp_path / "interrupted"
    with pytest.raises(TrainingInterrupted):
        fit_head(_fresh_head(settings), train_set, val_set, settings, interrupted_dir, on_batch=crash_in_epoch_two)
    assert torch.load(interrupted_dir / "checkpoint.pt", weights_only=True)["epoch"] == 1
    # A different initial head proves the weights come from the checkpoint, not from the seed.
    torch.manual_seed(123)
    other_head = LiviHead.from_settings(WIDTH, TEXT_DIM, settings)
    resumed = fit_head(other_head, train_set, val_set, settings, interrupted_dir, resume=True)

    assert resumed.history == reference.history
    for name, tensor in reference.head.state_dict().items():
        assert torch.equal(tensor, resumed.head.state_dict()[name]), name


def test_early_stopping_keeps_the_best_epoch(tmp_path):
    # A huge learning rate makes validation loss get worse quickly.
    settings = _settings(epochs=12, patience=2, lr=3.0, warmup_fraction=0.0)
    train_set, val_set = _split(_pairs())
    result = fit_head(_fresh_head(settings), train_set, val_set, settings, tmp_path)
    assert result.stopped_early and len(result.history) < 12
    val_losses = [row["val_loss"] for row in result.history]
    assert result.best_epoch == int(np.argmin(val_losses))
    assert len(result.history) == result.best_epoch + 1 + settings.patience
