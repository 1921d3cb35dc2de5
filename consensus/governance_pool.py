"""The pool of governance transactions waiting for a block (consensus/governance.py).

Each node keeps the proposals and approvals it has heard (gossip or its own) and its proposer
puts into a block those still valid on the parent's ledger, in arrival order. The pool is
bounded; a transaction that no longer applies (already on chain, lapsed) is dropped at each
height. Pure and deterministic like the rest of the core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from consensus.codec import hash_of
from consensus.crypto import Verifier
from consensus.governance import (
    MAX_GOVERNANCE_PER_BLOCK,
    add_approval,
    add_proposal,
    approval_problem,
    begin_block,
    next_members,
    proposal_problem,
)
from consensus.types import (
    GovernanceApproval,
    GovernanceProposal,
    Hash,
    Height,
    Ledger,
    MemberChange,
)

if TYPE_CHECKING:
    from consensus.context import Signatory

GovernanceTx = GovernanceProposal | GovernanceApproval
MAX_POOL = 64


class GovernancePool:
    """Governance transactions heard but not yet on chain."""

    def __init__(self, chain_id: str, verifier: Verifier) -> None:
        self._chain_id = chain_id
        self._verifier = verifier
        self._txs: dict[Hash, GovernanceTx] = {}

    def __len__(self) -> int:
        return len(self._txs)

    def txs(self) -> tuple[GovernanceTx, ...]:
        """Every transaction in the pool, oldest first."""
        return tuple(self._txs.values())

    def problem(self, ledger: Ledger, tx: GovernanceTx) -> str | None:
        """Why `tx` could not go into the next block on `ledger`, or None. An approval of a
        proposal still in the pool is kept (it becomes valid once the proposal is on chain)."""
        height = ledger.height + 1
        members = next_members(ledger)
        state = begin_block(ledger, members, height)
        if isinstance(tx, GovernanceProposal):
            return proposal_problem(self._chain_id, state, members, tx, height, self._verifier)
        for queued in self._txs.values():
            if isinstance(queued, GovernanceProposal):
                state = add_proposal(state, queued)
        return approval_problem(self._chain_id, state, members, tx, self._verifier)

    def add(self, ledger: Ledger, tx: GovernanceTx) -> str | None:
        """Keep `tx` for a later block; return why it was refused, or None."""
        key = hash_of(tx)
        if key in self._txs:
            return None
        problem = self.problem(ledger, tx)
        if problem is not None:
            return problem
        if len(self._txs) >= MAX_POOL:
            return f"the governance pool is full ({MAX_POOL} transactions)"
        self._txs[key] = tx
        return None

    def select(
        self, ledger: Ledger
    ) -> tuple[tuple[GovernanceProposal, ...], tuple[GovernanceApproval, ...]]:
        """What a block on `ledger` carries: pool transactions valid together, in order
        (proposals first, then approvals, as valid(v) checks them)."""
        height = ledger.height + 1
        members = next_members(ledger)
        state = begin_block(ledger, members, height)
        proposals: list[GovernanceProposal] = []
        approvals: list[GovernanceApproval] = []
        chain, verifier = self._chain_id, self._verifier
        for tx in self._txs.values():
            if len(proposals) >= MAX_GOVERNANCE_PER_BLOCK:
                break
            if (
                isinstance(tx, GovernanceProposal)
                and proposal_problem(chain, state, members, tx, height, verifier) is None
            ):
                proposals.append(tx)
                state = add_proposal(state, tx)
        for tx in self._txs.values():
            if len(proposals) + len(approvals) >= MAX_GOVERNANCE_PER_BLOCK:
                break
            if (
                isinstance(tx, GovernanceApproval)
                and approval_problem(chain, state, members, tx, verifier) is None
            ):
                approvals.append(tx)
                state = add_approval(state, tx)
        return tuple(proposals), tuple(approvals)

    def submit(
        self,
        signatory: Signatory,
        ledger: Ledger,
        change: MemberChange | None,
        approve: Hash | None,
        height: Height | None = None,
    ) -> tuple[GovernanceTx | None, str | None]:
        """This member's proposal of `change` or approval of `approve`, signed and pooled; or
        None and why not."""
        me = signatory.me
        if me is None or signatory.signer is None:
            return None, "this node is not a current member"
        tx: GovernanceTx | None
        if change is not None:
            named = ledger.height if height is None else height
            tx = signatory.sign_governance_proposal(GovernanceProposal(change, named, me))
        elif approve is not None:
            tx = signatory.sign_governance_approval(GovernanceApproval(approve, me))
        else:
            return None, "nothing to propose or approve"
        if tx is None:  # pragma: no cover - checked above
            return None, "this node cannot sign"
        problem = self.add(ledger, tx)
        return (None, problem) if problem is not None else (tx, None)

    def prune(self, ledger: Ledger) -> None:
        """Drop what the committed `ledger` made useless (on chain, lapsed, invalid)."""
        self._txs = {k: tx for k, tx in self._txs.items() if self.problem(ledger, tx) is None}
