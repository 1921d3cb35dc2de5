"""What a simulation run takes (`SimConfig`) and what it gives back (`RunResult`).

Defaults where the issue is silent: delays 5-50 ms of virtual time per message; a partition (when
asked for) starts 0.5-3 s into the run, lasts 5-20 s and splits the honest validators in two
halves, the faulty ones bridging both (twins: one copy per side); the liveness bound is the heal
time plus 60 virtual seconds per height.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consensus.sim.checker import LIVENESS, Violation

BEHAVIOURS = (
    "equivocate",
    "silent",
    "bad-certificate",
    "withhold",
    "twins",
    "timestamp",
    "inflate",
    "forge-rejection",
    "drift",
    "rule-swap",
    "double-propose",
)
INSIDER_BEHAVIOURS = BEHAVIOURS[5:]  # issue 10: one insider, docs/THREAT-MODEL.md


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything one simulated network needs apart from the seed."""

    validators: int = 4
    byzantine: int = 0
    behaviour: str = "equivocate"
    heights: int = 5
    drop: float = 0.0
    delay_min: float = 0.005
    delay_max: float = 0.05
    duplicate: float = 0.0
    reorder: bool = False
    partition: bool = False
    signer: str = "fake"
    training_delay: tuple[float, float] = (0.2, 1.0)
    gossip_interval: float = 1.0
    per_height_seconds: float = 60.0
    partition_start: tuple[float, float] = (0.5, 3.0)
    partition_length: tuple[float, float] = (5.0, 20.0)
    max_steps: int = 5_000_000
    governance: str = ""
    """A member-set change during the run: join, leave, rotate or power
    (consensus/sim/governance.py)."""
    change_at: int = 2
    """The height whose commit prompts the proposal."""

    def __post_init__(self) -> None:
        if self.behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {self.behaviour!r}")
        if self.validators < 1 or not 0 <= self.byzantine <= self.validators:
            raise ValueError("need validators >= 1 and 0 <= byzantine <= validators")
        if self.governance not in ("", "join", "leave", "rotate", "power"):
            raise ValueError(f"unknown governance scenario {self.governance!r}")
        if self.signer not in ("fake", "bls"):
            raise ValueError(f"unknown signer {self.signer!r}")


@dataclass
class RunResult:
    """What one seeded run produced."""

    seed: int
    committed_height: int
    target_height: int
    max_round: int
    steps: int
    virtual_seconds: float
    cpu_seconds: float
    honest_validators: int
    commit_certificate_bytes: int
    improvement_certificate_bytes: int
    model_blocks: int
    carry_over_blocks: int
    evidence: int
    messages_sent: int
    messages_dropped: int
    violations: list[Violation]
    trace_digest: str
    rejections: dict[str, int] = field(default_factory=dict)  # honest nodes' refusals by reason
    max_message_bytes: dict[str, int] = field(default_factory=dict)  # largest encoding, by type
    oversized_messages: dict[str, int] = field(default_factory=dict)  # above the topic cap
    reproposals: int = 0  # proposals with a valid round, i.e. carrying a polka certificate
    governance: dict[str, object] = field(default_factory=dict)  # the change: kind, activation

    @property
    def safety_violations(self) -> list[Violation]:
        return [v for v in self.violations if v.invariant != LIVENESS]

    @property
    def liveness_failures(self) -> list[Violation]:
        return [v for v in self.violations if v.invariant == LIVENESS]

    @property
    def cpu_seconds_per_height(self) -> float:
        """Core CPU time per committed height per honest validator."""
        denominator = max(1, self.committed_height) * max(1, self.honest_validators)
        return self.cpu_seconds / denominator
