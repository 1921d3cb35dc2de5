"""The node side of governance: the HTTP routes behind `bcfl member`, the gossip edge of the
governance topic and its member set that follows the core, and peer gating."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "consensus"))  # consensus_harness

from consensus_harness import CHAIN, make_cluster  # noqa: E402

from consensus.codec import encode  # noqa: E402
from consensus.core import ConsensusCore  # noqa: E402
from consensus.crypto import FakeSigner, FakeVerifier  # noqa: E402
from consensus.events import GovernanceRequested  # noqa: E402
from consensus.governance import proposal_sign_bytes  # noqa: E402
from consensus.types import CHANGE_ADD, GovernanceProposal, Height, MemberChange, ValidatorIndex  # noqa: E402
from node.daemon import allowed_peers  # noqa: E402
from node.gossip_validation import GossipValidator  # noqa: E402
from node.governance_api import governance_routes  # noqa: E402
from node.network.topics import Topic  # noqa: E402


class _Net:
    def __init__(self, peers: list[str]) -> None:
        self._peers = peers

    def peers(self) -> list[str]:
        return self._peers


class _Driver:
    def __init__(self, peers: list[str]) -> None:
        self.net = _Net(peers)
        self.requests: list[GovernanceRequested] = []

    def request_governance(self, request: GovernanceRequested) -> None:
        self.requests.append(request)


def _setup(online: list[str]) -> tuple[Any, ConsensusCore, _Driver, dict[str, Any], FakeSigner]:
    cluster = make_cluster(4)
    new = FakeSigner(b"\xee" * 32)
    verifier = FakeVerifier.for_signers([*cluster.signers, new])
    core = ConsensusCore(
        cluster.genesis, verifier=verifier, me=ValidatorIndex(0), signer=cluster.signers[0]
    )
    driver = _Driver(online)
    get, post = governance_routes(core, driver, "peer-0")  # type: ignore[arg-type]
    return cluster, core, driver, {**get, **post}, new


def _node_info(signer: FakeSigner, name: str = "site-e", peer: str = "peer-e") -> dict[str, Any]:
    return {
        "name": name,
        "peer_id": peer,
        "roles": ["trainer", "validator"],
        "bls_public_key": bytes(signer.public_key).hex(),
        "bls_proof_of_possession": bytes(signer.prove_possession()).hex(),
    }


def _post(routes: dict[str, Any], path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = routes[path]("", json.dumps(body).encode())
    return response.status, json.loads(response.body)


def test_propose_add_reaches_the_driver_with_the_id_it_reports() -> None:
    _, core, driver, routes, new = _setup(["peer-1", "peer-2", "peer-3"])
    status, answer = _post(
        routes, "/members/propose", {"kind": "add", "node_info": _node_info(new)}
    )
    assert status == 200, answer
    (request,) = driver.requests
    assert request.change is not None and request.change.member is not None
    assert request.change.member.name == "site-e" and request.change.member.power == 1
    # the core signs exactly the proposal whose id the route reported
    actions = core.handle(request, 0.0)
    (tx,) = [a.tx for a in actions if type(a).__name__ == "BroadcastGovernance"]
    from consensus.governance import proposal_id

    assert proposal_id(tx).hex() == answer["proposal_id"]
    view = json.loads(routes["/members"]("").body)
    assert [m["name"] for m in view["members"]] == [m.name for m in core.genesis.validators]
    assert view["pool"] == 1


def test_bad_requests_are_one_sentence() -> None:
    cluster, _, driver, routes, new = _setup(["peer-1", "peer-2", "peer-3"])
    bad_pop = {**_node_info(new), "bls_proof_of_possession": bytes(new.sign(b"x")).hex()}
    taken = _node_info(new, peer=cluster.genesis.validators[1].peer_id)
    cases = [
        ({"kind": "add", "node_info": bad_pop}, "proof of possession"),
        ({"kind": "add", "node_info": taken}, "peer id"),
        ({"kind": "remove", "target": "nobody"}, "not a current member"),
        ({"kind": "power", "target": cluster.genesis.validators[1].name, "power": 0}, "from 1 to"),
        ({"kind": "fork"}, "kind must be one of"),
    ]
    for body, needle in cases:
        status, answer = _post(routes, "/members/propose", body)
        assert status == 400 and needle in answer["error"] and "\n" not in answer["error"], answer
    status, answer = _post(routes, "/members/approve", {"proposal_id": "abc"})
    assert status == 400 and "no single pending proposal" in answer["error"]
    assert driver.requests == []


def test_a_removal_that_leaves_no_quorum_online_is_refused() -> None:
    """With only one other member connected, removing a third leaves 2 of 3 power online: not
    more than 2/3, refused; with everyone connected the same removal goes through."""
    cluster, _, driver, routes, _ = _setup(["peer-1"])
    target = cluster.genesis.validators[3].name
    status, answer = _post(routes, "/members/propose", {"kind": "remove", "target": target})
    assert status == 409 and "not more than 2/3" in answer["error"]
    _, _, driver, routes, _ = _setup(["peer-1", "peer-2"])
    status, _ = _post(routes, "/members/propose", {"kind": "remove", "target": target})
    assert status == 200 and len(driver.requests) == 1


def test_governance_edge_and_gating_follow_the_core() -> None:
    """The edge accepts a member's signed proposal and refuses a forged one; peer gating admits
    the peer id a pending add names (so the joiner can sync) and drops a removed member."""
    cluster = make_cluster(4)
    new = FakeSigner(b"\xee" * 32)
    verifier = FakeVerifier.for_signers([*cluster.signers, new])
    core = ConsensusCore(
        cluster.genesis, verifier=verifier, me=ValidatorIndex(0), signer=cluster.signers[0]
    )
    edge = GossipValidator(
        cluster.genesis,
        verifier,
        lambda: int(core.height),
        current_admission=lambda: core.admission,
    )
    info = _node_info(new)
    from node.governance_api import member_from_json

    change = MemberChange(CHANGE_ADD, "site-e", member_from_json(info, 1))
    proposal = GovernanceProposal(change, Height(0), ValidatorIndex(1))
    signed = replace(
        proposal, signature=cluster.signers[1].sign(proposal_sign_bytes(CHAIN, proposal))
    )
    forged = replace(
        proposal, signature=cluster.signers[2].sign(proposal_sign_bytes(CHAIN, proposal))
    )
    assert edge.check(Topic.GOVERNANCE, encode(signed))[1] is None
    assert edge.check(Topic.GOVERNANCE, encode(forged))[1] == "bad-signature"
    stranger = replace(proposal, proposer=ValidatorIndex(9))
    assert edge.check(Topic.GOVERNANCE, encode(stranger))[1] == "unknown-signer"
    before = allowed_peers(core, [])
    assert "peer-e" not in before and before == {m.peer_id for m in cluster.genesis.validators}
    # once the proposal is pending in the ledger, the joiner's peer id is admitted
    from consensus.governance import add_proposal

    core.ledger = add_proposal(core.ledger, signed)
    assert "peer-e" in allowed_peers(core, ["auditor"]) and "auditor" in allowed_peers(
        core, ["auditor"]
    )
