"""Genesis files and block JSON: what `bcfl genesis`, the daemon and the chain commands share.

Storage conventions (fixed; the driver writes exactly this):

- `HOME/genesis.cbor` is `consensus.codec.encode(genesis)`. The genesis model blob (safetensors
  bytes of `learning.initial_weights(task, seed)`) lives in the home's blob store under its
  SHA-256, which is `genesis.initial_model_hash`.
- `genesis.task` is `TaskSpec.to_dict()`, `genesis.aggregation_rule` the rule's name and
  `genesis.aggregation_params` the `AggregationRule`'s other fields, `genesis.verdict_rule` the
  consensus copy of learning's `VerdictRule` (converted field by field).

Choices where the issue is silent (written down as STYLE.md asks):

- `bcfl genesis --out DIR` writes `DIR/genesis.cbor` and `DIR/genesis.model.safetensors`;
  `--out FILE.cbor` writes FILE and `FILE-stem.model.safetensors` next to it. A site copies
  both files into its home; `load_genesis_model` adopts the model file into the blob store (hash
  checked) the first time it is needed, so nobody has to know the blob store's layout.
  `--install HOME` writes straight into homes.
- Member order in the genesis is the order of the node_info files on the command line; names
  and peer ids must be unique. Every member gets voting power 1 when it is a validator.
- `genesis_time_ms` is the wall clock when the genesis was made: block 1 must be later.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consensus.codec import InvalidMessage, block_hash, decode_as, encode, genesis_hash
from consensus.crypto import BlsVerifier
from consensus.genesis import InvalidGenesis, validate_genesis
from consensus.types import (
    PUBLIC_KEY_SIZE,
    ROLE_TRAINER,
    ROLE_VALIDATOR,
    ROLES,
    SIGNATURE_SIZE,
    Block,
    CommitCertificate,
    Genesis,
    Hash,
    Ledger,
    PublicKey,
    Signature,
    Timeouts,
    UpdateReceipt,
    ValidatorInfo,
)
from consensus.types import VerdictRule as ConsensusVerdictRule
from node.cli import UserError
from node.fsutil import atomic_write
from node.keys import NodeHome

if TYPE_CHECKING:
    from learning import AggregationRule, TaskSpec, VerdictRule

MAX_GENESIS_BYTES = 1024 * 1024
MAX_NODE_INFO_BYTES = 64 * 1024
MODEL_FILE_SUFFIX = ".model.safetensors"
_PEER_ID = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{20,100}$")  # base58


class GenesisFileError(UserError):
    """A genesis or node_info file is missing, corrupt or inconsistent (one sentence)."""


def _home(home: Path | NodeHome) -> NodeHome:
    return home if isinstance(home, NodeHome) else NodeHome(Path(home))


# ------------------------------------------------------------------------------------------
# node_info.json (written by `bcfl init`)
# ------------------------------------------------------------------------------------------


def read_node_info(path: Path | str) -> dict[str, Any]:
    """Read and check one site's `node_info.json`; raise GenesisFileError naming the problem.

    Returns {name, peer_id, roles (sorted list), bls_public_key (bytes), bls_proof_of_possession
    (bytes), multiaddr (str or None)}. The proof of possession itself is checked by
    `build_genesis` (it needs the BLS library).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise GenesisFileError(f"cannot read node info {path}: {exc.strerror}") from None
    if len(raw) > MAX_NODE_INFO_BYTES:
        raise GenesisFileError(f"node info {path} is larger than {MAX_NODE_INFO_BYTES} bytes")
    try:
        info = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise GenesisFileError(
            f"node info {path} is not JSON; use the node_info.json that `bcfl init` wrote"
        ) from None
    if not isinstance(info, dict):
        raise GenesisFileError(f"node info {path} must be a JSON object")

    def text(key: str) -> str:
        value = info.get(key)
        if not isinstance(value, str) or not value.strip():
            raise GenesisFileError(f"node info {path} lacks a non-empty string {key!r}")
        return value.strip()

    def hex_bytes(key: str, size: int) -> bytes:
        value = text(key)
        try:
            data = bytes.fromhex(value)
        except ValueError:
            raise GenesisFileError(f"node info {path}: {key!r} is not hexadecimal") from None
        if len(data) != size:
            raise GenesisFileError(
                f"node info {path}: {key!r} is {len(data)} bytes but must be {size}"
            )
        return data

    name, peer_id = text("name"), text("peer_id")
    if not _PEER_ID.match(peer_id):
        raise GenesisFileError(f"node info {path}: {peer_id!r} is not a libp2p peer id")
    roles = info.get("roles", [ROLE_VALIDATOR, ROLE_TRAINER])
    if (
        not isinstance(roles, list)
        or not roles
        or not all(isinstance(r, str) and r in ROLES for r in roles)
    ):
        raise GenesisFileError(
            f"node info {path}: 'roles' must be a non-empty list of {', '.join(sorted(ROLES))}"
        )
    multiaddr = info.get("multiaddr")
    return {
        "name": name,
        "peer_id": peer_id,
        "roles": sorted(set(roles)),
        "bls_public_key": hex_bytes("bls_public_key", PUBLIC_KEY_SIZE),
        "bls_proof_of_possession": hex_bytes("bls_proof_of_possession", SIGNATURE_SIZE),
        "multiaddr": multiaddr if isinstance(multiaddr, str) else None,
    }


# ------------------------------------------------------------------------------------------
# Building, writing and loading a genesis
# ------------------------------------------------------------------------------------------


def build_genesis(
    node_infos: Sequence[Mapping[str, Any]],
    *,
    chain_id: str,
    task: TaskSpec,
    init_seed: int = 0,
    rule: AggregationRule | str = "trimmed-mean",
    verdict: VerdictRule | None = None,
    timeouts: Timeouts | None = None,
    expected_trainers: int | None = None,
    genesis_time_ms: int | None = None,
) -> tuple[Genesis, bytes]:
    """The genesis of the members `node_infos` (from `read_node_info`) and its model blob.

    Every proof of possession is checked (`validate_genesis`); a bad one raises
    GenesisFileError naming the member.
    """
    from learning import AggregationRule, initial_weights
    from learning import VerdictRule as LearningVerdictRule

    if not chain_id or len(chain_id) > 64 or not chain_id.isprintable():
        raise GenesisFileError("the chain id must be 1 to 64 printable characters")
    if not node_infos:
        raise GenesisFileError("a genesis needs at least one node_info.json")
    for key in ("name", "peer_id"):
        values = [info[key] for info in node_infos]
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            raise GenesisFileError(f"two node infos share the {key} {duplicates[0]!r}")
    rule = AggregationRule(name=rule) if isinstance(rule, str) else rule
    verdict = verdict or LearningVerdictRule()
    members = tuple(
        ValidatorInfo(
            name=str(info["name"]),
            public_key=PublicKey(bytes(info["bls_public_key"])),
            proof_of_possession=Signature(bytes(info["bls_proof_of_possession"])),
            peer_id=str(info["peer_id"]),
            power=1 if ROLE_VALIDATOR in info["roles"] else 0,
            roles=tuple(sorted(set(info["roles"]))),
        )
        for info in node_infos
    )
    if not any(m.power for m in members):
        raise GenesisFileError("a genesis needs at least one member with the validator role")
    model_bytes = initial_weights(task, init_seed)
    params = rule.to_dict()
    del params["name"]
    genesis = Genesis(
        chain_id=chain_id,
        validators=members,
        task=task.to_dict(),
        aggregation_rule=rule.name,
        aggregation_params=params,
        verdict_rule=ConsensusVerdictRule(
            metric=verdict.metric, tolerance=float(verdict.tolerance)
        ),
        timeouts=timeouts or Timeouts(),
        initial_model_hash=Hash(hashlib.sha256(model_bytes).digest()),
        expected_trainers=(
            sum(1 for m in members if ROLE_TRAINER in m.roles)
            if expected_trainers is None
            else expected_trainers
        ),
        genesis_time_ms=int(time.time() * 1000) if genesis_time_ms is None else genesis_time_ms,
    )
    check_genesis(genesis)
    return genesis, model_bytes


def check_genesis(genesis: Genesis) -> None:
    """Run `validate_genesis` with real BLS; raise GenesisFileError with its sentence."""
    try:
        validate_genesis(genesis, BlsVerifier())
    except InvalidGenesis as exc:
        raise GenesisFileError(f"the genesis is invalid: {exc}") from None


def model_file_for(genesis_file: Path) -> Path:
    """The model file that travels next to a genesis file (`X.cbor` -> `X.model.safetensors`)."""
    return genesis_file.with_name(genesis_file.stem + MODEL_FILE_SUFFIX)


def write_genesis_file(path: Path, genesis: Genesis, model_bytes: bytes) -> tuple[Path, Path]:
    """Write a genesis file and its model file next to it (for mailing to the sites)."""
    _check_model(genesis, model_bytes)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, encode(genesis))
    model_path = model_file_for(path)
    atomic_write(model_path, model_bytes)
    return path, model_path


def write_genesis(home: Path | NodeHome, genesis: Genesis, model_bytes: bytes) -> None:
    """Install a genesis into a node home: `genesis.cbor` plus the model in the blob store.

    Refuses to replace a different genesis in a home whose chain already has blocks.
    """
    from node.store import ChainStore

    home = _home(home)
    _check_model(genesis, model_bytes)
    data = encode(genesis)
    if home.genesis_path.exists() and home.genesis_path.read_bytes() != data:
        store = ChainStore.open(home)
        try:
            if store.tip_height() is not None:
                raise GenesisFileError(
                    f"{home.root} already follows another chain; use a fresh home for this genesis"
                )
        finally:
            store.close()
    home.root.mkdir(parents=True, exist_ok=True)
    store = ChainStore.open(home)
    try:
        store.blobs.put(model_bytes, expected_hash=genesis.initial_model_hash)
    finally:
        store.close()
    atomic_write(home.genesis_path, data)


def read_genesis_file(path: Path) -> Genesis:
    """Decode a genesis file; raise GenesisFileError (one sentence) if missing or corrupt."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise GenesisFileError(
            f"no genesis at {path}; copy the consortium's genesis.cbor there or run `bcfl genesis`"
        ) from None
    except OSError as exc:
        raise GenesisFileError(f"cannot read the genesis {path}: {exc.strerror}") from None
    try:
        return decode_as(data, Genesis, max_size=MAX_GENESIS_BYTES)
    except InvalidMessage as exc:
        raise GenesisFileError(f"{path} is not a valid genesis ({exc.reason})") from None


def load_genesis(home: Path | NodeHome) -> Genesis:
    """The genesis of a node home (decoded, not yet PoP-checked: see `check_genesis`)."""
    return read_genesis_file(_home(home).genesis_path)


def load_genesis_model(home: Path | NodeHome, genesis: Genesis) -> bytes:
    """The genesis model blob of a home, adopting `HOME/genesis.model.safetensors` if needed."""
    from node.store import ChainStore

    home = _home(home)
    store = ChainStore.open(home)
    try:
        blob = read_blob(store, genesis.initial_model_hash)
        if blob is not None:
            return blob
        candidate = model_file_for(home.genesis_path)
        if candidate.is_file():
            data = candidate.read_bytes()
            if hashlib.sha256(data).digest() != genesis.initial_model_hash:
                raise GenesisFileError(
                    f"{candidate} does not match the genesis model hash; copy the model file "
                    "that came with this genesis"
                )
            store.blobs.put(data, expected_hash=genesis.initial_model_hash)
            return data
    finally:
        store.close()
    raise GenesisFileError(
        f"the genesis model {genesis.initial_model_hash.hex()[:16]} is not in {home.root}; copy "
        f"genesis{MODEL_FILE_SUFFIX} next to genesis.cbor"
    )


def read_blob(store: Any, blob_hash: bytes) -> bytes | None:
    """A blob's bytes if present and intact, else None (read-only: nothing is quarantined)."""
    path = store.blobs.path(blob_hash)
    try:
        data: bytes = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return None
    return data if hashlib.sha256(data).digest() == blob_hash else None


def _check_model(genesis: Genesis, model_bytes: bytes) -> None:
    if hashlib.sha256(model_bytes).digest() != genesis.initial_model_hash:
        raise ValueError("the model bytes do not hash to genesis.initial_model_hash")


# ------------------------------------------------------------------------------------------
# learning/ views of the genesis
# ------------------------------------------------------------------------------------------


def genesis_task(genesis: Genesis) -> TaskSpec:
    """The learning task of a genesis."""
    from learning import TaskSpec

    return TaskSpec.from_dict(dict(genesis.task))


def genesis_rule(genesis: Genesis) -> AggregationRule:
    """The aggregation rule of a genesis as learning's `AggregationRule`."""
    from learning import AggregationRule

    return AggregationRule.from_dict(
        {**genesis.aggregation_params, "name": genesis.aggregation_rule}
    )


def genesis_verdict(genesis: Genesis) -> VerdictRule:
    """The verdict rule of a genesis as learning's `VerdictRule`."""
    from learning import VerdictRule

    return VerdictRule(metric=genesis.verdict_rule.metric, tolerance=genesis.verdict_rule.tolerance)


def genesis_summary(genesis: Genesis) -> dict[str, Any]:
    """A JSON-able description of a genesis (for `bcfl genesis --json` and humans)."""
    return {
        "chain_id": genesis.chain_id,
        "genesis_hash": genesis_hash(genesis).hex(),
        "members": [
            {"index": i, "name": m.name, "peer_id": m.peer_id, "power": m.power, "roles": m.roles}
            for i, m in enumerate(genesis.validators)
        ],
        "task": genesis.task.get("name"),
        "model": genesis.task.get("model"),
        "aggregation_rule": genesis.aggregation_rule,
        "verdict_rule": {
            "metric": genesis.verdict_rule.metric,
            "tolerance": genesis.verdict_rule.tolerance,
        },
        "expected_trainers": genesis.expected_trainers,
        "initial_model_hash": genesis.initial_model_hash.hex(),
        "genesis_time_ms": genesis.genesis_time_ms,
    }


# ------------------------------------------------------------------------------------------
# Blocks as JSON (HTTP API `/chain`, `/chain/<H>`, `bcfl chain show`)
# ------------------------------------------------------------------------------------------


def _member_name(genesis: Genesis | None, index: int) -> str:
    if genesis is not None and 0 <= index < len(genesis.validators):
        return genesis.validators[index].name
    return f"member-{index}"


def block_metric(block: Block) -> dict[str, Any] | None:
    """Median `metric_after` of the block's eval reports (None for a carry-over block)."""
    values = sorted(r.metric_after for r in block.eval_reports)
    if not values:
        return None
    mid = len(values) // 2
    median = values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
    before = sorted(r.metric_before for r in block.eval_reports)
    median_before = before[mid] if len(before) % 2 else (before[mid - 1] + before[mid]) / 2
    return {"after": median, "before": median_before, "reports": len(values)}


def block_summary(
    block: Block,
    *,
    block_hash_: bytes | None = None,
    cert: CommitCertificate | None = None,
    ledger: Ledger | None = None,
    genesis: Genesis | None = None,
) -> dict[str, Any]:
    """One line of `/chain`: a JSON-able summary of a committed block.

    Keys: height, hash, round, time_ms, proposer, proposer_name, kind ("model"|"carry-over"),
    model_hash, updates (accepted receipts), rejected, carry_over_reason, evidence,
    commit_signers (None without `cert`), metric (median eval report, None when carry-over),
    reputation ({name: value}, only with `ledger`).
    """
    header = block.header
    signers = None
    if cert is not None:
        signers = sum(bin(b).count("1") for b in cert.signers)
    summary: dict[str, Any] = {
        "height": int(header.height),
        "hash": (block_hash_ or block_hash(block)).hex(),
        "round": int(header.round),
        "time_ms": header.time_ms,
        "proposer": int(header.proposer),
        "proposer_name": _member_name(genesis, header.proposer),
        "kind": "carry-over" if block.is_carry_over else "model",
        "model_hash": header.model_hash.hex(),
        "updates": len(block.receipts),
        "rejected": len(block.rejected),
        "carry_over_reason": block.carry_over_reason or None,
        "evidence": len(block.evidence),
        "commit_signers": signers,
        "metric": block_metric(block),
    }
    if ledger is not None:
        summary["reputation"] = {
            _member_name(genesis, i): rec.reputation for i, rec in enumerate(ledger.participants)
        }
    return summary


def _receipt_json(receipt: UpdateReceipt) -> dict[str, Any]:
    return {
        "author": int(receipt.author),
        "height": int(receipt.height),
        "base_model_hash": receipt.base_model_hash.hex(),
        "blob_hash": receipt.blob_hash.hex(),
        "n_samples": receipt.n_samples,
        "train_loss": receipt.train_loss,
        "epsilon_spent": receipt.epsilon_spent,
        "signature": receipt.signature.hex(),
    }


def _cert_json(cert: CommitCertificate | None) -> dict[str, Any] | None:
    if cert is None:
        return None
    return {
        "height": int(cert.height),
        "round": int(cert.round),
        "block_hash": cert.block_hash.hex(),
        "signers": cert.signers.hex(),
        "aggregate_signature": cert.aggregate_signature.hex(),
    }


def block_to_json(block: Block, cert: CommitCertificate | None) -> dict[str, Any]:
    """`/chain/<H>`: the whole block (and its commit certificate) as JSON; bytes are hex."""
    header = block.header
    improvement = block.improvement_certificate
    return {
        "hash": block_hash(block).hex(),
        "header": {
            "chain_id": header.chain_id,
            "height": int(header.height),
            "round": int(header.round),
            "time_ms": header.time_ms,
            "parent_hash": header.parent_hash.hex(),
            "proposer": int(header.proposer),
            "model_hash": header.model_hash.hex(),
            "updates_root": header.updates_root.hex(),
            "last_commit_hash": header.last_commit_hash.hex(),
            "ledger_root": header.ledger_root.hex(),
        },
        "receipts": [_receipt_json(r) for r in block.receipts],
        "rejected": [_receipt_json(r) for r in block.rejected],
        "rule": block.rule,
        "improvement_certificate": None
        if improvement is None
        else {
            "candidate_hash": improvement.candidate_hash.hex(),
            "signers": improvement.signers.hex(),
            "aggregate_signature": improvement.aggregate_signature.hex(),
        },
        "eval_reports": [
            {
                "evaluator": int(r.evaluator),
                "candidate_hash": r.candidate_hash.hex(),
                "n_samples": r.n_samples,
                "loss_before": r.loss_before,
                "loss_after": r.loss_after,
                "metric_before": r.metric_before,
                "metric_after": r.metric_after,
            }
            for r in block.eval_reports
        ],
        "carry_over_reason": block.carry_over_reason,
        "last_commit": _cert_json(block.last_commit),
        "evidence": [
            {
                "validator": int(e.vote_a.validator),
                "height": int(e.vote_a.height),
                "round": int(e.vote_a.round),
                "vote_type": int(e.vote_a.vote_type),
            }
            for e in block.evidence
        ],
        "commit_certificate": _cert_json(cert),
    }
