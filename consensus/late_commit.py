"""Late precommits: the parent's commit certificate as the proposer of the next height sees it.

A node decides height h on the first precommits past 2/3 of the power, so its certificate
names only those; a slower validator's precommit (a site far away, a joiner that has just taken
its seat) is never in one. As CometBFT's LastCommit, the proposer of h + 1 puts into its block
the precommits for the decided block that reached it since: verified against the set that
committed h (in one batch, when the certificate is asked for: every node receives them, only the
next proposer uses them), added to the certificate's bitfield and aggregated into its signature (BLS
aggregation is associative). valid(v) checks the result like any certificate (quorum, one
aggregate verification). Pure and deterministic given the votes received.
"""

from __future__ import annotations

from consensus.crypto import Verifier, batch_verify_same_message
from consensus.signing import vote_sign_bytes
from consensus.types import CommitCertificate, Signature, Vote, VoteType
from consensus.validators import ValidatorSet


class LateCommit:
    """The last commit of the committed tip, growing with precommits that arrive late."""

    def __init__(self, chain_id: str, verifier: Verifier) -> None:
        self._chain_id = chain_id
        self._verifier = verifier
        self._base: CommitCertificate | None = None
        self._set: ValidatorSet | None = None
        self._late: dict[int, Signature] = {}
        self._unverified: dict[int, list[Signature]] = {}

    def reset(self, certificate: CommitCertificate | None, validator_set: ValidatorSet) -> None:
        """A new tip: its certificate, and the set that committed it."""
        self._base, self._set, self._late = certificate, validator_set, {}
        self._unverified = {}

    def add(self, vote: Vote) -> None:
        """Keep a precommit for the tip's block from a validator the certificate lacks."""
        base, vset = self._base, self._set
        if base is None or vset is None or vote.vote_type != VoteType.PRECOMMIT:
            return
        # one aggregate signs one message: a precommit of another round cannot join it
        if (vote.height, vote.round, vote.block_hash) != (
            base.height,
            base.round,
            base.block_hash,
        ):
            return
        signers = vset.indices(base.signers) or []
        who = int(vote.validator)
        if who in signers or who in self._late or not vset.is_validator(who):
            return
        seen = self._unverified.setdefault(who, [])
        if vote.signature not in seen and len(seen) < 2:  # a forgery ahead of the real one
            seen.append(vote.signature)

    def _verify_pending(self) -> None:
        base, vset = self._base, self._set
        if not self._unverified or base is None or vset is None:
            return
        pairs = [(i, sig) for i in sorted(self._unverified) for sig in self._unverified[i]]
        message = vote_sign_bytes(
            self._chain_id, VoteType.PRECOMMIT, base.height, base.round, base.block_hash
        )
        ok = batch_verify_same_message(
            self._verifier,
            [vset.public_keys[i] for i, _ in pairs],
            message,
            [sig for _, sig in pairs],
        )
        for (i, sig), good in zip(pairs, ok, strict=True):
            if good:
                self._late.setdefault(i, sig)
        self._unverified = {}

    def certificate(self) -> CommitCertificate | None:
        """The tip's certificate with every late precommit added."""
        self._verify_pending()
        base, vset = self._base, self._set
        if base is None or vset is None or not self._late:
            return base
        signers = sorted({*(vset.indices(base.signers) or []), *self._late})
        signature = self._verifier.aggregate(
            [base.aggregate_signature, *(self._late[i] for i in sorted(self._late))]
        )
        return CommitCertificate(
            base.height, base.round, base.block_hash, vset.bitfield(signers), signature
        )
