"""Bookkeeping of one height's learning round (getValue(), consensus/learning_round.py).

The update receipts gossiped for this height, the candidates seen, this node's evaluations and
attestations, everyone's attestations (verified lazily, in one batch per verdict, like votes),
and where the round's proposer stands in building its proposal. Data only: the decisions (when
to build, what to propose) are `LearningRound`'s.
"""

from __future__ import annotations

import enum
import math
import sys
from collections.abc import Callable, Sequence

from consensus.types import Attestation, Candidate, Hash, Round, UpdateReceipt, ValidatorIndex


class ProposerStage(enum.Enum):
    """Where this node, as the round's proposer, stands in getting a value to propose."""

    IDLE = "idle"  # not the proposer of the current round, or already proposed
    WAITING_FOR_UPDATES = "waiting"  # update window open
    BUILDING = "building"  # BuildCandidate emitted, waiting for CandidateBuilt
    ATTESTING = "attesting"  # candidate gossiped, collecting attestations
    PROPOSED = "proposed"


class AttestationTally:
    """Attestations for one candidate, split by verdict, verified lazily."""

    def __init__(self) -> None:
        self.by_signer: dict[ValidatorIndex, Attestation] = {}
        self.verified: set[ValidatorIndex] = set()

    def add(self, attestation: Attestation, *, verified: bool) -> bool:
        """Store the first attestation of a signer; return False for a repeat."""
        if attestation.signer in self.by_signer:
            return False
        self.by_signer[attestation.signer] = attestation
        if verified:
            self.verified.add(attestation.signer)
        return True

    def power(self, improved: bool, power_of: Callable[[int], int], *, verified_only: bool) -> int:
        """Power of signers with this verdict."""
        return sum(
            power_of(signer)
            for signer, att in self.by_signer.items()
            if att.improved == improved and (not verified_only or signer in self.verified)
        )

    def verify(
        self,
        improved: bool,
        verify: Callable[[Sequence[Attestation]], list[bool]],
    ) -> list[Attestation]:
        """Verify pending attestations with this verdict in one batch; drop and return bad ones."""
        pending = [
            att
            for signer, att in sorted(self.by_signer.items())
            if att.improved == improved and signer not in self.verified
        ]
        bad: list[Attestation] = []
        if not pending:
            return bad
        for att, ok in zip(pending, verify(pending), strict=True):
            if ok:
                self.verified.add(att.signer)
            else:
                del self.by_signer[att.signer]
                bad.append(att)
        return bad

    def verified_with(self, improved: bool) -> list[Attestation]:
        """Verified attestations with this verdict, by signer index."""
        return [
            att
            for signer, att in sorted(self.by_signer.items())
            if att.improved == improved and signer in self.verified
        ]


class LearningState:
    """Everything of the learning round for the current height."""

    def __init__(self) -> None:
        self.receipts: dict[ValidatorIndex, UpdateReceipt] = {}
        self.window_closed = False
        self.trained = False  # this node's own receipt for the height is signed
        self.candidates: dict[Hash, Candidate] = {}
        self.evaluating: set[Hash] = set()
        self.evaluated_rounds: set[int] = set()
        self.mine: dict[Hash, Attestation] = {}
        self.attestations: dict[Hash, AttestationTally] = {}
        self.rebroadcast_round: dict[Hash, Round] = {}
        self.stage = ProposerStage.IDLE
        self.stage_round: Round = Round(-1)
        self.candidate_hash: Hash | None = None

    def tally(self, candidate_hash: Hash) -> AttestationTally:
        """The attestation tally of a candidate (created on first use)."""
        tally = self.attestations.get(candidate_hash)
        if tally is None:
            tally = self.attestations[candidate_hash] = AttestationTally()
        return tally


def finite(x: float) -> float:
    """Clamp a statistic into what the codec accepts: a diverged model's NaN or infinite loss
    becomes the largest float (with its sign), so the message still decodes at every peer."""
    x = float(x)
    if math.isnan(x):
        return sys.float_info.max
    return max(-sys.float_info.max, min(sys.float_info.max, x))
