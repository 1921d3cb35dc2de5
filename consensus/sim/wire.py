"""What the simulated network knows of a message's bytes: its digest, its size, its cap.

Every gossiped message is encoded once (canonical CBOR, consensus/codec.py); its SHA-256 names
it in the trace and the safety checker, its size is compared with its topic's cap for the
run's member set (consensus/bounds.py, the same caps a daemon applies), and the largest size
of each message type is reported. A message above its cap is not sent, as a daemon's publish
refuses it.
"""

from __future__ import annotations

import hashlib
from collections import Counter

from consensus import codec
from consensus.bounds import GOSSIP_HARD_CAP, MESSAGE_TOPIC_KINDS, gossip_size_caps
from consensus.events import Message
from consensus.types import GovernanceApproval, GovernanceProposal

WireMessage = Message | GovernanceProposal | GovernanceApproval


class Wire:
    """Digests, sizes and caps of one run's messages."""

    def __init__(self, members: int) -> None:
        self._seen: dict[int, tuple[WireMessage, bytes, int]] = {}  # id -> message, digest, size
        self.max_message_bytes: Counter[str] = Counter()  # by message type, every send
        self.size_caps = gossip_size_caps(members)
        self.oversized_messages: Counter[str] = Counter()  # by message type
        self.reproposals = 0  # distinct proposals with a valid round (they carry a polka)

    def _entry(self, message: WireMessage) -> tuple[WireMessage, bytes, int]:
        cached = self._seen.get(id(message))
        if cached is None:
            data = codec.encode(message)
            kind = type(message).__name__
            if kind == "Proposal" and getattr(message, "valid_round", -1) >= 0:
                self.reproposals += 1
            self.max_message_bytes[kind] = max(self.max_message_bytes[kind], len(data))
            # the tuple keeps the object alive: its id stays unique
            cached = (message, hashlib.sha256(data).digest(), len(data))
            self._seen[id(message)] = cached
        return cached

    def digest(self, message: WireMessage) -> bytes:
        """SHA-256 of the canonical encoding, cached per message object for this run."""
        return self._entry(message)[1]

    def fits(self, message: WireMessage) -> bool:
        """Whether `message` is within its topic's cap (counted in `oversized_messages` if not)."""
        kind = type(message).__name__
        cap = self.size_caps.get(MESSAGE_TOPIC_KINDS.get(kind, ""), GOSSIP_HARD_CAP)
        if self._entry(message)[2] <= cap:
            return True
        self.oversized_messages[kind] += 1
        return False
