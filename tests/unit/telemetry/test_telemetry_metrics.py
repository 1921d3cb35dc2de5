"""NodeMetrics: names, label validation, the no-op mode and the exposition text."""

from __future__ import annotations

import random

import pytest
from prometheus_client.parser import text_string_to_metric_families

from telemetry import labels as L
from telemetry.metrics import NodeMetrics
from telemetry.synthetic import exercise_every_metric


def _metrics(**kwargs: object) -> NodeMetrics:
    return NodeMetrics(node_id="node0", chain_id="test-chain", version="0.1.0", **kwargs)  # type: ignore[arg-type]


def _samples(metrics: NodeMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _value(metrics: NodeMetrics, name: str, **labels: str) -> float:
    return _samples(metrics)[(name, tuple(sorted(labels.items())))]


def test_build_info_carries_version_chain_and_node() -> None:
    """bcfl_build_info is 1 with version, chain_id and node_id labels."""
    m = _metrics()
    assert (
        _value(m, "bcfl_build_info", version="0.1.0", chain_id="test-chain", node_id="node0") == 1
    )


def test_every_bcfl_family_follows_naming_conventions() -> None:
    """Counters end in _total, durations in _seconds, sizes in _bytes, all prefixed bcfl_."""
    m = _metrics()
    exercise_every_metric(m, 1, random.Random(0))
    families = [f for f in text_string_to_metric_families(m.render().decode())]
    ours = [f for f in families if f.name.startswith("bcfl_")]
    assert len(ours) >= 45
    for family in ours:
        if family.type == "counter":
            assert any(s.name.endswith("_total") for s in family.samples), family.name
        if "duration" in family.name or "interval" in family.name or "lag" in family.name:
            assert family.name.endswith("_seconds"), family.name
    assert any(f.name == "process_resident_memory_bytes" for f in families)


def test_observe_commit_sets_height_rounds_interval_and_kind() -> None:
    """A commit updates height, rounds-per-height, block interval, cert size and block kind."""
    m = _metrics()
    m.observe_commit(7, 1, 2.5, 200, carry_over=True)
    assert _value(m, "bcfl_chain_height") == 7
    assert _value(m, "bcfl_blocks_committed_total", kind="carry_over") == 1
    assert _value(m, "bcfl_blocks_committed_total", kind="model") == 0
    assert _value(m, "bcfl_consensus_rounds_per_height_sum") == 2
    assert _value(m, "bcfl_block_interval_seconds_sum") == 2.5
    assert _value(m, "bcfl_certificate_size_bytes_sum", kind="commit") == 200


def test_label_combinations_exist_before_first_event() -> None:
    """Counters with enum labels read 0 before anything happened (no missing series)."""
    m = _metrics()
    for topic in L.TOPICS:
        for reason in L.GOSSIP_REJECT_REASONS:
            assert _value(m, "bcfl_gossip_rejected_total", topic=topic, reason=reason) == 0


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.count_update("rejected", "because I said so"),
        lambda m: m.count_update("rejected"),
        lambda m: m.count_update("lost"),
        lambda m: m.count_gossip("bcfl/c/peer-12D3KooW", "in", 10),
        lambda m: m.count_gossip("receipts", "sideways", 10),
        lambda m: m.count_gossip("blocks", "in", 10),  # committed blocks are not gossiped
        lambda m: m.count_rejected("candidates", "peer 12D3KooW sent junk"),
        lambda m: m.observe_phase("lunch", 1.0),
        lambda m: m.observe_step("decide", 1.0),
        lambda m: m.count_vote("prevote", "maybe"),
        lambda m: m.set_sync_state("confused"),
        lambda m: m.set_model_metrics(0.1, "f1", 0.5),
        lambda m: m.observe_blob_transfer("up", 1, 0.1),
    ],
)
def test_label_values_outside_the_enum_are_refused(call) -> None:  # type: ignore[no-untyped-def]
    """Free-text label values raise ValueError instead of creating a series."""
    m = _metrics()
    before = len(_samples(m))
    with pytest.raises(ValueError):
        call(m)
    assert len(_samples(m)) == before
    assert not any("12D3KooW" in str(k) for k in _samples(m))


def test_full_topic_names_are_reduced_to_their_last_segment() -> None:
    """count_gossip accepts bcfl/<chain>/<topic>."""
    m = _metrics()
    m.count_gossip("bcfl/test-chain/attestations", "out", 300)
    assert _value(m, "bcfl_gossip_messages_total", topic="attestations", direction="out") == 1
    assert _value(m, "bcfl_gossip_bytes_total", topic="attestations", direction="out") == 300


def test_update_counts_split_received_accepted_rejected() -> None:
    """count_update routes to received / accepted / rejected-by-reason counters."""
    m = _metrics()
    m.count_update("received")
    m.count_update("received")
    m.count_update("accepted")
    m.count_update("rejected", "norm-exceeded")
    assert _value(m, "bcfl_updates_received_total") == 2
    assert _value(m, "bcfl_updates_accepted_total") == 1
    assert _value(m, "bcfl_updates_rejected_total", reason="norm-exceeded") == 1


def test_sync_state_is_one_hot() -> None:
    """Exactly one sync state gauge is 1."""
    m = _metrics()
    m.set_sync_state("catching_up", target_height=40)
    states = {s: _value(m, "bcfl_sync_state", state=s) for s in L.SYNC_STATES}
    assert states == {"in_sync": 0, "catching_up": 1, "stalled": 0}
    assert _value(m, "bcfl_sync_target_height") == 40


def test_absorb_network_totals_adds_deltas_and_survives_reset() -> None:
    """Cumulative totals become increments; a total that drops restarts from zero."""
    m = _metrics()
    m.absorb_network_totals(
        messages={("receipts", "in"): 5}, rejected={("candidates", "oversized"): 2}
    )
    m.absorb_network_totals(
        messages={("receipts", "in"): 8}, rejected={("candidates", "oversized"): 2}
    )
    m.absorb_network_totals(messages={("receipts", "in"): 1}, refused={"not-allowed": 3})
    assert _value(m, "bcfl_gossip_messages_total", topic="receipts", direction="in") == 9
    assert _value(m, "bcfl_gossip_rejected_total", topic="candidates", reason="oversized") == 2
    assert _value(m, "bcfl_connections_refused_total", reason="not-allowed") == 3


def test_disabled_metrics_accept_every_call_and_render_nothing() -> None:
    """enabled=False: every method is a no-op and /metrics is empty."""
    m = _metrics(enabled=False)
    exercise_every_metric(m, 3, random.Random(1))
    m.count_update("rejected", "not even a reason")
    assert m.render() == b""


def test_two_nodes_in_one_process_do_not_share_series() -> None:
    """Per-node registries: one node's commit does not show on another."""
    a, b = _metrics(), NodeMetrics(node_id="node1", chain_id="c", version="0.1.0")
    a.observe_commit(3, 0, 1.0, 100, False)
    assert _value(a, "bcfl_chain_height") == 3
    assert _value(b, "bcfl_chain_height") == 0
