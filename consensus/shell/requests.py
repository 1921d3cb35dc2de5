"""What the node shell asks its I/O adapter to do (docs/ARCHITECTURE.md "The node shell").

The shell (`consensus.shell.NodeShell`) turns the core's actions into these requests. An
adapter performs them IN ORDER: `PersistSigner` is durable before the next `Publish` (which
carries the signature it protects). Requests that need an answer name the shell method the
adapter calls back with the result:

    Train        -> NodeShell.trained(...)
    Aggregate    -> NodeShell.aggregated(...)
    Evaluate     -> NodeShell.evaluated(...)
    FetchBlocks  -> NodeShell.blocks_fetched(...)   (always, with () when nothing came back)
    StartTimer   -> NodeShell.fire(...)              after `delay` seconds

Two adapters exist: the daemon's trio driver (`node/driver.py`) and the deterministic
simulator (`consensus/sim/runner.py`); the chain fixtures of the tests are a third, in-process
one. All of them run the same shell, so what the simulator checks is what ships.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.events import BuildCandidate, Commit, Message, StartTraining, TimeoutFired
from consensus.guard import SignerState
from consensus.types import (
    Block,
    Candidate,
    CommitCertificate,
    Evidence,
    GovernanceApproval,
    GovernanceProposal,
    Hash,
    Height,
    ValidatorIndex,
)

CONSENSUS = "consensus"
RECEIPTS = "receipts"
CANDIDATES = "candidates"
ATTESTATIONS = "attestations"
GOVERNANCE = "governance"
TOPICS = (CONSENSUS, RECEIPTS, CANDIDATES, ATTESTATIONS, GOVERNANCE)
"""The gossip topics the shell publishes on and listens to (the wire adds the chain id)."""


@dataclass(frozen=True, slots=True)
class Publish:
    """Gossip `message` on `topic`; `resend` marks a re-send of something already signed."""

    topic: str
    message: Message | GovernanceProposal | GovernanceApproval
    resend: bool = False


@dataclass(frozen=True, slots=True)
class PersistSigner:
    """Make the signer guard state durable before performing the next request."""

    state: SignerState


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Call `NodeShell.fire(event, now)` after `delay` seconds."""

    delay: float
    event: TimeoutFired


@dataclass(frozen=True, slots=True)
class FetchUpdate:
    """Fetch (prefetch) an update blob into the local store; ask `author` first when known."""

    blob_hash: Hash
    author: ValidatorIndex | None


@dataclass(frozen=True, slots=True)
class Train:
    """Train on the site's data from `action.base_model_hash`; answer `NodeShell.trained`."""

    action: StartTraining


@dataclass(frozen=True, slots=True)
class Aggregate:
    """Fetch and screen the updates of `action.receipts`, aggregate the survivors with the
    genesis rule and store the model; answer `NodeShell.aggregated` (the shell assembles and
    signs the candidate)."""

    action: BuildCandidate


@dataclass(frozen=True, slots=True)
class Evaluate:
    """Recompute `candidate` from its updates and judge it; answer `NodeShell.evaluated`."""

    candidate: Candidate
    candidate_hash: Hash


@dataclass(frozen=True, slots=True)
class StoreCommit:
    """Durably append a decided block (and ledger) to the local chain.

    `phases` are this height's phase durations (consensus.shell.phases); `missing_validators`
    counts voting validators whose precommit of the previous height never reached this node
    (None at height 1).
    """

    commit: Commit
    phases: dict[str, float]
    missing_validators: int | None


@dataclass(frozen=True, slots=True)
class FetchBlocks:
    """Fetch committed blocks from `from_height` on from peers; answer `blocks_fetched`.

    `peer_turn` None: try peers until one has blocks (we know we are behind); an int: a
    periodic poll, ask the peer at this turn of a round-robin over the connected peers.
    """

    from_height: Height
    peer_turn: int | None


@dataclass(frozen=True, slots=True)
class CountRejection:
    """A peer's message or a synced block was refused by the core (counted by reason)."""

    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class NoteEvidence:
    """A validator equivocated (the core also puts the evidence into a block)."""

    evidence: Evidence


Request = (
    Publish
    | PersistSigner
    | StartTimer
    | FetchUpdate
    | Train
    | Aggregate
    | Evaluate
    | StoreCommit
    | FetchBlocks
    | CountRejection
    | NoteEvidence
)

SyncedBlock = tuple[Block, CommitCertificate]
"""A committed block and its commit certificate, as block sync returns them."""
