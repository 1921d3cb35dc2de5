"""A consortium's lifecycle on a devnet: a site joins or leaves by governance while it runs.

`bcfl devnet up --join-at H`: the devnet has one home more than `--nodes`, outside the genesis
(node{N}); when the chain reaches height H its daemon starts (from the genesis and the bootstrap
addresses alone), node0 proposes to add it (`POST /members/propose`, as `bcfl member propose
add` does) and as many others approve as a quorum needs; the joiner syncs, and from its
activation height it votes and trains.

`bcfl devnet up --leave-at H`: at height H node0 proposes to remove the last site; once the
member set at node0 no longer has it, its daemon is stopped.

`report` adds the figures to the `--json` result under `lifecycle` (docs/ARCHITECTURE.md
"Governance"): the activation height (the first block whose `validators` reflect the change),
the heights whose commit certificate the joiner signed, and for a departure the median block
interval before and after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import median
from typing import Any

from devnet.launcher import DevnetNode, DevnetSpec
from devnet.processes import NodeProcess, start_node, stop_node, write_pids


@dataclass
class Lifecycle:
    """Drives one join or leave from the launcher's poll loop (`tick`)."""

    spec: DevnetSpec
    nodes: list[DevnetNode]
    processes: list[NodeProcess]
    phase: str = "wait"
    proposal_id: str = ""
    approved: set[str] = field(default_factory=set)
    events: list[str] = field(default_factory=list)
    site: str = ""  # the joining or leaving site's name, fixed before any node is removed

    def __post_init__(self) -> None:
        self.site = self.target.name

    @property
    def kind(self) -> str:
        return "join" if self.spec.join_at is not None else "leave"

    @property
    def at(self) -> int:
        return int(self.spec.join_at if self.spec.join_at is not None else self.spec.leave_at or 0)

    @property
    def target(self) -> DevnetNode:
        if self.kind == "join":
            return next(n for n in self.nodes if n.joiner)
        return [n for n in self.nodes if not n.observer and not n.joiner][-1]

    def _approvers(self) -> list[DevnetNode]:
        members = [n for n in self.nodes if not n.observer and not n.joiner]
        if self.kind == "leave":
            members = members[:-1]
        total = len(members) + (1 if self.kind == "leave" else 0)  # the set's power now
        needed = (2 * total) // 3 + 1  # strictly more than 2/3, the proposer included
        return members[1:needed]

    def tick(self, rows: list[dict[str, Any]]) -> None:
        """One poll of the launcher: move the change on when the chain allows."""
        if self.phase == "done":
            return
        height = max((int(r.get("height") or 0) for r in rows), default=0)
        proposer = self.nodes[0]
        if self.phase == "wait" and height >= self.at:
            if self.kind == "join":
                self.processes.append(start_node(self.target.name, self.target.home))
                write_pids(self.nodes[0].home.parent, self.processes)
                info = _node_info(self.target)
                body: dict[str, Any] = {"kind": "add", "node_info": info}
            else:
                body = {"kind": "remove", "target": self.target.name}
            answer = proposer.post("/members/propose", body) or {}
            if "proposal_id" in answer:
                self.proposal_id = answer["proposal_id"]
                self.phase = "approve"
                self.events.append(f"proposed {self.kind} {self.target.name} at height {height}")
            else:
                self.events.append(f"proposal refused at height {height}: {answer.get('error')}")
        elif self.phase == "approve":
            for node in self._approvers():
                if node.name in self.approved:
                    continue
                view = node.get("/members", timeout=2.0) or {}
                if any(p["id"] == self.proposal_id for p in view.get("pending", [])):
                    answer = node.post("/members/approve", {"proposal_id": self.proposal_id})
                    if answer and "approved" in answer:
                        self.approved.add(node.name)
            if len(self.approved) == len(self._approvers()):
                self.phase = "activate" if self.kind == "leave" else "done"
        elif self.phase == "activate":
            view = proposer.get("/members", timeout=2.0) or {}
            gone = [m for m in view.get("members", []) if m["name"] == self.target.name]
            if gone and not gone[0]["current"]:
                index = self.nodes.index(self.target)
                stop_node(self.processes[index])
                del self.processes[index]
                del self.nodes[index]
                self.events.append(f"{gone[0]['name']} removed; stopped at height {height}")
                self.phase = "done"

    def report(self, result: dict[str, Any]) -> dict[str, Any]:
        """The lifecycle figures of a `--json` result."""
        name = self.site
        blocks = result.get("blocks", [])
        if self.kind == "join":
            active = [b["height"] for b in blocks if name in (b.get("validators") or [])]
        else:
            active = [b["height"] for b in blocks if name not in (b.get("validators") or [name])]
        activation = min(active) if active else None
        out: dict[str, Any] = {
            "kind": self.kind,
            "site": name,
            "at_height": self.at,
            "activation_height": activation,
            "events": self.events,
        }
        if self.kind == "join":
            out["joiner_signed_heights"] = [
                b["height"] for b in blocks if name in (b.get("commit_signers") or [])
            ]
            return out
        times = {b["height"]: b.get("time_ms") for b in blocks}
        gaps = {
            h: (times[h] - times[h - 1]) / 1000.0
            for h in times
            if h - 1 in times and times[h] is not None and times[h - 1] is not None
        }
        if activation is not None:
            before = [g for h, g in gaps.items() if h < activation]
            after = [g for h, g in gaps.items() if h > activation]
            out["median_interval_before_s"] = median(before) if before else None
            out["median_interval_after_s"] = median(after) if after else None
            if before and after:
                out["interval_ratio"] = median(after) / median(before)
        return out


def _node_info(node: DevnetNode) -> dict[str, Any]:
    import json

    raw = json.loads((node.home / "node_info.json").read_text())
    keys = (
        "name",
        "peer_id",
        "roles",
        "bls_public_key",
        "bls_proof_of_possession",
        "agreement_public_key",
    )
    return {k: raw[k] for k in keys if k in raw}
