"""The simulator's seeded network and virtual-time event queue."""

from __future__ import annotations

import random

import pytest

from consensus.sim.network import Delivery, EventQueue, NetworkConditions, Partition, SimNetwork


def _deliveries(
    conditions: NetworkConditions, seed: int, sends: int = 200
) -> list[tuple[float, Delivery[int]]]:
    queue: EventQueue[object] = EventQueue()
    network: SimNetwork[int] = SimNetwork(conditions, random.Random(seed), queue)
    for i in range(sends):
        network.send(i * 0.001, i % 3, [0, 1, 2, 3], i)
    out = []
    while len(queue):
        at, item = queue.pop()
        assert isinstance(item, Delivery)
        out.append((at, item))
    return out


def test_queue_orders_by_time_then_insertion() -> None:
    """Equal times pop in insertion order; earlier times first."""
    queue: EventQueue[str] = EventQueue()
    queue.push(2.0, "late")
    queue.push(1.0, "first")
    queue.push(1.0, "second")
    assert [queue.pop()[1] for _ in range(3)] == ["first", "second", "late"]


def test_same_seed_same_deliveries() -> None:
    """Loss, delay and duplication are drawn from the seed alone."""
    conditions = NetworkConditions(drop=0.3, duplicate=0.2, reorder=True)
    first = _deliveries(conditions, 7)
    assert first == _deliveries(conditions, 7)
    assert first != _deliveries(conditions, 8)


def test_drop_probability_is_respected() -> None:
    """About `drop` of the deliveries are lost."""
    queue: EventQueue[object] = EventQueue()
    network: SimNetwork[int] = SimNetwork(NetworkConditions(drop=0.25), random.Random(1), queue)
    for i in range(4000):
        network.send(0.0, 0, [1], i)
    assert 0.2 < network.dropped / network.sent < 0.3
    assert len(queue) == network.sent - network.dropped


def test_links_are_fifo_without_reorder() -> None:
    """Without --reorder, messages on one link arrive in the order they were sent."""
    got = _deliveries(NetworkConditions(delay_min=0.0, delay_max=1.0), 3)
    by_link: dict[tuple[int, int], list[int]] = {}
    for _, d in got:
        by_link.setdefault((d.sender, d.receiver), []).append(d.message)
    assert all(msgs == sorted(msgs) for msgs in by_link.values())


def test_reorder_lets_messages_overtake() -> None:
    """With --reorder, some link delivers out of send order."""
    got = _deliveries(NetworkConditions(delay_min=0.0, delay_max=1.0, reorder=True), 3)
    by_link: dict[tuple[int, int], list[int]] = {}
    for _, d in got:
        by_link.setdefault((d.sender, d.receiver), []).append(d.message)
    assert any(msgs != sorted(msgs) for msgs in by_link.values())


def test_duplicates_are_delivered_twice() -> None:
    """A duplicated delivery arrives twice."""
    queue: EventQueue[object] = EventQueue()
    network: SimNetwork[int] = SimNetwork(NetworkConditions(duplicate=0.5), random.Random(2), queue)
    for i in range(100):
        network.send(0.0, 0, [1], i)
    assert network.duplicated > 0
    assert len(queue) == 100 + network.duplicated


def test_partition_cuts_sides_but_not_bridges_and_heals() -> None:
    """During a partition nothing crosses sides except via bridges; afterwards all links work."""
    partition = Partition(start=1.0, end=2.0, side_a=frozenset({0, 1}), bridges=frozenset({4}))
    queue: EventQueue[object] = EventQueue()
    network: SimNetwork[str] = SimNetwork(
        NetworkConditions(partition=partition), random.Random(0), queue
    )
    network.send(1.5, 0, [1, 2, 3, 4], "during")
    network.send(1.5, 4, [0, 2], "bridge")
    network.send(2.5, 0, [2], "after")
    delivered = set()
    while len(queue):
        _, d = queue.pop()
        assert isinstance(d, Delivery)
        delivered.add((d.message, d.receiver))
    assert delivered == {("during", 1), ("during", 4), ("bridge", 0), ("bridge", 2), ("after", 2)}


def test_bad_conditions_are_refused() -> None:
    """A probability of 1 or an inverted delay range is a configuration error."""
    with pytest.raises(ValueError):
        NetworkConditions(drop=1.0)
    with pytest.raises(ValueError):
        NetworkConditions(delay_min=0.5, delay_max=0.1)
