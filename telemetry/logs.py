"""Structured logs: one JSON object per line, or a compact human format for terminals.

Every line carries the node name and the consensus height and round the node is
at, so logs of several nodes can be merged and filtered (`jq 'select(.height==12)'`)
next to the metrics. The driver owns a `LogContext` returned by
`configure_logging` and calls `ctx.set(height=..., round=...)` when it moves on;
a logging filter stamps those values onto every record, including records from
libraries (libp2p, trio) that know nothing about them.

JSON keys: `ts` (UTC, ISO 8601, milliseconds), `level`, `logger`, `msg`, `node`,
`height`, `round`, then any `extra={...}` fields, and `exc` with the traceback.
Choice: JSON is the default for daemons (log shippers parse it); `human` is
what `bcfl devnet up` and a terminal user want.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Any

_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "node", "height", "round", "taskName"}
)
_MARK = "_bcfl_handler"


class LogContext(logging.Filter):
    """Node, height and round stamped onto every log record (a logging.Filter)."""

    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node
        self.height: int | None = None
        self.round: int | None = None

    def set(self, *, height: int | None = None, round: int | None = None) -> None:
        """Update the height and/or round (None leaves a value unchanged)."""
        if height is not None:
            self.height = height
        if round is not None:
            self.round = round

    def filter(self, record: logging.LogRecord) -> bool:
        record.node = self.node
        record.height = self.height
        record.round = self.round
        return True


def _utc(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "node": getattr(record, "node", None),
            "height": getattr(record, "height", None),
            "round": getattr(record, "round", None),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class HumanFormatter(logging.Formatter):
    """`12:00:01.123 INFO  node0 h=5 r=0 node.driver: committed block`."""

    def format(self, record: logging.LogRecord) -> str:
        clock = time.strftime("%H:%M:%S", time.localtime(record.created))
        height = getattr(record, "height", None)
        round_ = getattr(record, "round", None)
        where = f"h={'-' if height is None else height} r={'-' if round_ is None else round_}"
        line = (
            f"{clock}.{int(record.created % 1 * 1000):03d} {record.levelname:<5} "
            f"{getattr(record, 'node', '-')} {where} {record.name}: {record.getMessage()}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(
    node: str, fmt: str = "json", level: int | str = "INFO", stream: IO[str] | None = None
) -> LogContext:
    """Route the root logger to `stream` (stderr) in `fmt` ("json", or "human" alias "text").

    Calling it again replaces the handler it installed before (not others').
    Returns the context the driver updates with the height and round.

    py-libp2p, when imported, cuts its "libp2p" logger off from the root
    (propagate=False, no handler), so its warnings would reach stderr through
    logging's last-resort handler as bare text without node, height or round;
    they are routed through our handler again (import libp2p before calling this).
    """
    if fmt not in ("json", "human", "text"):
        raise ValueError(f"log format must be 'json' or 'human' (or 'text'), not {fmt!r}")
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _MARK, False):
            root.removeHandler(handler)
    context = LogContext(node)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    setattr(handler, _MARK, True)
    handler.addFilter(context)
    handler.setFormatter(JsonFormatter() if fmt == "json" else HumanFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    logging.getLogger("libp2p").propagate = True
    return context
