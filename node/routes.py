"""The local HTTP API's routes: `/status`, `/chain`, `/chain/<height>`, `/metrics`.

Read-only views of the node for operators, `bcfl status` and the devnet launcher. `/chain`
adds the driver's per-height phase timings (seconds) to each block summary under `phases`.
"""

from __future__ import annotations

import json
from typing import Any

from consensus import codec
from consensus.core import ConsensusCore
from consensus.types import Block, CommitCertificate, Genesis, Ledger
from node.chainfiles import block_summary, block_to_json
from node.config import NodeConfig
from node.driver import Driver
from node.httpapi import Response, Route, json_response
from node.keys import NodeHome
from node.store import ChainStore
from telemetry.exporter import CONTENT_TYPE
from telemetry.metrics import NodeMetrics

MAX_CHAIN_LISTING = 1000


def api_routes(
    *,
    home: NodeHome,
    config: NodeConfig,
    genesis: Genesis,
    core: ConsensusCore,
    driver: Driver,
    store: ChainStore,
    metrics: NodeMetrics,
    peer_id: str,
) -> dict[str, Route]:
    """Build the route table of one node."""

    def status(_: str) -> Response:
        tip = store.tip_height() or 0
        return json_response(
            {
                "name": config.node.name,
                "chain_id": genesis.chain_id,
                "peer_id": peer_id,
                "roles": list(config.node.roles),
                "height": tip,
                "deciding_height": int(core.height),
                "round": int(core.round),
                "step": core.step.name.lower(),
                "peers": driver.state.peers,
                "last_metric": driver.state.last_metric,
                "sync_state": driver.state.sync_state,
                "model_hash": core.model_hash.hex(),
            }
        )

    def summary(height: int) -> dict[str, Any] | None:
        stored = store.get_block(height)
        if stored is None:
            return None
        block = codec.decode_as(stored.block, Block)
        ledger_bytes = store.get_ledger(height)
        ledger = codec.decode_as(ledger_bytes, Ledger) if ledger_bytes else None
        out = block_summary(block, block_hash_=stored.hash, ledger=ledger, genesis=genesis)
        out["phases"] = stored_phases(store, height)
        return out

    def chain(rest: str) -> Response:
        if rest.strip("/"):
            try:
                height = int(rest.strip("/"))
            except ValueError:
                return json_response({"error": "height must be an integer"}, 400)
            stored = store.get_block(height)
            if stored is None:
                return json_response({"error": f"no block at height {height}"}, 404)
            block = codec.decode_as(stored.block, Block)
            cert = codec.decode_as(stored.commit_cert, CommitCertificate)
            return json_response(block_to_json(block, cert))
        tip = store.tip_height() or 0
        first = max(1, tip - MAX_CHAIN_LISTING + 1)
        return json_response([s for h in range(first, tip + 1) if (s := summary(h))])

    def metrics_route(_: str) -> Response:
        return Response(200, metrics.render(), CONTENT_TYPE)

    return {"/status": status, "/chain": chain, "/metrics": metrics_route}


def stored_phases(store: ChainStore, height: int) -> dict[str, float] | None:
    """The phase timings the driver recorded when it committed `height` (None if synced)."""
    raw = store.get_meta(f"phases/{height}")
    return json.loads(raw) if raw else None
