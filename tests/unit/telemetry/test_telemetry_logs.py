"""Structured logs: node, height and round on every line; JSON and human formats."""

from __future__ import annotations

import io
import json
import logging

import pytest

from telemetry.logs import configure_logging


@pytest.fixture
def restore_root():  # type: ignore[no-untyped-def]
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_node_height_round_and_extras(restore_root) -> None:  # type: ignore[no-untyped-def]
    """Every JSON line has node/height/round, the message, and extra fields."""
    out = io.StringIO()
    ctx = configure_logging("node2", fmt="json", level="DEBUG", stream=out)
    logging.getLogger("node.driver").info("before any height")
    ctx.set(height=5, round=1)
    logging.getLogger("libp2p.pubsub").warning("committed %s", "abc", extra={"block": "abc"})
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["node"] == "node2" and first["height"] is None
    assert second["height"] == 5 and second["round"] == 1
    assert second["msg"] == "committed abc" and second["block"] == "abc"
    assert second["logger"] == "libp2p.pubsub" and second["level"] == "WARNING"
    assert second["ts"].endswith("Z")


def test_json_includes_the_traceback(restore_root) -> None:  # type: ignore[no-untyped-def]
    """logger.exception adds an exc field with the traceback."""
    out = io.StringIO()
    configure_logging("n", stream=out)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("x").exception("failed")
    entry = json.loads(out.getvalue())
    assert "RuntimeError: boom" in entry["exc"]


def test_human_format_is_one_compact_line(restore_root) -> None:  # type: ignore[no-untyped-def]
    """Human lines read `time LEVEL node h=H r=R logger: message`."""
    out = io.StringIO()
    ctx = configure_logging("node0", fmt="human", stream=out)
    ctx.set(height=3, round=0)
    logging.getLogger("node.driver").info("hello")
    line = out.getvalue().strip()
    assert line.endswith("INFO  node0 h=3 r=0 node.driver: hello")


def test_reconfiguring_replaces_only_our_handler(restore_root) -> None:  # type: ignore[no-untyped-def]
    """A second configure_logging does not duplicate lines."""
    first, second = io.StringIO(), io.StringIO()
    configure_logging("n", stream=first)
    configure_logging("n", fmt="human", stream=second)
    logging.getLogger("x").warning("once")
    assert first.getvalue() == "" and second.getvalue().count("once") == 1


def test_unknown_format_is_refused(restore_root) -> None:  # type: ignore[no-untyped-def]
    """fmt must be json or human."""
    with pytest.raises(ValueError, match="json"):
        configure_logging("n", fmt="xml")
