"""Byzantine behaviours of the consensus simulator: wrappers around REAL cores.

A faulty validator runs the same `ConsensusCore` as everyone else; its behaviour rewrites what
leaves the process (and, for `silent`, what enters). The faulty validators form one coalition
(`Adversary`) that shares what it equivocated, as a real attacker controlling several keys would.

- `equivocate`: every proposal comes in two different valid versions (the second has header
  time + 1 ms, re-signed); votes come in two versions too (for the block each half was shown,
  else block vs nil), and so do attestations ("improved" and "not improved"). Both versions go
  to everyone, version A first to one half of the honest nodes and version B first to the
  other, so each half acts on a different first view while gossip lets everyone see the
  conflict (as GossipSub relaying would). Halves are the partition sides when `--partition` is
  on, else a seeded split.
- `silent`: crashed from the start: receives nothing, sends nothing.
- `bad-certificate`: a proposal that changes the model carries a forged improvement certificate
  (a signature made with the proposer's own key, or a bitfield naming only the coalition); a
  carry-over proposal is turned into a model block with a forged certificate. Honest nodes must
  prevote nil; the checker fails the run if such a block is ever committed.
- `withhold`: never sends attestations, update receipts or precommits, and answers no sync.
- `timestamp`, `inflate`, `rule-swap`, `double-propose`: the insider rewrites of
  consensus/sim/insider.py (far-future block time, 10^9 samples claimed, rule "median", a
  second signed version of every proposal sent to everyone).
- `forge-rejection`: a candidate moves one honest receipt to `rejected` and aggregates without
  it (model hash recomputed, re-signed); honest evaluators do not reproduce the rejection.
- `drift`: a candidate whose model is not the aggregation of its receipts (the simulator has no
  metric; the learning-side bound on drift is tested in tests/unit/learning).
- `twins`: two live copies of one validator key, each an unmodified core (an operator who
  started a fail-over node while the primary still runs). With `--partition` the copies sit on
  opposite sides.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from consensus import codec
from consensus.sim.app import aggregate_model_hash
from consensus.sim.insider import rewrite
from consensus.types import (
    Attestation,
    Candidate,
    Hash,
    ImprovementCertificate,
    Proposal,
    Signature,
    UpdateReceipt,
    Vote,
    VoteType,
)

if TYPE_CHECKING:
    from consensus.sim.items import SimNode
    from consensus.sim.network import NodeId, Partition
    from consensus.sim.setup import SimChain

Outgoing = list[tuple[list["NodeId"], Any]]


class Adversary:
    """The coalition of faulty validators: keys, the honest halves, and what it equivocated."""

    def __init__(self, chain: SimChain, members: frozenset[int], rng: random.Random) -> None:
        self.chain = chain
        self.members = members
        self.rng = rng
        self.side: dict[NodeId, int] = {}
        self.faulty_nodes: set[NodeId] = set()
        # (height, round) -> block hash shown to side 0 and to side 1
        self.split_blocks: dict[tuple[int, int], tuple[Hash, Hash]] = {}

    def set_sides(self, nodes: Sequence[SimNode], partition: Partition | None) -> None:
        """Assign every honest node to half 0 or 1 (the partition sides when there is one)."""
        honest = [n.node_id for n in nodes if n.behaviour is None]
        self.faulty_nodes = {n.node_id for n in nodes if n.behaviour is not None}
        if partition is not None:
            for node_id in honest:
                self.side[node_id] = 0 if node_id in partition.side_a else 1
        else:
            order = list(honest)
            self.rng.shuffle(order)
            for i, node_id in enumerate(order):
                self.side[node_id] = i % 2

    def halves(self, peers: Sequence[NodeId]) -> tuple[list[NodeId], list[NodeId]]:
        """(faulty peers + half 0, half 1): the coalition always sees the first version."""
        first = [p for p in peers if self.side.get(p, 0) == 0]
        second = [p for p in peers if self.side.get(p, 0) == 1]
        return first, second


class Behaviour:
    """Pass-through base: what a faulty node sends for one message the core broadcast."""

    silent = False
    answers_sync = True

    def __init__(self, adversary: Adversary, node_id: NodeId, member: int) -> None:
        self.adversary = adversary
        self.node_id = node_id
        self.member = member

    def outgoing(self, message: Any, peers: list[NodeId], now: float) -> Outgoing:
        return [(peers, message)]

    def _sign(self, message: Any) -> Any:
        return self.adversary.chain.sign(self.member, message)


class Silent(Behaviour):
    silent = True
    answers_sync = False

    def outgoing(self, message: Any, peers: list[NodeId], now: float) -> Outgoing:
        return []


class Withhold(Behaviour):
    answers_sync = False

    def outgoing(self, message: Any, peers: list[NodeId], now: float) -> Outgoing:
        if isinstance(message, Attestation | UpdateReceipt):
            return []
        if isinstance(message, Vote) and message.vote_type == VoteType.PRECOMMIT:
            return []
        return [(peers, message)]


class Twin(Behaviour):
    """An unmodified core sharing its key with another live copy."""


class Equivocate(Behaviour):
    def outgoing(self, message: Any, peers: list[NodeId], now: float) -> Outgoing:
        first, second = self.adversary.halves(peers)
        if isinstance(message, Proposal):
            block = message.block
            other_block = dataclasses.replace(
                block, header=dataclasses.replace(block.header, time_ms=block.header.time_ms + 1)
            )
            other = self._sign(dataclasses.replace(message, block=other_block))
            key = (int(message.height), int(message.round))
            self.adversary.split_blocks[key] = (
                codec.block_hash(block),
                codec.block_hash(other_block),
            )
            return _both_orders(first, second, message, other)
        if isinstance(message, Vote):
            key = (int(message.height), int(message.round))
            split = self.adversary.split_blocks.get(key)
            if split is not None:
                a = self._vote_for(message, split[0])
                b = self._vote_for(message, split[1])
            else:
                a = message
                b = self._vote_for(message, None)
            return _both_orders(first, second, a, b)
        if isinstance(message, Attestation):
            flipped = self._sign(dataclasses.replace(message, improved=not message.improved))
            return _both_orders(first, second, message, flipped)
        return [(peers, message)]

    def _vote_for(self, vote: Vote, block_hash: Hash | None) -> Vote:
        if vote.block_hash == block_hash:
            return vote
        signed: Vote = self._sign(dataclasses.replace(vote, block_hash=block_hash))
        return signed


def _both_orders(first: list[NodeId], second: list[NodeId], a: Any, b: Any) -> Outgoing:
    """Half 0 gets `a` then `b`, half 1 gets `b` then `a` (FIFO links keep that order)."""
    if a is b:
        return [(first + second, a)]
    return [(first, a), (second, b), (first, b), (second, a)]


class BadCertificate(Behaviour):
    def outgoing(self, message: Any, peers: list[NodeId], now: float) -> Outgoing:
        if not isinstance(message, Proposal):
            return [(peers, message)]
        block = message.block
        chain = self.adversary.chain
        forged_signature = Signature(chain.signers[self.member].sign(b"forged improvement"))
        valset = chain.validator_set
        if block.improvement_certificate is not None:
            certificate = block.improvement_certificate
            if self.adversary.rng.random() < 0.5:
                forged = dataclasses.replace(certificate, aggregate_signature=forged_signature)
            else:
                forged = dataclasses.replace(
                    certificate, signers=valset.bitfield(sorted(self.adversary.members))
                )
            forged_block = dataclasses.replace(block, improvement_certificate=forged)
        else:
            fake_model = Hash(hashlib.sha256(b"forged model" + block.header.model_hash).digest())
            forged = ImprovementCertificate(
                candidate_hash=fake_model,
                signers=valset.bitfield(range(len(valset))),
                aggregate_signature=forged_signature,
            )
            forged_block = dataclasses.replace(
                block,
                header=dataclasses.replace(block.header, model_hash=fake_model),
                improvement_certificate=forged,
                carry_over_reason="",
            )
        return [(peers, self._sign(dataclasses.replace(message, block=forged_block)))]


class Insider(Behaviour):
    """One of the message rewrites of consensus/sim/insider.py, named by `kind`."""

    kind = ""

    def outgoing(self, message: Any, peers: list[NodeId], now: float) -> Outgoing:
        return [(peers, m) for m in rewrite(self.kind, message, self._sign)]


def _insider(name: str) -> type[Behaviour]:
    return type(f"Insider[{name}]", (Insider,), {"kind": name})


class ForgeRejection(Behaviour):
    def outgoing(self, message: Any, peers: list[NodeId], now: float) -> Outgoing:
        if not isinstance(message, Candidate):
            return [(peers, message)]
        victims = [r for r in message.receipts if int(r.author) != self.member]
        if not victims:
            return [(peers, message)]
        victim = victims[0]
        kept = tuple(r for r in message.receipts if r is not victim)
        forged = dataclasses.replace(
            message,
            receipts=kept,
            rejected=(*message.rejected, victim),
            rejection_reasons=(*message.rejection_reasons, "outlier"),
            model_hash=aggregate_model_hash(message.base_model_hash, kept),
        )
        return [(peers, self._sign(forged))]


class Drift(Behaviour):
    def outgoing(self, message: Any, peers: list[NodeId], now: float) -> Outgoing:
        if not isinstance(message, Candidate):
            return [(peers, message)]
        drifted = Hash(hashlib.sha256(b"drifted model" + message.model_hash).digest())
        return [(peers, self._sign(dataclasses.replace(message, model_hash=drifted)))]


_BEHAVIOURS: dict[str, type[Behaviour]] = {
    "timestamp": _insider("timestamp"),
    "inflate": _insider("inflate"),
    "rule-swap": _insider("rule-swap"),
    "double-propose": _insider("double-propose"),
    "forge-rejection": ForgeRejection,
    "drift": Drift,
    "equivocate": Equivocate,
    "silent": Silent,
    "bad-certificate": BadCertificate,
    "withhold": Withhold,
    "twins": Twin,
}


def make_behaviour(name: str, adversary: Adversary, node_id: NodeId, member: int) -> Behaviour:
    """The behaviour `name` for one faulty node."""
    return _BEHAVIOURS[name](adversary, node_id, member)
