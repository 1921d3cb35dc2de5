"""The learning worker: the shell's Train / Aggregate / Evaluate requests, off the event loop.

Each request fetches the blobs it needs (local store first, else verified from peers, the
update's author first; each peer under its own deadline that grows with the blob's size, and a
busy peer retried with backoff: node/network/blob_exchange.py), runs the torch work in a worker thread (`trio.to_thread`) so that a
node whose trainer is slow still votes, stores what it produced, and hands the answer back to
the driver as a shell call. A failure is logged and contained: the core does not need an
answer to make progress (its timeouts move the height on: a new round, or a carry-over block).
Update blobs are handed to aggregation and evaluation as files (`learning.FileSource`), read a
chunk at a time, so a height's memory does not grow with the number of updates; a blob of at
most 256 KiB is read once into memory instead (`verified_source`).
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from consensus.events import TrainingFinished
from consensus.rejections import debits
from consensus.shell import Aggregate, Evaluate, NodeShell, Request, Train
from consensus.types import Genesis, Hash, UpdateReceipt
from learning.serialize import ByteSource, FileSource, MemorySource
from node.app import Evaluation, LearningApp
from node.blobs import INLINE_VERIFY_BYTES, BlobCorruptError, BlobStore, verify_blob
from node.chain import Chain
from node.network import BlobUnavailableError, NodeNetwork
from node.services.secagg_round import SecAggRound, Setting
from telemetry import labels
from telemetry.metrics import NodeMetrics

log = logging.getLogger("bcfl.learning")

MAX_EVALUATIONS_KEPT = 64
# Small updates `update_file` has fetched or read and verified, kept in memory: the prefetch
# (as a receipt arrives) fetches each, and the aggregation later in the height asks again;
# without this each was read back from its file and hashed again, n times a height (4% of a
# 16-node daemon's GIL-holding samples). Oldest out past either bound; each is at most
# INLINE_VERIFY_BYTES.
FRESH_UPDATES = 256
FRESH_UPDATE_BYTES = 16 * 1024 * 1024

ShellCall = Callable[[NodeShell, float], list[Request]]


class LearningWorker:
    """Runs learning work and blob fetches as tasks of its own nursery."""

    def __init__(
        self,
        *,
        app: LearningApp | None,
        chain: Chain,
        net: NodeNetwork,
        genesis: Genesis,
        metrics: NodeMetrics,
        clock: Callable[[], float],
        answer: Callable[[ShellCall], None],
    ) -> None:
        self.app = app
        self.chain = chain
        self.net = net
        self.genesis = genesis
        self.metrics = metrics
        self.clock = clock
        self.answer = answer
        self.evaluations: dict[Hash, dict[str, float]] = {}  # model hash -> metrics after
        # One training, aggregation or evaluation at a time: each holds the base model and the
        # model it builds in memory, so a daemon's peak is the largest job's, not their sum
        # (they share two cores anyway). Blob fetches run outside it, concurrently.
        self._compute = trio.Lock()
        # secure aggregation (node/services/secagg_round.py), set by the driver under a genesis
        # with privacy.secure_aggregation: updates leave the site masked, candidates are unmasked
        # sums, and evaluation recomputes them from the masked blobs and the transcript
        self.secagg: SecAggRound | None = None
        self._send, self._receive = trio.open_memory_channel[Callable[[], Awaitable[None]]](10_000)
        self._fresh: OrderedDict[bytes, MemorySource] = OrderedDict()
        self._fresh_bytes = 0

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Start each queued job as its own task until cancelled."""
        async with trio.open_nursery() as nursery:
            task_status.started()
            async for job in self._receive:
                nursery.start_soon(self._contained, job)

    # -- requests (called on the event loop, never block) -----------------------------------

    def train(self, request: Train) -> None:
        setting = self.secagg.setting() if self.secagg is not None else None  # at request time
        self._send.send_nowait(lambda: self._train(request, setting))

    def aggregate(self, request: Aggregate) -> None:
        self._send.send_nowait(lambda: self._aggregate(request))

    def evaluate(self, request: Evaluate) -> None:
        self._send.send_nowait(lambda: self._evaluate(request))

    def prefetch(self, blob_hash: Hash, author: int | None) -> None:
        """Fetch a blob into the local store now (an update as its receipt arrives)."""

        async def fetch() -> None:
            await self.update_file(blob_hash, author)

        self._send.send_nowait(fetch)

    def _keep_fresh(self, blob_hash: bytes, source: MemorySource) -> None:
        if blob_hash in self._fresh:  # two concurrent loads of one blob: counted once
            return
        self._fresh[blob_hash] = source
        self._fresh_bytes += source.size()
        while len(self._fresh) > FRESH_UPDATES or self._fresh_bytes > FRESH_UPDATE_BYTES:
            _, old = self._fresh.popitem(last=False)
            self._fresh_bytes -= old.size()

    async def _contained(self, job: Callable[[], Awaitable[None]]) -> None:
        try:
            await job()
        except Exception:
            log.exception("learning work failed")

    # -- blobs -----------------------------------------------------------------------------

    async def blob(self, blob_hash: bytes, author: int | None = None) -> bytes | None:
        """A blob from the local store, else fetched (verified) from peers; None if nobody
        has it. A local blob whose bytes no longer hash to its name is moved aside and fetched
        again. The network shares one transfer among concurrent fetches of a blob."""
        try:
            data = self.chain.blob(blob_hash, quarantine=True)
        except BlobCorruptError:  # damaged and could not be moved aside: fetch it again anyway
            data = None
        if data is not None:
            return data
        started = self.clock()
        try:
            data = await self.net.fetch_blob(blob_hash, from_peers=self._peers_for(author))
        except BlobUnavailableError:
            self.metrics.observe_blob_transfer("in", 0, self.clock() - started, ok=False)
            return None
        self.metrics.observe_blob_transfer("in", len(data), self.clock() - started)
        return data

    async def update_file(self, blob_hash: bytes, author: int | None) -> ByteSource | None:
        """An update blob of the local store (fetched if missing), verified, or None if nobody
        has it: a small one in memory, a large one as a file that is never read into memory
        here (`verified_source`). A blob its author pushed is used as it came, its hash checked
        on arrival, not read back from the file it was just written to. A small one stays in
        memory (`FRESH_UPDATES`), so the aggregation that asks for an update the prefetch
        fetched as its receipt arrived neither reads nor hashes it again."""
        key = bytes(blob_hash)
        fresh = self._fresh.get(key)
        if fresh is not None:
            self._fresh.move_to_end(key)
            return fresh
        source = await self._load_update(blob_hash, author)
        if isinstance(source, MemorySource) and isinstance(source.data, bytes):
            self._keep_fresh(key, source)
        return source

    async def _load_update(self, blob_hash: bytes, author: int | None) -> ByteSource | None:
        blobs = self.chain.store.blobs
        source = await verified_source(blobs, blob_hash)
        if source is not None:
            return source
        started = self.clock()
        try:
            pushed = await self.net.fetch_blob_to_store(
                blob_hash, from_peers=self._peers_for(author)
            )
        except BlobUnavailableError:
            self.metrics.observe_blob_transfer("in", 0, self.clock() - started, ok=False)
            return None
        size = len(pushed) if pushed is not None else blobs.size(blob_hash) or 0
        self.metrics.observe_blob_transfer("in", size, self.clock() - started)
        if pushed is not None:
            return MemorySource(pushed)
        return await verified_source(blobs, blob_hash, checked=True)

    def _peers_for(self, author: int | None) -> list[str]:
        """Connected peers, the blob's author first."""
        peers = self.net.peers()
        if author is not None and 0 <= author < len(self.genesis.validators):
            first = self.genesis.validators[author].peer_id
            peers = sorted(peers, key=lambda p: p != first)
        return peers

    async def _put_blob(self, data: bytes) -> Hash:
        """Store a blob durably off the event loop; return its hash."""
        started = self.clock()
        blob_hash = await trio.to_thread.run_sync(self.chain.put_blob, data)
        self.metrics.observe_store_write("blob", self.clock() - started)
        return blob_hash

    async def _updates(
        self, receipts: tuple[UpdateReceipt, ...]
    ) -> list[tuple[UpdateReceipt, ByteSource | None]]:
        """The update files of `receipts`, fetched concurrently (None where unavailable)."""
        blobs: dict[bytes, ByteSource | None] = {}

        async def one(receipt: UpdateReceipt) -> None:
            blobs[receipt.blob_hash] = await self.update_file(
                receipt.blob_hash, int(receipt.author)
            )

        async with trio.open_nursery() as nursery:
            for receipt in receipts:
                nursery.start_soon(one, receipt)
        return [(r, blobs[r.blob_hash]) for r in receipts]

    # -- the work --------------------------------------------------------------------------

    async def _train(self, request: Train, setting: Setting | None = None) -> None:
        action = request.action
        app = self.app
        async with self._compute:
            # the base model as a verified file of the store: training reads it a tensor at a
            # time, so the daemon does not hold a second copy of the model while it trains
            base = await self.update_file(action.base_model_hash, None)
            if app is None or base is None:
                log.warning("cannot train at height %d: base model unavailable", action.height)
                return
            outcome = await trio.to_thread.run_sync(
                app.train, base, int(action.height), action.dp_releases, action.dp_exhausted
            )
            del base
        self.metrics.observe_training(outcome.seconds)
        if app.privacy.enabled:
            self.metrics.set_dp_epsilon(outcome.epsilon_spent)
            self.metrics.set_dp_budget_exhausted(outcome.skipped == "dp-budget")
        if outcome.update is None:
            log.info("not contributing at height %d: %s", action.height, outcome.skipped)
            return
        update = outcome.update
        if self.secagg is not None and setting is not None:
            pairing = self.secagg.pairing(setting)
            update = await trio.to_thread.run_sync(self.secagg.mask, pairing, update)
        blob_hash = await self._put_blob(update)  # under secure aggregation: only the masked one
        self.net.push_blob(blob_hash, update)  # small ones, ahead of the receipt
        loss = outcome.train_loss if math.isfinite(outcome.train_loss) else 0.0
        done = TrainingFinished(
            action.height,
            action.base_model_hash,
            blob_hash,
            outcome.n_samples,
            loss,
            outcome.epsilon_spent,
        )
        seconds = outcome.seconds
        self.answer(lambda shell, now: shell.trained(done, seconds=seconds, now=now))

    async def _base(self, base_hash: Hash, what: str, height: int) -> bytes | None:
        """The base model a candidate is built or judged from, in memory (None: logged, cannot)."""
        base = await self.blob(base_hash) if self.app is not None else None
        if base is None:
            log.warning("cannot %s at height %d: base model unavailable", what, height)
        return base

    async def _base_file(self, base_hash: Hash, what: str, height: int) -> ByteSource | None:
        """The base model, verified; a large one as a file of the store, which plain aggregation
        and evaluation read a tensor or a chunk at a time, so the job does not hold a copy of
        the model beside the one it builds (docs/ARCHITECTURE.md "Memory", `verified_source`);
        None: logged, cannot."""
        base = await self.update_file(base_hash, None) if self.app is not None else None
        if base is None:
            log.warning("cannot %s at height %d: base model unavailable", what, height)
        return base

    async def _aggregate(self, request: Aggregate) -> None:
        action = request.action
        app = self.app
        if app is None:
            return
        if self.secagg is not None:
            await self._aggregate_masked(request)
            return
        updates = await self._updates(action.receipts)
        async with self._compute:
            base = await self._base_file(action.base_model_hash, "build a candidate", action.height)
            if base is None:
                return
            started = self.clock()
            outcome = await trio.to_thread.run_sync(app.build_candidate, base, updates)
            self.metrics.observe_aggregation(self.clock() - started)
            del base
        for _, reason in outcome.rejected:
            self.metrics.count_update("rejected", labels.update_reason(reason))
        for _ in outcome.accepted:
            self.metrics.count_update("accepted")
        model_hash = None if outcome.model is None else await self._put_blob(outcome.model)
        accepted, rejected = outcome.accepted, tuple(r for r, _ in outcome.rejected)
        reasons = tuple(reason for _, reason in outcome.rejected)
        self.answer(
            lambda shell, now: shell.aggregated(
                request,
                accepted=accepted,
                rejected=rejected,
                model_hash=model_hash,
                now=now,
                reasons=reasons,
            )
        )

    async def _evaluate(self, request: Evaluate) -> None:
        candidate = request.candidate
        app = self.app
        if app is None:
            return
        if self.secagg is not None:
            await self._evaluate_masked(request)
            return
        updates = await self._updates(candidate.receipts)
        # only screening verdicts are re-checked; "unavailable" debits nothing and proves nothing
        screened = [
            (receipt, why)
            for receipt, why in zip(candidate.rejected, candidate.rejection_reasons, strict=True)
            if debits(why)
        ]
        fetched = await self._updates(tuple(receipt for receipt, _ in screened))
        rejected = [(r, blob, why) for (r, blob), (_, why) in zip(fetched, screened, strict=True)]
        async with self._compute:
            base = await self._base_file(
                candidate.base_model_hash, "evaluate a candidate", candidate.height
            )
            if base is None:
                return
            started = self.clock()
            result = await trio.to_thread.run_sync(
                app.evaluate_candidate,
                base,
                request.candidate_hash,
                candidate.model_hash,
                updates,
                rejected,
            )
            seconds = self.clock() - started
            del base
        await self._finish_evaluation(request, result, seconds)

    async def _finish_evaluation(
        self, request: Evaluate, result: Evaluation, seconds: float
    ) -> None:
        candidate = request.candidate
        self.metrics.observe_evaluation(seconds)
        if result.refusal:
            log.warning("refusing candidate at height %d: %s", candidate.height, result.refusal)
            self.metrics.count_attestation("refused")
        if result.model is not None:
            await self._put_blob(result.model)
            if len(self.evaluations) >= MAX_EVALUATIONS_KEPT:
                self.evaluations.pop(next(iter(self.evaluations)))
            self.evaluations[candidate.model_hash] = result.metrics_after
        improved, report = result.improved, result.report
        self.answer(
            lambda shell, now: shell.evaluated(
                request, improved=improved, report=report, seconds=seconds, now=now
            )
        )

    # -- secure aggregation (node/services/secagg_round.py) ---------------------------------

    async def _aggregate_masked(self, request: Aggregate) -> None:
        """The proposer under secure aggregation: U3, reveals, transcript, the unmasked sum."""
        action, secagg = request.action, self.secagg
        assert secagg is not None
        base = await self._base(action.base_model_hash, "build a candidate", action.height)
        if base is None:
            return
        started = self.clock()
        built = await secagg.build(
            int(action.height), int(action.round), action.receipts, base, self._put_blob
        )
        self.metrics.observe_aggregation(self.clock() - started)
        for _ in built.accepted:
            self.metrics.count_update("accepted")
        model_hash = None if built.model is None else await self._put_blob(built.model)
        accepted, reason = built.accepted, built.reason
        self.answer(
            lambda shell, now: shell.aggregated(
                request,
                accepted=accepted,
                rejected=(),
                model_hash=model_hash,
                now=now,
                reason=reason,
            )
        )

    async def _evaluate_masked(self, request: Evaluate) -> None:
        """A validator under secure aggregation: recompute from public data, then judge."""
        candidate, app, secagg = request.candidate, self.app, self.secagg
        assert app is not None and secagg is not None
        base = await self._base(candidate.base_model_hash, "evaluate a candidate", candidate.height)
        if base is None:
            return
        started = self.clock()
        model, refusal = await secagg.recompute(
            int(candidate.height),
            candidate.model_hash,
            candidate.receipts,
            base,
            int(candidate.proposer),
        )
        if candidate.rejected:  # nobody can screen a masked update, so nobody may reject one
            model, refusal = None, "a secure aggregation candidate rejects updates"
        async with self._compute:
            result = await trio.to_thread.run_sync(
                app.judge, base, request.candidate_hash, model, refusal
            )
        await self._finish_evaluation(request, result, self.clock() - started)


async def verified_source(
    blobs: BlobStore, blob_hash: bytes, *, checked: bool = False
) -> ByteSource | None:
    """The stored blob as learning reads it, its bytes checked against its name; None when it
    is absent or damaged (moved aside). One of at most `INLINE_VERIFY_BYTES` is read whole into
    memory once: learning reads it whole anyway, and a file source opens the file again for
    every tensor. A larger one stays a file, read piece by piece, so a large model is never
    held twice (docs/ARCHITECTURE.md "Memory"), and is checked by `verify_blob`; `checked`:
    the fetch that stored it has just verified it, so it is not read again."""
    size = blobs.size(blob_hash)
    if size is None:
        return None
    if size <= INLINE_VERIFY_BYTES:
        try:
            return MemorySource(blobs.get(blob_hash))
        except (KeyError, BlobCorruptError):
            return None
    if checked or await verify_blob(blobs, blob_hash):
        return FileSource(blobs.path(blob_hash))
    return None


__all__ = ["LearningWorker", "ShellCall"]
