"""Virtual clock and seeded in-memory network for the consensus simulator.

Everything here is deterministic: one `random.Random(seed)` draws every loss, delay and
duplicate, and the event queue is ordered by (virtual time, sequence number), so the same seed
replays the same trace bit for bit. Nothing reads a wall clock.

Fault model (what an operator would see on a hospital WAN, CometBFT's e2e perturbations):
- loss: each delivery of each message is dropped with probability `drop`;
- delay: uniform in [delay_min, delay_max] virtual seconds per delivery;
- duplication: with probability `duplicate` a delivery is sent twice (independent delays);
- reordering: without `reorder` every (sender, receiver) link is FIFO; with it, deliveries on a
  link may overtake each other;
- partition: during [start, end) the nodes are split in two sides and nothing crosses between
  them; nodes listed as `bridges` (the adversary's own nodes) reach both sides. After `end` the
  network heals and the liveness bound starts counting.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

NodeId = int
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Partition:
    """Split `side_a` from everyone else during virtual time [start, end); `bridges` see both."""

    start: float
    end: float
    side_a: frozenset[NodeId]
    bridges: frozenset[NodeId] = frozenset()

    def active(self, now: float) -> bool:
        return self.start <= now < self.end

    def separates(self, a: NodeId, b: NodeId) -> bool:
        if a in self.bridges or b in self.bridges:
            return False
        return (a in self.side_a) != (b in self.side_a)


@dataclass(frozen=True, slots=True)
class NetworkConditions:
    """Link faults of one simulated network (see the module docstring)."""

    drop: float = 0.0
    delay_min: float = 0.005
    delay_max: float = 0.05
    duplicate: float = 0.0
    reorder: bool = False
    partition: Partition | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.drop < 1.0:
            raise ValueError(f"drop probability must be in [0, 1), got {self.drop}")
        if not 0.0 <= self.duplicate < 1.0:
            raise ValueError(f"duplicate probability must be in [0, 1), got {self.duplicate}")
        if not 0.0 <= self.delay_min <= self.delay_max:
            raise ValueError(
                f"need 0 <= delay min <= delay max, got {self.delay_min}:{self.delay_max}"
            )


@dataclass(order=True, slots=True)
class _Entry(Generic[T]):
    time: float
    seq: int
    item: T = field(compare=False)


class EventQueue(Generic[T]):
    """A priority queue ordered by (virtual time, insertion sequence): ties break by arrival."""

    def __init__(self) -> None:
        self._heap: list[_Entry[T]] = []
        self._seq = 0

    def push(self, time: float, item: T) -> None:
        heapq.heappush(self._heap, _Entry(time, self._seq, item))
        self._seq += 1

    def pop(self) -> tuple[float, T]:
        entry = heapq.heappop(self._heap)
        return entry.time, entry.item

    def peek_time(self) -> float | None:
        return self._heap[0].time if self._heap else None

    def __len__(self) -> int:
        return len(self._heap)


@dataclass(frozen=True, slots=True)
class Delivery(Generic[T]):
    """A message arriving at `receiver` from `sender`."""

    sender: NodeId
    receiver: NodeId
    message: T


class SimNetwork(Generic[T]):
    """Seeded lossy network: turns sends into future `Delivery` entries on a shared queue."""

    def __init__(
        self,
        conditions: NetworkConditions,
        rng: random.Random,
        queue: EventQueue[object],
    ) -> None:
        self.conditions = conditions
        self._rng = rng
        self._queue = queue
        self._link_clock: dict[tuple[NodeId, NodeId], float] = {}
        self.sent = 0
        self.dropped = 0
        self.duplicated = 0

    def reachable(self, sender: NodeId, receiver: NodeId, now: float) -> bool:
        partition = self.conditions.partition
        return not (
            partition is not None
            and partition.active(now)
            and partition.separates(sender, receiver)
        )

    def send(self, now: float, sender: NodeId, receivers: Iterable[NodeId], message: T) -> None:
        """Schedule `message` to each receiver, applying loss, delay, duplication and partition."""
        c = self.conditions
        for receiver in receivers:
            if receiver == sender:
                continue
            self.sent += 1
            if not self.reachable(sender, receiver, now) or self._rng.random() < c.drop:
                self.dropped += 1
                continue
            copies = 1
            if c.duplicate and self._rng.random() < c.duplicate:
                copies = 2
                self.duplicated += 1
            for _ in range(copies):
                at = now + self._rng.uniform(c.delay_min, c.delay_max)
                if not c.reorder:
                    link = (sender, receiver)
                    at = max(at, self._link_clock.get(link, 0.0))
                    self._link_clock[link] = at
                self._queue.push(at, Delivery(sender, receiver, message))
