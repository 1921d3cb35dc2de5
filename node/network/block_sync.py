"""`/bcfl/sync/1.0.0`: fetch committed blocks from a peer, from height H, in bounded batches.

Wire format (big-endian)::

    request : from_height (8) max_count (4)
    response: status (1) peer_tip (8, 2**64-1 when the peer has no block) count (4)
              then per block: height (8) hash (32) block_len (4) cert_len (4) block cert

Blocks travel as the stored bytes (`node.chain.Chain.stored_range`), never re-encoded. The
requester checks the framing (count, heights consecutive from `from_height`, lengths under the
limits) and hands back `StoredBlock`s as the peer claims them; the *driver* must check each one
with `node.chain.decode_stored` (hash, height, certificate for exactly this block) and let the
core verify its commit certificate before storing it: a peer may lie.
"""

from __future__ import annotations

import contextlib
import logging
import struct
from dataclasses import dataclass
from typing import Any

import trio
from libp2p.abc import IHost
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from node.chain import Chain
from node.network.counters import NetworkCounters
from node.network.framing import FramingError, check_length, read_exactly, read_struct
from node.store import ChainStore, StoredBlock

logger = logging.getLogger(__name__)

SYNC_PROTOCOL = TProtocol("/bcfl/sync/1.0.0")
REQUEST = struct.Struct(">QI")
RESPONSE = struct.Struct(">BQI")
ENTRY = struct.Struct(">Q32sII")
NO_TIP = 2**64 - 1
OK = 0


@dataclass(frozen=True, slots=True)
class SyncBatch:
    """What a peer answered: its tip height and consecutive blocks from the requested height."""

    peer_tip: int | None
    blocks: list[StoredBlock]


class BlockSync:
    """Serves stored blocks and fetches them from peers."""

    def __init__(
        self,
        host: IHost,
        store: ChainStore,
        counters: NetworkCounters,
        *,
        max_batch: int = 64,
        max_batch_bytes: int = 16 * 1024 * 1024,
        max_block_bytes: int = 4 * 1024 * 1024,
        timeout_s: float = 10.0,
    ) -> None:
        self.host = host
        self.chain = Chain(store)
        self.counters = counters
        self.max_batch = max_batch
        self.max_batch_bytes = max_batch_bytes
        self.max_block_bytes = max_block_bytes
        self.timeout_s = timeout_s
        host.set_stream_handler(SYNC_PROTOCOL, self._serve)

    async def _serve(self, stream: Any) -> None:
        try:
            with trio.fail_after(self.timeout_s):
                from_height, max_count = await read_struct(stream, REQUEST)
                count = min(max_count, self.max_batch)
                blocks = (
                    self.chain.stored_range(
                        from_height, limit=count, max_bytes=self.max_batch_bytes
                    )
                    if count
                    else []
                )
                tip = self.chain.height
                parts = [RESPONSE.pack(OK, tip if tip else NO_TIP, len(blocks))]
                for b in blocks:
                    parts.append(ENTRY.pack(b.height, b.hash, len(b.block), len(b.commit_cert)))
                    parts.append(b.block)
                    parts.append(b.commit_cert)
                await stream.write(b"".join(parts))
                await stream.close()
            self.counters.sync_requests_served += 1
        except trio.Cancelled:
            raise
        except Exception as exc:
            self.counters.stream_errors["sync_serve"] += 1
            logger.debug("sync serve failed: %r", exc)
            with contextlib.suppress(Exception):
                await stream.reset()

    async def fetch(self, peer_id: ID, from_height: int, max_count: int | None = None) -> SyncBatch:
        """Ask `peer_id` for blocks from `from_height`; raises FramingError on a bad answer."""
        count = self.max_batch if max_count is None else min(max_count, self.max_batch)
        with trio.fail_after(self.timeout_s):
            stream = await self.host.new_stream(peer_id, [SYNC_PROTOCOL])
        try:
            with trio.fail_after(self.timeout_s + self.max_batch_bytes / 5e6):
                await stream.write(REQUEST.pack(from_height, count))
                await stream.close()
                status, tip, n = await read_struct(stream, RESPONSE)
                if status != OK:
                    raise FramingError(f"peer {peer_id} answered sync with status {status}")
                if n > count:
                    raise FramingError(f"peer {peer_id} sent {n} blocks, {count} were asked")
                blocks, total = [], 0
                for i in range(n):
                    height, block_hash, block_len, cert_len = await read_struct(stream, ENTRY)
                    if height != from_height + i:
                        raise FramingError(
                            f"peer {peer_id} sent height {height}, expected {from_height + i}"
                        )
                    check_length("block", block_len, self.max_block_bytes)
                    check_length("commit certificate", cert_len, self.max_block_bytes)
                    total += block_len + cert_len
                    check_length("sync batch", total, self.max_batch_bytes + self.max_block_bytes)
                    block = await read_exactly(stream, block_len)
                    cert = await read_exactly(stream, cert_len)
                    blocks.append(StoredBlock(height, block_hash, block, cert))
        except BaseException:
            with contextlib.suppress(Exception):
                await stream.reset()
            raise
        self.counters.sync_blocks_fetched += len(blocks)
        return SyncBatch(None if tip == NO_TIP else tip, blocks)
