"""py-libp2p's log records of failures the node expects and handles, demoted to DEBUG.

py-libp2p 0.8.1 logs at ERROR every failed TCP dial, every stream it could not open and
every multiselect handshake cut short, then raises the same failure to its caller. For a
consortium those are routine: a peer that has not started yet, or restarts, refuses dials
until it is up, and the node redials it with a backoff (`NodeNetwork._dial`), counting
what matters. Hundreds of ERROR lines at every devnet start hid the real errors, so these
records are demoted to DEBUG: still there with `log.level = "debug"`, out of the way
otherwise. A connection closed under the muxer's reader is demoted from ERROR to INFO
(the peer went away; the health loop redials it).
"""

from __future__ import annotations

import logging

# logger name -> (message prefixes, level they are demoted to)
EXPECTED_FAILURES: dict[str, tuple[tuple[str, ...], int]] = {
    "libp2p.transport.tcp.tcp": (("Failed to open TCP stream",), logging.DEBUG),
    "libp2p.host.basic_host": (("Failed to open stream to peer",), logging.DEBUG),
    "libp2p.protocol_muxer.multiselect_client": (("MultiselectClient handshake",), logging.DEBUG),
    "libp2p.stream_muxer.yamux.yamux": (("Error in handle_incoming for peer",), logging.INFO),
}


class DemoteExpectedFailures(logging.Filter):
    """Lower the level of matching records; drop them when that level is not enabled."""

    def __init__(self, prefixes: tuple[str, ...], level: int) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= self.level or not isinstance(record.msg, str):
            return True
        if not record.msg.startswith(self.prefixes):
            return True
        record.levelno = self.level
        record.levelname = logging.getLevelName(self.level)
        return logging.getLogger().isEnabledFor(self.level)


def demote_expected_failures() -> None:
    """Install the filters on py-libp2p's loggers (idempotent)."""
    for name, (prefixes, level) in EXPECTED_FAILURES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, DemoteExpectedFailures) for f in logger.filters):
            logger.addFilter(DemoteExpectedFailures(prefixes, level))
