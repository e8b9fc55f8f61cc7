"""LiviHead / LiviEncoder: shapes, unit norm, frozen Whisper, save and load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from livi_tasks.models.encoder import (
    HeadEnsemble,
    LiviEncoder,
    LiviHead,
    encode_frames,
    head_from_bytes,
    head_to_bytes,
)
from livi_tasks.models.whisper_weights import load_whisper


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory):
    from livi_tasks.core.config import LiviConfig

    return load_whisper("tiny.en", LiviConfig().models_dir)


def test_head_outputs_unit_vectors_of_text_dim():
    torch.manual_seed(0)
    head = LiviHead(width=16, text_dim=8, hidden_dim=12, attention_heads=4, dropout=0.0)
    out = head(torch.randn(3, 20, 16))
    assert out.shape == (3, 8)
    assert torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-6)


def test_single_query_pooling_equals_multihead_attention():
    torch.manual_seed(0)
    head = LiviHead(width=16, text_dim=8, hidden_dim=12, attention_heads=4, dropout=0.0).eval()
    with torch.no_grad():
        head.attention.in_proj_bias.normal_()  # non-zero biases: the fast path must handle them
        head.cls_query.normal_()
    frames = torch.randn(3, 50, 16)
    query = head.cls_query.expand(3, -1, -1)
    expected, _ = head.attention(query, frames, frames, need_weights=False)
    assert torch.allclose(head.pool(frames), expected.squeeze(1), atol=1e-5)


def test_frame_mask_changes_training_outputs_only():
    torch.manual_seed(0)
    head = LiviHead(width=16, text_dim=8, hidden_dim=12, attention_heads=4, dropout=0.0, frame_mask=0.5)
    frames = torch.randn(2, 40, 16)
    head.train()
    assert not torch.allclose(head(frames), head(frames))  # another random subset of frames each call
    head.eval()
    assert torch.equal(head(frames), head(frames))
    with pytest.raises(ValueError, match="frame_mask"):
        LiviHead(width=16, text_dim=8, frame_mask=1.0)


def test_head_rejects_width_not_divisible_by_heads():
    with pytest.raises(ValueError, match="divisible"):
        LiviHead(width=10, text_dim=8, attention_heads=4)


def test_head_round_trips_through_bytes():
    torch.manual_seed(1)
    head = LiviHead(width=16, text_dim=8, hidden_dim=12, attention_heads=2, dropout=0.1).eval()
    weights, config = head_to_bytes(head)
    restored = head_from_bytes(weights, config)
    frames = torch.randn(2, 5, 16)
    assert restored.config() == head.config()
    assert torch.equal(restored(frames), head(frames))


def test_half_precision_storage_halves_the_bytes_and_loads_as_float32():
    torch.manual_seed(3)
    head = LiviHead(width=64, text_dim=32, hidden_dim=64, attention_heads=2).eval()
    full, config = head_to_bytes(head)
    half, _ = head_to_bytes(head, torch.float16)
    restored = head_from_bytes(half, config)
    frames = torch.randn(3, 20, 64)
    assert len(half) < 0.6 * len(full)
    assert all(parameter.dtype == torch.float32 for parameter in restored.parameters())
    assert torch.nn.functional.cosine_similarity(restored(frames), head(frames)).min() > 0.9999


def test_an_ensemble_answers_the_renormalised_mean_of_its_members_and_round_trips():
    torch.manual_seed(2)
    members = [LiviHead(width=16, text_dim=8, hidden_dim=12, attention_heads=2).eval() for _ in range(3)]
    ensemble = HeadEnsemble(members).eval()
    frames = torch.randn(4, 7, 16)
    hidden = torch.zeros(4, 7, dtype=torch.bool)
    hidden[:, 5:] = True
    expected = torch.nn.functional.normalize(sum(member(frames, hidden) for member in members), dim=-1)
    assert torch.allclose(ensemble(frames, hidden), expected, atol=1e-6)
    weights, config = head_to_bytes(ensemble)
    assert json.loads(config)["members"] == 3
    restored = head_from_bytes(weights, config)
    assert isinstance(restored, HeadEnsemble) and torch.equal(restored(frames, hidden), ensemble(frames, hidden))


def test_an_ensemble_refuses_members_of_different_shapes():
    with pytest.raises(ValueError, match="one config"):
        HeadEnsemble([LiviHead(width=16, text_dim=8), LiviHead(width=16, text_dim=8, hidden_dim=32)])


def test_encode_frames_matches_whisper_on_one_clip(tiny_whisper):
    rng = np.random.default_rng(0)
    clips = (0.1 * rng.standard_normal((2, 16_000 * 5))).astype(np.float32)
    states = encode_frames(tiny_whisper, clips)
    assert states.shape == (2, 1500, 384) and states.dtype == torch.float32
    import whisper

    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(clips[1])))
    with torch.no_grad():
        expected = tiny_whisper.encoder(mel[None])[0]
    assert torch.allclose(states[1], expected, atol=1e-4)


def test_only_the_head_gets_gradients(tiny_whisper):
    torch.manual_seed(0)
    head = LiviHead(width=384, text_dim=8, hidden_dim=16, attention_heads=4, dropout=0.0)
    encoder = LiviEncoder(tiny_whisper, head).train()
    assert not encoder.whisper_encoder.training
    trainable = {name for name, p in encoder.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith("head.") for name in trainable)
    clips = np.random.default_rng(1).standard_normal((2, 16_000)).astype(np.float32) * 0.1
    encoder(clips).sum().backward()
    assert all(p.grad is None for p in encoder.whisper_encoder.parameters())
    assert all(p.grad is not None for p in encoder.head.parameters())


def test_reduced_precision_encoders_keep_the_frame_states(tiny_whisper):
    from livi_tasks.models.encoder import inference_encoder

    assert inference_encoder(tiny_whisper, "fp32", "cpu") is tiny_whisper.encoder
    assert inference_encoder(tiny_whisper, "int8", "cuda") is tiny_whisper.encoder  # no CUDA int8 kernels
    int8 = inference_encoder(tiny_whisper, "int8", "cpu")
    assert inference_encoder(tiny_whisper, "int8", "cpu") is int8  # quantised once per process
    block = int8.blocks[0]
    assert "quantized" in type(block.attn.query).__module__ and "quantized" in type(block.mlp[0]).__module__
    assert type(block.mlp[2]) is torch.nn.Linear
    assert type(tiny_whisper.encoder.blocks[0].mlp[0]) is not type(block.mlp[0])  # the loaded model is untouched
    rng = np.random.default_rng(0)
    clip = (0.1 * rng.standard_normal(16_000 * 10)).astype(np.float32)
    fp32_states, int8_states = encode_frames(tiny_whisper, clip), encode_frames(int8, clip)
    bf16_states = encode_frames(inference_encoder(tiny_whisper, "bf16", "cpu"), clip)
    assert bf16_states.dtype == torch.float32
    for states in (int8_states, bf16_states):
        assert torch.nn.functional.cosine_similarity(fp32_states[0], states[0], dim=-1).mean() > 0.99


def test_every_layer_comes_out_of_one_pass_and_a_head_can_mix_them(tiny_whisper):
    clips = np.random.default_rng(1).standard_normal((2, 16_000 * 5)).astype(np.float32) * 0.1
    layers = encode_frames(tiny_whisper, clips, all_layers=True)
    assert layers.shape == (2, len(tiny_whisper.encoder.blocks), 1500, 384)
    torch.testing.assert_close(layers[:, -1], encode_frames(tiny_whisper, clips))  # the usual output, last
    head = LiviHead(384, 8, hidden_dim=16, attention_heads=2, layers=layers.shape[1]).eval()
    assert head(layers).shape == (2, 8)
    weights, config = head_to_bytes(head)
    assert json.loads(config)["layers"] == 4 and torch.equal(head_from_bytes(weights, config)(layers), head(layers))
    assert "layers" not in LiviHead(384, 8).config()  # a one-layer head's config is unchanged
