"""A real, small chain in a temp node home, built without the daemon.

`build_chain(tmp_path, heights=3)` drives four real `ConsensusCore`s in-process with BLS keys
and a tiny app that answers StartTraining / BuildCandidate / EvaluateCandidate with real
`learning` calls (logistic regression on a few breast-cancer samples per site). Messages are
delivered FIFO to every other core; timeouts fire on a virtual clock only when no message is in
flight, so the run is deterministic. Each core runs in the real node shell
(consensus/shell), as in the daemon. Node 0's commits are written into the home's
ChainStore through `node.chain.Chain.append`, as the driver writes them: block, commit
certificate, blob refs (model + update blobs) and the ledger snapshot; every update and candidate
model blob goes into the home's blob store.

`not_improved_heights` makes every validator answer "not improved" at those heights, so the
chain gets carry-over blocks there.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from consensus.codec import block_hash
from consensus.core import ConsensusCore
from consensus.crypto import BlsSigner, BlsVerifier
from consensus.events import (
    Commit,
    Message,
    StartTraining,
    TimeoutFired,
    TrainingFinished,
)
from consensus.shell import (
    Aggregate,
    Evaluate,
    NodeShell,
    Publish,
    Request,
    StartTimer,
    StoreCommit,
    Train,
)
from consensus.types import (
    Candidate,
    EvalReport,
    Genesis,
    Hash,
    Height,
    Timeouts,
    UpdateReceipt,
    ValidatorIndex,
)
from node.chain import Chain
from node.config import NodeConfig, save_config
from node.genesis_files import (
    build_genesis,
    genesis_rule,
    genesis_task,
    genesis_verdict,
    write_genesis,
)
from node.home import NodeHome
from node.store import ChainStore

N_NODES = 4
SAMPLES_PER_SITE = 60


def peer_id_for(index: int) -> str:
    """A syntactically valid (base58) stand-in libp2p peer id."""
    return "12D3KooW" + "ABCDEFGHJK"[index] * 44


def node_infos(signers: list[BlsSigner]) -> list[dict[str, Any]]:
    """What `read_node_info` returns for each signer."""
    return [
        {
            "name": f"site-{i}",
            "peer_id": peer_id_for(i),
            "roles": ["trainer", "validator"],
            "bls_public_key": bytes(s.public_key),
            "bls_proof_of_possession": bytes(s.prove_possession()),
            "multiaddr": None,
        }
        for i, s in enumerate(signers)
    ]


@dataclass
class _Site:
    """One member: its core in the node shell, and its learning side."""

    index: int
    shell: NodeShell
    train: Any  # learning.Split
    val: Any  # learning.Split
    committed: list[bytes] = field(default_factory=list)


class ChainBuilder:
    """Runs the cores until node 0 has committed `heights` blocks."""

    def __init__(
        self, home: NodeHome, *, heights: int, not_improved_heights: Iterable[int] = ()
    ) -> None:
        import torch

        from learning import builtin_task, site_data

        torch.set_num_threads(1)
        self.home = home
        self.heights = heights
        self.not_improved = set(not_improved_heights)
        signers = [
            BlsSigner(hashlib.sha256(b"chain-fixture-%d" % i).digest()) for i in range(N_NODES)
        ]
        task = builtin_task("breast-cancer")
        from learning import VerdictRule

        genesis, model = build_genesis(
            node_infos(signers),
            chain_id="fixture-chain",
            task=task,
            init_seed=0,
            rule="fedavg",
            verdict=VerdictRule(metric="loss", noise_margin=0.05),
            timeouts=Timeouts(update_window=30.0, attestation=30.0),
            genesis_time_ms=1_700_000_000_000,
        )
        self.genesis: Genesis = genesis
        self.task = genesis_task(genesis)
        self.rule = genesis_rule(genesis)
        self.verdict = genesis_verdict(genesis)
        write_genesis(home, genesis, model)
        config = NodeConfig()
        config.node.name = "site-0"
        save_config(config, home.config_path)
        self.store = ChainStore.open(home)
        self.blobs: dict[bytes, bytes] = {genesis.initial_model_hash: model}
        verifier = BlsVerifier()
        self.sites: list[_Site] = []
        for i, signer in enumerate(signers):
            data = site_data(task, i, N_NODES, "iid", 0)
            self.sites.append(
                _Site(
                    index=i,
                    shell=NodeShell(
                        ConsensusCore(
                            genesis, verifier=verifier, me=ValidatorIndex(i), signer=signer
                        )
                    ),
                    train=data.train.take(_first(len(data.train), SAMPLES_PER_SITE)),
                    val=data.val,
                )
            )
        self.now = genesis.genesis_time_ms / 1000 + 1.0
        self.queue: list[tuple[int, Callable[[NodeShell], list[Request]]]] = []
        self.timers: list[tuple[float, int, int, TimeoutFired]] = []
        self._seq = itertools.count()

    # -- the loop ------------------------------------------------------------------------

    def run(self, max_steps: int = 200_000) -> None:
        """Deliver events until node 0 committed `heights` blocks."""
        for site in self.sites:
            self.queue.append((site.index, lambda shell: shell.start(self.now)))
        steps = 0
        while len(self.sites[0].committed) < self.heights:
            steps += 1
            if steps > max_steps:
                raise RuntimeError("the fixture chain made no progress")
            if self.queue:
                index, call = self.queue.pop(0)
            elif self.timers:
                when, _, index, fired = heapq.heappop(self.timers)
                self.now = max(self.now, when)
                call = partial(_fire, fired, self.now)
            else:
                raise RuntimeError("the fixture chain stalled: no message and no timer")
            site = self.sites[index]
            for request in call(site.shell):
                self._perform(site, request)
        for site in self.sites[1:]:
            common = min(len(site.committed), len(self.sites[0].committed))
            assert site.committed[:common] == self.sites[0].committed[:common]

    def _perform(self, site: _Site, request: Request) -> None:
        now = self.now
        if isinstance(request, Publish):
            for other in self.sites:
                if other.index != site.index:
                    self.queue.append((other.index, partial(_deliver, request.message, now)))
        elif isinstance(request, StartTimer):
            heapq.heappush(
                self.timers,
                (now + request.delay, next(self._seq), site.index, request.event),
            )
        elif isinstance(request, Train):
            done = self._train(site, request.action)
            self.queue.append((site.index, partial(_trained, done, now)))
        elif isinstance(request, Aggregate):
            receipts = tuple(sorted(request.action.receipts, key=lambda r: r.author))
            model = self._aggregate(request.action.base_model_hash, receipts)
            built = partial(
                _aggregated, request, receipts, Hash(hashlib.sha256(model).digest()), now
            )
            self.queue.append((site.index, built))
        elif isinstance(request, Evaluate):
            improved, report = self._evaluate(site, request.candidate, request.candidate_hash)
            self.queue.append((site.index, partial(_evaluated, request, improved, report, now)))
        elif isinstance(request, StoreCommit):
            bhash = block_hash(request.commit.block)
            site.committed.append(bhash)
            if site.index == 0:
                self._store_commit(request.commit, bhash)

    # -- the app -------------------------------------------------------------------------

    def _train(self, site: _Site, action: StartTraining) -> TrainingFinished:
        from learning import TrainConfig, train

        config = TrainConfig(
            epochs=1, batch_size=16, lr=0.1, seed=site.index * 1000 + action.height
        )
        update, n_samples, stats = train(
            self.task, self.blobs[action.base_model_hash], site.train, config
        )
        update_hash = hashlib.sha256(update).digest()
        self.blobs[update_hash] = update
        return TrainingFinished(
            height=action.height,
            base_model_hash=action.base_model_hash,
            blob_hash=Hash(update_hash),
            n_samples=n_samples,
            train_loss=float(stats.loss_last_epoch),
        )

    def _aggregate(self, base: bytes, receipts: tuple[UpdateReceipt, ...]) -> bytes:
        from learning import aggregate

        updates = [(r.blob_hash, self.blobs[r.blob_hash], r.n_samples) for r in receipts]
        model = aggregate(self.rule, self.blobs[base], updates)
        self.blobs[hashlib.sha256(model).digest()] = model
        return model

    def _evaluate(self, site: _Site, candidate: Candidate, chash: Hash) -> tuple[bool, EvalReport]:
        from learning import evaluate, improved

        model = self._aggregate(candidate.base_model_hash, candidate.receipts)
        matches = hashlib.sha256(model).digest() == candidate.model_hash
        before = evaluate(self.task, self.blobs[candidate.base_model_hash], site.val)
        after = evaluate(self.task, model, site.val)
        verdict = matches and improved(before, after, self.verdict)
        if candidate.height in self.not_improved:
            verdict = False
        metric = self.task.metric
        report = EvalReport(
            evaluator=ValidatorIndex(site.index),
            candidate_hash=chash,
            n_samples=len(site.val),
            loss_before=float(before["loss"]),
            loss_after=float(after["loss"]),
            metric_before=float(before.get(metric, before["loss"])),
            metric_after=float(after.get(metric, after["loss"])),
        )
        return verdict, report

    def _store_commit(self, action: Commit, bhash: bytes) -> None:
        block = action.block
        for ref in [block.header.model_hash, *(r.blob_hash for r in block.receipts)]:
            if ref in self.blobs and not self.store.blobs.has(ref):
                self.store.blobs.put(self.blobs[ref], expected_hash=ref)
        Chain(self.store).append(action)


def _fire(event: TimeoutFired, now: float, shell: NodeShell) -> list[Request]:
    return shell.fire(event, now)


def _deliver(message: Message, now: float, shell: NodeShell) -> list[Request]:
    return shell.deliver(message, now)


def _trained(done: TrainingFinished, now: float, shell: NodeShell) -> list[Request]:
    return shell.trained(done, seconds=0.0, now=now)


def _aggregated(
    request: Aggregate,
    receipts: tuple[UpdateReceipt, ...],
    model: Hash,
    now: float,
    shell: NodeShell,
) -> list[Request]:
    return shell.aggregated(request, accepted=receipts, rejected=(), model_hash=model, now=now)


def _evaluated(
    request: Evaluate, improved: bool, report: EvalReport, now: float, shell: NodeShell
) -> list[Request]:
    return shell.evaluated(request, improved=improved, report=report, seconds=0.0, now=now)


def _first(n: int, k: int) -> Any:
    import numpy as np

    return np.arange(min(n, k), dtype=np.int64)


def build_chain(
    tmp_path: Path, heights: int = 3, *, not_improved_heights: Iterable[int] = ()
) -> Path:
    """A node home under `tmp_path` holding a real `heights`-block chain; returns the home."""
    home = NodeHome(Path(tmp_path) / "home")
    home.root.mkdir(parents=True, exist_ok=True)
    builder = ChainBuilder(home, heights=heights, not_improved_heights=not_improved_heights)
    try:
        builder.run()
    finally:
        builder.store.close()
    return home.root


def chain_copy(
    tmp_path_factory: Any, dest: Path, heights: int = 3, *, not_improved_heights: Iterable[int] = ()
) -> Path:
    """A private copy (under `dest`) of a chain built once per pytest session; returns the home.

    `tmp_path_factory` is pytest's fixture; tests that tamper with the home get their own copy.
    """
    import shutil

    key = f"chain-{heights}-" + "-".join(str(h) for h in sorted(not_improved_heights))
    base = Path(tmp_path_factory.getbasetemp()) / key
    if not (base / "home").is_dir():
        build_chain(base, heights, not_improved_heights=not_improved_heights)
    target = Path(dest) / "home"
    shutil.copytree(base / "home", target)
    return target


__all__ = ["ChainBuilder", "Height", "build_chain", "chain_copy", "node_infos", "peer_id_for"]
