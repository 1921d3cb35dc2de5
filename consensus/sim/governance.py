"""Member-set changes in the simulator (`SimConfig.governance`, consensus/governance.py).

One change per run, proposed by the lowest honest member when it commits height
`SimConfig.change_at`, and approved by every other honest member as soon as its node commits a
block that leaves the proposal pending (an operator reading `bcfl member list`). Drops,
partitions and faulty members keep the change in flight across rounds and heights.

- `join`: a key outside the genesis is added (validator + trainer, power 1); its node starts
  JOIN_START virtual seconds into the run, hears nothing before, and must block-sync across the
  change (every certificate checked against the set of its height) and then vote.
- `leave`: the highest honest member is removed; it follows on as an observer.
- `rotate`: the highest honest member rotates to a new key; its core holds both keys.
- `power`: the proposer's power becomes 3.

At the end of the run `check` asserts what the change must have done: a change that never took
effect is a liveness failure; a removed member in a later certificate, a joiner or rotated key
that never signs one, or a set that differs from the plan is a `governance` violation (safety).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from consensus.events import GovernanceRequested
from consensus.governance import member_index
from consensus.sim.checker import LIVENESS, Violation
from consensus.sim.setup import SimChain
from consensus.types import (
    CHANGE_ADD,
    CHANGE_POWER,
    CHANGE_REMOVE,
    CHANGE_ROTATE,
    ROLE_TRAINER,
    ROLE_VALIDATOR,
    Block,
    Ledger,
    MemberChange,
    ValidatorInfo,
)
from consensus.validators import ValidatorSet

SCENARIOS = ("", "join", "leave", "rotate", "power")
GOVERNANCE = "governance"
JOIN_START = 12.0
"""Virtual seconds before the joiner's node starts (the chain is a few heights in by then)."""


def extra_keys(kind: str) -> int:
    """Keys outside the genesis the scenario needs (a joiner's, a rotated member's new one)."""
    return 1 if kind in ("join", "rotate") else 0


@dataclass
class GovernanceScenario:
    """One planned change and what the run did with it."""

    kind: str
    chain: SimChain
    honest: list[int]
    change_at: int
    proposer: int = 0
    target: int = 0
    proposed: bool = False
    approved: set[int] = field(default_factory=set)
    activation: int = 0
    pending_at: int = 0
    """The first height whose ledger held the proposal pending."""
    round_in_flight: int = 0
    """The highest round that decided a block while the change was in flight."""
    signed_after: set[int] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.proposer = min(self.honest)
        self.target = max(self.honest)
        if self.kind == "join":
            self.target = len(self.chain.genesis.validators)

    # -- set-up ----------------------------------------------------------------------------

    def next_signers(self, member: int) -> tuple[Any, ...]:
        """The rotated member's core holds its new key too."""
        return (self.chain.extra[0],) if self.kind == "rotate" and member == self.target else ()

    def change(self) -> MemberChange:
        genesis = self.chain.genesis
        if self.kind == "join":
            key = self.chain.extra[0]
            new = ValidatorInfo(
                name="sim-joiner",
                public_key=key.public_key,
                proof_of_possession=key.prove_possession(),
                peer_id="peer-joiner",
                power=1,
                roles=(ROLE_TRAINER, ROLE_VALIDATOR),
            )
            return MemberChange(CHANGE_ADD, new.name, new)
        old = genesis.validators[self.target if self.kind != "power" else self.proposer]
        if self.kind == "leave":
            return MemberChange(CHANGE_REMOVE, old.name)
        if self.kind == "power":
            return MemberChange(CHANGE_POWER, old.name, power=3)
        key = self.chain.extra[0]
        rotated = replace(
            old,
            public_key=key.public_key,
            proof_of_possession=key.prove_possession(),
            peer_id="peer-rotated",
        )
        return MemberChange(CHANGE_ROTATE, old.name, rotated)

    # -- hooks -------------------------------------------------------------------------------

    def on_commit(
        self, member: int, honest: bool, block: Block, ledger: Ledger
    ) -> list[GovernanceRequested]:
        """The operator requests (GovernanceRequested) the commit of `block` at `member`'s
        node prompts, and the bookkeeping of what the change did."""
        height = int(block.header.height)
        vset = self.chain.set_at(height)
        self._observe(height, int(block.header.round), ledger, vset)
        if not honest:
            return []
        if member == self.proposer and not self.proposed and height >= self.change_at:
            self.proposed = True
            return [GovernanceRequested(change=self.change())]
        out: list[GovernanceRequested] = []
        for pending in ledger.pending:
            voting = 0 <= member < len(ledger.members) and ledger.members[member].power > 0
            if voting and member not in pending.approvers and member not in self.approved:
                self.approved.add(member)
                out.append(GovernanceRequested(approve=pending.proposal_id))
        return out

    def on_signers(self, height: int, signers: tuple[int, ...]) -> None:
        """Who signed the commit certificate of `height`."""
        if self.activation and height >= self.activation:
            self.signed_after |= set(signers)
            if self.kind == "leave" and self.target in signers:
                self.problems.append(f"removed member {self.target} signed height {height}")

    def _observe(self, height: int, round_: int, ledger: Ledger, vset: ValidatorSet) -> None:
        if ledger.pending and not self.pending_at:
            self.pending_at = height
        if self.pending_at and (not self.activation or height < self.activation):
            self.round_in_flight = max(self.round_in_flight, round_)
        for item in ledger.scheduled:
            if not self.activation:
                self.activation = int(item.activation)
        if self.activation and height >= self.activation:
            members = vset.members
            if self.kind == "join" and member_index(members, "sim-joiner") != self.target:
                self.problems.append(f"the joiner is not member {self.target} at {height}")
            if self.kind == "leave" and vset.power(self.target) != 0:
                self.problems.append(f"member {self.target} still has power at {height}")
            if self.kind == "power" and vset.power(self.proposer) != 3:
                self.problems.append(f"member {self.proposer} lacks power 3 at {height}")
            if self.kind == "rotate" and members[self.target].public_key != (
                self.chain.extra[0].public_key
            ):
                self.problems.append(f"member {self.target} kept its old key at {height}")

    # -- the verdict -------------------------------------------------------------------------

    def check(self, step: int, committed: int, seed: int) -> list[Violation]:
        """Violations of the run's change (see the module docstring)."""
        if not self.activation or committed < self.activation:
            detail = f"the {self.kind} change did not take effect by height {committed}"
            return [Violation(LIVENESS, step, committed, (), detail, seed)]
        problems = list(dict.fromkeys(self.problems))
        if self.kind in ("join", "rotate") and self.target not in self.signed_after:
            problems.append(f"member {self.target} signed no certificate after activation")
        return [
            Violation(GOVERNANCE, step, self.activation, (self.target,), p, seed) for p in problems
        ]

    def summary(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "pending_at": self.pending_at,
            "activation": self.activation,
            "round_in_flight": self.round_in_flight,
            "target": self.target,
        }


__all__ = ["SCENARIOS", "GovernanceScenario", "extra_keys"]
