"""Per-height phase timings of a node (docs/ARCHITECTURE.md "The data path of one height").

The shell marks moments (on the adapter's clock: trio's in the daemon, the virtual clock in the
simulator) as a height progresses and turns them into durations when the height commits; they
go into the metrics, the store (for `/chain`) and `bcfl devnet up --json` (blocks[].phases):

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

PHASES = (
    "train",
    "update_gossip",
    "candidate",
    "attestation",
    "propose_to_commit",
    "block_interval",
)
"""Phases of one height, the keys of `bcfl devnet up --json` blocks[].phases."""


@dataclass
class HeightTimes:
    """Marks of one height on the adapter's clock, turned into phases at commit."""

    start: float
    train_s: float = 0.0
    eval_s: float = 0.0
    trained_at: float | None = None
    building_at: float | None = None
    last_receipt_at: float | None = None
    candidate_at: float | None = None
    proposal_at: float | None = None

    def phases(self, committed_at: float) -> dict[str, float]:
        """The phase durations of the height, if it committed at `committed_at`."""
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
