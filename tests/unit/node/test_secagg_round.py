"""The daemon's secure aggregation service (node/services/secagg_round.py) in process: four
trainers' real `SecAggRound`s joined by an in-memory gossip that runs the topic validator, so
drafts, reveals, the reveal log, the transcript and the validator's recomputation are the
node's own code; only the network and the store are dictionaries."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import trio
import trio.testing

from consensus.crypto import FakeSigner, FakeVerifier
from consensus.genesis import make_genesis
from consensus.types import Hash, Height, Privacy, UpdateReceipt, ValidatorIndex
from consensus.validators import ValidatorSet
from learning.secagg.chained import decode_masked
from learning.secagg.primitives import new_private_key, public_bytes
from learning.serialize import bytes_to_weights, weights_to_bytes
from node import secagg_wire as wire
from node.network import Topic
from node.services.secagg_round import RevealLog, SecAggRound, Setting, recompute_model

N, SIZE, HEIGHT = 4, 600, 5
SIGNERS = [FakeSigner(bytes([i + 1]) * 32) for i in range(N)]
VERIFIER = FakeVerifier.for_signers(SIGNERS)
AGREEMENT = [new_private_key() for _ in range(N)]
GENESIS = make_genesis(
    "sa-chain",
    SIGNERS,
    privacy=Privacy(secure_aggregation=True),
    agreement_keys=[public_bytes(k) for k in AGREEMENT],
)
VSET = ValidatorSet(GENESIS.validators)
PARENT = hashlib.sha256(b"parent").digest()


class Federation:
    """Four nodes' services, a blob store and a gossip that validates before delivering."""

    def __init__(self, tmp: Path, silent: frozenset[int] = frozenset()) -> None:
        self.blobs: dict[bytes, bytes] = {}
        self.silent = silent
        self.refused: list[tuple[int, str]] = []
        self.counted: list[tuple[int, str]] = []
        self.nodes = [self.node(i, tmp) for i in range(N)]

    def node(self, i: int, tmp: Path) -> SecAggRound:
        async def fetch(blob_hash: bytes, author: int | None) -> bytes | None:
            return self.blobs.get(bytes(blob_hash))

        async def publish(topic: Topic, data: bytes) -> bool:
            for j, other in enumerate(self.nodes):
                if j == i or j in self.silent:
                    continue
                reason = other.validate(data, f"peer-{i}")
                if reason is not None:
                    self.refused.append((j, reason))
                    continue
                await other.on_gossip(data, f"peer-{i}")
            return True

        return SecAggRound(
            genesis=GENESIS,
            me=i,
            agreement_key=AGREEMENT[i],
            signer=SIGNERS[i],
            verifier=VERIFIER,
            reveal_log=RevealLog(tmp / f"reveals-{i}.json", GENESIS.chain_id),
            setting=lambda: Setting(HEIGHT, VSET, PARENT),
            fetch=fetch,
            publish=publish,
            cap=16 * 1024,
            wait_s=0.5,
            count=lambda reason, i=i: self.counted.append((i, reason)),  # type: ignore[misc]
        )

    def put(self, data: bytes) -> Hash:
        h = Hash(hashlib.sha256(data).digest())
        self.blobs[bytes(h)] = data
        return h

    async def put_async(self, data: bytes) -> Hash:
        return self.put(data)


BASE = weights_to_bytes({"w": np.zeros(SIZE, dtype=np.float32)})


def _updates(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(scale=0.05, size=SIZE).astype(np.float32) for _ in range(N)]


def _train(fed: Federation, updates: list[np.ndarray]) -> list[UpdateReceipt]:
    """Each trainer masks its update; the store (what any admitted peer can fetch) gets only that."""
    receipts = []
    for i, node in enumerate(fed.nodes):
        pairing = node.pairing(node.setting())
        masked = node.mask(pairing, weights_to_bytes({"w": updates[i]}))
        h = fed.put(masked)
        receipts.append(
            UpdateReceipt(ValidatorIndex(i), Height(HEIGHT), Hash(bytes(32)), h, 100, 0.1, 0.0)
        )
    return receipts


def _proposer() -> int:
    return int(VSET.proposer_for(Height(HEIGHT), 0))  # type: ignore[arg-type]


def test_the_store_holds_masked_updates_only_and_the_sum_is_recomputed(tmp_path: Path) -> None:
    """An admitted observer fetching every masked blob of the height sees noise (correlation
    with each true update about 0); the validator's recomputation from the masked blobs and
    the transcript gives the proposer's model, whose weights are base + the mean update."""
    fed = Federation(tmp_path)
    updates = _updates(0)
    receipts = _train(fed, updates)
    for r, x in zip(receipts, updates, strict=True):
        values = decode_masked(fed.blobs[bytes(r.blob_hash)]).values.astype(np.float64)
        # the masks are fresh randomness (`secrets`): the correlation of noise with x has a
        # standard deviation of 1/sqrt(SIZE) = 0.04; 5 of those bound it except once in 10^6
        # (0.1 failed one run in ~20); an unmasked update correlates at 1.0
        assert abs(np.corrcoef(values, x)[0, 1]) < 5 / np.sqrt(SIZE)
    p = _proposer()
    built = trio.run(fed.nodes[p].build, HEIGHT, 0, receipts, BASE, fed.put_async)
    assert built.model is not None and len(built.accepted) == N and not built.reason
    expected = np.mean(updates, axis=0)
    assert np.abs(bytes_to_weights(built.model)["w"] - expected).max() < 1e-5
    included = {int(r.author): bytes(r.blob_hash) for r in receipts}
    validator = fed.nodes[(p + 1) % N]

    async def fetch(h: bytes, author: int | None) -> bytes | None:
        return fed.blobs.get(bytes(h))

    again, why = trio.run(
        recompute_model, validator.pairing(validator.setting()), built.model, included, BASE, fetch
    )
    assert again == built.model and why == ""
    assert not fed.refused


def test_a_trainer_silent_after_publishing_is_recovered(tmp_path: Path) -> None:
    """The dropout case: a trainer publishes its masked update and goes silent (it hears and
    says nothing after); t = 3 of its 4 holders reveal its self-mask share, so the height's
    model still includes its update."""
    p = _proposer()
    silent = (p + 2) % N
    fed = Federation(tmp_path, silent=frozenset({silent}))
    updates = _updates(1)
    receipts = _train(fed, updates)
    built = trio.run(fed.nodes[p].build, HEIGHT, 0, receipts, BASE, fed.put_async)
    assert built.model is not None
    assert silent in {int(r.author) for r in built.accepted}
    assert np.abs(bytes_to_weights(built.model)["w"] - np.mean(updates, axis=0)).max() < 1e-5


def test_two_silent_trainers_leave_too_few_shares(tmp_path: Path) -> None:
    """Two of four silent after publishing: 2 shares per self-mask seed, t = 3: the proposer
    answers `secagg-threshold` (a carry-over block) instead of a model."""
    p = _proposer()
    fed = Federation(tmp_path, silent=frozenset({(p + 1) % N, (p + 2) % N}))
    receipts = _train(fed, _updates(2))
    clock = trio.testing.MockClock(autojump_threshold=0)  # the reveal deadline, virtually
    built = trio.run(fed.nodes[p].build, HEIGHT, 0, receipts, BASE, fed.put_async, clock=clock)
    assert built.model is None and built.reason == "secagg-threshold"


def _draft(fed: Federation, receipts: list[UpdateReceipt], round_: int) -> bytes:
    proposer = int(VSET.proposer_for(Height(HEIGHT), round_))  # type: ignore[arg-type]
    included = {int(r.author): bytes(r.blob_hash) for r in receipts}
    draft = wire.signed(
        wire.Draft(GENESIS.chain_id, HEIGHT, round_, proposer, included), SIGNERS[proposer]
    )
    return wire.encode(draft)


def test_one_reveal_per_height_even_after_a_restart(tmp_path: Path) -> None:
    """A second, different U3 at the height gets no reveal (counted), also from a restarted
    node (the reveal log is on disk); without the log the same node would answer it."""
    fed = Federation(tmp_path)
    receipts = _train(fed, _updates(3))
    first, second = _draft(fed, receipts, 0), _draft(fed, receipts[:3], 1)
    me = next(i for i in range(3) if i not in (_proposer(),))
    node = fed.nodes[me]

    def answered(target: SecAggRound, data: bytes) -> int:
        seen = []

        async def publish(topic: Topic, msg: bytes) -> bool:
            seen.append(msg)
            return True

        target._publish = publish  # noqa: SLF001 - observe what the node sends
        trio.run(target.on_gossip, data, "peer")
        return len(seen)

    assert answered(node, first) == 1
    assert answered(node, second) == 0
    assert (me, "secagg-second-draft") in fed.counted
    restarted = fed.node(me, tmp_path)
    assert answered(restarted, second) == 0
    fresh = fed.node(me, tmp_path / "elsewhere")
    (tmp_path / "elsewhere").mkdir()
    assert answered(fresh, second) == 1  # the attack the log stops: a second U3 answered


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d + bytes(20_000), "oversized"),
        (lambda d: b"\xff\x00", "undecodable"),
        (lambda d: d[:-5], "undecodable"),
        (lambda d: d.replace(b"sa-chain", b"sb-chain"), "wrong-chain"),
    ],
)
def test_malformed_drafts_are_refused_with_a_reason(mutate, reason: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Size, CBOR, chain: each refusal names its reason (the network counts it)."""
    fed = Federation(tmp_path)
    receipts = _train(fed, _updates(4))
    assert fed.nodes[0].validate(mutate(_draft(fed, receipts, 0)), "peer") == reason


def test_a_draft_must_come_from_the_rounds_proposer_and_be_signed_by_it(tmp_path: Path) -> None:
    """Another member's draft is `unknown-signer`; a forged signature `bad-signature`; a
    draft far ahead `height-window`."""
    fed = Federation(tmp_path)
    receipts = _train(fed, _updates(5))
    included = {int(r.author): bytes(r.blob_hash) for r in receipts}
    p = _proposer()
    other = (p + 1) % N
    usurper = wire.signed(wire.Draft(GENESIS.chain_id, HEIGHT, 0, other, included), SIGNERS[other])
    assert fed.nodes[0].validate(wire.encode(usurper), "peer") == "unknown-signer"
    forged = wire.signed(wire.Draft(GENESIS.chain_id, HEIGHT, 0, p, included), SIGNERS[other])
    assert fed.nodes[0].validate(wire.encode(forged), "peer") == "bad-signature"
    far = int(VSET.proposer_for(Height(HEIGHT + 20), 0))  # type: ignore[arg-type]
    ahead = wire.signed(wire.Draft(GENESIS.chain_id, HEIGHT + 20, 0, far, included), SIGNERS[far])
    assert fed.nodes[0].validate(wire.encode(ahead), "peer") == "height-window"


def test_a_reveal_naming_one_member_twice_is_left_out_of_the_transcript(tmp_path: Path) -> None:
    """A member's signed reveal holding a share and a seed for one member (the leak the
    one-reveal rule forbids) passes the edge (well formed, signed) but the proposer drops it
    (counted `secagg-malformed`); the other reveals still reach the threshold."""
    from learning.secagg.chained import RevealBody
    from learning.secagg.shamir import Share

    fed = Federation(tmp_path)
    receipts = _train(fed, _updates(6))
    p = _proposer()
    liar = (p + 1) % N
    included = {int(r.author): bytes(r.blob_hash) for r in receipts}
    draft_id = wire.Draft(GENESIS.chain_id, HEIGHT, 0, p, included).draft_id
    body = RevealBody(liar, {p: Share(liar + 1, 5)}, {p: bytes(32)})
    bad = wire.encode(
        wire.signed(wire.Reveal(GENESIS.chain_id, HEIGHT, draft_id, body), SIGNERS[liar])
    )
    assert fed.nodes[p].validate(bad, "peer") is None
    trio.run(fed.nodes[p].on_gossip, bad, "peer")
    built = trio.run(fed.nodes[p].build, HEIGHT, 0, receipts, BASE, fed.put_async)
    assert built.model is not None
    assert (p, "secagg-malformed") in fed.counted


def test_two_drafts_signed_for_one_round_are_counted_as_equivocation(tmp_path: Path) -> None:
    """The proposer's attack left open (docs/THREAT-MODEL.md): a second U3 for the same round
    is seen and counted `secagg-equivocation` (and not answered); another round's is not."""
    fed = Federation(tmp_path)
    receipts = _train(fed, _updates(7))
    p = _proposer()
    node = fed.nodes[(p + 1) % N]
    trio.run(node.on_gossip, _draft(fed, receipts, 1), "peer")
    assert not any(reason == "secagg-equivocation" for _, reason in fed.counted)
    trio.run(node.on_gossip, _draft(fed, receipts, 0), "peer")
    trio.run(node.on_gossip, _draft(fed, receipts[:3], 0), "peer")
    assert ((p + 1) % N, "secagg-equivocation") in fed.counted
