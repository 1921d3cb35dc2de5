"""The local HTTP API's routes: `/status`, `/chain`, `/chain/<height>`, `/metrics`.

Read-only views of the node for operators, `bcfl status` and the devnet launcher. `/chain`
adds the driver's per-height phase timings (seconds) to each block summary under `phases`.
"""

from __future__ import annotations

from typing import Any

from consensus.core import ConsensusCore
from consensus.types import Block, CommitCertificate, Genesis
from node.block_json import block_summary, block_to_json
from node.chain import Chain
from node.config import NodeConfig
from node.driver import Driver
from node.home import NodeHome
from node.httpapi import Response, Route, json_response
from node.store import ChainStore
from telemetry.exporter import CONTENT_TYPE
from telemetry.metrics import NodeMetrics

MAX_CHAIN_LISTING = 1000


def privacy_status(genesis: Genesis, core: ConsensusCore) -> dict[str, Any] | None:
    """This site's DP budget as the ledger accounts it (None with DP off or no genesis key)."""
    policy = genesis.privacy
    if not policy.dp_enabled or core.me is None:
        return None
    record = core.ledger.participants[core.me]
    rules = core.checker.privacy
    return {
        "epsilon_spent": record.epsilon_spent,
        "epsilon_budget": policy.epsilon_budget,
        "delta": policy.delta,
        "releases": rules.releases_behind(record.epsilon_spent),
        "budget_exhausted": rules.exhausted(record),
    }


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
    chain_ = Chain(store)

    def status(_: str) -> Response:
        tip = chain_.height
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
                "privacy": privacy_status(genesis, core),
            }
        )

    def summary(block: Block, cert: CommitCertificate) -> dict[str, Any]:
        height = int(block.height)
        # the chain's certificate of h is the one block h + 1 carries (late precommits in)
        following = chain_.committed(height + 1)
        carried = following[0].last_commit if following is not None else None
        out = block_summary(
            block,
            block_hash_=cert.block_hash,
            cert=carried or cert,
            ledger=chain_.ledger(height),
            genesis=genesis,
        )
        out["phases"] = chain_.phases(height)
        return out

    def chain(rest: str) -> Response:
        if rest.strip("/"):
            try:
                height = int(rest.strip("/"))
            except ValueError:
                return json_response({"error": "height must be an integer"}, 400)
            committed = chain_.committed(height)
            if committed is None:
                return json_response({"error": f"no block at height {height}"}, 404)
            return json_response(block_to_json(*committed))
        first = max(1, chain_.height - MAX_CHAIN_LISTING + 1)
        return json_response([summary(*c) for c in chain_.committed_range(first)])

    def metrics_route(_: str) -> Response:
        return Response(200, metrics.render(), CONTENT_TYPE)

    return {"/status": status, "/chain": chain, "/metrics": metrics_route}
