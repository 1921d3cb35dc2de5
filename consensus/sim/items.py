"""The simulator's queue items and nodes (consensus/sim/runner.py performs them).

Split from the runner so that it stays one screenful per concern; nothing here acts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from consensus.events import Message, TimeoutFired, TrainingFinished
from consensus.shell import Aggregate, Evaluate, NodeShell
from consensus.sim.app import FakeLearningApp
from consensus.sim.byzantine import Behaviour
from consensus.sim.network import NodeId
from consensus.types import (
    Block,
    CommitCertificate,
    EvalReport,
    GovernanceApproval,
    GovernanceProposal,
    Hash,
    UpdateReceipt,
)


@dataclass(frozen=True, slots=True)
class _Start:
    node: NodeId


@dataclass(frozen=True, slots=True)
class _Timer:
    node: NodeId
    event: TimeoutFired


@dataclass(frozen=True, slots=True)
class _Trained:
    node: NodeId
    event: TrainingFinished
    seconds: float


@dataclass(frozen=True, slots=True)
class _Built:
    node: NodeId
    request: Aggregate
    accepted: tuple[UpdateReceipt, ...]
    model_hash: Hash


@dataclass(frozen=True, slots=True)
class _Evaluated:
    node: NodeId
    request: Evaluate
    improved: bool
    report: EvalReport


@dataclass(frozen=True, slots=True)
class _GossipTick:
    node: NodeId


@dataclass(frozen=True, slots=True)
class _Gossip:
    """A core message on the wire, with its digest computed once per send (for the trace)."""

    message: Message | GovernanceProposal | GovernanceApproval
    digest: bytes


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """Simulator wire message: send me committed blocks from `from_height` on."""

    from_height: int


@dataclass(frozen=True, slots=True)
class SyncResponse:
    """Simulator wire message: committed blocks with their commit certificates."""

    blocks: tuple[tuple[Block, CommitCertificate], ...]


@dataclass
class SimNode:
    """One simulated process: a shell around a core, its app, its behaviour, its chain."""

    node_id: NodeId
    member: int
    shell: NodeShell
    app: FakeLearningApp
    behaviour: Behaviour | None
    chain: list[tuple[Block, CommitCertificate]] = field(default_factory=list)
    cpu_seconds: float = 0.0
    start_at: float = 0.0
    """A joiner starts late (consensus/sim/governance.py); it hears nothing before."""

    @property
    def core(self) -> Any:
        return self.shell.core

    @property
    def honest(self) -> bool:
        return self.behaviour is None

    @property
    def height(self) -> int:
        return len(self.chain)
