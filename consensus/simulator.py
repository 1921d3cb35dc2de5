"""The consensus simulator: public entry point (`bcfl simulate consensus`, tests, benchmark).

N real `ConsensusCore`s, each inside the node shell the daemon runs (consensus/shell), run on a
virtual clock over a seeded in-memory network that drops, delays, duplicates, reorders and
partitions messages, with Byzantine behaviours for some validators and invariant checks after
every step (docs/ARCHITECTURE.md "Testing layers"). The pieces live in `consensus/sim/`; this
module runs many seeds and summarises them.

    summary = run_many(SimConfig(validators=7, byzantine=2, behaviour="equivocate"), range(200))
    summary.ok, summary.to_json(), summary.table()
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from consensus.bounds import gossip_size_caps
from consensus.sim.checker import Violation
from consensus.sim.config import BEHAVIOURS, RunResult, SimConfig
from consensus.sim.runner import Simulation, run_one

__all__ = ["BEHAVIOURS", "RunResult", "SimConfig", "Simulation", "Summary", "run_many", "run_one"]

MAX_DETAILS = 50
"""At most this many violation details in a summary (the count is always exact)."""


@dataclass
class Summary:
    """Many runs of one configuration."""

    config: SimConfig
    results: list[RunResult] = field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def safety_violations(self) -> list[Violation]:
        return [v for r in self.results for v in r.safety_violations]

    @property
    def liveness_failures(self) -> list[Violation]:
        return [v for r in self.results for v in r.liveness_failures]

    @property
    def ok(self) -> bool:
        return not self.safety_violations and not self.liveness_failures

    def trace_digest(self) -> str:
        """SHA-256 over every run's trace digest, in seed order: equal iff the traces are."""
        digest = hashlib.sha256()
        for r in self.results:
            digest.update(f"{r.seed}:{r.trace_digest};".encode())
        return digest.hexdigest()

    def to_json(self) -> dict[str, Any]:
        results = self.results
        heights = [r.committed_height for r in results] or [0]
        cpu = [r.cpu_seconds_per_height for r in results] or [0.0]
        safety = self.safety_violations
        liveness = self.liveness_failures
        c = self.config
        return {
            "config": {
                "validators": c.validators,
                "byzantine": c.byzantine,
                "behaviour": c.behaviour,
                "heights": c.heights,
                "drop": c.drop,
                "delay": [c.delay_min, c.delay_max],
                "duplicate": c.duplicate,
                "reorder": c.reorder,
                "partition": c.partition,
                "signer": c.signer,
            },
            "runs": len(results),
            "seeds": [r.seed for r in results],
            "committed_heights": {
                "min": min(heights),
                "max": max(heights),
                "mean": round(sum(heights) / len(heights), 3),
            },
            "runs_reaching_target": sum(1 for r in results if r.committed_height >= c.heights),
            "safety_violations": len(safety),
            "safety_violation_details": [v.to_json() for v in safety[:MAX_DETAILS]],
            "liveness_failures": len(liveness),
            "liveness_failure_details": [v.to_json() for v in liveness[:MAX_DETAILS]],
            "max_rounds_per_height": max((r.max_round + 1 for r in results), default=0),
            "cpu_seconds_per_height": {
                "mean": round(sum(cpu) / len(cpu), 6),
                "max": round(max(cpu), 6),
            },
            "certificate_bytes": {
                "commit": max((r.commit_certificate_bytes for r in results), default=0),
                "improvement": max((r.improvement_certificate_bytes for r in results), default=0),
            },
            "model_blocks": sum(r.model_blocks for r in results),
            "carry_over_blocks": sum(r.carry_over_blocks for r in results),
            "evidence_reported": sum(r.evidence for r in results),
            "rejections": _sum_counts(r.rejections for r in results),
            "max_message_bytes": _max_counts(r.max_message_bytes for r in results),
            "message_caps": gossip_size_caps(self.config.validators),
            "oversized_messages": _sum_counts(r.oversized_messages for r in results),
            "messages_sent": sum(r.messages_sent for r in results),
            "messages_dropped": sum(r.messages_dropped for r in results),
            "virtual_seconds_max": round(max((r.virtual_seconds for r in results), default=0), 3),
            "steps": sum(r.steps for r in results),
            "trace_digest": self.trace_digest(),
            "wall_seconds": round(self.wall_seconds, 3),
        }

    def table(self) -> str:
        """A human summary: one line per figure, then the first violations."""
        data = self.to_json()
        c = self.config
        rows = [
            (
                "configuration",
                f"n={c.validators} byzantine={c.byzantine} ({c.behaviour}) "
                f"drop={c.drop} delay={c.delay_min}:{c.delay_max} duplicate={c.duplicate} "
                f"reorder={c.reorder} partition={c.partition} signer={c.signer}",
            ),
            ("runs", str(data["runs"])),
            (
                "heights committed (min/mean/max)",
                "{min}/{mean}/{max} of {target}".format(
                    **data["committed_heights"], target=c.heights
                ),
            ),
            ("runs reaching target", str(data["runs_reaching_target"])),
            ("safety violations", str(data["safety_violations"])),
            ("liveness failures", str(data["liveness_failures"])),
            ("max rounds per height", str(data["max_rounds_per_height"])),
            (
                "CPU s per height per validator (mean/max)",
                "{mean:.6f}/{max:.6f}".format(**data["cpu_seconds_per_height"]),
            ),
            (
                "certificate bytes (commit/improvement)",
                "{commit}/{improvement}".format(**data["certificate_bytes"]),
            ),
            ("model / carry-over blocks", f"{data['model_blocks']}/{data['carry_over_blocks']}"),
            ("evidence reported", str(data["evidence_reported"])),
            ("messages sent / dropped", f"{data['messages_sent']}/{data['messages_dropped']}"),
            ("wall seconds", f"{self.wall_seconds:.1f}"),
        ]
        width = max(len(k) for k, _ in rows)
        lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
        shown = (self.safety_violations + self.liveness_failures)[:10]
        if shown:
            lines.append("")
            lines.extend(v.describe() for v in shown)
        return "\n".join(lines)


def run_many(config: SimConfig, seeds: Iterable[int]) -> Summary:
    """Run one simulation per seed and summarise them."""
    started = time.perf_counter()
    summary = Summary(config)
    for seed in seeds:
        summary.results.append(run_one(config, seed))
    summary.wall_seconds = time.perf_counter() - started
    return summary


def _max_counts(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    most: dict[str, int] = {}
    for count in counts:
        for key, value in count.items():
            most[key] = max(most.get(key, 0), value)
    return dict(sorted(most.items()))


def _sum_counts(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for count in counts:
        total.update(count)
    return dict(sorted(total.items()))
