"""Member identities and member-set changes: the primitives every chain type is built on.

See docs/ARCHITECTURE.md "Governance". Split from consensus/types.py (which re-exports every
name here) so that the chain's types stay one screenful each; the codec encodes these like any
other dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NewType

Height = NewType("Height", int)
Round = NewType("Round", int)
ValidatorIndex = NewType("ValidatorIndex", int)
Hash = NewType("Hash", bytes)  # SHA-256, 32 raw bytes
PublicKey = NewType("PublicKey", bytes)  # BLS12-381 G1, 48 bytes compressed
Signature = NewType("Signature", bytes)  # BLS12-381 G2, 96 bytes compressed

HASH_SIZE = 32
PUBLIC_KEY_SIZE = 48
SIGNATURE_SIZE = 96

EMPTY_SIGNATURE = Signature(bytes(SIGNATURE_SIZE))
"""Placeholder carried by a message before it is signed; never valid as a signature."""

ROLE_VALIDATOR = "validator"
ROLE_TRAINER = "trainer"
ROLE_OBSERVER = "observer"
ROLES = frozenset({ROLE_VALIDATOR, ROLE_TRAINER, ROLE_OBSERVER})


@dataclass(frozen=True, slots=True)
class ValidatorInfo:
    """One federation member as listed in the genesis."""

    name: str
    public_key: PublicKey
    proof_of_possession: Signature
    peer_id: str  # libp2p peer id, base58 string
    power: int
    roles: tuple[str, ...]  # sorted subset of ROLES
    agreement_key: bytes = b""
    """The member's long-term X25519 public key for secure aggregation (32 bytes; empty: none),
    from `bcfl init` (docs/ARCHITECTURE.md "Secure aggregation")."""


# --------------------------------------------------------------------------------------------
# Governance: member-set changes (consensus/governance.py, docs/ARCHITECTURE.md "Governance")
# --------------------------------------------------------------------------------------------

CHANGE_ADD = "add"
CHANGE_REMOVE = "remove"
CHANGE_POWER = "power"
CHANGE_ROTATE = "rotate"
CHANGE_KINDS = (CHANGE_ADD, CHANGE_REMOVE, CHANGE_POWER, CHANGE_ROTATE)


@dataclass(frozen=True, slots=True)
class MemberChange:
    """One change of the member set.

    - add: `member` is the new member (name, BLS key and proof of possession, peer id, roles,
      power); `target` is its name.
    - remove: `target` leaves (its index stays, with no roles and no power).
    - power: `target`'s voting power becomes `power`.
    - rotate: `target` keeps its roles and power and takes `member`'s BLS key, proof of
      possession and peer id (`member.name` is `target`).
    """

    kind: str
    target: str
    member: ValidatorInfo | None = None
    power: int = 0


@dataclass(frozen=True, slots=True)
class GovernanceProposal:
    """A member's signed proposal of a change; it counts as the proposer's approval."""

    change: MemberChange
    height: Height
    """The height the proposer saw as current: it makes two equal proposals distinct."""
    proposer: ValidatorIndex
    signature: Signature = EMPTY_SIGNATURE

    @property
    def signer(self) -> ValidatorIndex:
        """The member who proposed (`proposer`)."""
        return self.proposer


@dataclass(frozen=True, slots=True)
class GovernanceApproval:
    """A member's signed approval of the pending proposal `proposal_id`."""

    proposal_id: Hash
    approver: ValidatorIndex
    signature: Signature = EMPTY_SIGNATURE

    @property
    def signer(self) -> ValidatorIndex:
        """The approving member (`approver`)."""
        return self.approver


@dataclass(frozen=True, slots=True)
class PendingProposal:
    """A proposal in the ledger waiting for approvals of > 2/3 of the power."""

    proposal_id: Hash
    change: MemberChange
    proposed_at: Height
    approvers: tuple[ValidatorIndex, ...]  # sorted, distinct


@dataclass(frozen=True, slots=True)
class ScheduledChange:
    """An approved change and the first height whose validator set includes it."""

    proposal_id: Hash
    change: MemberChange
    activation: Height
