"""Votes and the evidence of misbehaviour a block carries (re-exported by consensus/types.py).

A duplicate vote, a double proposal and a signed invalid proposal each name their `offender`
and their `offence`, the (member, height, round, slot) key the ledger punishes once
(consensus/ledger.py); the slot is the vote type (1, 2) or `PROPOSAL_OFFENCE` (3) or
`INVALID_PROPOSAL_OFFENCE` (4).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from consensus.members import EMPTY_SIGNATURE, Hash, Height, Round, Signature, ValidatorIndex


class VoteType(enum.IntEnum):
    """The two vote kinds of Algorithm 1."""

    PREVOTE = 1
    PRECOMMIT = 2


@dataclass(frozen=True, slots=True)
class Vote:
    """A prevote or precommit; `block_hash` None is a vote for nil."""

    vote_type: VoteType
    height: Height
    round: Round
    block_hash: Hash | None
    validator: ValidatorIndex
    signature: Signature = EMPTY_SIGNATURE

    @property
    def signer(self) -> ValidatorIndex:
        """The validator who cast the vote (`validator`)."""
        return self.validator


@dataclass(frozen=True, slots=True)
class DuplicateVoteEvidence:
    """Two signed votes of one validator for one (height, round, type) with different values."""

    vote_a: Vote
    vote_b: Vote

    kind = "duplicate-vote"

    @property
    def offender(self) -> ValidatorIndex:
        """The validator who signed both votes."""
        return self.vote_a.validator

    @property
    def offence(self) -> tuple[int, int, int, int]:
        """(validator, height, round, vote type): what the chain punishes once."""
        v = self.vote_a
        return (int(v.validator), int(v.height), int(v.round), int(v.vote_type))


PROPOSAL_OFFENCE = 3
"""The last slot of a double proposal's offence key (votes use their `VoteType`, 1 and 2)."""


@dataclass(frozen=True, slots=True)
class ProposalHead:
    """What a proposer signs of a proposal besides (height, round): ⟨id(v), vr⟩ and the
    signature (consensus/signing.py `proposal_head_bytes`); the block itself is not needed to
    prove that two of them conflict."""

    block_hash: Hash
    valid_round: Round
    signature: Signature

    @property
    def order(self) -> tuple[bytes, int]:
        """(block hash, valid round): what two heads of one round differ in, and their order."""
        return (bytes(self.block_hash), int(self.valid_round))


@dataclass(frozen=True, slots=True)
class DuplicateProposalEvidence:
    """Two signed proposals of one member for one (height, round) with different blocks or
    valid rounds, `first` < `second` by (block hash, valid round)."""

    height: Height
    round: Round
    proposer: ValidatorIndex
    first: ProposalHead
    second: ProposalHead

    kind = "double-proposal"

    @property
    def offender(self) -> ValidatorIndex:
        """The member who signed both proposals."""
        return self.proposer

    @property
    def offence(self) -> tuple[int, int, int, int]:
        """(proposer, height, round, PROPOSAL_OFFENCE): what the chain punishes once."""
        return (int(self.proposer), int(self.height), int(self.round), PROPOSAL_OFFENCE)


INVALID_PROPOSAL_OFFENCE = 4
"""The last slot of a signed invalid proposal's offence key."""


@dataclass(frozen=True, slots=True)
class InvalidProposalEvidence:
    """A signed proposal whose block breaks a rule that needs no chain state to check
    (consensus/invalid_proposal.py): the block travels as its canonical encoding, whose SHA-256
    is the block hash the proposer signed."""

    height: Height
    round: Round
    proposer: ValidatorIndex
    valid_round: Round
    block: bytes
    signature: Signature

    kind = "invalid-proposal"

    @property
    def offender(self) -> ValidatorIndex:
        """The member who signed the proposal."""
        return self.proposer

    @property
    def offence(self) -> tuple[int, int, int, int]:
        """(proposer, height, round, INVALID_PROPOSAL_OFFENCE): what the chain punishes once."""
        return (int(self.proposer), int(self.height), int(self.round), INVALID_PROPOSAL_OFFENCE)


Evidence = DuplicateVoteEvidence | DuplicateProposalEvidence | InvalidProposalEvidence
"""Every kind of misbehaviour evidence a block can carry."""
