"""Topic validators for the gossip edge: decode, schema, admission, height window, signature.

Every gossiped message passes one of these checks inside the pubsub task before it is
delivered to the driver or relayed to other peers (docs/ARCHITECTURE.md, "The node": gossip
topic validators decode and check messages before they are relayed). A peer's bad bytes become
a rejection reason from `telemetry.labels.GOSSIP_REJECT_REASONS`, never an exception. The
driver installs them with `GossipValidator.install(net)` and reads the already-decoded message
back with `GossipValidator.decoded(topic, data)`, so nothing is decoded twice.

The checks, cheapest first (a message stops at the first that fails):

1. size above the topic cap -> ``oversized``;
2. strict canonical CBOR (`consensus.codec`): not CBOR -> ``undecodable``; a wrong tag,
   shape, field or non-canonical encoding -> ``schema``;
3. the type belongs on the topic (consensus: Proposal / Vote; receipts: UpdateReceipt;
   candidates: Candidate; attestations: Attestation), else ``schema``;
4. a signed message passes `consensus.admission` (the rules the core applies too), signature
   aside: a signer who is not a member with the message's role -> ``unknown-signer``; a
   proposal whose block names another chain -> ``wrong-chain``; any other admission rule
   (round, the round's proposer, valid round, the block's height, the report's evaluator and
   candidate, an empty candidate, a receipt's statistics) -> ``invalid``, through
   `ADMISSION_REASONS`, so that the metric keeps its closed label set;
5. the height lies in ``current - 1 .. current + 8`` (late precommits of the previous height,
   and future messages the core buffers), else ``height-window``;
6. the signature over `consensus.signing` sign-bytes, else ``bad-signature``.

Choices where the issue is silent:

- Verified messages are cached by the SHA-256 of their bytes (LRU, `cache_size` entries), so a
  message seen again is never re-verified; deterministic rejections (everything but the
  height window) are cached too, so a replayed forgery costs one hash.
- ``duplicate``: gossipsub already drops a message id it has seen. What reaches us again is the
  same content republished under another message id. Its author (the signer's genesis peer)
  may do that (a rebroadcast for liveness) and so may we; anyone else republishing content we
  already accepted adds nothing and is rejected as a replay.
- Committed blocks are not gossiped: a node that is behind fetches them, with their commit
  certificates, by block sync (`node.network.block_sync`), so every gossiped message is a
  signed message with one author.
- Direct messages (node/network/direct.py) are sent by their author and relayed by nobody, so
  the edge's job of keeping forgeries from being relayed falls away. The sender must be the
  signer's genesis peer (else ``duplicate``, as for a replay), and the signature of a vote,
  attestation or receipt is left to the core, which verifies those in batches, one aggregate
  check per distinct sign-bytes, when they could change a decision (consensus/votes.py,
  consensus/learning_round.py). Verifying each one here cost ~1.7 ms of a 2-core machine per
  message, 4n messages a height. A proposal's or candidate's signature is still checked here.
- Receipts inside candidates and proposals are not verified here (the core does, with its own
  cache); the gossip edge only makes sure a message is well formed, from a member, timely and
  signed, so that garbage is never relayed.
"""

from __future__ import annotations

import hashlib
import typing
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from consensus import admission
from consensus.admission import Admission
from consensus.codec import InvalidMessage, decode
from consensus.crypto import Verifier
from consensus.governance import approval_sign_bytes, is_current, proposal_sign_bytes
from consensus.governance_pool import GovernanceTx
from consensus.types import (
    Attestation,
    Candidate,
    Genesis,
    GovernanceApproval,
    GovernanceProposal,
    Proposal,
    SignedMessage,
    UpdateReceipt,
    Vote,
)
from consensus.validators import ValidatorSet
from node.network.topics import DEFAULT_SIZE_CAPS, Topic

WINDOW_BEHIND = 1
WINDOW_AHEAD = 8

# Rejections that depend only on the bytes (and the genesis), so they can be cached.
_DETERMINISTIC = frozenset(
    {
        "undecodable",
        "schema",
        "bad-signature",
        "unknown-signer",
        "wrong-chain",
        "samples-over-cap",
        "wrong-rule",
        "invalid",
    }
)

ADMISSION_REASONS: dict[str, str] = {
    **dict.fromkeys(admission.REASONS, "invalid"),
    admission.UNKNOWN_SIGNER: "unknown-signer",
    admission.WRONG_CHAIN: "wrong-chain",
    admission.BAD_SIGNATURE: "bad-signature",
    admission.SAMPLES_OVER_CAP: "samples-over-cap",
    admission.WRONG_RULE: "wrong-rule",
}
"""`consensus.admission` reason -> the gossip rejection reason it is counted under."""


GossipMessage = SignedMessage | GovernanceTx  # plus the governance topic's proposals and approvals
TopicValidator = Callable[[bytes, str], str | None]

TOPIC_TYPES: dict[Topic, tuple[type, ...]] = {
    Topic.CONSENSUS: (Proposal, Vote),
    Topic.RECEIPTS: (UpdateReceipt,),
    Topic.CANDIDATES: (Candidate,),
    Topic.ATTESTATIONS: (Attestation,),
    Topic.GOVERNANCE: (GovernanceProposal, GovernanceApproval),
}


class _SettableNetwork(Protocol):
    def set_validator(self, topic: Topic, validator: TopicValidator) -> None: ...


# The core verifies these itself, in batches, when they could change a decision.
_BATCH_VERIFIED_BY_CORE = (Vote, Attestation, UpdateReceipt)


class _Rejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _decode_reason(exc: InvalidMessage) -> str:
    if exc.reason.startswith(("not CBOR", "message is not bytes")):
        return "undecodable"
    if "exceeds the limit" in exc.reason:
        return "oversized"
    return "schema"


class GossipValidator:
    """The gossip-edge checks of one node, one validator function per topic.

    Args:
        genesis: the chain's genesis (members, roles, chain id).
        verifier: the signature verifier (`BlsVerifier` in a daemon).
        current_height: the height the node is deciding now (e.g. `lambda: core.height`).
        current_admission: the admission checks of that height's member set (e.g.
            `lambda: core.admission`); the genesis set when omitted. When the set changes
            (consensus/governance.py) the caches are dropped: a signer unknown or a signature
            bad under one set may be good under the next.
        size_caps: per-topic byte caps; the network's defaults when omitted.
        local_peer_id: our own peer id (our republishes are never replays).
        cache_size: how many verified and rejected message hashes to remember.
    """

    def __init__(
        self,
        genesis: Genesis,
        verifier: Verifier,
        current_height: Callable[[], int],
        *,
        current_admission: Callable[[], Admission] | None = None,
        size_caps: Mapping[Topic, int] | None = None,
        local_peer_id: str | None = None,
        cache_size: int = 8192,
    ) -> None:
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.verifier = verifier
        self.current_height = current_height
        genesis_admission = Admission.for_genesis(
            genesis, verifier, ValidatorSet(genesis.validators)
        )
        self._admission_of = current_admission or (lambda: genesis_admission)
        self._admission = genesis_admission
        self.size_caps = dict(DEFAULT_SIZE_CAPS if size_caps is None else size_caps)
        self.local_peer_id = local_peer_id
        self.cache_size = cache_size
        # Keyed by (topic, SHA-256 of the bytes): the same bytes may be valid on one topic only.
        # The flag says whether the signature was checked (a direct message's may not be).
        self._accepted: OrderedDict[tuple[Topic, bytes], tuple[GossipMessage, bool]] = OrderedDict()
        self._rejected: OrderedDict[tuple[Topic, bytes], str] = OrderedDict()

    @property
    def admission(self) -> Admission:
        """The admission checks of the current member set."""
        current = self._admission_of()
        if current is not self._admission:
            if current.validator_set.members != self._admission.validator_set.members:
                self._accepted.clear()
                self._rejected.clear()
            self._admission = current
        return current

    @property
    def validator_set(self) -> ValidatorSet:
        return self.admission.validator_set

    # -- wiring ---------------------------------------------------------------------------

    def validator_for(self, topic: Topic) -> TopicValidator:
        """The function to install with `NodeNetwork.set_validator(topic, ...)`."""

        def validate(data: bytes, origin: str) -> str | None:
            return self.check(topic, data, origin)[1]

        return validate

    def direct_validator_for(self, topic: Topic) -> TopicValidator:
        """The same for a message its author sent us directly (`NodeNetwork.set_validator(
        topic, ..., direct=True)`): see the module docstring."""

        def validate(data: bytes, origin: str) -> str | None:
            return self.check(topic, data, origin, direct=True)[1]

        return validate

    def install(self, net: _SettableNetwork) -> None:
        """Install the validator of every topic on `net`. The secagg topic refuses everything
        here; under a secure-aggregation genesis the driver replaces its validator with
        node/secagg_wire.py's (node/services/secagg_round.py)."""
        for topic in Topic:
            if topic in TOPIC_TYPES:
                net.set_validator(topic, self.validator_for(topic))
                set_direct = getattr(net, "set_direct_validator", None)
                if set_direct is not None:
                    set_direct(topic, self.direct_validator_for(topic))
            else:
                net.set_validator(topic, lambda data, origin: "schema")

    # -- checks ---------------------------------------------------------------------------

    def check(
        self, topic: Topic, data: bytes, origin: str | None = None, *, direct: bool = False
    ) -> tuple[GossipMessage | None, str | None]:
        """Validate `data` gossiped on `topic` by `origin`: (message, None) or (None, reason).
        `direct`: `origin` sent it to us itself and nobody relays it (the module docstring)."""
        if len(data) > self.size_caps[topic]:
            return None, "oversized"
        key = (topic, hashlib.sha256(data).digest())
        known = self._accepted.get(key)
        if known is not None:
            self._accepted.move_to_end(key)
            message, signature_checked = known
            if origin is not None and self._is_replay(message, origin, direct=direct):
                return None, "duplicate"
            if not (direct or signature_checked):
                try:  # first seen directly, now to be relayed: its signature first
                    self._check_signature(message)
                except _Rejected as rejection:
                    del self._accepted[key]
                    self._remember(self._rejected, key, rejection.reason)
                    return None, rejection.reason
                self._accepted[key] = (message, True)
            return message, None
        reason = self._rejected.get(key)
        if reason is not None:
            return None, reason
        try:
            message = self._verify(topic, data, lazy=direct)
            if origin is not None and direct and self._is_replay(message, origin, direct=True):
                return None, "duplicate"  # not cached: from its author it is fine
        except _Rejected as rejection:
            if rejection.reason in _DETERMINISTIC:
                self._remember(self._rejected, key, rejection.reason)
            return None, rejection.reason
        lazy = direct and isinstance(message, _BATCH_VERIFIED_BY_CORE)
        self._remember(self._accepted, key, (message, not lazy))
        return message, None

    def decoded(self, topic: Topic, data: bytes) -> GossipMessage | None:
        """The message of bytes this validator accepted (from the cache; checked again if evicted)."""
        known = self._accepted.get((topic, hashlib.sha256(data).digest()))
        if known is not None:
            return known[0]
        return self.check(topic, data)[0]

    def _remember(
        self, cache: OrderedDict[tuple[Topic, bytes], Any], key: tuple[Topic, bytes], value: Any
    ) -> None:
        cache[key] = value
        if len(cache) > self.cache_size:
            cache.popitem(last=False)

    def _is_replay(
        self, message: GossipMessage | GovernanceTx, origin: str, *, direct: bool = False
    ) -> bool:
        if origin == self.local_peer_id and not direct:
            return False
        author = message.signer
        members = self.validator_set.members
        return not (0 <= author < len(members) and origin == members[author].peer_id)

    def _verify(self, topic: Topic, data: bytes, *, lazy: bool = False) -> GossipMessage:
        try:
            message = decode(data, max_size=self.size_caps[topic], expected=TOPIC_TYPES[topic])
        except InvalidMessage as exc:
            raise _Rejected(_decode_reason(exc)) from None
        if not isinstance(message, TOPIC_TYPES[topic]):
            raise _Rejected("schema")
        if isinstance(message, GovernanceProposal | GovernanceApproval):
            self._check_governance(message)
            return message
        signed = typing.cast(SignedMessage, message)  # every topic's types are signed
        self._check_signed(
            signed, signature=not (lazy and isinstance(signed, _BATCH_VERIFIED_BY_CORE))
        )
        return signed

    def _check_governance(self, tx: GovernanceTx) -> None:
        """A governance transaction is from a current member and signed by its key; whether
        it applies is the core's check (consensus/governance.py), counted there."""
        members = self.validator_set.members
        signer = tx.signer
        self._require(0 <= signer < len(members) and is_current(members[signer]), "unknown-signer")
        if isinstance(tx, GovernanceProposal):
            message = proposal_sign_bytes(self.chain_id, tx)
        else:
            message = approval_sign_bytes(self.chain_id, tx.proposal_id)
        ok = self.verifier.verify(members[signer].public_key, message, tx.signature)
        self._require(ok, "bad-signature")

    def _require(self, ok: bool, reason: str) -> None:
        if not ok:
            raise _Rejected(reason)

    def _in_window(self, height: int) -> None:
        current = self.current_height()
        self._require(current - WINDOW_BEHIND <= height <= current + WINDOW_AHEAD, "height-window")

    def _check_signed(self, message: SignedMessage, *, signature: bool = True) -> None:
        """Admission (signature aside), then the height window, then the signature."""
        reason = self.admission.admit(message, verify=False)
        if reason is not None:
            raise _Rejected(ADMISSION_REASONS[reason])
        self._in_window(message.height)
        if signature:
            self._check_signature(message)

    def _check_signature(self, message: GossipMessage) -> None:
        if isinstance(message, GovernanceProposal | GovernanceApproval):
            return  # checked with the rest of the transaction in `_check_governance`
        self._require(self.admission.signature_ok(message), "bad-signature")
