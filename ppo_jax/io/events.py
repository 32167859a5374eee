"""TensorBoard event files without a writer object: protobuf's wire format and
TFRecord framing, for many events at once.

An event is a row of a byte matrix; ``mask`` says which bytes of the row are its own,
so ``data[mask]`` is every event's bytes, one after the other. ``scalar_events``
encodes a chunk's scalars for every seed at once, ``tfrecords`` frames them with their
CRC-32C checksums (computed a column at a time over all rows, in numpy). Plain numpy:
no protobuf objects per value, no JAX.
"""

from __future__ import annotations

from typing import Optional

import numpy as np


def rows(records: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Byte strings as a left-aligned byte matrix and its mask."""
    lengths = np.array([len(r) for r in records], np.int64)
    mask = np.arange(max(lengths, default=0))[None, :] < lengths[:, None]
    data = np.zeros(mask.shape, np.uint8)
    data[mask] = np.frombuffer(b"".join(records), np.uint8)
    return data, mask


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _varints(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Protobuf varints of non-negative integers ``n[E]``: bytes ``[E, 10]`` and their mask."""
    groups = (np.asarray(n).astype(np.uint64)[:, None] >> (7 * np.arange(10, dtype=np.uint64))) & np.uint64(
        0x7F
    )
    nonzero = groups != 0
    count = np.where(nonzero.any(1), 10 - np.argmax(nonzero[:, ::-1], axis=1), 1)[:, None]  # 7 bits a byte
    index = np.arange(10)
    more = (index < count - 1).astype(np.uint64) << np.uint64(7)  # the continuation bit
    return (groups | more).astype(np.uint8), index < count


def scalar_events(tags: list[str], values: np.ndarray, steps: np.ndarray, wall_time: float):
    """``Event(wall_time, step, summary=Summary(value=[Value(tag, simple_value), ...]))``
    for ``values[tag, seed, update]`` at ``steps[seed, update]``, in protobuf's
    wire format (the bytes the generated classes give, without an object per
    value), seed-major: ``(data, mask)`` as in ``rows``. Non-finite values are
    left out: no finished episode gives no point rather than NaN."""
    num = values.shape[1] * values.shape[2]
    values = values.reshape(len(tags), num).T  # [events, tags]
    finite = np.isfinite(values)
    body, masks = [], []
    for k, tag in enumerate(tags):
        name = tag.encode()
        value = b"\x0a" + _varint(len(name)) + name + b"\x15"  # tag (1: a string), simple_value (2: a float)
        prefix = b"\x0a" + _varint(len(value) + 4) + value  # Summary.value (1: a message)
        body += [
            np.broadcast_to(np.frombuffer(prefix, np.uint8), (num, len(prefix))),
            values[:, k].astype("<f4").view(np.uint8).reshape(num, 4),
        ]
        masks.append(np.repeat(finite[:, k : k + 1], len(prefix) + 4, axis=1))
    body_mask = np.concatenate(masks, axis=1)
    head = (
        b"\x09" + np.float64(wall_time).astype("<f8").tobytes() + b"\x10"
    )  # wall_time (1: double), step (2)
    step_bytes, step_mask = _varints(steps.reshape(num))
    size_bytes, size_mask = _varints(body_mask.sum(1))
    ones = lambda width: np.ones((num, width), bool)
    data = np.concatenate(
        [
            np.broadcast_to(np.frombuffer(head, np.uint8), (num, len(head))),
            step_bytes,
            np.full((num, 1), 0x2A, np.uint8),
            size_bytes,
            *body,
        ],
        axis=1,
    )  # summary (5)
    mask = np.concatenate([ones(len(head)), step_mask, ones(1), size_mask, body_mask], axis=1)
    return data, mask


def tfrecords(data: np.ndarray, mask: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Every event as a TFRecord (length, its masked CRC, the event, its masked
    CRC), one after the other, and each record's size."""
    lengths = mask.sum(1).astype("<u8")
    header = lengths[:, None].view(np.uint8)
    as_bytes = lambda crc: crc.astype("<u4")[:, None].view(np.uint8)
    full = np.concatenate(
        [header, as_bytes(_masked(_crc32c_rows(header))), data, as_bytes(_masked(_crc32c_rows(data, mask)))],
        axis=1,
    )
    ones = np.ones((len(data), 12), bool)
    return full[np.concatenate([ones, mask, ones[:, :4]], axis=1)].tobytes(), lengths.astype(np.int64) + 16


def _crc32c_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0x82F63B78), table >> 1).astype(np.uint32)
    return table


_CRC32C_TABLE = _crc32c_table()


def _crc32c_rows(data: np.ndarray, mask: Optional[np.ndarray] = None) -> np.ndarray:
    """CRC-32C of each row's bytes (those in ``mask``), all rows at once: one
    numpy step per column, so the cost grows with the widest row, not with the
    number of rows."""
    crc = np.full(len(data), 0xFFFFFFFF, np.uint32)
    for c in range(data.shape[1]):
        new = _CRC32C_TABLE[(crc ^ data[:, c]) & 0xFF] ^ (crc >> 8)
        live = None if mask is None else mask[:, c]
        crc = new if live is None or live.all() else np.where(live, new, crc)
    return crc ^ np.uint32(0xFFFFFFFF)


def _masked(crc: np.ndarray) -> np.ndarray:
    """A TFRecord's checksum: the CRC rotated right by 15 bits plus a constant."""
    crc = crc.astype(np.uint64)
    return (((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF).astype(np.uint32)


def crc32c(records: list[bytes]) -> np.ndarray:
    """CRC-32C (Castagnoli) of each byte string."""
    return _crc32c_rows(*rows(records))


def masked_crc32c(records: list[bytes]) -> np.ndarray:
    """The TFRecord checksum of each byte string."""
    return _masked(crc32c(records))
