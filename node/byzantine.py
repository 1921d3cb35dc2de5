"""Byzantine devnet behaviour "garbage": a member that floods every topic with bad messages.

`bcfl devnet up --byzantine garbage:K` runs K nodes whose network is driven by a
`GarbageSpammer` (issue 4, "Done when"): the honest nodes must keep committing, count the
rejections by reason, and keep their gossip links to each other alive. The spammer is a genesis
member (so the connection gate lets it in) that, paced at `rate` sends per second, cycles
through:

- gossip garbage on every topic, published through the router so that its own node's topic
  validators and size caps do not stop it: malformed CBOR, valid CBOR with an unknown tag or
  the wrong schema, a well-formed message of another topic, a well-formed message with a bad
  signature, one signed for a non-member index, one at an absurd height, a block header of
  another chain, a payload over the topic cap (but under py-libp2p's 1 MiB RPC limit), and a
  replay of an honest message it overheard;
- below the CBOR layer, raw pubsub RPC frames written on a fresh `/meshsub` stream to each
  connected peer: the 9-byte non-protobuf frame of docs/libp2p-compat.md that kills an unguarded
  py-libp2p 0.8.1 process, a truncated varint, an over-long varint and a length prefix above
  the 1 MiB limit.

One cycle sends all gossip kinds on every topic before the raw frames, because three
malformed frames get the spammer banned from a guarded peer's pubsub for 30 s
(`node.network.guarded_pubsub`) and the gossip garbage should be seen before that.

Choices where the issue is silent: the spammer signs its well-formed garbage with `signer`
(its own BLS key) when given, so a "non-member" or "absurd height" message fails on the
signer or height check and not merely on the signature; heights of "timely" garbage follow the
highest height it overheard, so bad signatures are rejected as such and not as out of window.
Poisoned updates are not here: the driver uses `learning.attack_update`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, PROTOCOL_ID_V12
from libp2p.pubsub.pb import rpc_pb2
from libp2p.utils import encode_varint_prefixed

from consensus.codec import InvalidMessage, canonical, decode_message, encode, encode_message
from consensus.crypto import Signer
from consensus.types import (
    Attestation,
    Block,
    Candidate,
    EvalReport,
    Hash,
    Header,
    Height,
    Proposal,
    Round,
    Signature,
    UpdateReceipt,
    ValidatorIndex,
    Vote,
    VoteType,
)
from node.network import NodeNetwork, Topic, libp2p_compat

logger = logging.getLogger(__name__)

GOSSIP_KINDS = (
    "malformed-cbor",
    "unknown-tag",
    "wrong-schema",
    "wrong-topic",
    "bad-signature",
    "non-member",
    "absurd-height",
    "wrong-chain",
    "oversized",
    "replay",
)
RAW_FRAMES: dict[str, bytes] = {
    "rpc-not-protobuf": encode_varint_prefixed(b"\xff" * 9),
    "rpc-truncated-varint": b"\xff\xff\xff",
    "rpc-overlong-varint": b"\xff" * 10 + b"\x01",
    "rpc-over-limit": b"\x80\x80\x80\x01" + b"\x00" * 64,  # claims 2 MiB
}
NON_MEMBER_INDEX = 10_000
ABSURD_HEIGHT = 2**40
OVERSIZE_MARGIN = 1024
RAW_FRAME_TIMEOUT_S = 5.0  # opening a stream to a flooded peer took up to 2 s on 2 cores
_PUBSUB_PROTOCOLS = [PROTOCOL_ID_V12, PROTOCOL_ID_V11, PROTOCOL_ID]
_ZERO = Hash(bytes(32))


async def publish_unchecked(net: NodeNetwork, chain_id: str, topic: Topic, data: bytes) -> None:
    """Sign and push a pubsub message through the router, past our own topic validators (which
    would refuse what an attacker means to send, so a real attacker would skip them too)."""
    pubsub = net.pubsub
    msg = rpc_pb2.Message(
        data=data,
        topicIDs=[topic.wire_name(chain_id)],
        from_id=net.peer_id.to_bytes(),
        seqno=libp2p_compat.next_seqno(pubsub),
    )
    key = net.host.get_private_key()
    prefix = libp2p_compat.pubsub_signing_prefix().encode()
    msg.signature = key.sign(prefix + msg.SerializeToString())
    msg.key = net.host.get_public_key().serialize()
    await net.router.publish(net.peer_id, msg)


class GarbageSpammer:
    """Publishes a rotating mix of invalid gossip and malformed RPC frames, paced at `rate`/s.

    Args:
        net: the spammer's own (running) `NodeNetwork`.
        chain_id: the chain the honest nodes run.
        signer_index: the spammer's genesis member index.
        rate: sends per second (a raw-frame send writes one frame to every connected peer).
        signer: the spammer's own key, to sign well-formed garbage (random signatures without).
        observe_gossip: subscribe to every topic to overhear heights and honest messages to
            replay; pass False when a driver owns the node's handlers and call `observe` instead.
        raw_frames: also write malformed RPC frames below the CBOR layer.
        kinds: the gossip garbage kinds to cycle through (default: all of GOSSIP_KINDS).
        seed: seeds the garbage (deterministic per seed).
    """

    def __init__(
        self,
        net: NodeNetwork,
        chain_id: str,
        signer_index: int,
        rate: float,
        *,
        signer: Signer | None = None,
        observe_gossip: bool = True,
        raw_frames: bool = True,
        kinds: Sequence[str] = GOSSIP_KINDS,
        seed: int | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.net = net
        self.chain_id = chain_id
        self.me = ValidatorIndex(signer_index)
        self.rate = rate
        self.signer = signer
        self.observe_gossip = observe_gossip
        self.raw_frames = raw_frames
        unknown = set(kinds) - set(GOSSIP_KINDS)
        if unknown:
            raise ValueError(f"unknown garbage kinds {sorted(unknown)}")
        self.kinds = tuple(kinds)
        self.random = random.Random(seed)
        self.sent: Counter[str] = Counter()  # by kind (gossip kinds and raw frame names)
        self.errors = 0
        self.height = 1  # highest height overheard
        self._overheard: dict[Topic, bytes] = {}

    # -- the service ----------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Spam until cancelled; `net` must already be running."""
        if self.observe_gossip:
            for topic in Topic:
                self.net.subscribe(topic, self._overhear(topic))
        task_status.started()
        while True:
            for send in self._cycle():
                await send()
                await trio.sleep(1 / self.rate)

    def _cycle(self) -> list[Callable[[], Awaitable[None]]]:
        sends: list[Callable[[], Awaitable[None]]] = [
            functools.partial(self._send_gossip, kind, topic)
            for kind in self.kinds
            for topic in Topic
        ]
        if self.raw_frames:
            sends += [functools.partial(self._send_raw_frames, name) for name in RAW_FRAMES]
        return sends

    def observe(self, topic: Topic, data: bytes) -> None:
        """Remember an honest message (for heights and replays)."""
        self._overheard[topic] = data
        with contextlib.suppress(InvalidMessage):
            message = decode_message(data, len(data))
            height = getattr(message, "height", None)
            if isinstance(height, int) and height < ABSURD_HEIGHT:
                self.height = max(self.height, height)

    def _overhear(self, topic: Topic) -> Callable[[bytes, str], Any]:
        async def handler(data: bytes, origin: str) -> None:
            self.observe(topic, data)

        return handler

    # -- gossip garbage -------------------------------------------------------------------

    async def _send_gossip(self, kind: str, topic: Topic) -> None:
        data = self.garbage(kind, topic)
        if data is None:
            return
        try:
            await self._publish_unchecked(topic, data)
            self.sent[kind] += 1
        except trio.Cancelled:
            raise
        except Exception as exc:
            self.errors += 1
            logger.debug("garbage %s on %s not sent: %r", kind, topic.value, exc)

    async def _publish_unchecked(self, topic: Topic, data: bytes) -> None:
        await publish_unchecked(self.net, self.chain_id, topic, data)

    def garbage(self, kind: str, topic: Topic) -> bytes | None:
        """The bytes of one garbage message of `kind` for `topic` (None: nothing to replay)."""
        rnd = self.random
        if kind == "malformed-cbor":
            return rnd.choice([b"\xff", b"\x9f\x01\x02", b"\x5a\x00\x10\x00\x00"]) + rnd.randbytes(
                rnd.randrange(0, 64)
            )
        if kind == "unknown-tag":
            return canonical(["bcfl/not-a-message", {"n": rnd.randrange(1 << 30)}])
        if kind == "wrong-schema":
            return canonical(["vote", {"height": "tall", "n": rnd.randrange(1 << 30)}])
        if kind == "wrong-topic":
            other = Topic.RECEIPTS if topic is not Topic.RECEIPTS else Topic.CONSENSUS
            return self._message(other, self.height, self.me, sign=True)
        if kind == "bad-signature":
            return self._message(topic, self.height, self.me, sign=False)
        if kind == "non-member":
            return self._message(topic, self.height, ValidatorIndex(NON_MEMBER_INDEX), sign=True)
        if kind == "absurd-height":
            height = ABSURD_HEIGHT + rnd.randrange(1 << 20)
            return self._message(topic, height, self.me, sign=True)
        if kind == "wrong-chain":
            return self._message(topic, self.height, self.me, sign=True, chain_id="not-this-chain")
        if kind == "oversized":
            cap = self.net.settings.size_caps[topic]
            return canonical(["vote", rnd.randbytes(cap + OVERSIZE_MARGIN)])
        if kind == "replay":
            return self._overheard.get(topic)
        raise ValueError(f"unknown garbage kind {kind!r}")

    def _message(
        self,
        topic: Topic,
        height: int,
        who: ValidatorIndex,
        *,
        sign: bool,
        chain_id: str | None = None,
    ) -> bytes:
        """A well-formed message of `topic`'s type, signed by our key or with random bytes."""
        chain = chain_id or self.chain_id
        h, r = Height(height), Round(self.random.randrange(3))
        tag = Hash(self.random.randbytes(32))
        message: Any
        if topic is Topic.CONSENSUS and chain_id is None:
            message = Vote(VoteType.PREVOTE, h, r, tag, who)
        elif topic is Topic.CONSENSUS:
            message = Proposal(h, r, self._block(h, chain), Round(-1), who)
        elif topic is Topic.RECEIPTS:
            message = UpdateReceipt(who, h, _ZERO, tag, 10, 0.1, 0.0)
        elif topic is Topic.CANDIDATES:
            message = Candidate(h, r, who, _ZERO, tag, (), (), "fedavg")
        else:
            report = EvalReport(who, tag, 10, 0.5, 0.4, 0.6, 0.7)
            message = Attestation(h, tag, True, who, report)
        signature = self._signature(chain, encode(message), sign)
        return encode_message(dataclasses.replace(message, signature=signature))

    def _signature(self, chain: str, what: bytes, sign: bool) -> Signature:
        if sign and self.signer is not None:
            return self.signer.sign(canonical(["bcfl/garbage", chain, what]))
        return Signature(self.random.randbytes(96))

    def _block(self, height: Height, chain: str) -> Block:
        header = Header(
            chain_id=chain,
            height=height,
            round=Round(0),
            time_ms=self.random.randrange(1, 1 << 40),
            parent_hash=_ZERO,
            proposer=ValidatorIndex(0),
            model_hash=_ZERO,
            updates_root=_ZERO,
            last_commit_hash=_ZERO,
            ledger_root=_ZERO,
        )
        return Block(header, (), (), "", None, (), "garbage", None, ())

    # -- below the CBOR layer -------------------------------------------------------------

    async def _send_raw_frames(self, name: str) -> None:
        frame = RAW_FRAMES[name]
        # Concurrently, so that one peer whose stream never opens does not stall the cycle.
        async with trio.open_nursery() as nursery:
            for peer in list(self.net.host.get_connected_peers()):
                nursery.start_soon(self._write_raw, peer, name, frame)

    async def _write_raw(self, peer: ID, name: str, frame: bytes) -> None:
        """Open a fresh pubsub stream to `peer`, write `frame` raw, and close it."""
        try:
            with trio.fail_after(RAW_FRAME_TIMEOUT_S):
                stream = await self.net.host.new_stream(peer, _PUBSUB_PROTOCOLS)
                try:
                    await stream.write(frame)
                finally:
                    with contextlib.suppress(Exception):
                        await stream.close()
            self.sent[name] += 1
        except trio.Cancelled:
            raise
        except Exception as exc:  # the peer may already have reset or banned us
            self.errors += 1
            logger.debug("raw frame to %s failed: %r", peer, exc)
