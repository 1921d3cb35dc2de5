"""Per-height phase timings of a node (DESIGN.md "Proof of learning", steps 1-6).

The driver marks wall-clock moments (time.monotonic) as a height progresses and turns them
into durations when the height commits; they go into the metrics, the store (for `/chain`)
and `bcfl devnet up --json` (blocks[].phases). Phases:

    train              local training of this height (0 for a non-trainer)
    update_gossip      end of our training (or height start) -> the last update receipt is in
    candidate          building the candidate (proposer) / last receipt -> candidate (others)
    attestation        candidate known -> proposal seen (evaluation and attestation quorum)
    propose_to_commit  proposal seen -> commit
    block_interval     commit of the previous height -> commit of this one

plus `evaluate`: the time this node spent evaluating candidates (with `train`, what the
coordination overhead of a height excludes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telemetry import labels

PHASES = labels.PHASES  # the keys of `bcfl devnet up --json` blocks[].phases


@dataclass
class HeightTimes:
    """Wall-clock marks (time.monotonic) of one height, turned into phases at commit."""

    start: float
    train_s: float = 0.0
    eval_s: float = 0.0
    trained_at: float | None = None
    building_at: float | None = None
    last_receipt_at: float | None = None
    candidate_at: float | None = None
    proposal_at: float | None = None

    def phases(self, committed_at: float) -> dict[str, float]:
        trained = self.trained_at or self.start
        # the proposer knows when it starts building; the others take the last receipt they
        # saw before the candidate as the moment the update window closed
        building = self.building_at or self.last_receipt_at or self.candidate_at or trained
        candidate = self.candidate_at or building
        proposal = self.proposal_at or candidate
        return {
            "train": self.train_s,
            "update_gossip": max(0.0, building - trained),
            "candidate": max(0.0, candidate - building),
            "attestation": max(0.0, proposal - candidate),
            "propose_to_commit": max(0.0, committed_at - proposal),
            "block_interval": committed_at - self.start,
            "evaluate": self.eval_s,
        }


@dataclass
class DriverState:
    """What the HTTP API and the status command show."""

    peers: int = 0
    sync_state: str = "in_sync"
    last_metric: dict[str, Any] | None = None
