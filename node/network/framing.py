"""Explicit framing for our stream protocols (blob exchange, block sync).

py-libp2p's `read_exactly` gives up after 100 short reads, so anything above ~6.5 MiB fails
on Yamux (docs/libp2p-compat.md). We frame ourselves: fixed-size big-endian headers, then a
`stream.read(n)` loop until exactly `n` bytes arrived, all under a trio deadline. Every
length read from a peer is checked against a limit *before* anything is allocated.
"""

from __future__ import annotations

import struct
from typing import Protocol

import trio

READ_CHUNK = 1 << 20  # bytes asked per read: large enough to keep Yamux busy
WRITE_CHUNK = 1 << 20


class FramingError(Exception):
    """The peer broke the framing: short stream, bad length, bad status (the peer's fault)."""


class ByteStream(Protocol):
    async def read(self, n: int | None = -1) -> bytes: ...

    async def write(self, data: bytes) -> None: ...


async def read_exactly(stream: ByteStream, n: int, *, on_bytes: object = None) -> bytes:
    """Read exactly `n` bytes or raise `FramingError`; the caller sets the deadline."""
    parts: list[bytes] = []
    remaining = n
    while remaining:
        try:
            chunk = await stream.read(min(remaining, READ_CHUNK))
        except trio.Cancelled:
            raise
        except Exception as exc:  # StreamEOF / StreamReset / MuxedStreamEOF / IOException
            raise FramingError(
                f"stream ended after {n - remaining} of {n} bytes: {exc!r}"
            ) from None
        if not chunk:
            raise FramingError(f"stream ended after {n - remaining} of {n} bytes")
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


async def read_struct(stream: ByteStream, fmt: struct.Struct) -> tuple[int, ...]:
    return fmt.unpack(await read_exactly(stream, fmt.size))


async def write_all(stream: ByteStream, data: bytes) -> None:
    """Write `data` in chunks (so a 100 MB blob never sits twice in the muxer's buffers)."""
    view = memoryview(data)
    for start in range(0, len(view), WRITE_CHUNK):
        await stream.write(bytes(view[start : start + WRITE_CHUNK]))


def check_length(what: str, length: int, limit: int) -> None:
    """Refuse a length announced by the peer that exceeds our limit."""
    if length > limit:
        raise FramingError(f"{what} of {length} bytes exceeds the limit of {limit}")
