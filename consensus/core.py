"""Consensus core: Tendermint Algorithm 1 plus the proof-of-learning phase (skeleton)."""

from __future__ import annotations

from dataclasses import dataclass

from consensus.crypto import Signer, Verifier
from consensus.events import Action, Event
from consensus.guard import SignerState
from consensus.types import Block, CommitCertificate, Genesis, Ledger, ValidatorIndex


@dataclass(frozen=True, slots=True)
class ChainTip:
    """The last committed block, its commit certificate and the ledger after it (restarts)."""

    block: Block
    commit_certificate: CommitCertificate
    ledger: Ledger


class ConsensusCore:
    """One node's consensus state; `handle(event, now)` is the only entry point."""

    def __init__(
        self,
        genesis: Genesis,
        *,
        verifier: Verifier,
        me: ValidatorIndex | None = None,
        signer: Signer | None = None,
        signer_state: SignerState | None = None,
        tip: ChainTip | None = None,
    ) -> None:
        self.genesis = genesis

    def handle(self, event: Event, now: float) -> list[Action]:
        """Feed one event at time `now` (seconds, any monotonic origin); return actions in order."""
        raise NotImplementedError
