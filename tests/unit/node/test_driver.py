"""The driver against a real core, a real learning app and a real SQLite store, on a Mem network.

A single-validator federation decides alone, so the whole proof-of-learning height (train,
receipt, candidate, attestation, proposal, votes, commit) runs through the driver in-process.
Every test runs under trio's MockClock (pytest-trio's `mock_clock` fixture: virtual time stands
still unless a test jumps it), so timers fire only when the test says so; tests wait on the
driver's own height callback, never by polling a clock. A single validator that trains needs no
timer at all: the update window closes on its own receipt.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import trio

from consensus import codec
from consensus.core import ConsensusCore
from consensus.crypto import BlsSigner, BlsVerifier
from consensus.genesis import make_genesis
from consensus.guard import SignerState
from consensus.shell import PersistSigner, Publish
from consensus.types import Block, Proposal, Step, Timeouts, ValidatorIndex, Vote, VoteType
from learning import builtin_task, initial_weights
from node.app import LearningApp
from node.chain import Chain
from node.config import NodeConfig
from node.driver import Driver, coalesce_signer_writes
from node.home import NodeHome
from node.network import BlobUnavailableError, NetworkCounters, Topic
from node.store import ChainStore
from telemetry.metrics import NodeMetrics


class MemNetwork:
    """Records what the driver publishes; nobody else is on it."""

    def __init__(self, store: ChainStore, events: list[str]) -> None:
        self.store = store
        self.events = events
        self.published: list[tuple[Topic, bytes]] = []
        self.counters = NetworkCounters()

    def subscribe(self, topic: Topic, handler: Any) -> None:
        pass

    async def publish(self, topic: Topic, data: bytes) -> None:
        self.events.append(f"publish {type(codec.decode_message(data)).__name__}")
        self.published.append((topic, data))

    def peers(self) -> list[str]:
        return []

    async def fetch_blob(self, blob_hash: bytes, from_peers: Any = None) -> bytes:
        raise BlobUnavailableError(blob_hash.hex())

    async def fetch_blob_to_store(self, blob_hash: bytes, from_peers: Any = None) -> bytes | None:
        raise BlobUnavailableError(blob_hash.hex())

    def push_blob(self, blob_hash: bytes, data: Any) -> bool:
        return False  # nobody to push to


class RecordingStore(ChainStore):
    """A real store that also notes when the signer state became durable."""

    events: list[str]
    persisted: list[SignerState]

    def save_signer_state(self, state: bytes) -> None:
        super().save_signer_state(state)
        self.events.append("persist")
        self.persisted.append(codec.decode_as(state, SignerState))


def single_validator(
    tmp_path: Path, *, trains: bool = True
) -> tuple[Driver, RecordingStore, MemNetwork, list[str]]:
    task = builtin_task("breast-cancer")
    model = initial_weights(task, 0)
    signer = BlsSigner(bytes([7]) * 32)
    genesis = make_genesis(
        "driver-test",
        [signer],
        task=task.to_dict(),
        initial_model_hash=codec.sha256(model),
        timeouts=Timeouts(update_window=5.0, attestation=5.0),
    )
    home = NodeHome(tmp_path)
    events: list[str] = []
    store = RecordingStore(home.db_path, home.blobs_dir, home.signer_state_path)
    store.events = events
    store.persisted = []
    store.blobs.put(model)
    net = MemNetwork(store, events)
    config = NodeConfig()
    core = ConsensusCore(genesis, verifier=BlsVerifier(), me=ValidatorIndex(0), signer=signer)
    app = LearningApp(genesis, config, tmp_path, ValidatorIndex(0))
    metrics = NodeMetrics(node_id="n0", chain_id="driver-test", version="test")
    watch = HeightWatch()
    driver = Driver(
        core=core,
        store=store,
        net=net,
        app=app,
        metrics=metrics,
        is_trainer=trains,
        on_height=watch,
    )
    driver.watch = watch  # type: ignore[attr-defined]
    return driver, store, net, events


class HeightWatch:
    """The driver's `on_height` callback: wakes waiters when the core's height changes."""

    def __init__(self) -> None:
        self.height = 0
        self._changed = trio.Event()

    def __call__(self, height: int, round_: int) -> None:
        if height != self.height:
            self.height = height
            self._changed.set()
            self._changed = trio.Event()

    async def committed(self, height: int) -> None:
        """Return once block `height` is committed (the core is at height + 1)."""
        while self.height <= height:
            await self._changed.wait()


async def run_until_height(driver: Driver, height: int) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await driver.watch.committed(height)  # type: ignore[attr-defined]
        nursery.cancel_scope.cancel()


@pytest.mark.slow
async def test_single_validator_commits_model_blocks_through_the_driver(
    tmp_path: Path, mock_clock: Any
) -> None:
    """Two heights commit, each a model block with an improvement certificate, stored."""
    driver, store, net, _ = single_validator(tmp_path)
    await run_until_height(driver, 2)
    first = codec.decode_as(store.get_block(1).block, Block)  # type: ignore[union-attr]
    assert first.improvement_certificate is not None
    assert store.blobs.has(first.header.model_hash)
    kinds = Counter(type(codec.decode_message(d)).__name__ for _, d in net.published)
    assert kinds["UpdateReceipt"] >= 2 and kinds["Proposal"] >= 2 and kinds["Vote"] >= 4
    assert all(Chain(store).phases(h) for h in (1, 2))
    store.close()


@pytest.mark.slow
async def test_signer_state_is_durable_before_each_signed_message_leaves(
    tmp_path: Path, mock_clock: Any
) -> None:
    """Each published vote or proposal leaves only after a durable signer state that covers it
    (its position signed, with its value): the guard would refuse a conflicting one after a
    crash. One write may cover several messages of a shell step (coalesce_signer_writes)."""
    driver, store, net, events = single_validator(tmp_path)
    await run_until_height(driver, 1)
    published = iter(net.published)
    persisted = iter(store.persisted)
    durable: SignerState | None = None
    checked = 0
    for event in events:
        if event == "persist":
            durable = next(persisted)
            continue
        message = codec.decode_message(next(published)[1])
        if isinstance(message, Vote):
            step = Step.PREVOTE if message.vote_type == VoteType.PREVOTE else Step.PRECOMMIT
            value = message.block_hash or b""
        elif isinstance(message, Proposal):
            step, value = Step.PROPOSE, codec.block_hash(message.block)
        else:
            continue
        assert durable is not None, events
        position = (message.height, message.round, step)
        assert position <= (durable.height, durable.round, durable.step), (message, durable)
        if position == (durable.height, durable.round, durable.step):
            assert durable.value == value
        checked += 1
    assert checked >= 3  # a proposal, a prevote and a precommit at least
    store.close()


def test_one_write_per_shell_step_the_last_state_before_the_first_publish() -> None:
    first, last = SignerState(height=1, round=0, step=1), SignerState(height=1, round=0, step=2)
    vote, commit = Publish("consensus", b"v"), Publish("consensus", b"c")
    steps = [PersistSigner(first), vote, PersistSigner(last), commit]
    assert coalesce_signer_writes(steps) == [PersistSigner(last), vote, commit]
    alone = [PersistSigner(first), vote]
    assert coalesce_signer_writes(alone) is alone


async def test_a_failing_learning_step_is_contained(tmp_path: Path) -> None:
    """An exception in learning work is logged; the worker keeps running."""
    driver, store, _, _ = single_validator(tmp_path)

    async def broken() -> None:
        raise RuntimeError("trainer bug")

    await driver.worker._contained(broken)  # must not raise
    store.close()


async def test_timers_run_on_the_injected_clock(tmp_path: Path, mock_clock: Any) -> None:
    """A site that does not train: the height waits for the update window on the virtual
    clock, and commits a carry-over block only once the test moves that clock past it."""
    driver, store, _, _ = single_validator(tmp_path, trains=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await trio.testing.wait_all_tasks_blocked(cushion=0.01)
        assert store.tip_height() is None  # nothing moves while virtual time stands still
        mock_clock.jump(5.5)  # past the 5 s update window
        await driver.watch.committed(1)  # type: ignore[attr-defined]
        nursery.cancel_scope.cancel()
    block = codec.decode_as(store.get_block(1).block, Block)  # type: ignore[union-attr]
    assert block.is_carry_over and block.carry_over_reason.startswith("too few updates")
    store.close()


@pytest.mark.slow
async def test_a_publish_failure_does_not_end_the_driver(tmp_path: Path, mock_clock: Any) -> None:
    """Every proposal publish raises (as an over-cap message does): the failure is counted and
    the driver goes on to commit; before, the ValueError ended the daemon."""
    driver, store, net, _ = single_validator(tmp_path)
    plain = net.publish

    async def publish(topic: Topic, data: bytes) -> None:
        if isinstance(codec.decode_message(data), Proposal):
            raise ValueError("consensus message of 70000 bytes exceeds its cap of 65536")
        await plain(topic, data)

    net.publish = publish  # type: ignore[method-assign]
    await run_until_height(driver, 1)
    assert driver.publish_failures["consensus"] >= 1
    assert store.tip_height() == 1
    store.close()
