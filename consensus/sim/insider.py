"""The insider attacks of docs/THREAT-MODEL.md as rewrites of one outgoing message.

Shared by the simulator's behaviours (consensus/sim/byzantine.py) and the devnet's Byzantine
node (node/driver.py), so both replay the same attack: the attacker runs an honest core and
rewrites, with its own key, what it is about to send. `sign(message)` must return the message
re-signed by the attacker (its signature field replaced).

- `timestamp`: every proposal's block is stamped `FUTURE_MS` ahead (attack 1: a far-future
  time would, without PBTS timeliness, make every later block unencodable).
- `inflate`: every update receipt claims `INFLATED_SAMPLES` samples (attack 2).
- `rule-swap`: candidates and proposed blocks declare the rule `SWAPPED_RULE` (attack 6).
- `double-propose`: every proposal also goes out in a second version (block time + 1 ms),
  both signed (attack 8).

`forge-rejection` and `drift` are learning-side attacks (what the proposer aggregates, what the
site trains): the devnet does them in node/app.py, the simulator in its behaviours.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from consensus.types import Candidate, Proposal, UpdateReceipt

FUTURE_MS = 10**10  # about 116 days: far outside any timeliness window, inside the codec bound
INFLATED_SAMPLES = 10**9
SWAPPED_RULE = "median"

REWRITE_KINDS = ("timestamp", "inflate", "rule-swap", "double-propose")

Sign = Callable[[Any], Any]


def rewrite(kind: str, message: Any, sign: Sign) -> list[Any]:
    """What an insider of `kind` sends instead of `message` (usually one message, re-signed)."""
    if kind == "timestamp" and isinstance(message, Proposal):
        return [_with_block_time(message, FUTURE_MS, sign)]
    if kind == "inflate" and isinstance(message, UpdateReceipt):
        return [sign(dataclasses.replace(message, n_samples=INFLATED_SAMPLES))]
    if kind == "rule-swap" and isinstance(message, Candidate):
        return [sign(dataclasses.replace(message, rule=SWAPPED_RULE))]
    if kind == "rule-swap" and isinstance(message, Proposal):
        block = dataclasses.replace(message.block, rule=SWAPPED_RULE)
        return [sign(dataclasses.replace(message, block=block))]
    if kind == "double-propose" and isinstance(message, Proposal):
        return [message, _with_block_time(message, 1, sign)]
    if kind not in REWRITE_KINDS:
        raise ValueError(f"unknown insider kind {kind!r}")
    return [message]


def _with_block_time(proposal: Proposal, shift_ms: int, sign: Sign) -> Any:
    block = proposal.block
    header = dataclasses.replace(block.header, time_ms=block.header.time_ms + shift_ms)
    return sign(dataclasses.replace(proposal, block=dataclasses.replace(block, header=header)))
