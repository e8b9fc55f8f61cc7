"""Musicnn in PyTorch against the original TensorFlow model's outputs (shared fixtures)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from livi_tasks.core.config import LiviConfig
from livi_tasks.models import musicnn
from livi_tasks.models.musicnn import (
    MODEL_NAMES,
    N_MELS,
    SAMPLE_RATE,
    TAGS,
    WINDOW_FRAMES,
    VocalHead,
    cached_weights_path,
    load_musicnn,
    log_mel_spectrogram,
    log_mel_windows,
    predict_windows,
    window_start_frames,
    zero_shot_vocalness,
)

# Measured: taggrams within 4e-7, penultimate features within 4e-6 of TensorFlow's.
TAGGRAM_TOLERANCE = 1e-4
PENULTIMATE_TOLERANCE = 1e-3
# Measured: 4.8e-7 between this float32 front end and the reference log-mel (values up to 5.4).
FRONT_END_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def reference(shared_fixtures: Path) -> dict[str, np.ndarray]:
    with np.load(shared_fixtures / "musicnn_reference.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def reference_audio(shared_fixtures: Path) -> np.ndarray:
    audio, rate = sf.read(shared_fixtures / "musicnn_ref_input.wav", dtype="float32")
    assert rate == SAMPLE_RATE
    return audio


@pytest.fixture(scope="module")
def models_dir() -> str:
    """The default weight cache, so that the conversion happens once per machine."""
    return LiviConfig().models_dir


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_outputs_match_tensorflow(name: str, models_dir: str, reference: dict[str, np.ndarray]) -> None:
    model = load_musicnn(name, models_dir)
    assert not model.training
    taggram, penultimate = predict_windows(model, reference["input_logmel"], batch_size=3)
    assert taggram.shape == (4, 50) and penultimate.shape == (4, 200)
    assert np.abs(taggram - reference[f"{name}_taggram"]).max() < TAGGRAM_TOLERANCE
    assert np.abs(penultimate - reference[f"{name}_penultimate"]).max() < PENULTIMATE_TOLERANCE
    assert list(TAGS[name]) == list(reference[f"{name}_tags"])


def test_weights_are_converted_once_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference) -> None:
    model = load_musicnn("MTT_musicnn", tmp_path)
    cache = cached_weights_path("MTT_musicnn", tmp_path)
    assert cache == tmp_path / "musicnn" / "MTT_musicnn.pt"
    state = torch.load(cache, weights_only=True)
    assert set(state) == set(model.state_dict())

    def wheel_must_not_be_read(name: str) -> Path:
        raise AssertionError("the cached weights should be used")

    monkeypatch.setattr(musicnn, "musicnn_checkpoint_dir", wheel_must_not_be_read)
    cached = load_musicnn("MTT_musicnn", tmp_path)
    taggram, _ = predict_windows(cached, reference["input_logmel"][:1])
    assert np.abs(taggram - reference["MTT_musicnn_taggram"][:1]).max() < TAGGRAM_TOLERANCE

    with pytest.raises(ValueError, match="unknown Musicnn model"):
        load_musicnn("MTT_vgg", tmp_path)


def test_front_end_matches_the_original(reference_audio: np.ndarray, reference: dict[str, np.ndarray]) -> None:
    frames = log_mel_spectrogram(reference_audio)
    assert frames.dtype == np.float32 and frames.shape == (1 + len(reference_audio) // 256, N_MELS)
    # The original cut consecutive 187-frame windows from the whole-file spectrogram.
    original_windows = np.stack([frames[k * WINDOW_FRAMES : (k + 1) * WINDOW_FRAMES] for k in range(4)])
    assert np.abs(original_windows - reference["input_logmel"]).max() < FRONT_END_TOLERANCE


def test_windows_start_every_three_seconds(reference_audio: np.ndarray) -> None:
    windows = log_mel_windows(reference_audio)
    assert windows.shape == (4, WINDOW_FRAMES, N_MELS) and windows.dtype == np.float32
    # 3 s is 187.5 hops: windows start at the first frame centred inside their 3 s span.
    starts = window_start_frames(4)
    np.testing.assert_array_equal(starts, [0, 188, 375, 563])
    frames = log_mel_spectrogram(reference_audio)
    for k, start in enumerate(starts):
        np.testing.assert_allclose(windows[k], frames[start : start + WINDOW_FRAMES], atol=1e-5)


def test_tail_windows_need_one_second(reference_audio: np.ndarray) -> None:
    seven_seconds = reference_audio[: 7 * SAMPLE_RATE]
    with_tail = log_mel_windows(seven_seconds)
    assert len(with_tail) == 3
    # The missing two seconds are digital silence: log10(10000 * 0 + 1) = 0.
    assert np.all(with_tail[2, 100:] == 0) and with_tail[2, :50].max() > 1
    assert len(log_mel_windows(reference_audio[: int(6.9 * SAMPLE_RATE)])) == 2
    assert log_mel_windows(reference_audio[: SAMPLE_RATE // 2]).shape == (0, WINDOW_FRAMES, N_MELS)
    assert len(log_mel_windows(reference_audio[: SAMPLE_RATE // 2], min_tail_s=0.25)) == 1


def test_zero_shot_vocalness_separates_voice_from_music(reference: dict[str, np.ndarray]) -> None:
    # Windows 0-1 of the reference hold speech over music, windows 2-3 music only.
    scores = zero_shot_vocalness(reference["MTT_musicnn_taggram"], TAGS["MTT_musicnn"])
    assert scores.shape == (4,) and scores.dtype == np.float32
    assert scores[:2].min() > 0.7 and scores[2:].max() < 0.3
    stricter = zero_shot_vocalness(reference["MTT_musicnn_taggram"], TAGS["MTT_musicnn"], no_vocal_weight=4.0)
    assert (stricter < scores).all()
    with pytest.raises(ValueError, match="MTT tags"):
        zero_shot_vocalness(reference["MSD_musicnn_taggram"], TAGS["MSD_musicnn"])


def test_vocal_head_round_trip(tmp_path: Path, reference: dict[str, np.ndarray]) -> None:
    torch.manual_seed(0)
    head = VocalHead("MSD_musicnn")
    path = tmp_path / "heads" / "vocal.pt"
    head.save(path)
    loaded = VocalHead.load(path)
    assert loaded.musicnn_model == "MSD_musicnn" and not loaded.training
    features = reference["MSD_musicnn_penultimate"]
    scores = loaded.vocalness(features)
    assert scores.shape == (4,) and ((scores >= 0) & (scores <= 1)).all()
    np.testing.assert_allclose(scores, head.vocalness(features))


@pytest.mark.slow
def test_throughput_on_the_callers_threads(models_dir: str, reference: dict[str, np.ndarray]) -> None:
    """Windows per second at batch 64 with the caller's torch thread count (reported, not asserted)."""
    model = load_musicnn("MTT_musicnn", models_dir)
    windows = np.resize(reference["input_logmel"], (64, WINDOW_FRAMES, N_MELS))
    predict_windows(model, windows[:8], batch_size=8)  # warm-up
    started, cpu_started = time.perf_counter(), time.process_time()
    predict_windows(model, windows, batch_size=64)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(
        f"musicnn: {len(windows) / wall:.1f} windows/s on {torch.get_num_threads()} threads "
        f"({len(windows) / cpu:.1f} windows per CPU-second)"
    )
    assert len(windows) / wall > 0.5
