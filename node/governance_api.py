"""The HTTP API's governance routes: `GET /members`, `POST /members/propose`, `POST
/members/approve` (docs/ARCHITECTURE.md "Governance"; `bcfl member` is the client).

The node signs with its own member key: `propose` and `approve` hand a `GovernanceRequested`
to the driver, whose core signs it, pools it and gossips it to every peer on the governance
topic; the proposer of a later height puts it into a block. Every bad request gets a 400 (or
409 for a removal that would leave no quorum online) with one sentence.

The checks here are the chain's (`consensus.governance.change_problem`, against the member set
of the next height, the BLS proof of possession included) plus one the chain cannot make: a
removal or power change after which the members connected to this node would hold no more than
2/3 of the power (the chain would stall until the others come back).
"""

from __future__ import annotations

import json
from typing import Any

from consensus.core import ConsensusCore
from consensus.events import GovernanceRequested
from consensus.governance import (
    MAX_PENDING,
    apply_change,
    change_problem,
    is_current,
    member_index,
    next_members,
    proposal_id,
    total_power,
)
from consensus.types import (
    CHANGE_ADD,
    CHANGE_KINDS,
    CHANGE_POWER,
    CHANGE_REMOVE,
    CHANGE_ROTATE,
    PUBLIC_KEY_SIZE,
    ROLE_VALIDATOR,
    ROLES,
    SIGNATURE_SIZE,
    GovernanceProposal,
    Hash,
    MemberChange,
    PublicKey,
    Signature,
    ValidatorIndex,
    ValidatorInfo,
)
from node.driver import Driver
from node.httpapi import PostRoute, Response, Route, json_response


class BadRequest(Exception):
    """One sentence for the operator; `status` is the HTTP status."""

    def __init__(self, sentence: str, status: int = 400) -> None:
        super().__init__(sentence)
        self.status = status


def members_view(core: ConsensusCore) -> dict[str, Any]:
    """The current set with power, the pending proposals with their approvals, and the changes
    scheduled (what `bcfl member list` prints)."""
    ledger = core.ledger
    members = next_members(ledger) or core.genesis.validators
    total = total_power(members)

    def name(i: int) -> str:
        return members[i].name if 0 <= i < len(members) else f"member {i}"

    return {
        "height": int(core.height),
        "total_power": total,
        "members": [
            {
                "index": i,
                "name": m.name,
                "peer_id": m.peer_id,
                "power": m.power,
                "roles": list(m.roles),
                "current": is_current(m),
                "public_key": bytes(m.public_key).hex(),
            }
            for i, m in enumerate(members)
        ],
        "pending": [
            {
                "id": bytes(p.proposal_id).hex(),
                "kind": p.change.kind,
                "target": p.change.target,
                "power": p.change.power or (p.change.member.power if p.change.member else 0),
                "proposed_at": int(p.proposed_at),
                "approvers": [name(i) for i in p.approvers],
                "approved_power": sum(members[i].power for i in p.approvers if i < len(members)),
            }
            for p in ledger.pending
        ],
        "scheduled": [
            {
                "id": bytes(s.proposal_id).hex(),
                "kind": s.change.kind,
                "target": s.change.target,
                "activation": int(s.activation),
            }
            for s in ledger.scheduled
        ],
        "pool": len(core.governance),
    }


def member_from_json(info: Any, power: int | None) -> ValidatorInfo:
    """A new member's ValidatorInfo from the node_info fields the CLI sends."""
    if not isinstance(info, dict):
        raise BadRequest("node_info must be a JSON object (the site's node_info.json)")
    try:
        key = bytes.fromhex(str(info["bls_public_key"]))
        pop = bytes.fromhex(str(info["bls_proof_of_possession"]))
        name, peer_id = str(info["name"]), str(info["peer_id"])
        roles = tuple(sorted({str(r) for r in info.get("roles", ["trainer", "validator"])}))
        agreement = bytes.fromhex(str(info.get("agreement_public_key", "")))
    except (KeyError, ValueError, TypeError):
        raise BadRequest(
            "node_info needs name, peer_id, bls_public_key and bls_proof_of_possession (hex)"
        ) from None
    if len(key) != PUBLIC_KEY_SIZE or len(pop) != SIGNATURE_SIZE:
        raise BadRequest(f"node_info of {name!r} has a BLS key or proof of the wrong length")
    if not set(roles) <= ROLES:
        raise BadRequest(f"node_info of {name!r} has roles outside {sorted(ROLES)}")
    validator = ROLE_VALIDATOR in roles
    return ValidatorInfo(
        name=name,
        public_key=PublicKey(key),
        proof_of_possession=Signature(pop),
        peer_id=peer_id,
        power=(1 if power is None else power) if validator else 0,
        roles=roles,
        agreement_key=agreement,
    )


def change_from_json(core: ConsensusCore, body: dict[str, Any]) -> MemberChange:
    """The `MemberChange` a propose request asks for (one sentence when it is malformed)."""
    kind, target = body.get("kind"), body.get("target")
    if kind not in CHANGE_KINDS:
        raise BadRequest(f"kind must be one of {', '.join(CHANGE_KINDS)}")
    power = body.get("power")
    if power is not None and (not isinstance(power, int) or isinstance(power, bool)):
        raise BadRequest("power must be an integer")
    if kind == CHANGE_ADD:
        member = member_from_json(body.get("node_info"), power)
        return MemberChange(CHANGE_ADD, member.name, member)
    if not isinstance(target, str) or not target:
        raise BadRequest(f"a {kind} proposal needs the member's name")
    if kind == CHANGE_REMOVE:
        return MemberChange(CHANGE_REMOVE, target)
    if kind == CHANGE_POWER:
        if power is None:
            raise BadRequest("a power proposal needs the new power")
        return MemberChange(CHANGE_POWER, target, power=power)
    members = next_members(core.ledger) or core.genesis.validators
    index = member_index(members, target)
    if index is None:
        raise BadRequest(f"{target!r} is not a current member")
    new = member_from_json(body.get("node_info"), None)
    old = members[index]
    return MemberChange(
        CHANGE_ROTATE,
        target,
        ValidatorInfo(
            target,
            new.public_key,
            new.proof_of_possession,
            new.peer_id,
            old.power,
            old.roles,
            new.agreement_key or old.agreement_key,
        ),
    )


def quorum_online_problem(
    core: ConsensusCore, change: MemberChange, online: set[str]
) -> str | None:
    """Why the members connected to this node (and itself) would hold no more than 2/3 of the
    power after `change`, or None."""
    if change.kind not in (CHANGE_REMOVE, CHANGE_POWER):
        return None
    members = next_members(core.ledger) or core.genesis.validators
    after = apply_change(members, change)
    if after is None:
        return None
    total = total_power(after)
    up = sum(m.power for m in after if is_current(m) and m.peer_id in online)
    if 3 * up <= 2 * total:
        return (
            f"after this {change.kind} the members online here would hold {up} of {total} power,"
            " not more than 2/3: the chain would stall; bring members back online first"
        )
    return None


def governance_routes(
    core: ConsensusCore, driver: Driver, peer_id: str
) -> tuple[dict[str, Route], dict[str, PostRoute]]:
    """The GET and POST routes of one node."""

    def members(_: str) -> Response:
        return json_response(members_view(core))

    def guarded(handler: Any) -> PostRoute:
        def route(_: str, body: bytes) -> Response:
            try:
                parsed = json.loads(body or b"{}")
            except ValueError:
                return json_response({"error": "the request body is not JSON"}, 400)
            if not isinstance(parsed, dict):
                return json_response({"error": "the request body must be a JSON object"}, 400)
            try:
                return json_response(handler(parsed))
            except BadRequest as exc:
                return json_response({"error": str(exc)}, exc.status)

        return route

    def member_index_of_me() -> ValidatorIndex:
        me = core.me
        if me is None:
            raise BadRequest("this node is not a current member, so it cannot propose or approve")
        return me

    def propose(body: dict[str, Any]) -> dict[str, Any]:
        me = member_index_of_me()
        change = change_from_json(core, body)
        ledger = core.ledger
        members = next_members(ledger) or core.genesis.validators
        problem = change_problem(members, change, core.verifier)
        if problem is None and any(
            p.change.target == change.target for p in (*ledger.pending, *ledger.scheduled)
        ):
            problem = f"{change.target!r} already has a change pending"
        if problem is None and len(ledger.pending) >= MAX_PENDING:
            problem = f"already {MAX_PENDING} proposals pending; approve or let them lapse first"
        if problem is not None:
            raise BadRequest(problem)
        online = {peer_id, *driver.net.peers()}
        problem = quorum_online_problem(core, change, online)
        if problem is not None:
            raise BadRequest(problem, 409)
        height = ledger.height
        pid = proposal_id(GovernanceProposal(change, height, me))
        driver.request_governance(GovernanceRequested(change=change, height=height))
        return {"proposal_id": bytes(pid).hex(), "kind": change.kind, "target": change.target}

    def approve(body: dict[str, Any]) -> dict[str, Any]:
        me = member_index_of_me()
        raw = body.get("proposal_id")
        pending = core.ledger.pending
        matches = [
            p
            for p in pending
            if isinstance(raw, str) and raw and bytes(p.proposal_id).hex().startswith(raw.lower())
        ]
        if len(matches) != 1:
            listed = ", ".join(bytes(p.proposal_id).hex()[:12] for p in pending) or "none"
            raise BadRequest(f"no single pending proposal has the id {raw!r} (pending: {listed})")
        found = matches[0]
        if me in found.approvers:
            raise BadRequest("this member already approved that proposal")
        members = next_members(core.ledger) or core.genesis.validators
        if members[me].power <= 0:
            raise BadRequest("this member holds no voting power, so its approval would not count")
        driver.request_governance(GovernanceRequested(approve=Hash(found.proposal_id)))
        return {"approved": bytes(found.proposal_id).hex(), "target": found.change.target}

    return {"/members": members}, {
        "/members/propose": guarded(propose),
        "/members/approve": guarded(approve),
    }
