"""`bcfl chain verify`: replay a node's stored chain from its genesis and check everything.

Per height h, in order, stopping at the first problem (one message naming the height):

1. the stored block decodes canonically and its bytes hash to the stored block hash;
2. the commit certificate is for exactly this block and height, and its BLS aggregate verifies
   with strictly more than 2/3 of the voting power of the member set of that height (the
   governance changes of the replayed ledger applied, consensus/governance.py);
3. `consensus.validity.BlockChecker.block_problem` against the replayed parent: height, parent
   link, proposer of the round, block time, the parent's commit certificate, updates root,
   update receipts and their signatures, the improvement certificate (BLS, >2/3 power, for
   exactly this aggregation of exactly these receipts), evidence, and the header's ledger root
   (the same checks every validator ran before voting; not re-implemented here);
4. the ledger transition `consensus.ledger.apply_block` gives byte for byte the stored ledger
   snapshot;
5. every blob the block references that is still on disk hashes to its name, and for a model
   block `learning.aggregate(rule, M(h-1), included updates)` hashes to `header.model_hash`;
   under secure aggregation, the mean unmasked from the included masked blobs and the
   transcript the stored model names (node/secagg_wire.py `pairing_for`,
   learning/secagg/chained_model.py) does.

Choices where the issue is silent: a blob pruned by the node's retention policy
(`storage.keep_last_models`) makes that height's aggregation "skipped", not a failure; the
replayed model carries on from the stored model blob when there is one. A blob that is present
but altered is a failure. Verification only reads the home: nothing is quarantined or
rewritten, so it is safe to run next to a running node (SQLite WAL gives a consistent read).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consensus.codec import encode, genesis_hash
from consensus.crypto import BlsVerifier
from consensus.genesis import InvalidGenesis, validate_genesis
from consensus.governance import next_members
from consensus.ledger import apply_block, genesis_ledger
from consensus.types import Block, Genesis, Hash, ValidatorInfo
from consensus.validity import BlockChecker, Parent
from node.blobs import BlobCorruptError
from node.chain import Chain, ChainDataError
from node.genesis_files import GenesisFileError, load_genesis
from node.home import NodeHome


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """The first thing that is wrong with a chain; height 0 is the genesis."""

    height: int
    message: str

    def __str__(self) -> str:
        where = "the genesis" if self.height == 0 else f"height {self.height}"
        return f"{where}: {self.message}"


@dataclass
class VerifyResult:
    """What a replay found."""

    chain_id: str = ""
    genesis_hash: str = ""
    blocks: int = 0
    model_blocks: int = 0
    carry_over_blocks: int = 0
    replayed: list[int] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    problem: ChainProblem | None = None

    @property
    def ok(self) -> bool:
        """True when every stored height verified."""
        return self.problem is None

    def to_json(self) -> dict[str, Any]:
        """The `--json` object of `bcfl chain verify`."""
        return {
            "ok": self.ok,
            "chain_id": self.chain_id,
            "genesis_hash": self.genesis_hash,
            "blocks": self.blocks,
            "model_blocks": self.model_blocks,
            "carry_over_blocks": self.carry_over_blocks,
            "aggregation": {
                "replayed": self.replayed,
                "skipped": [{"height": h, "reason": r} for h, r in self.skipped],
            },
            "problem": None
            if self.problem is None
            else {"height": self.problem.height, "message": self.problem.message},
        }


class _Failed(Exception):
    def __init__(self, height: int, message: str) -> None:
        super().__init__(message)
        self.problem = ChainProblem(height, message)


def _blob(chain: Chain, blob_hash: bytes, height: int, what: str) -> bytes | None:
    """A blob's bytes, None when pruned; an altered blob is a failure at `height`."""
    try:
        return chain.blob(blob_hash)
    except BlobCorruptError:
        raise _Failed(
            height,
            f"{what} blob {blob_hash.hex()[:16]} was altered on disk (its bytes no longer "
            "hash to its name)",
        ) from None


class ChainVerifier:
    """Replays one home's chain; `run()` returns a VerifyResult."""

    def __init__(
        self,
        home: Path | NodeHome,
        *,
        replay_aggregation: bool = True,
        on_height: Callable[[int], None] | None = None,
    ) -> None:
        self.home = NodeHome.of(home)
        self.replay_aggregation = replay_aggregation
        self.on_height = on_height
        self.result = VerifyResult()
        self._rule: Any = None

    def run(self) -> VerifyResult:
        """Verify the whole stored chain (see the module docstring)."""
        from node.store import ChainStore

        try:
            genesis = self._genesis()
        except _Failed as failed:
            self.result.problem = failed.problem
            return self.result
        store = ChainStore.open(self.home)
        try:
            self._replay(genesis, Chain(store))
        except _Failed as failed:
            self.result.problem = failed.problem
        finally:
            store.close()
        return self.result

    def _genesis(self) -> Genesis:
        try:
            genesis = load_genesis(self.home)
        except GenesisFileError as exc:
            raise _Failed(0, str(exc)) from None
        self.verifier = BlsVerifier()
        try:
            self.valset = validate_genesis(genesis, self.verifier)
        except InvalidGenesis as exc:
            raise _Failed(0, f"the genesis is invalid: {exc}") from None
        self.result.chain_id = genesis.chain_id
        self.result.genesis_hash = genesis_hash(genesis).hex()
        return genesis

    def _replay(self, genesis: Genesis, chain: Chain) -> None:
        accountant = None
        if genesis.privacy.dp_enabled:  # receipts' epsilon increments are part of valid(v)
            from learning import PolicyAccountant

            accountant = PolicyAccountant(genesis.privacy.noise_multiplier, genesis.privacy.delta)
        checker = BlockChecker(genesis, self.valset, self.verifier, accountant)
        ledger = genesis_ledger(genesis)
        parent = Parent(0, genesis_hash(genesis), genesis.genesis_time_ms, ledger)
        model = _blob(chain, genesis.initial_model_hash, 0, "genesis model")
        try:
            for block, cert in chain.committed_range():
                height = int(block.height)
                # the set that committed h: the parent's with the changes due at h applied
                members = next_members(parent.ledger) or genesis.validators
                problem = checker.commit_certificate_problem(cert, checker.set_for(members))
                if problem:
                    raise _Failed(height, problem)
                problem = checker.block_problem(block, parent)
                if problem:
                    raise _Failed(height, f"the block is invalid: {problem}")
                ledger = apply_block(parent.ledger, block, genesis.safeguards.evidence_consequence)
                stored_ledger = chain.ledger(height)
                if stored_ledger is None:
                    raise _Failed(height, "the ledger snapshot is missing")
                # decoding is canonical, so this compares the stored snapshot byte for byte
                if encode(stored_ledger) != encode(ledger):
                    raise _Failed(
                        height,
                        "the stored ledger snapshot differs from the replayed ledger transition",
                    )
                model = self._model(genesis, chain, block, model, parent.ledger.model_hash, members)
                parent = Parent(height, cert.block_hash, block.header.time_ms, ledger)
                self.result.blocks = height
                if block.is_carry_over:
                    self.result.carry_over_blocks += 1
                else:
                    self.result.model_blocks += 1
                if self.on_height is not None:
                    self.on_height(height)
        except ChainDataError as exc:
            raise _Failed(exc.height, exc.reason) from None

    def _model(
        self,
        genesis: Genesis,
        chain: Chain,
        block: Block,
        model: bytes | None,
        base: Hash,
        members: tuple[ValidatorInfo, ...] = (),
    ) -> bytes | None:
        """Check the block's blobs and replay its aggregation; return M(h) if known."""
        height = int(block.header.height)
        for ref in chain.blob_refs(height):
            _blob(chain, ref, height, "referenced")
        if block.is_carry_over:
            return model
        target = block.header.model_hash
        stored_model = _blob(chain, target, height, "model")
        if not self.replay_aggregation:
            self.result.skipped.append((height, "aggregation replay turned off"))
            return stored_model
        if model is None:
            self.result.skipped.append((height, f"parent model {base.hex()[:16]} was pruned"))
            return stored_model
        updates: list[tuple[bytes, bytes, int]] = []
        for receipt in block.receipts:
            data = _blob(chain, receipt.blob_hash, height, "update")
            if data is None:
                self.result.skipped.append(
                    (height, f"update blob {receipt.blob_hash.hex()[:16]} was pruned")
                )
                return stored_model
            updates.append((receipt.blob_hash, data, receipt.n_samples))
        if genesis.privacy.secure_aggregation:
            masked = {int(r.author): u[1] for r, u in zip(block.receipts, updates, strict=True)}
            if stored_model is None:
                self.result.skipped.append(
                    (height, "the model blob (naming its transcript) was pruned")
                )
                return None
            unmasked = self._unmask(genesis, chain, block, members, model, stored_model, masked)
            if unmasked is None:
                self.result.skipped.append((height, "the transcript blob was pruned"))
                return stored_model
            candidate = unmasked
        else:
            candidate = self._aggregate(genesis, height, model, updates)
        if hashlib.sha256(candidate).digest() != target:
            raise _Failed(
                height,
                "aggregating the included updates from the stored blobs does not give the "
                "committed model hash",
            )
        self.result.replayed.append(height)
        return candidate

    def _unmask(
        self,
        genesis: Genesis,
        chain: Chain,
        block: Block,
        members: tuple[ValidatorInfo, ...],
        base: bytes,
        stored_model: bytes,
        masked: dict[int, bytes],
    ) -> bytes | None:
        """Secure aggregation (None: the transcript is not on disk): the model from the masked blobs and the transcript the stored
        model names (docs/ARCHITECTURE.md "Secure aggregation")."""
        from learning.secagg.chained import decode_transcript
        from learning.secagg.chained_model import candidate_model, require_transcript_hash
        from learning.secagg.params import SecAggError
        from node.secagg_wire import pairing_for

        height = int(block.header.height)
        try:
            transcript_hash = require_transcript_hash(stored_model)
            raw = _blob(chain, Hash(transcript_hash), height, "transcript")
            if raw is None:
                return None
            transcript = decode_transcript(raw)
            if dict(transcript.included) != {int(r.author): r.blob_hash for r in block.receipts}:
                raise _Failed(height, "the transcript's included updates are not the block's")
            pairing = pairing_for(genesis, height, block.header.parent_hash, members)
            return candidate_model(pairing, transcript, transcript_hash, masked, base)
        except SecAggError as exc:
            raise _Failed(height, f"the masked updates cannot be unmasked: {exc}") from None

    def _aggregate(
        self, genesis: Genesis, height: int, model: bytes, updates: list[tuple[bytes, bytes, int]]
    ) -> bytes:
        from learning import AggregationError, aggregate
        from node.genesis_files import genesis_rule

        if self._rule is None:
            try:
                self._rule = genesis_rule(genesis)
            except ValueError as exc:
                raise _Failed(0, f"the genesis aggregation rule is unusable: {exc}") from None
        try:
            return aggregate(self._rule, model, updates)
        except AggregationError as exc:
            raise _Failed(height, f"the included updates cannot be aggregated: {exc}") from None


def verify_chain(
    home: Path | NodeHome,
    *,
    replay_aggregation: bool = True,
    on_height: Callable[[int], None] | None = None,
) -> VerifyResult:
    """Replay and verify the chain stored in `home` (see the module docstring)."""
    return ChainVerifier(home, replay_aggregation=replay_aggregation, on_height=on_height).run()
