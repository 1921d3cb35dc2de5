"""The NodeMetrics feeds the real driver needs: step tracking, sync target, blob serves, store size."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from telemetry.metrics import NodeMetrics
from telemetry.storage import measure_store


def _metrics() -> NodeMetrics:
    return NodeMetrics(node_id="node0", chain_id="c", version="0", process_metrics=False)


def _value(metrics: NodeMetrics, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    raise KeyError(name)


def test_enter_step_observes_the_step_just_left() -> None:
    """Each change of (height, round, step) records how long the previous step lasted."""
    m = _metrics()
    m.enter_step(1, 0, "propose", now=10.0)
    m.enter_step(1, 0, "propose", now=11.0)  # same position: nothing ends
    m.enter_step(1, 0, "prevote", now=12.5)
    m.enter_step(1, 0, "precommit", now=12.75)
    m.enter_step(2, 0, "propose", now=13.0)
    assert _value(m, "bcfl_consensus_step_duration_seconds_count", step="propose") == 1
    assert _value(m, "bcfl_consensus_step_duration_seconds_sum", step="propose") == 2.5
    assert _value(m, "bcfl_consensus_step_duration_seconds_sum", step="prevote") == 0.25
    assert _value(m, "bcfl_consensus_step_duration_seconds_sum", step="precommit") == 0.25


def test_sync_target_never_reads_below_our_height() -> None:
    """A commit raises the target to our height; a stale lower target does not lower it."""
    m = _metrics()
    m.set_sync_state("catching_up", target_height=3)
    m.observe_commit(5, 0, 1.0, 200, carry_over=False)
    assert _value(m, "bcfl_sync_target_height") == 5
    m.set_sync_state("in_sync", target_height=4)
    assert _value(m, "bcfl_sync_target_height") == 5
    m.set_sync_state("catching_up", target_height=9)
    assert _value(m, "bcfl_sync_target_height") == 9


def test_blob_serves_are_absorbed_as_transfers_out() -> None:
    """Cumulative serve counters become out-direction transfers by result, counted by delta."""
    m = _metrics()
    m.absorb_network_totals(blobs_served={"ok": 2, "busy": 1}, blob_bytes_out=300)
    m.absorb_network_totals(blobs_served={"ok": 5, "busy": 1, "not_found": 2}, blob_bytes_out=900)
    assert _value(m, "bcfl_blob_transfers_total", direction="out", result="ok") == 5
    assert _value(m, "bcfl_blob_transfers_total", direction="out", result="failed") == 3
    assert _value(m, "bcfl_blob_transfer_bytes_total", direction="out") == 900


def test_measure_store_counts_database_and_blobs(tmp_path: Path) -> None:
    """Database files (with WAL) and blobs are sized; temp files of atomic writes are not."""
    (tmp_path / "chain.sqlite").write_bytes(b"x" * 100)
    (tmp_path / "chain.sqlite-wal").write_bytes(b"x" * 20)
    (tmp_path / "signer_state").write_bytes(b"x" * 7)
    fan = tmp_path / "blobs" / "ab"
    fan.mkdir(parents=True)
    (fan / "cdef").write_bytes(b"y" * 50)
    (fan / "0123").write_bytes(b"y" * 30)
    (fan / ".0123.tmp-1-2").write_bytes(b"y" * 999)
    assert measure_store(tmp_path) == (120, 80, 2)


def test_the_store_walk_waits_longer_as_the_store_grows(tmp_path: Path) -> None:
    """The walk stats every blob: it is timed, and the wait before the next one grows with its
    CPU time so that it stays under 0.2% of a core (never sooner than every 5 s)."""
    from node.services.observer import STORAGE_EVERY_TICKS, storage_wait_ticks, timed_walk

    fan = tmp_path / "blobs" / "ab"
    fan.mkdir(parents=True)
    for i in range(3000):
        (fan / f"{i:04x}").write_bytes(b"y")
    sizes, cpu = timed_walk(tmp_path)
    assert sizes == (0, 3000, 3000) and cpu > 0
    assert storage_wait_ticks(0.0) == STORAGE_EVERY_TICKS
    assert storage_wait_ticks(0.03) == 15  # 30 ms walk: at most every 15 s
    assert storage_wait_ticks(cpu) >= cpu / 0.002 - 1


def test_libp2p_warnings_reach_the_structured_log() -> None:
    """libp2p's import cuts its logger off the root; configure_logging routes it back."""
    import io
    import json
    import logging

    import libp2p  # noqa: F401 - its import sets propagate=False on "libp2p"

    from telemetry.logs import configure_logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = io.StringIO()
    try:
        configure_logging("node1", fmt="json", stream=out).set(height=4, round=0)
        logging.getLogger("libp2p.pubsub").warning("stream reset")
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
    line = json.loads(out.getvalue().splitlines()[-1])
    assert (line["logger"], line["node"], line["height"]) == ("libp2p.pubsub", "node1", 4)
