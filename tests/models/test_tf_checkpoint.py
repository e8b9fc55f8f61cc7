"""The numpy-only TF checkpoint reader on the real checkpoints of the musicnn wheel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from livi_tasks.models.musicnn import musicnn_checkpoint_dir
from livi_tasks.models.tf_checkpoint import CheckpointFormatError, load_checkpoint, read_index


@pytest.fixture(scope="module")
def checkpoint() -> Path:
    return musicnn_checkpoint_dir("MTT_musicnn")


def test_index_entries_tile_the_data_file(checkpoint: Path) -> None:
    entries = read_index(checkpoint / ".index")
    assert len(entries) == 150  # 64 model tensors, 84 Adam slots (2 per trainable variable), 2 beta powers
    spans = sorted((entry.offset, entry.size) for entry in entries.values())
    position = 0
    for offset, size in spans:
        assert offset == position, "tensors are stored back to back"
        position += size
    assert position == (checkpoint / ".data-00000-of-00001").stat().st_size
    kernel = entries["conv2d/kernel"]
    assert (kernel.dtype, kernel.shape, kernel.shard_id) == (1, (7, 38, 1, 204), 0)


def test_load_skips_optimizer_slots_by_default(checkpoint: Path) -> None:
    tensors = load_checkpoint(f"{checkpoint}/")
    assert len(tensors) == 64  # 11 batch norms x 4, 10 kernels and biases
    assert not [name for name in tensors if "Adam" in name or name.endswith("_power")]
    assert tensors["dense/kernel"].shape == (1506, 200)
    assert tensors["dense/kernel"].dtype == np.float32
    assert np.isfinite(tensors["dense/kernel"]).all()
    # Inference batch-norm statistics: variances positive, the input norm has one channel.
    assert (tensors["batch_normalization_9/moving_variance"] > 0).all()
    assert tensors["batch_normalization/moving_mean"].shape == (1,)

    everything = load_checkpoint(f"{checkpoint}/", skip_optimizer_slots=False)
    assert "conv2d/kernel/Adam" in everything and "beta1_power" in everything
    np.testing.assert_array_equal(everything["conv2d/kernel"], tensors["conv2d/kernel"])


def test_rejects_files_that_are_not_checkpoints(tmp_path: Path) -> None:
    not_a_table = tmp_path / "model.index"
    not_a_table.write_bytes(b"\0" * 100)
    with pytest.raises(CheckpointFormatError, match="magic"):
        read_index(not_a_table)
    too_short = tmp_path / "short.index"
    too_short.write_bytes(b"abc")
    with pytest.raises(CheckpointFormatError, match="too short"):
        read_index(too_short)


def test_rejects_compressed_blocks(checkpoint: Path, tmp_path: Path) -> None:
    table = bytearray((checkpoint / ".index").read_bytes())
    # The footer starts with two block handles (metaindex, index) as varints (offset, size); the
    # byte after a block is its compression type.
    _, _, index_offset, index_size = _varints(bytes(table[-48:]), 4)
    table[index_offset + index_size] = 1  # snappy
    index = tmp_path / ".index"
    index.write_bytes(bytes(table))
    with pytest.raises(CheckpointFormatError, match="compressed"):
        read_index(index)


def _varints(buffer: bytes, count: int) -> list[int]:
    values, value, shift = [], 0, 0
    for byte in buffer:
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            values.append(value)
            value, shift = 0, 0
            if len(values) == count:
                break
    return values
