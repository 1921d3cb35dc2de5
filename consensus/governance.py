"""Governance: the member set changes on chain, at a height every node agrees on.

See docs/ARCHITECTURE.md "Governance". In the style of CometBFT's validator updates (the set
returned by EndBlock at height H signs from H + 2): a member proposes a `MemberChange` (add,
remove, change power, rotate key or peer id) in a `GovernanceProposal`; members approve it
with `GovernanceApproval`s; proposals and approvals ride in blocks; the ledger tracks them. When
the approvers of a pending proposal hold strictly more than 2/3 of the power of the set at the
height of the block that carries the last approval needed (height H), the change is scheduled
for height H + GOVERNANCE_DELAY: the validator set of every height is a pure function of the
committed ledger (`next_members`), so every node switches sets at the same height and a commit
certificate is always checked against the set that produced it.

Choices where the issue is silent:

- A proposal counts as its proposer's approval. Any current member may propose; only power
  approves. A member removed keeps its index (no roles, no power): indices are append-only, so
  a bitfield or a ledger record never changes meaning.
- One change in flight per member name (pending or scheduled): a second one is refused, so two
  approved changes never race. A change that no longer applies when it becomes due (it cannot:
  every check below is repeated against the set of that height) is dropped, deterministically.
- A proposal lapses PROPOSAL_TTL heights after the height it names; a proposal may only be
  carried within that window, and ids decided inside it are remembered, so none is replayed.
- A removal or power change that would leave no validator power is refused; whether the rest
  is online is the CLI's check (node/commands/member.py), not the chain's.

Every function is pure: same ledger and block, same answer on every node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from consensus.codec import canonical, hash_of
from consensus.crypto import Verifier
from consensus.types import (
    CHANGE_ADD,
    CHANGE_POWER,
    CHANGE_REMOVE,
    CHANGE_ROTATE,
    EMPTY_SIGNATURE,
    ROLE_TRAINER,
    ROLE_VALIDATOR,
    ROLES,
    Block,
    GovernanceApproval,
    GovernanceProposal,
    Hash,
    Height,
    Ledger,
    MemberChange,
    PendingProposal,
    ScheduledChange,
    ValidatorIndex,
    ValidatorInfo,
)

GOVERNANCE_DELAY = 2
"""A change approved in block H is part of the validator set from height H + 2."""
PROPOSAL_TTL = 100
"""Heights a proposal may wait for approvals (counted from the height it names)."""
MAX_PENDING = 16
MAX_GOVERNANCE_PER_BLOCK = 16
MAX_MEMBER_POWER = 1000
MAX_NAME_LENGTH = 64
MAX_PEER_ID_LENGTH = 128
RECENT_HEIGHTS = 3
"""The update window waits for the trainers whose update a block of the last RECENT_HEIGHTS
heights included (`expected_trainers`)."""

DOMAIN_GOV_PROPOSAL = "bcfl/governance-proposal/v1"
DOMAIN_GOV_APPROVAL = "bcfl/governance-approval/v1"


def proposal_id(proposal: GovernanceProposal) -> Hash:
    """A proposal's identity: the hash of everything but its signature."""
    return hash_of(replace(proposal, signature=EMPTY_SIGNATURE))


def proposal_sign_bytes(chain_id: str, proposal: GovernanceProposal) -> bytes:
    """What a proposer signs (see consensus/signing.py for the other messages)."""
    return canonical([DOMAIN_GOV_PROPOSAL, chain_id, proposal_id(proposal)])


def approval_sign_bytes(chain_id: str, pid: Hash) -> bytes:
    """What an approver signs: the proposal's id on this chain."""
    return canonical([DOMAIN_GOV_APPROVAL, chain_id, pid])


def is_current(member: ValidatorInfo) -> bool:
    """True for a member that has not been removed (a removed member has no roles)."""
    return bool(member.roles)


def member_index(members: Sequence[ValidatorInfo], name: str) -> ValidatorIndex | None:
    """The index of the member called `name`, removed ones included."""
    for i, m in enumerate(members):
        if m.name == name:
            return ValidatorIndex(i)
    return None


def total_power(members: Sequence[ValidatorInfo]) -> int:
    return sum(m.power for m in members if ROLE_VALIDATOR in m.roles)


def has_quorum(members: Sequence[ValidatorInfo], indices: Sequence[int]) -> bool:
    """Strictly more than 2/3 of the power of `members` (consensus/validators.py's rule)."""
    have = sum(members[i].power for i in set(indices) if 0 <= i < len(members))
    return 3 * have > 2 * total_power(members)


# -- the set of each height ---------------------------------------------------------------------


def next_members(ledger: Ledger) -> tuple[ValidatorInfo, ...]:
    """The member set of height `ledger.height + 1`: the ledger's set with the changes due
    there applied, in the order they were approved."""
    members = ledger.members
    due = ledger.height + 1
    for item in ledger.scheduled:
        if item.activation == due:
            applied = apply_change(members, item.change)
            if applied is not None:
                members = applied
    return members


def apply_change(
    members: tuple[ValidatorInfo, ...], change: MemberChange
) -> tuple[ValidatorInfo, ...] | None:
    """`members` after `change`, or None when the change no longer applies."""
    if structure_problem(members, change) is not None:
        return None
    if change.kind == CHANGE_ADD and change.member is not None:
        return (*members, change.member)
    index = member_index(members, change.target)
    if index is None:  # pragma: no cover - structure_problem checked it
        return None
    old = members[index]
    if change.kind == CHANGE_REMOVE:
        new = replace(old, power=0, roles=())
    elif change.kind == CHANGE_POWER:
        new = replace(old, power=change.power)
    elif change.member is not None:  # rotate
        new = replace(
            old,
            public_key=change.member.public_key,
            proof_of_possession=change.member.proof_of_possession,
            peer_id=change.member.peer_id,
        )
    else:  # pragma: no cover - structure_problem checked it
        return None
    return (*members[:index], new, *members[index + 1 :])


def expected_trainers(
    genesis_expected: int,
    genesis_trainers: int,
    members: Sequence[ValidatorInfo],
    ledger: Ledger,
    height: int,
) -> int:
    """How many receipts close the update window at `height` at once (P2 in
    consensus/learning_round.py): the current trainers that contributed recently.

    A trainer counts when a block of the last RECENT_HEIGHTS heights included its update, or it
    joins at this height (so a silent or departed trainer costs RECENT_HEIGHTS heights of full
    windows, not every height); when none qualifies (the first heights, a run of carry-overs)
    every current trainer counts. The slack the genesis allowed (`expected_trainers` below the
    number of trainers) is kept. Deterministic: a function of the committed ledger.
    """
    low = height - RECENT_HEIGHTS
    trainers = [i for i, m in enumerate(members) if ROLE_TRAINER in m.roles]
    records = ledger.participants
    joined = len(records)  # members past the ledger's records joined at this height
    if low < 1:
        recent = trainers
    else:
        recent = [i for i in trainers if i >= joined or records[i].last_update_height >= low]
    active = recent or trainers
    slack = max(0, genesis_trainers - genesis_expected)
    return max(0, min(len(active), len(active) - slack))


# -- checks (one sentence each) -------------------------------------------------------------------


def structure_problem(  # noqa: C901 - one branch per rule, each with its sentence
    members: Sequence[ValidatorInfo], change: MemberChange
) -> str | None:
    """Why `change` cannot apply to `members` (no signature or key checks), or None."""
    name = change.target
    current = [m for m in members if is_current(m)]
    if change.kind == CHANGE_ADD:
        new = change.member
        if new is None or new.name != name:
            return "an add proposal must carry the new member's node info under its name"
        if not 0 < len(name) <= MAX_NAME_LENGTH or not name.isprintable():
            return f"the member name must be 1 to {MAX_NAME_LENGTH} printable characters"
        if member_index(members, name) is not None:
            return f"the name {name!r} is already used by a member"
        if (
            not set(new.roles) <= ROLES
            or not new.roles
            or list(new.roles) != sorted(set(new.roles))
        ):
            return f"the new member {name!r} needs a sorted, non-empty subset of {sorted(ROLES)}"
        if (ROLE_VALIDATOR in new.roles) != (new.power > 0) or new.power > MAX_MEMBER_POWER:
            return (
                f"the new member {name!r} needs a power from 1 to {MAX_MEMBER_POWER} exactly when"
                " it has the validator role"
            )
        return _identity_problem(members, new, None)
    index = member_index(members, name)
    if index is None or not is_current(members[index]):
        return f"{name!r} is not a current member"
    old = members[index]
    if change.kind == CHANGE_REMOVE:
        if len(current) <= 1 or total_power(members) - old.power <= 0:
            return f"removing {name!r} would leave no validator with power"
        return None
    if change.kind == CHANGE_POWER:
        if ROLE_VALIDATOR not in old.roles:
            return f"{name!r} has no validator role, so it cannot hold power"
        if not 1 <= change.power <= MAX_MEMBER_POWER:
            return f"a power must be an integer from 1 to {MAX_MEMBER_POWER}"
        if change.power == old.power:
            return f"{name!r} already has power {old.power}"
        return None
    if change.kind == CHANGE_ROTATE:
        new = change.member
        if new is None or new.name != name:
            return "a rotate proposal must carry the member's new node info under its name"
        if new.public_key == old.public_key and new.peer_id == old.peer_id:
            return f"the node info for {name!r} has the key and peer id it already has"
        return _identity_problem(members, new, index)
    return f"unknown change kind {change.kind[:20]!r}"


def _identity_problem(
    members: Sequence[ValidatorInfo], new: ValidatorInfo, index: int | None
) -> str | None:
    if not 0 < len(new.peer_id) <= MAX_PEER_ID_LENGTH or not new.peer_id.isprintable():
        return f"the peer id of {new.name!r} is malformed"
    if len(new.agreement_key) not in (0, 32):
        return f"the agreement key of {new.name!r} is not 32 bytes"
    for i, m in enumerate(members):
        if i == index:
            continue
        if m.public_key == new.public_key:
            return f"the BLS key of {new.name!r} is already {m.name!r}'s"
        if is_current(m) and m.peer_id == new.peer_id:
            return f"the peer id of {new.name!r} is already {m.name!r}'s"
    return None


def change_problem(
    members: Sequence[ValidatorInfo], change: MemberChange, verifier: Verifier
) -> str | None:
    """`structure_problem` plus the new key's validity and proof of possession."""
    problem = structure_problem(members, change)
    if problem is not None:
        return problem
    new = change.member
    if change.kind in (CHANGE_ADD, CHANGE_ROTATE) and new is not None:
        if not verifier.valid_public_key(new.public_key):
            return f"the BLS key of {new.name!r} is malformed or the identity"
        if not verifier.verify_possession(new.public_key, new.proof_of_possession):
            return f"the BLS proof of possession of {new.name!r} does not verify"
    return None


def _in_flight(ledger: Ledger, name: str) -> bool:
    return any(p.change.target == name for p in ledger.pending) or any(
        s.change.target == name for s in ledger.scheduled
    )


def proposal_problem(
    chain_id: str,
    ledger: Ledger,
    members: Sequence[ValidatorInfo],
    proposal: GovernanceProposal,
    height: int,
    verifier: Verifier,
) -> str | None:
    """Why `proposal` may not be carried by a block of `height` on `ledger` (whose set at that
    height is `members`), or None."""
    signer = proposal.proposer
    if not 0 <= signer < len(members) or not is_current(members[signer]):
        return f"governance proposal by member {signer}, who is not a current member"
    if not height - PROPOSAL_TTL <= proposal.height <= height:
        return f"governance proposal for height {proposal.height} is outside its window"
    pid = proposal_id(proposal)
    if any(p.proposal_id == pid for p in ledger.pending) or pid in ledger.decided:
        return "governance proposal already on chain"
    if len(ledger.pending) >= MAX_PENDING:
        return f"already {MAX_PENDING} governance proposals pending"
    if _in_flight(ledger, proposal.change.target):
        return f"{proposal.change.target!r} already has a change pending"
    problem = change_problem(members, proposal.change, verifier)
    if problem is not None:
        return problem
    message = proposal_sign_bytes(chain_id, proposal)
    if not verifier.verify(members[signer].public_key, message, proposal.signature):
        return f"governance proposal signature of member {signer} does not verify"
    return None


def approval_problem(
    chain_id: str,
    ledger: Ledger,
    members: Sequence[ValidatorInfo],
    approval: GovernanceApproval,
    verifier: Verifier,
) -> str | None:
    """Why `approval` may not be carried on `ledger` (set `members`), or None."""
    signer = approval.approver
    if not 0 <= signer < len(members) or not is_current(members[signer]):
        return f"governance approval by member {signer}, who is not a current member"
    if members[signer].power <= 0:
        return f"governance approval by member {signer}, who holds no voting power"
    pending = next((p for p in ledger.pending if p.proposal_id == approval.proposal_id), None)
    if pending is None:
        return "governance approval of a proposal that is not pending"
    if signer in pending.approvers:
        return f"member {signer} already approved this proposal"
    message = approval_sign_bytes(chain_id, approval.proposal_id)
    if not verifier.verify(members[signer].public_key, message, approval.signature):
        return f"governance approval signature of member {signer} does not verify"
    return None


def block_governance_problem(
    chain_id: str, ledger: Ledger, block: Block, verifier: Verifier
) -> str | None:
    """Why the proposals and approvals of `block` (child of `ledger`) are not valid, or None:
    proposals are checked in order, then approvals, each against the state the previous ones
    left."""
    if len(block.proposals) + len(block.approvals) > MAX_GOVERNANCE_PER_BLOCK:
        return "too many governance transactions in one block"
    members = next_members(ledger)
    state = begin_block(ledger, members, block.header.height)
    for proposal in block.proposals:
        problem = proposal_problem(
            chain_id, state, members, proposal, block.header.height, verifier
        )
        if problem is not None:
            return problem
        state = add_proposal(state, proposal)
    for approval in block.approvals:
        problem = approval_problem(chain_id, state, members, approval, verifier)
        if problem is not None:
            return problem
        state = add_approval(state, approval)
    return None


# -- the ledger transition ----------------------------------------------------------------------


def begin_block(ledger: Ledger, members: tuple[ValidatorInfo, ...], height: int) -> Ledger:
    """The governance state at the start of block `height`: the set of that height, changes
    not yet due, proposals not lapsed, decided ids still inside their window."""
    low = height - PROPOSAL_TTL
    return replace(
        ledger,
        members=members,
        scheduled=tuple(s for s in ledger.scheduled if s.activation > height),
        pending=tuple(p for p in ledger.pending if p.proposed_at >= low),
        decided=tuple(
            d for d, at in zip(ledger.decided, ledger.decided_at, strict=True) if at >= low
        ),
        decided_at=tuple(at for at in ledger.decided_at if at >= low),
    )


def add_proposal(ledger: Ledger, proposal: GovernanceProposal) -> Ledger:
    pending = PendingProposal(
        proposal_id=proposal_id(proposal),
        change=proposal.change,
        proposed_at=proposal.height,
        approvers=(proposal.proposer,),
    )
    return replace(ledger, pending=(*ledger.pending, pending))


def add_approval(ledger: Ledger, approval: GovernanceApproval) -> Ledger:
    pending = tuple(
        replace(p, approvers=tuple(sorted({*p.approvers, approval.approver})))
        if p.proposal_id == approval.proposal_id
        else p
        for p in ledger.pending
    )
    return replace(ledger, pending=pending)


def apply_governance(ledger: Ledger, block: Block) -> Ledger:
    """The governance part of the ledger after `block` (assumed valid): the set of the block's
    height, its proposals and approvals recorded, and every proposal whose approvers now hold
    > 2/3 of that set's power scheduled for height + GOVERNANCE_DELAY."""
    height = block.header.height
    members = next_members(ledger)
    state = begin_block(ledger, members, height)
    for proposal in block.proposals:
        state = add_proposal(state, proposal)
    for approval in block.approvals:
        state = add_approval(state, approval)
    still: list[PendingProposal] = []
    scheduled = list(state.scheduled)
    decided, decided_at = list(state.decided), list(state.decided_at)
    for p in state.pending:
        if has_quorum(members, p.approvers):
            activation = Height(height + GOVERNANCE_DELAY)
            scheduled.append(ScheduledChange(p.proposal_id, p.change, activation))
            decided.append(p.proposal_id)
            decided_at.append(p.proposed_at)
        else:
            still.append(p)
    return replace(
        state,
        pending=tuple(still),
        scheduled=tuple(scheduled),
        decided=tuple(decided),
        decided_at=tuple(decided_at),
    )
