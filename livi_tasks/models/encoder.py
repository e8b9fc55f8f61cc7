"""The LIVI audio encoder: the frozen Whisper encoder plus a small trainable head.

The head pools Whisper's frame states with one learnable [CLS] query (class attention), then
projects the pooled vector into the text-embedding space and L2-normalises it, so that cosine
similarity between audio embeddings approximates the similarity of the lyrics they carry. Only
the head has parameters to train: Whisper's encoder is frozen, which is why its frame states can
be computed once and cached (livi_tasks.stages.features).

A head is saved as a plain tensor state dict (``torch.load(weights_only=True)``-loadable) plus a
JSON config that rebuilds it.
"""

from __future__ import annotations

import copy
import functools
import io
import json
import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
import whisper
from torch import nn
from whisper.model import AudioEncoder, Whisper

if TYPE_CHECKING:
    from livi_tasks.core.config import EncoderConfig

CUDA_CLIPS_PER_PASS = 8


class LiviHead(nn.Module):
    """Class-attention pooling of frame states -> MLP projection -> unit vector of ``text_dim``."""

    def __init__(
        self,
        width: int,
        text_dim: int,
        hidden_dim: int = 512,
        attention_heads: int = 4,
        dropout: float = 0.1,
        frame_mask: float = 0.0,
        layers: int = 1,
    ):
        super().__init__()
        if width % attention_heads:
            raise ValueError(f"frame width {width} is not divisible by {attention_heads} attention heads")
        if not 0 <= frame_mask < 1:
            raise ValueError(f"frame_mask {frame_mask} is not in [0, 1)")
        self.settings = {
            "width": width,
            "text_dim": text_dim,
            "hidden_dim": hidden_dim,
            "attention_heads": attention_heads,
            "dropout": dropout,
            "frame_mask": frame_mask,
        }
        if layers > 1:  # only then in the settings: a one-layer head's config stays as it was
            self.settings["layers"] = layers
            # A learned softmax mix of every encoder block's output, each layer-normed first.
            self.layer_logits = nn.Parameter(torch.zeros(layers))
            self.layer_norm = nn.LayerNorm(width, elementwise_affine=False)
        # Small init: the query starts near the mean of the frames instead of a random direction.
        self.cls_query = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.attention = nn.MultiheadAttention(width, attention_heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(width)
        self.projection = nn.Sequential(
            nn.Linear(width, hidden_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, text_dim),
        )

    @classmethod
    def from_settings(cls, width: int, text_dim: int, settings: "EncoderConfig", layers: int = 1) -> "LiviHead":
        """A fresh head shaped by the encoder section of the config (reading ``layers`` encoder layers)."""
        return cls(
            width,
            text_dim,
            settings.hidden_dim,
            settings.attention_heads,
            settings.dropout,
            settings.frame_mask,
            layers,
        )

    def forward(self, frame_states: torch.Tensor, hidden: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, frames, width) -> (batch, text_dim), unit length; a head reading several encoder
        layers takes (batch, layers, frames, width). ``hidden`` (batch, frames), true for frames the
        pooling must not see (e.g. frames without singing)."""
        if "layers" in self.settings:
            mix = self.layer_logits.softmax(dim=0)
            frame_states = torch.einsum("l,bltw->btw", mix, self.layer_norm(frame_states))
        return F.normalize(self.projection(self.norm(self.pool(frame_states, hidden))), dim=-1)

    def pool(self, frame_states: torch.Tensor, hidden: torch.Tensor | None = None) -> torch.Tensor:
        """The [CLS] query's attention output (batch, width): ``self.attention`` computed with one query.

        With a single query, softmax(q W_k x_t) needs only x_t . (W_k^T q) and the value
        projection commutes with the weighted sum, so neither keys nor values are projected frame
        by frame: O(frames x width x heads) instead of O(frames x width^2), about 100x fewer
        operations for 1500 frames, which makes training epochs and inference of the head cheap.
        The result equals nn.MultiheadAttention's (a test checks it).
        """
        heads = self.settings["attention_heads"]
        width = frame_states.shape[-1]
        head_dim = width // heads
        w_q, w_k, w_v = self.attention.in_proj_weight.chunk(3)
        b_q, _, b_v = self.attention.in_proj_bias.chunk(3)  # the key bias adds a constant per head: softmax drops it
        query = (self.cls_query.reshape(width) @ w_q.T + b_q).reshape(heads, head_dim) / math.sqrt(head_dim)
        key_directions = torch.einsum("hd,hdw->hw", query, w_k.reshape(heads, head_dim, width))
        logits = torch.einsum("btw,hw->bht", frame_states, key_directions)
        masked = self._training_mask(frame_states)
        if hidden is not None and masked is not None:
            # Never hide every frame of an example: where the random mask and ``hidden`` together
            # would, only ``hidden`` applies (it always leaves frames to pool).
            combined = masked | hidden
            masked = torch.where(combined.all(dim=-1, keepdim=True), hidden, combined)
        elif hidden is not None:
            masked = hidden
        if masked is not None:
            logits = logits.masked_fill(masked[:, None, :], float("-inf"))
        weights = F.dropout(logits.softmax(dim=-1), p=self.attention.dropout, training=self.training)
        pooled_frames = torch.einsum("bht,btw->bhw", weights, frame_states)
        values = torch.einsum("bhw,hdw->bhd", pooled_frames, w_v.reshape(heads, head_dim, width))
        values = values + b_v.reshape(heads, head_dim) * weights.sum(dim=-1, keepdim=True)
        return self.attention.out_proj(values.reshape(-1, width))

    def _training_mask(self, frame_states: torch.Tensor) -> torch.Tensor | None:
        """While training, hide a random ``frame_mask`` share of each example's frames from the pooling.

        With a few hundred training segments the head otherwise memorises them; seeing a
        different subset of frames each epoch makes it read the words rather than the clip.
        """
        rate = self.settings["frame_mask"]
        if not self.training or rate == 0:
            return None
        hidden = torch.rand(frame_states.shape[:2], device=frame_states.device) < rate
        hidden[:, 0] = False  # never hide every frame of an example
        return hidden

    def config(self) -> dict[str, Any]:
        return dict(self.settings)


class HeadEnsemble(nn.Module):
    """Heads trained alike from different seeds, answering as one: the mean of their unit
    outputs, renormalised. One training seed moves a family's MAP by up to 0.15 (BENCHMARKS.md);
    the mean of several is steadier, and costs one head pass each on frame states already computed."""

    def __init__(self, members: list[LiviHead]):
        super().__init__()
        if len({json.dumps(member.config(), sort_keys=True) for member in members}) != 1:
            raise ValueError("the members of an ensemble must share one config")
        self.members = nn.ModuleList(members)
        self.settings = {**members[0].config(), "members": len(members)}

    def forward(self, frame_states: torch.Tensor, hidden: torch.Tensor | None = None) -> torch.Tensor:
        outputs = torch.stack([member(frame_states, hidden) for member in self.members])
        return F.normalize(outputs.mean(dim=0), dim=-1)

    def config(self) -> dict[str, Any]:
        return dict(self.settings)


def head_to_bytes(head: LiviHead | HeadEnsemble, storage: torch.dtype = torch.float32) -> tuple[bytes, bytes]:
    """(weights, config) as bytes: a tensor-only state dict, its floating tensors stored as
    ``storage`` (loading casts them back into the float32 parameters), and its JSON config."""
    buffer = io.BytesIO()
    state = {
        name: (tensor.to(storage) if tensor.is_floating_point() else tensor).detach().cpu().clone()
        for name, tensor in head.state_dict().items()
    }
    torch.save(state, buffer)
    return buffer.getvalue(), json.dumps(head.config(), indent=2, sort_keys=True).encode()


def head_from_bytes(weights: bytes, config: bytes | dict[str, Any]) -> LiviHead | HeadEnsemble:
    settings = json.loads(config) if isinstance(config, (bytes, str)) else dict(config)
    members = settings.pop("members", 0)
    head = HeadEnsemble([LiviHead(**settings) for _ in range(members)]) if members else LiviHead(**settings)
    head.load_state_dict(torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True))
    return head.eval()


def _audio_encoder(whisper_model: Whisper | AudioEncoder) -> AudioEncoder:
    return whisper_model.encoder if isinstance(whisper_model, Whisper) else whisper_model


def frame_width(whisper_model: Whisper | AudioEncoder) -> int:
    return _audio_encoder(whisper_model).ln_post.normalized_shape[0]


def encode_frames(
    whisper_model: Whisper | AudioEncoder, audio_16k_batch: np.ndarray | torch.Tensor, all_layers: bool = False
) -> torch.Tensor:
    """Frame states (batch, 1500, width), float32, of 16 kHz mono clips padded or trimmed to 30 s;
    with ``all_layers``, every block's output (batch, layers, 1500, width), the last one the usual
    (layer-normed) output.

    The log-mel is computed per clip: whisper.log_mel_spectrogram clamps to 8 dB below the
    maximum of its whole input, so a batched call would let one loud clip change the others.
    """
    encoder = _audio_encoder(whisper_model)
    device = encoder.conv1.weight.device
    n_mels = encoder.conv1.in_channels
    clips = torch.as_tensor(
        np.asarray(audio_16k_batch, dtype=np.float32) if not torch.is_tensor(audio_16k_batch) else audio_16k_batch
    )
    clips = clips.to(device=device, dtype=torch.float32)
    if clips.ndim == 1:
        clips = clips[None]
    mels = torch.stack([whisper.log_mel_spectrogram(whisper.pad_or_trim(clip), n_mels=n_mels) for clip in clips])
    step = clips_per_pass(device.type)
    blocks = getattr(encoder, "encoder", encoder).blocks  # the bf16 wrapper holds the encoder
    outputs: list[torch.Tensor] = []
    capture = blocks[:-1] if all_layers else []
    hooks = [block.register_forward_hook(lambda _, __, out: outputs.append(out.float())) for block in capture]
    try:
        with torch.inference_mode():
            states = []
            for start in range(0, len(mels), step):
                outputs.clear()
                last = encoder(mels[start : start + step]).float()
                states.append(torch.stack([*outputs, last], dim=1) if all_layers else last)
            return torch.cat(states)
    finally:
        for hook in hooks:
            hook.remove()


def clips_per_pass(device: str) -> int:
    """Clips per encoder forward pass. On the CPU one: batching made each clip slower (tiny.en on
    2 cores, seconds per clip alone / in twos / in fours: fp32 0.187 / 0.206 / 0.216, int8 0.101 /
    0.126 / 0.125), as the attention's (heads, 1500, 1500) buffers outgrow the caches. On CUDA a
    batch fills the device."""
    return CUDA_CLIPS_PER_PASS if device == "cuda" else 1


class LiviEncoder(nn.Module):
    """Frozen Whisper encoder + trainable LiviHead: 16 kHz audio clips -> unit embeddings."""

    def __init__(self, whisper_model: Whisper | AudioEncoder, head: LiviHead | HeadEnsemble):
        super().__init__()
        self.whisper_encoder = _audio_encoder(whisper_model)
        if frame_width(self.whisper_encoder) != head.settings["width"]:
            raise ValueError(
                f"head expects frame width {head.settings['width']}, "
                f"the Whisper encoder gives {frame_width(self.whisper_encoder)}"
            )
        self.whisper_encoder.requires_grad_(False)
        self.whisper_encoder.eval()
        self.head = head

    def train(self, mode: bool = True) -> "LiviEncoder":
        # The Whisper encoder stays in eval mode whatever the head does: it is frozen.
        super().train(mode)
        self.whisper_encoder.eval()
        return self

    def forward(self, audio_16k_batch: np.ndarray | torch.Tensor) -> torch.Tensor:
        return self.head(encode_frames(self.whisper_encoder, audio_16k_batch).clone())


def _plain_linears(module: nn.Module) -> nn.Module:
    """Whisper's Linear subclass as torch's nn.Linear, the type dynamic quantisation recognises."""
    for name, child in module.named_children():
        if isinstance(child, nn.Linear) and type(child) is not nn.Linear:
            plain = nn.Linear(child.in_features, child.out_features, bias=child.bias is not None)
            plain.load_state_dict(child.state_dict())
            setattr(module, name, plain)
        else:
            _plain_linears(child)
    return module


def quantised_int8(encoder: AudioEncoder) -> AudioEncoder:
    """A copy of the encoder with int8 dynamic quantisation (CPU only: int8 weights, activations
    quantised per call) of its attention projections and MLP up-projections. The MLP
    down-projections stay fp32: their inputs, GELU outputs with a few large values, lose too much
    to one int8 scale (base's LIVI embeddings: cosine to fp32 0.86 with them quantised, 0.993
    without; tiny.en 0.98 / 0.996). The convolutions, norms and attention products stay fp32."""
    plain = _plain_linears(copy.deepcopy(encoder)).eval()
    quantised = {
        name for name, module in plain.named_modules() if isinstance(module, nn.Linear) and not name.endswith("mlp.2")
    }
    with warnings.catch_warnings():
        # torch 2.13 announces that its quantized tensor API moves to torchao; torch is pinned here.
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor", category=UserWarning)
        return torch.ao.quantization.quantize_dynamic(plain, quantised, dtype=torch.qint8)


class Bfloat16Encoder(nn.Module):
    """The encoder run under bf16 autocast: matrix products in bfloat16, norms, softmax and the
    returned states in fp32. Fast only where the hardware has bf16 arithmetic (CUDA, CPUs with
    AVX512-BF16 or AMX); elsewhere several times slower than fp32 (BENCHMARKS.md)."""

    def __init__(self, encoder: AudioEncoder):
        super().__init__()
        self.encoder = encoder
        self.conv1, self.ln_post = encoder.conv1, encoder.ln_post  # what encode_frames and frame_width read

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        with torch.autocast(mel.device.type, dtype=torch.bfloat16):
            return self.encoder(mel).float()


@functools.lru_cache(maxsize=4)
def inference_encoder(whisper_model: Whisper | AudioEncoder, precision: str, device: str) -> nn.Module:
    """The frozen encoder that inference runs (``encoder.inference_precision``): as loaded (fp32),
    int8 on the CPU (torch's dynamic quantisation has no CUDA kernels: CUDA keeps fp32), or bf16."""
    encoder = _audio_encoder(whisper_model)
    if precision == "int8" and device == "cpu":
        return quantised_int8(encoder)
    if precision == "bf16":
        return Bfloat16Encoder(encoder)
    return encoder


def resolve_device(setting: str) -> str:
    """``auto`` -> cuda when present, else cpu; ``cpu``/``cuda`` as given."""
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return setting
