"""Catch-up: the shell's FetchBlocks requests, answered from peers' stores by block sync.

One request at a time (the shell holds back the next while one is in flight). A request with
`peer_turn` None tries peers until one has blocks (we know we are behind); a periodic poll asks
the one peer of its turn. Blocks are decoded and checked against their claimed hash and height
here (`node.chain.decode_stored`); the core re-verifies each block and its commit certificate.
The shell always gets an answer, `()` when nothing came back, so the next request may go.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import trio

from consensus import codec
from consensus.shell import FetchBlocks, NodeShell, Request, SyncedBlock
from node.chain import decode_stored
from node.network import NodeNetwork
from node.services.learning_worker import ShellCall
from telemetry.metrics import NodeMetrics

log = logging.getLogger("bcfl.sync")

SYNC_FETCH_TIMEOUT_S = 30.0  # one batch of blocks from one peer


class CatchUp:
    """Fetches committed blocks for the shell, one request at a time."""

    def __init__(
        self,
        *,
        net: NodeNetwork,
        metrics: NodeMetrics,
        answer: Callable[[ShellCall], None],
        on_state: Callable[[str], None] = lambda state: None,
    ) -> None:
        self.net = net
        self.metrics = metrics
        self.answer = answer
        self.on_state = on_state
        self.state = "in_sync"
        self._send, self._receive = trio.open_memory_channel[FetchBlocks](100)

    def request(self, request: FetchBlocks) -> None:
        """Queue a request (called on the event loop)."""
        self._send.send_nowait(request)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async for request in self._receive:
            blocks: list[SyncedBlock] = []
            try:
                blocks = await self._fetch(request)
            finally:
                self.answer(_fetched(tuple(blocks)))

    async def _fetch(self, request: FetchBlocks) -> list[SyncedBlock]:
        peers = sorted(self.net.peers())
        if not peers:
            return []
        if request.peer_turn is not None:
            return await self._from(peers[request.peer_turn % len(peers)], request)
        self._set_state("catching_up")
        try:
            for peer in peers:
                blocks = await self._from(peer, request)
                if blocks:
                    return blocks
            return []
        finally:
            self._set_state("in_sync")

    def _set_state(self, state: str) -> None:
        self.state = state
        self.on_state(state)
        self.metrics.set_sync_state(state)

    async def _from(self, peer: str, request: FetchBlocks) -> list[SyncedBlock]:
        """The blocks `peer` holds from the requested height on, up to the first bad one."""
        from_height = int(request.from_height)
        try:
            with trio.fail_after(SYNC_FETCH_TIMEOUT_S):
                batch = await self.net.fetch_blocks(peer, from_height)
        except Exception as exc:  # a peer's failure (refused, timeout, framing): try another
            log.info("sync from %s failed: %s", peer, exc)
            return []
        if batch.peer_tip is not None and batch.peer_tip >= from_height:
            self.metrics.set_sync_state(self.state, target_height=batch.peer_tip)
        blocks: list[SyncedBlock] = []
        for stored in batch.blocks:
            try:
                blocks.append(decode_stored(stored))
            except codec.InvalidMessage as exc:
                log.warning("peer %s sent an invalid block: %s", peer, exc.reason)
                break
        if blocks:
            self.metrics.count_synced_blocks(len(blocks))
        return blocks


def _fetched(blocks: tuple[SyncedBlock, ...]) -> ShellCall:
    def call(shell: NodeShell, now: float) -> list[Request]:
        return shell.blocks_fetched(blocks, now)

    return call


__all__ = ["CatchUp"]
