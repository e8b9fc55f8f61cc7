"""Musicnn (Pons & Serra, 2019) in PyTorch, with the weights of the ``musicnn`` 0.1.0 wheel.

The network is a line-by-line port of ``musicnn/models.py`` (``build_musicnn``): a batch-normalised
log-mel input, a front end of timbral (7x38, 7x67) and temporal (128, 64, 32 frames) convolutions
each max-pooled over frequency, a mid end of three dense 1-D convolutions with residual
connections, and a back end of max+mean temporal pooling, a 200-unit dense layer (the
"penultimate" features) and a 50-tag sigmoid output. Batch norm runs in inference mode with
TensorFlow's epsilon.

The TensorFlow checkpoints are read with numpy (``tf_checkpoint``), converted once and cached as a
plain tensor dict under ``<models_dir>/musicnn/<name>.pt``; later loads read only that file.

Front end (``log_mel_spectrogram``): 16 kHz audio, STFT n_fft 512 / hop 256, 96 Slaney mel bands of
the power spectrum, ``log10(10000 * mel + 1)``, computed in float32 (the original cast to float16,
which overflows under numpy 2 and buys nothing).

Windows (``log_mel_windows``): the vocal stage scores non-overlapping 3 s windows starting at
0, 3, 6 ... s. Musicnn's input is 187 frames (2.992 s), and 3 s is 187.5 hops, so window k starts at
frame ceil(187.5 k): the first frame whose centre lies in [3k, 3k + 3) s. Its 187 frames then stay
inside the window to within half a hop (8 ms) instead of drifting by 8 ms per window as the
original's 187-frame stride does. A final partial window is kept when at least ``min_tail_s`` of
audio remains, its missing part filled with digital silence (log-mel 0); shorter tails are dropped
as the original drops every incomplete window.
"""

from __future__ import annotations

import os
from pathlib import Path

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from livi_tasks.core.atomic import write_atomic
from livi_tasks.models.tf_checkpoint import load_checkpoint

SAMPLE_RATE = 16_000
N_FFT = 512
HOP_LENGTH = 256
N_MELS = 96
WINDOW_FRAMES = 187
WINDOW_SECONDS = 3.0
MIN_TAIL_SECONDS = 1.0
# TensorFlow's tf.layers.batch_normalization default; torch's 1e-5 would shift every activation.
TF_BATCH_NORM_EPSILON = 1e-3

MODEL_NAMES = ("MTT_musicnn", "MSD_musicnn")

# Tag order of the output layer, from musicnn/configuration.py.
MTT_TAGS = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano",
    "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing",
    "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop",
    "soft", "sitar", "solo", "man", "classic", "choir", "voice", "new age", "dance", "male voice",
    "female vocal", "beats", "harp", "cello", "no voice", "weird", "country", "metal", "female voice", "choral",
)  # fmt: skip
MSD_TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul",
    "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies",
    "blues", "hard rock", "ambient", "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop", "70s",
    "party", "country", "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal",
    "Progressive rock", "60s", "rnb", "indie pop", "sad", "House", "happy",
)  # fmt: skip
TAGS: dict[str, tuple[str, ...]] = {"MTT_musicnn": MTT_TAGS, "MSD_musicnn": MSD_TAGS}


# ---------------------------------------------------------------- front end (audio -> log-mel)


def log_mel_spectrogram(audio_16k: np.ndarray) -> np.ndarray:
    """Musicnn's input representation of a mono 16 kHz signal: (frames, 96) float32."""
    audio = np.asarray(audio_16k, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio (1-D), got shape {audio.shape}")
    mel = librosa.feature.melspectrogram(
        y=audio, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=N_MELS, power=2.0
    )
    return np.log10(10_000 * mel.T + 1).astype(np.float32)


def window_count(n_samples: int, min_tail_s: float = MIN_TAIL_SECONDS) -> int:
    """How many 3 s windows ``log_mel_windows`` returns for a signal of ``n_samples`` at 16 kHz."""
    window_samples = int(WINDOW_SECONDS * SAMPLE_RATE)
    full, tail = divmod(n_samples, window_samples)
    return full + int(tail > 0 and tail >= min_tail_s * SAMPLE_RATE)


def window_start_frames(n_windows: int) -> np.ndarray:
    """First STFT frame of each 3 s window: the first frame centred at or after k * 3 s."""
    hops_per_window = WINDOW_SECONDS * SAMPLE_RATE / HOP_LENGTH
    return np.ceil(np.arange(n_windows) * hops_per_window).astype(np.int64)


def log_mel_windows(audio_16k: np.ndarray, min_tail_s: float = MIN_TAIL_SECONDS) -> np.ndarray:
    """Non-overlapping 3 s windows (starting at 0, 3, 6 ... s) of log-mel frames: (n, 187, 96) float32."""
    audio = np.asarray(audio_16k, dtype=np.float32)
    n_windows = window_count(len(audio), min_tail_s)
    if n_windows == 0:
        return np.zeros((0, WINDOW_FRAMES, N_MELS), dtype=np.float32)
    # Zero samples past the end make the silent tail; the spectrogram of the padded signal also
    # guarantees enough frames for the last window.
    padded = np.zeros(n_windows * int(WINDOW_SECONDS * SAMPLE_RATE), dtype=np.float32)
    usable = min(len(audio), len(padded))
    padded[:usable] = audio[:usable]
    frames = log_mel_spectrogram(padded)
    starts = window_start_frames(n_windows)
    return np.stack([frames[start : start + WINDOW_FRAMES] for start in starts])


# ---------------------------------------------------------------- network


def _batch_norm(channels: int, dims: int) -> nn.Module:
    layer = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    return layer(channels, eps=TF_BATCH_NORM_EPSILON)


def _relu_norm_max_over_frequency(conv_out: torch.Tensor, norm: nn.BatchNorm2d) -> torch.Tensor:
    """``max_freq(norm(relu(conv_out)))`` without running ReLU and batch norm over every frequency.

    The front-end maps are large (batch x 204 x 187 x 59) and the network is slower than its
    convolutions when three elementwise passes go over them. Inference batch norm is a per-channel
    ``scale * v + shift`` and ReLU is monotonic, so the maximum over frequency is reached at the
    maximum of the raw map where the scale is positive and at its minimum where it is negative:
    one min/max pass over the large map, then ReLU and batch norm on (batch, channels, time) only.
    """
    lowest, highest = torch.aminmax(conv_out, dim=3)
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    shift = norm.bias - scale * norm.running_mean
    extreme = torch.where((scale >= 0)[:, None], highest, lowest)
    return scale[:, None] * F.relu(extreme) + shift[:, None]


class MusicnnModel(nn.Module):
    """``build_musicnn`` with 1.6x front-end filters, 64 mid-end filters and 200 back-end units."""

    def __init__(self, n_tags: int = 50, n_mels: int = N_MELS, midend_filters: int = 64, backend_units: int = 200):
        super().__init__()
        timbral_filters, temporal_filters = int(1.6 * 128), int(1.6 * 32)
        self.input_norm = _batch_norm(1, 2)
        # Timbral convolutions span 40% and 70% of the mel axis (int(0.4 * 96) = 38, int(0.7 * 96) = 67).
        self.timbral_convs = nn.ModuleList(
            nn.Conv2d(1, timbral_filters, (7, int(share * n_mels))) for share in (0.4, 0.7)
        )
        self.timbral_norms = nn.ModuleList(_batch_norm(timbral_filters, 2) for _ in range(2))
        self.temporal_lengths = (128, 64, 32)
        self.temporal_convs = nn.ModuleList(
            nn.Conv2d(1, temporal_filters, (length, 1)) for length in self.temporal_lengths
        )
        self.temporal_norms = nn.ModuleList(_batch_norm(temporal_filters, 2) for _ in self.temporal_lengths)
        frontend_channels = 2 * timbral_filters + len(self.temporal_lengths) * temporal_filters
        self.midend_convs = nn.ModuleList(
            nn.Conv1d(channels, midend_filters, 7, padding=3)
            for channels in (frontend_channels, midend_filters, midend_filters)
        )
        self.midend_norms = nn.ModuleList(_batch_norm(midend_filters, 1) for _ in range(3))
        pooled_features = 2 * (frontend_channels + 3 * midend_filters)
        self.pool_norm = _batch_norm(pooled_features, 1)
        self.dense = nn.Linear(pooled_features, backend_units)
        self.dense_norm = _batch_norm(backend_units, 1)
        self.output = nn.Linear(backend_units, n_tags)

    def forward(self, log_mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, 187, 96) log-mel -> (taggram (batch, n_tags) in [0, 1], penultimate (batch, 200))."""
        x = self.input_norm(log_mel.unsqueeze(1))  # (B, 1, time, mel)
        frontend = []
        # Time-only 'same' padding for the timbral convs: frequency is max-pooled away anyway.
        timbral_input = F.pad(x, (0, 0, 3, 3))
        for conv, norm in zip(self.timbral_convs, self.timbral_norms):
            frontend.append(_relu_norm_max_over_frequency(conv(timbral_input), norm))
        for length, conv, norm in zip(self.temporal_lengths, self.temporal_convs, self.temporal_norms):
            # TensorFlow's 'same' puts the odd padding row after the signal.
            padded = F.pad(x, (0, 0, (length - 1) // 2, length // 2))
            frontend.append(_relu_norm_max_over_frequency(conv(padded), norm))
        features = torch.cat(frontend, dim=1)  # (B, 561, time)

        midend = [features]
        previous = features
        for index, (conv, norm) in enumerate(zip(self.midend_convs, self.midend_norms)):
            out = norm(F.relu(conv(previous)))
            previous = out if index == 0 else out + previous  # layers 2 and 3 are residual
            midend.append(previous)
        stacked = torch.cat(midend, dim=1)  # (B, 753, time)

        # TF concatenates (B, C, 1) max and mean maps on the last axis and flattens: max/mean interleave.
        pooled = torch.stack([stacked.amax(dim=2), stacked.mean(dim=2)], dim=2).flatten(1)
        penultimate = self.dense_norm(F.relu(self.dense(self.pool_norm(pooled))))
        taggram = torch.sigmoid(self.output(penultimate))
        return taggram, penultimate


# ---------------------------------------------------------------- weights


def musicnn_checkpoint_dir(name: str) -> Path:
    """Folder of the TF checkpoint inside the installed ``musicnn`` wheel (not imported: it needs TF)."""
    import importlib.util

    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the musicnn package is not installed (pip install --no-deps musicnn==0.1.0)")
    folder = Path(next(iter(spec.submodule_search_locations))) / name
    if not (folder / ".index").is_file():
        raise FileNotFoundError(f"no checkpoint {name} in {folder.parent}")
    return folder


def _batch_norm_state(prefix: str, tf_name: str, tensors: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}.weight": torch.from_numpy(tensors[f"{tf_name}/gamma"]),
        f"{prefix}.bias": torch.from_numpy(tensors[f"{tf_name}/beta"]),
        f"{prefix}.running_mean": torch.from_numpy(tensors[f"{tf_name}/moving_mean"]),
        f"{prefix}.running_var": torch.from_numpy(tensors[f"{tf_name}/moving_variance"]),
        f"{prefix}.num_batches_tracked": torch.tensor(0),
    }


def _conv2d_state(prefix: str, tf_name: str, tensors: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    kernel = tensors[f"{tf_name}/kernel"]  # (height, width, in, out) -> (out, in, height, width)
    return {
        f"{prefix}.weight": torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))),
        f"{prefix}.bias": torch.from_numpy(tensors[f"{tf_name}/bias"]),
    }


def _conv1d_state(prefix: str, tf_name: str, tensors: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    # The mid end convolves (time, channels, 1) maps with a full-width (7, channels) kernel: a Conv1d.
    kernel = tensors[f"{tf_name}/kernel"][:, :, 0, :]  # (7, in, out) -> (out, in, 7)
    return {
        f"{prefix}.weight": torch.from_numpy(np.ascontiguousarray(kernel.transpose(2, 1, 0))),
        f"{prefix}.bias": torch.from_numpy(tensors[f"{tf_name}/bias"]),
    }


def _dense_state(prefix: str, tf_name: str, tensors: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}.weight": torch.from_numpy(np.ascontiguousarray(tensors[f"{tf_name}/kernel"].T)),
        f"{prefix}.bias": torch.from_numpy(tensors[f"{tf_name}/bias"]),
    }


def convert_checkpoint(tensors: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Map TF variable names to ``MusicnnModel`` state-dict keys.

    tf.layers names layers by creation order in ``build_musicnn``: batch norms 0 (input), 1-2
    (timbral), 3-5 (temporal), 6-8 (mid end), 9 (pooled), 10 (dense); convs 0-1 timbral, 2-4
    temporal, 5-7 mid end; dense 0 penultimate, 1 output.
    """

    def bn_name(index: int) -> str:
        return "batch_normalization" if index == 0 else f"batch_normalization_{index}"

    def conv_name(index: int) -> str:
        return "conv2d" if index == 0 else f"conv2d_{index}"

    state = _batch_norm_state("input_norm", bn_name(0), tensors)
    for i in range(2):
        state |= _conv2d_state(f"timbral_convs.{i}", conv_name(i), tensors)
        state |= _batch_norm_state(f"timbral_norms.{i}", bn_name(1 + i), tensors)
    for i in range(3):
        state |= _conv2d_state(f"temporal_convs.{i}", conv_name(2 + i), tensors)
        state |= _batch_norm_state(f"temporal_norms.{i}", bn_name(3 + i), tensors)
        state |= _conv1d_state(f"midend_convs.{i}", conv_name(5 + i), tensors)
        state |= _batch_norm_state(f"midend_norms.{i}", bn_name(6 + i), tensors)
    state |= _batch_norm_state("pool_norm", bn_name(9), tensors)
    state |= _dense_state("dense", "dense", tensors)
    state |= _batch_norm_state("dense_norm", bn_name(10), tensors)
    state |= _dense_state("output", "dense_1", tensors)
    return {key: value.clone() for key, value in state.items()}  # own the memory, not the memmap


def cached_weights_path(name: str, models_dir: str | os.PathLike) -> Path:
    return Path(models_dir).expanduser() / "musicnn" / f"{name}.pt"


def load_musicnn(name: str, models_dir: str | os.PathLike) -> MusicnnModel:
    """A Musicnn model in eval mode; converts the wheel's TF checkpoint on first use and caches it."""
    if name not in TAGS:
        raise ValueError(f"unknown Musicnn model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    cache = cached_weights_path(name, models_dir)
    if cache.is_file():
        state = torch.load(cache, map_location="cpu", weights_only=True)
    else:
        state = convert_checkpoint(load_checkpoint(f"{musicnn_checkpoint_dir(name)}{os.sep}"))
        write_atomic(cache, lambda temporary: torch.save(state, temporary))
    model = MusicnnModel(n_tags=len(TAGS[name]))
    model.load_state_dict(state)
    return model.eval()


def predict_windows(
    model: MusicnnModel, windows: np.ndarray, batch_size: int = 64, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Taggram (n, n_tags) and penultimate features (n, 200) of (n, 187, 96) log-mel windows."""
    n_windows = len(windows)
    taggram = np.zeros((n_windows, model.output.out_features), dtype=np.float32)
    penultimate = np.zeros((n_windows, model.dense.out_features), dtype=np.float32)
    starts = range(0, n_windows, batch_size)
    with torch.inference_mode():
        for start in tqdm(starts, desc="musicnn", unit="batch", disable=not progress):
            batch = torch.from_numpy(np.ascontiguousarray(windows[start : start + batch_size], dtype=np.float32))
            tags, features = model(batch)
            taggram[start : start + len(batch)] = tags.numpy()
            penultimate[start : start + len(batch)] = features.numpy()
    return taggram, penultimate


# ---------------------------------------------------------------- vocalness

# MagnaTagATune tags that say a voice is present, and those that say none is.
VOCAL_TAGS = (
    "vocal", "vocals", "singing", "voice", "male vocal", "female vocal", "male voice", "female voice",
    "choir", "choral", "opera", "woman", "man", "female", "male",
)  # fmt: skip
NO_VOCAL_TAGS = ("no vocal", "no vocals", "no voice")
# Multiplies the no-vocal evidence: above 1 a window needs more vocal evidence to score >= 0.5.
NO_VOCAL_WEIGHT = 1.0
# Slope of the score in log-evidence units: above 1 pushes scores towards 0 and 1.
VOCALNESS_SHARPNESS = 1.0


def zero_shot_vocalness(
    taggram: np.ndarray,
    tags: tuple[str, ...] | list[str] = MTT_TAGS,
    no_vocal_weight: float = NO_VOCAL_WEIGHT,
    sharpness: float = VOCALNESS_SHARPNESS,
) -> np.ndarray:
    """Vocalness in [0, 1] of each window from an MTT taggram (n, 50), without training.

    The evidence for a voice is the mean probability of the vocal tags, the evidence against it
    the mean of the no-vocal tags; the score is
    ``sigmoid(sharpness * (log(vocal) - log(no_vocal_weight * no_vocal)))``, i.e. with the defaults
    ``vocal / (vocal + no_vocal)``. Means rather than maxima: MTT's gender tags ("female", "woman")
    fire weakly on instrumental music, and one of fifteen tags outvotes the three negatives too easily.
    A ratio rather than raw probabilities: MTT probabilities are small and shift with the genre.
    """
    taggram = np.asarray(taggram, dtype=np.float64)
    missing = [tag for tag in (*VOCAL_TAGS, *NO_VOCAL_TAGS) if tag not in tags]
    if missing:
        raise ValueError(f"zero-shot vocalness needs the MTT tags; missing {missing}")
    vocal = taggram[:, [tags.index(tag) for tag in VOCAL_TAGS]].mean(axis=1)
    no_vocal = taggram[:, [tags.index(tag) for tag in NO_VOCAL_TAGS]].mean(axis=1)
    tiny = np.finfo(np.float64).tiny  # a sigmoid output can underflow to 0
    log_odds = np.log(np.maximum(vocal, tiny)) - np.log(np.maximum(no_vocal_weight * no_vocal, tiny))
    return (1.0 / (1.0 + np.exp(-sharpness * log_odds))).astype(np.float32)


class VocalHead(nn.Module):
    """Trained vocalness: a linear layer on Musicnn's 200-d penultimate features, classes (no voice, voice)."""

    def __init__(self, musicnn_model: str = "MTT_musicnn", in_features: int = 200):
        super().__init__()
        self.musicnn_model = musicnn_model  # the features it was trained on; saved with the weights
        self.linear = nn.Linear(in_features, 2)

    def forward(self, penultimate: torch.Tensor) -> torch.Tensor:
        """Logits (n, 2)."""
        return self.linear(penultimate)

    def vocalness(self, penultimate: np.ndarray) -> np.ndarray:
        """Probability of the voice class for each window: (n,) float32 in [0, 1]."""
        with torch.inference_mode():
            logits = self(torch.from_numpy(np.ascontiguousarray(penultimate, dtype=np.float32)))
            return torch.softmax(logits, dim=1)[:, 1].numpy()

    def save(self, path: str | os.PathLike) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"musicnn_model": self.musicnn_model, "state_dict": dict(self.state_dict())}, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "VocalHead":
        saved = torch.load(path, map_location="cpu", weights_only=True)
        state = saved["state_dict"]
        head = cls(musicnn_model=saved["musicnn_model"], in_features=state["linear.weight"].shape[1])
        head.load_state_dict(state)
        return head.eval()
