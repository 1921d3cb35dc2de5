"""Secure aggregation in the daemon: masking at the trainer, drafts and reveals, the transcript.

docs/ARCHITECTURE.md "Secure aggregation" has the mapping; learning/secagg/chained.py the pure
protocol; node/secagg_wire.py the two gossip messages. This service holds one node's side:
- `mask`: a trainer's update becomes its masked blob (the update itself is never stored);
- `on_gossip`: drafts and reveals the edge accepted; a trainer named in a draft answers it
  with one signed reveal per height (`RevealLog`, durable before the reveal leaves), and a
  second, different draft at that height gets no answer;
- `build`: the proposer names U3 (the receipts whose masked blobs it holds; or the U3 of a
  draft already answered at this height), gossips the draft, waits for the reveals, writes the
  transcript blob and the candidate model, which names the transcript;
- `recompute`: what a validator runs to judge a candidate, from the masked blobs and the
  transcript only (node/verify.py runs the same for `bcfl chain verify`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from consensus.crypto import Signer, Verifier
from consensus.types import Genesis, Hash, UpdateReceipt
from consensus.validators import ValidatorSet
from learning.secagg import chained
from learning.secagg.chained_model import candidate_model, masked_blob, require_transcript_hash
from learning.secagg.params import SecAggError
from node import secagg_wire as wire
from node.errors import UserError
from node.fsutil import atomic_write
from node.network import Topic
from node.secagg_wire import pairing_for

log = logging.getLogger("bcfl.secagg")

MAX_HEIGHTS_KEPT = 4
MAX_REVEALS_PER_DRAFT = 1024
MAX_DRAFTS_PER_HEIGHT = 16
MAX_SIGNED_SLOTS = 4096


class RevealLog:
    """The draft this trainer answered last and at which height, durable before the reveal is
    published: after a restart it still refuses a second U3 at that height."""

    def __init__(self, path: Path, chain_id: str) -> None:
        self.path, self.chain_id = path, chain_id
        self.height, self.draft_id = 0, b""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            raw = None
        if not isinstance(raw, dict) or not isinstance(raw.get("height"), int):
            raise UserError(f"{path} is not a reveal log; restore it or remove it")
        if raw.get("chain_id") == chain_id:
            self.height, self.draft_id = raw["height"], bytes.fromhex(str(raw.get("draft", "")))

    def allows(self, height: int, draft_id: bytes) -> bool:
        """Whether answering this draft keeps one U3 per height (heights only move up)."""
        if height < self.height:
            return False
        return height > self.height or draft_id == self.draft_id

    def record(self, height: int, draft_id: bytes) -> None:
        body = {"chain_id": self.chain_id, "height": height, "draft": draft_id.hex()}
        atomic_write(self.path, json.dumps(body).encode(), mode=0o600)
        self.height, self.draft_id = height, draft_id


@dataclass(frozen=True, slots=True)
class Setting:
    """What the service reads from the core: the current height, its set and parent."""

    height: int
    validator_set: ValidatorSet
    parent_hash: bytes


@dataclass(frozen=True, slots=True)
class SecAggKeys:
    """What `bcfl run` hands the driver under a secure-aggregation genesis."""

    agreement_key: Any  # X25519PrivateKey, or None for a node that only validates
    signer: Signer | None
    verifier: Verifier
    reveal_log: RevealLog | None
    wait_s: float
    silent: bool = False
    """Test networks only (`byzantine.behaviour = "secagg-silent"`): publish the masked update,
    then never reveal (the dropout the protocol recovers from)."""


@dataclass(frozen=True, slots=True)
class Built:
    """The proposer's answer: the included receipts and the model, or why not."""

    accepted: tuple[UpdateReceipt, ...]
    model: bytes | None
    reason: str = ""


FetchBlob = Callable[[bytes, int | None], Awaitable[bytes | None]]


class SecAggRound:
    """One node's side of secure aggregation (see the module docstring)."""

    def __init__(
        self,
        *,
        genesis: Genesis,
        me: int | None | Callable[[], int | None],
        agreement_key: Any,
        signer: Signer | None,
        verifier: Verifier,
        reveal_log: RevealLog | None,
        setting: Callable[[], Setting],
        fetch: FetchBlob,
        publish: Callable[[Topic, bytes], Awaitable[bool]],
        cap: int,
        wait_s: float,
        count: Callable[[str], None] = lambda reason: None,
        silent: bool = False,
    ) -> None:
        self.genesis, self._key = genesis, agreement_key
        # a joiner's index appears when governance adds it: read it from the core each time
        self._me: Callable[[], int | None] = me if callable(me) else (lambda: me)
        self._signer, self._verifier, self._log = signer, verifier, reveal_log
        self.setting, self._fetch, self._publish = setting, fetch, publish
        self.cap, self.wait_s, self.count = cap, wait_s, count
        self.silent = silent
        self.drafts: dict[int, dict[bytes, wire.Draft]] = {}
        self.reveals: dict[tuple[int, bytes], dict[int, chained.RevealBody]] = {}
        self._signed: dict[tuple[int, int, int], bytes] = {}  # (height, round, proposer) -> U3
        self._changed = trio.Event()

    @property
    def me(self) -> int | None:
        """This member's index (None: an observer, or a site not added yet)."""
        return self._me()

    # -- the gossip edge and delivery --------------------------------------------------------

    def validate(self, data: bytes, origin: str) -> str | None:
        """The topic validator (installed on the network for Topic.SECAGG)."""
        s = self.setting()
        return wire.check(
            data,
            cap=self.cap,
            chain_id=self.genesis.chain_id,
            current_height=s.height,
            validator_set=s.validator_set,
            verifier=self._verifier,
        )[1]

    async def on_gossip(self, data: bytes, origin: str) -> None:
        """An accepted draft or reveal (decoded again: the edge let it through)."""
        try:
            message = wire.decode(data, self.cap)
        except wire.WireError as exc:
            self.count(exc.reason)
            return
        await self.deliver(message)

    async def deliver(self, message: wire.SecAggMessage) -> None:
        if isinstance(message, wire.Draft):
            await self._on_draft(message)
        else:
            self._on_reveal(message)

    def _keep(self, height: int) -> None:
        for h in [h for h in self.drafts if h < height - MAX_HEIGHTS_KEPT]:
            del self.drafts[h]
        for key in [k for k in self.reveals if k[0] < height - MAX_HEIGHTS_KEPT]:
            del self.reveals[key]
        for slot in [k for k in self._signed if k[0] < height - MAX_HEIGHTS_KEPT]:
            del self._signed[slot]

    def _on_reveal(self, reveal: wire.Reveal) -> None:
        key = (reveal.height, reveal.draft_id)
        if key not in self.reveals:
            if sum(1 for h, _ in self.reveals if h == reveal.height) >= 2 * MAX_DRAFTS_PER_HEIGHT:
                return  # reveals for made-up drafts: bounded memory
            self._keep(reveal.height)
        pool = self.reveals.setdefault(key, {})
        if reveal.revealer in pool or len(pool) >= MAX_REVEALS_PER_DRAFT:
            return
        pool[reveal.revealer] = reveal.body
        self._changed.set()
        self._changed = trio.Event()

    async def _on_draft(self, draft: wire.Draft) -> None:
        known = self.drafts.setdefault(draft.height, {})
        if len(known) >= MAX_DRAFTS_PER_HEIGHT and draft.draft_id not in known:
            return
        slot = (draft.height, draft.round, draft.proposer)
        if slot not in self._signed and len(self._signed) >= MAX_SIGNED_SLOTS:
            return  # a proposer signing drafts for round after round: bounded memory
        first = self._signed.setdefault(slot, draft.draft_id)
        if first != draft.draft_id:  # two U3 for one round: equivocation (docs/THREAT-MODEL.md)
            log.warning("proposer %d signed two drafts at height %d", draft.proposer, draft.height)
            self.count("secagg-equivocation")
        known.setdefault(draft.draft_id, draft)
        self._keep(draft.height)
        await self._answer(draft)

    # -- the trainer's side ---------------------------------------------------------------

    def pairing(self, s: Setting) -> chained.Pairing:
        return pairing_for(self.genesis, s.height, s.parent_hash, s.validator_set.members)

    def mask(self, pairing: chained.Pairing, update: bytes) -> bytes:
        """This trainer's masked blob of `update` (in a worker thread: PRG work)."""
        if self.me is None or self._key is None:
            raise SecAggError("only a trainer with an agreement key masks updates")
        # no second clip: with DP on, the update is already clipped and noised
        # (learning.privatize_update); rescaling it would shrink the noise share the sum counts
        # on (docs/THREAT-MODEL.md "Distributed DP")
        return masked_blob(pairing, self.me, self._key, update, None)

    async def _answer(self, draft: wire.Draft) -> None:
        """Reveal for `draft` once: only when included, at the current height, first U3."""
        me, s = self.me, self.setting()
        log_ = self._log
        if me is None or me not in draft.included or self._signer is None or log_ is None:
            return
        if self.silent:
            log.info("secagg-silent: withholding the reveal at height %d", draft.height)
            return
        if draft.height != s.height or not log_.allows(draft.height, draft.draft_id):
            if draft.height == s.height:
                log.warning("not revealing for a second U3 at height %d", draft.height)
                self.count("secagg-second-draft")
            return
        pairing = self.pairing(s)
        graph = pairing.graph()
        if me not in graph:
            return
        held = (graph[me] | {me}) & set(draft.included)
        masked: dict[int, chained.MaskedUpdate] = {}
        for u in sorted(held):
            blob = await self._fetch(draft.included[u], u)
            if blob is None:
                log.warning(
                    "cannot reveal at height %d: masked update of %d unavailable", draft.height, u
                )
                return
            try:
                masked[u] = chained.decode_masked(blob)
            except SecAggError as exc:
                log.warning("cannot reveal at height %d: %s", draft.height, exc)
                return
        try:
            body = await trio.to_thread.run_sync(
                chained.reveal_for, pairing, me, self._key, draft.included, masked
            )
        except SecAggError as exc:
            log.warning("not revealing at height %d: %s", draft.height, exc)
            self.count(exc.reason)
            return
        if self.setting().height != draft.height or not log_.allows(draft.height, draft.draft_id):
            return  # the height moved on, or another draft was answered meanwhile
        log_.height, log_.draft_id = draft.height, draft.draft_id  # taken before any await
        await trio.to_thread.run_sync(log_.record, draft.height, draft.draft_id)
        reveal = wire.signed(
            wire.Reveal(self.genesis.chain_id, draft.height, draft.draft_id, body), self._signer
        )
        assert isinstance(reveal, wire.Reveal)
        self._on_reveal(reveal)
        await self._publish(Topic.SECAGG, wire.encode(reveal))

    # -- the proposer's side -------------------------------------------------------------

    def _reusable(self, height: int, available: Mapping[int, bytes]) -> wire.Draft | None:
        """A draft of this height already answered whose U3 we can still build (one U3 per
        height: the survivors would refuse another)."""
        for draft in self.drafts.get(height, {}).values():
            covered = all(available.get(u) == h for u, h in draft.included.items())
            if covered and self.reveals.get((height, draft.draft_id)):
                return draft
        return None

    async def build(
        self,
        height: int,
        round_: int,
        receipts: Sequence[UpdateReceipt],
        base: bytes,
        put_blob: Callable[[bytes], Awaitable[Hash]],
    ) -> Built:
        """Name U3, gather the reveals, write the transcript; the candidate model or a reason."""
        s = self.setting()
        pairing = self.pairing(s)
        available: dict[int, bytes] = {}
        for r in receipts:
            blob = await self._fetch(r.blob_hash, int(r.author))
            if blob is None or int(r.author) not in pairing.keys:
                continue
            try:
                m = chained.decode_masked(blob)
            except SecAggError:
                continue
            if m.author == int(r.author) and m.session == pairing.session:
                available[int(r.author)] = bytes(r.blob_hash)
        if not available or self._signer is None or self.me is None:
            return Built((), None, "secagg-threshold")
        draft = self._reusable(height, available)
        if draft is None:
            unsigned = wire.Draft(self.genesis.chain_id, height, round_, self.me, available)
            signed = wire.signed(unsigned, self._signer)
            assert isinstance(signed, wire.Draft)
            draft = signed
            await self._publish(Topic.SECAGG, wire.encode(draft))
            await self._on_draft(draft)
        transcript = await self._gather(pairing, draft)
        if transcript is None:
            return Built((), None, "secagg-threshold")
        encoded = chained.encode_transcript(transcript)
        transcript_hash = await put_blob(encoded)
        blobs = {u: await self._fetch(h, u) for u, h in draft.included.items()}
        present = {u: b for u, b in blobs.items() if b is not None}
        if len(present) != len(blobs):
            return Built((), None, "secagg-threshold")
        model = await trio.to_thread.run_sync(
            candidate_model, pairing, transcript, transcript_hash, present, base
        )
        by_author = {int(r.author): r for r in receipts}
        accepted = tuple(by_author[u] for u in sorted(draft.included))
        return Built(accepted, model)

    async def _gather(
        self, pairing: chained.Pairing, draft: wire.Draft
    ) -> chained.Transcript | None:
        """Wait (at most `wait_s`) until the reveals of `draft` recover the sum."""
        key = (draft.height, draft.draft_id)
        with trio.move_on_after(self.wait_s):
            while True:
                changed = self._changed
                usable = []
                for body in self.reveals.get(key, {}).values():
                    try:
                        chained.check_reveal(pairing, draft.included, body)
                    except SecAggError as exc:
                        self.count(exc.reason)  # a malformed reveal is left out, not fatal
                        continue
                    usable.append(body)
                try:
                    return chained.transcript_from(pairing, draft.included, usable)
                except SecAggError as exc:
                    if exc.reason != "secagg-threshold":
                        log.warning(
                            "the reveals at height %d do not combine: %s", draft.height, exc
                        )
                        return None
                await changed.wait()
        log.warning("too few reveals at height %d to unmask the sum", draft.height)
        return None

    # -- the validator's side ------------------------------------------------------------

    async def recompute(
        self,
        height: int,
        model_hash: bytes,
        receipts: Sequence[UpdateReceipt],
        base: bytes,
        proposer: int,
    ) -> tuple[bytes | None, str]:
        """The candidate model recomputed from public data, or (None, why it cannot be)."""
        s = self.setting()
        if s.height != height:
            return None, "the candidate is not of the current height"
        pairing = self.pairing(s)
        model = await self._fetch(model_hash, proposer)
        if model is None:
            return None, "candidate model unavailable"
        return await recompute_model(
            pairing,
            model,
            {int(r.author): bytes(r.blob_hash) for r in receipts},
            base,
            lambda h, u: self._fetch(h, u),
        )


async def recompute_model(
    pairing: chained.Pairing,
    model: bytes,
    included: Mapping[int, bytes],
    base: bytes,
    fetch: FetchBlob,
) -> tuple[bytes | None, str]:
    """Recompute a secure-aggregation model blob from its transcript and the masked blobs;
    (model bytes, "") when they reproduce `model`, else (None, the reason)."""
    try:
        transcript_hash = require_transcript_hash(model)
    except SecAggError as exc:
        return None, str(exc)
    raw = await fetch(transcript_hash, None)
    if raw is None:
        return None, "secure aggregation transcript unavailable"
    try:
        transcript = chained.decode_transcript(raw)
    except SecAggError as exc:
        return None, str(exc)
    if dict(transcript.included) != dict(included):
        return None, "the transcript's U3 is not the candidate's updates"
    blobs: dict[int, bytes] = {}
    for u, h in included.items():
        blob = await fetch(h, u)
        if blob is None:
            return None, "update blob unavailable"
        blobs[u] = blob
    try:
        again = await trio.to_thread.run_sync(
            candidate_model, pairing, transcript, transcript_hash, blobs, base
        )
    except SecAggError as exc:
        return None, str(exc)
    if again != model:
        return None, "aggregation mismatch"
    return again, ""
