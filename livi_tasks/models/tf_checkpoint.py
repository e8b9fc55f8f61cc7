"""Read TensorFlow v2-format checkpoints with numpy alone, so that no stage depends on TensorFlow.

A checkpoint ``<prefix>`` is two files:

- ``<prefix>.index``: a LevelDB-style sorted string table. Keys are tensor names; the value of the
  empty key is a ``BundleHeaderProto``, every other value a ``BundleEntryProto`` (dtype, shape,
  shard, byte offset, byte size, crc32c) encoded as protobuf, decoded here by hand.
- ``<prefix>.data-<shard>-of-<count>``: the raw little-endian tensor bytes.

Only uncompressed tables are supported: TensorFlow writes bundle indexes without compression.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_BYTES = 48  # two varint block handles padded to 40 bytes, then the 8-byte magic

# TensorFlow DataType enum values (types.proto) that can hold model weights or counters.
NUMPY_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),  # DT_FLOAT
    2: np.dtype("<f8"),  # DT_DOUBLE
    3: np.dtype("<i4"),  # DT_INT32
    4: np.dtype("u1"),  # DT_UINT8
    5: np.dtype("<i2"),  # DT_INT16
    6: np.dtype("i1"),  # DT_INT8
    9: np.dtype("<i8"),  # DT_INT64
    10: np.dtype("?"),  # DT_BOOL
    19: np.dtype("<f2"),  # DT_HALF
}


class CheckpointFormatError(ValueError):
    """The files are not a TensorFlow v2 checkpoint this reader understands."""


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor lives in the data shards (a decoded ``BundleEntryProto``)."""

    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int


def _read_varint(buffer: bytes, position: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        byte = buffer[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def _protobuf_fields(message: bytes) -> list[tuple[int, int | bytes]]:
    """Split a protobuf message into (field number, value): varints as ints, others as bytes."""
    fields: list[tuple[int, int | bytes]] = []
    position = 0
    while position < len(message):
        tag, position = _read_varint(message, position)
        field_number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            value, position = _read_varint(message, position)
            fields.append((field_number, value))
        elif wire_type == 1:
            fields.append((field_number, message[position : position + 8]))
            position += 8
        elif wire_type == 2:
            length, position = _read_varint(message, position)
            fields.append((field_number, message[position : position + length]))
            position += length
        elif wire_type == 5:
            fields.append((field_number, message[position : position + 4]))
            position += 4
        else:
            raise CheckpointFormatError(f"unsupported protobuf wire type {wire_type}")
    return fields


def _decode_shape(message: bytes) -> tuple[int, ...]:
    """TensorShapeProto: repeated Dim (field 2) whose size is field 1."""
    dims = []
    for field_number, value in _protobuf_fields(message):
        if field_number == 2:
            size = next((v for f, v in _protobuf_fields(value) if f == 1), 0)
            dims.append(size)
        elif field_number == 3 and value:
            raise CheckpointFormatError("tensor of unknown rank")
    return tuple(dims)


def _decode_entry(message: bytes) -> TensorEntry:
    values: dict[str, object] = {"dtype": 0, "shape": (), "shard_id": 0, "offset": 0, "size": 0}
    for field_number, value in _protobuf_fields(message):
        if field_number == 1:
            values["dtype"] = value
        elif field_number == 2:
            values["shape"] = _decode_shape(value)
        elif field_number == 3:
            values["shard_id"] = value
        elif field_number == 4:
            values["offset"] = value
        elif field_number == 5:
            values["size"] = value
        elif field_number == 7:
            raise CheckpointFormatError("partitioned (sliced) tensors are not supported")
    return TensorEntry(**values)  # type: ignore[arg-type]


def _read_block(table: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """Decode one table block into its (key, value) entries; keys are prefix-compressed."""
    if table[offset + size] != 0:
        raise CheckpointFormatError("compressed table blocks are not supported")
    block = table[offset : offset + size]
    (restart_count,) = struct.unpack_from("<I", block, len(block) - 4)
    entries_end = len(block) - 4 - 4 * restart_count
    entries = []
    key = b""
    position = 0
    while position < entries_end:
        shared, position = _read_varint(block, position)
        unshared, position = _read_varint(block, position)
        value_length, position = _read_varint(block, position)
        key = key[:shared] + block[position : position + unshared]
        position += unshared
        entries.append((key, block[position : position + value_length]))
        position += value_length
    return entries


def _block_handle(encoded: bytes, position: int = 0) -> tuple[int, int, int]:
    offset, position = _read_varint(encoded, position)
    size, position = _read_varint(encoded, position)
    return offset, size, position


def read_index(index_path: str | Path) -> dict[str, TensorEntry]:
    """Every tensor entry of a checkpoint's ``.index`` file, by tensor name."""
    table = Path(index_path).read_bytes()
    if len(table) < FOOTER_BYTES:
        raise CheckpointFormatError(f"{index_path} is too short to be a checkpoint index")
    footer = table[-FOOTER_BYTES:]
    (magic,) = struct.unpack_from("<Q", footer, FOOTER_BYTES - 8)
    if magic != TABLE_MAGIC:
        raise CheckpointFormatError(f"{index_path} lacks the table magic number")
    _, _, position = _block_handle(footer)  # the metaindex block is empty in bundle indexes
    index_offset, index_size, _ = _block_handle(footer, position)
    entries: dict[str, TensorEntry] = {}
    for _, handle in _read_block(table, index_offset, index_size):
        block_offset, block_size, _ = _block_handle(handle)
        for key, value in _read_block(table, block_offset, block_size):
            if key:  # the empty key holds the BundleHeaderProto, not a tensor
                entries[key.decode()] = _decode_entry(value)
    return entries


def _data_path(prefix: str, shard_id: int, shard_count: int) -> Path:
    return Path(f"{prefix}.data-{shard_id:05d}-of-{shard_count:05d}")


def load_checkpoint(prefix: str | Path, skip_optimizer_slots: bool = True) -> dict[str, np.ndarray]:
    """All tensors of the checkpoint ``prefix`` (the path without ``.index``) as numpy arrays.

    A prefix may end in a separator: musicnn's checkpoints are ``<folder>/.index`` and
    ``<folder>/.data-00000-of-00001``, so the prefix is kept as a string (``Path`` would drop the
    trailing ``/``). ``skip_optimizer_slots`` drops Adam moments and power accumulators, which
    inference never needs.
    """
    prefix = str(prefix)
    entries = read_index(f"{prefix}.index")
    shard_count = 1 + max((entry.shard_id for entry in entries.values()), default=0)
    shards = {
        shard_id: np.memmap(_data_path(prefix, shard_id, shard_count), dtype=np.uint8, mode="r")
        for shard_id in {entry.shard_id for entry in entries.values()}
    }
    tensors = {}
    for name, entry in sorted(entries.items()):
        if skip_optimizer_slots and _is_optimizer_slot(name):
            continue
        if entry.dtype not in NUMPY_DTYPES:
            raise CheckpointFormatError(f"{name}: unsupported TensorFlow dtype {entry.dtype}")
        dtype = NUMPY_DTYPES[entry.dtype]
        expected_size = int(np.prod(entry.shape, dtype=np.int64)) * dtype.itemsize
        if entry.size != expected_size:
            raise CheckpointFormatError(f"{name}: {entry.size} bytes stored, shape needs {expected_size}")
        raw = shards[entry.shard_id][entry.offset : entry.offset + entry.size]
        tensors[name] = np.frombuffer(raw.tobytes(), dtype=dtype).reshape(entry.shape).astype(dtype.newbyteorder("="))
    return tensors


def _is_optimizer_slot(name: str) -> bool:
    leaf = name.rsplit("/", 1)[-1]
    return leaf.startswith("Adam") or leaf in {"beta1_power", "beta2_power"}
