"""The driver against a real core, a real learning app and a real SQLite store, on a Mem network.

A single-validator federation decides alone, so the whole proof-of-learning height (train,
receipt, candidate, attestation, proposal, votes, commit) runs through the driver in-process.
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
from consensus.types import Block, Timeouts, ValidatorIndex
from learning import builtin_task, initial_weights
from node.app import LearningApp
from node.config import NodeConfig
from node.driver import Driver
from node.keys import NodeHome
from node.network import BlobUnavailableError, NetworkCounters, Topic
from node.routes import stored_phases
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


class RecordingStore(ChainStore):
    """A real store that also notes when the signer state became durable."""

    events: list[str]

    def save_signer_state(self, state: bytes) -> None:
        super().save_signer_state(state)
        self.events.append("persist")


def single_validator(tmp_path: Path) -> tuple[Driver, RecordingStore, MemNetwork, list[str]]:
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
    store.blobs.put(model)
    net = MemNetwork(store, events)
    config = NodeConfig()
    core = ConsensusCore(genesis, verifier=BlsVerifier(), me=ValidatorIndex(0), signer=signer)
    app = LearningApp(genesis, config, tmp_path, ValidatorIndex(0))
    metrics = NodeMetrics(node_id="n0", chain_id="driver-test", version="test")
    driver = Driver(
        core=core,
        store=store,
        net=net,
        app=app,
        metrics=metrics,
        is_trainer=True,  # type: ignore[arg-type]
    )
    return driver, store, net, events


async def run_until_height(driver: Driver, store: ChainStore, height: int) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(driver.run)
            while (store.tip_height() or 0) < height:
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()


@pytest.mark.slow
async def test_single_validator_commits_model_blocks_through_the_driver(tmp_path: Path) -> None:
    """Two heights commit, each a model block with an improvement certificate, stored."""
    driver, store, net, _ = single_validator(tmp_path)
    await run_until_height(driver, store, 2)
    first = codec.decode_as(store.get_block(1).block, Block)  # type: ignore[union-attr]
    assert first.improvement_certificate is not None
    assert store.blobs.has(first.header.model_hash)
    kinds = Counter(type(codec.decode_message(d)).__name__ for _, d in net.published)
    assert kinds["UpdateReceipt"] >= 2 and kinds["Proposal"] >= 2 and kinds["Vote"] >= 4
    assert all(stored_phases(store, h) for h in (1, 2))
    store.close()


@pytest.mark.slow
async def test_signer_state_is_durable_before_each_signed_message_leaves(tmp_path: Path) -> None:
    """Each published vote or proposal has its own signer-state persist since the previous one."""
    driver, store, _, events = single_validator(tmp_path)
    await run_until_height(driver, store, 1)
    signed = ("publish Vote", "publish Proposal")
    persisted_since_last = False
    checked = 0
    for event in events:
        if event == "persist":
            persisted_since_last = True
        elif event in signed:
            assert persisted_since_last, events
            persisted_since_last = False
            checked += 1
    assert checked >= 3  # a proposal, a prevote and a precommit at least
    store.close()


async def test_a_failing_learning_step_is_contained(tmp_path: Path) -> None:
    """An exception in training is logged; the driver keeps running."""
    driver, store, _, _ = single_validator(tmp_path)

    async def broken(_: object) -> None:
        raise RuntimeError("trainer bug")

    await driver._contained(broken, None)  # must not raise
    store.close()
