"""py-libp2p's ERROR records of expected, handled failures are demoted (node/network/log_levels.py)."""

from __future__ import annotations

import logging

import pytest

from node.network.log_levels import demote_expected_failures


@pytest.fixture(autouse=True)
def _installed() -> None:
    demote_expected_failures()


def test_failed_dial_is_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    """A refused TCP dial (a peer not up yet) is logged at DEBUG, not ERROR."""
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("libp2p.transport.tcp.tcp").error(
            "Failed to open TCP stream: all attempts to connect to 127.0.0.1:1 failed"
        )
    [record] = [r for r in caplog.records if r.name == "libp2p.transport.tcp.tcp"]
    assert record.levelno == logging.DEBUG


def test_demoted_record_is_dropped_below_the_configured_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """At INFO the demoted dial failure does not appear at all."""
    with caplog.at_level(logging.INFO):
        logging.getLogger("libp2p.host.basic_host").error("Failed to open stream to peer X:")
    assert not [r for r in caplog.records if r.name == "libp2p.host.basic_host"]


def test_other_errors_of_the_same_logger_stay_errors(caplog: pytest.LogCaptureFixture) -> None:
    """Only the listed messages are demoted; anything else keeps its level."""
    with caplog.at_level(logging.INFO):
        logging.getLogger("libp2p.transport.tcp.tcp").error("listener crashed")
    [record] = [r for r in caplog.records if r.name == "libp2p.transport.tcp.tcp"]
    assert record.levelno == logging.ERROR


def test_closed_connection_under_the_muxer_is_info(caplog: pytest.LogCaptureFixture) -> None:
    """A peer that went away (yamux reader error) is INFO: the health loop redials it."""
    with caplog.at_level(logging.INFO):
        logging.getLogger("libp2p.stream_muxer.yamux.yamux").error(
            "Error in handle_incoming for peer P: ConnectionClosedError: reset"
        )
    [record] = [r for r in caplog.records if r.name == "libp2p.stream_muxer.yamux.yamux"]
    assert record.levelno == logging.INFO
