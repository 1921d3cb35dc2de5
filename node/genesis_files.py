"""Genesis files: build, check, write, install and load a genesis and its model blob.

What `bcfl genesis`, `bcfl init`'s successors, the daemon and the chain commands share.
Storage conventions (fixed; the daemon and `bcfl chain verify` read exactly this):

- `HOME/genesis.cbor` is `consensus.codec.encode(genesis)`. The genesis model blob (safetensors
  bytes of `learning.initial_weights(task, seed)`) lives in the home's blob store under its
  SHA-256, which is `genesis.initial_model_hash`.
- `genesis.task` is `TaskSpec.to_dict()`, `genesis.aggregation_rule` the rule's name and
  `genesis.aggregation_params` the `AggregationRule`'s other fields, `genesis.verdict_rule` the
  consensus copy of learning's `VerdictRule` (converted field by field).

Choices where the issue is silent:

- `bcfl genesis --out DIR` writes `DIR/genesis.cbor` and `DIR/genesis.model.safetensors`;
  `--out FILE.cbor` writes FILE and `FILE-stem.model.safetensors` next to it. A site copies
  both files into its home; `load_genesis_model` adopts the model file into the blob store (hash
  checked) the first time it is needed, so nobody has to know the blob store's layout.
  `--install HOME` writes straight into homes.
- Member order in the genesis is the order of the node_info files (node/nodeinfo.py) on the
  command line; names and peer ids must be unique. Every member gets voting power 1 when it
  is a validator, unless `powers` (`bcfl genesis --power NAME=P`) names another.
- `genesis_time_ms` is the wall clock when the genesis was made: block 1 must be later.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consensus.codec import InvalidMessage, decode_as, encode, genesis_hash
from consensus.crypto import BlsVerifier
from consensus.genesis import InvalidGenesis, validate_genesis
from consensus.types import (
    ROLE_TRAINER,
    ROLE_VALIDATOR,
    Genesis,
    Hash,
    Privacy,
    PublicKey,
    Safeguards,
    Signature,
    Timeouts,
    ValidatorInfo,
)
from consensus.types import VerdictRule as ConsensusVerdictRule
from node.errors import UserError
from node.fsutil import atomic_write
from node.home import NodeHome

if TYPE_CHECKING:
    from learning import AggregationRule, TaskSpec, VerdictRule

MAX_GENESIS_BYTES = 1024 * 1024
MODEL_FILE_SUFFIX = ".model.safetensors"
MAX_MEMBER_POWER = 1000  # the proposer cycle (consensus/validators.py MAX_CYCLE) stays small


class GenesisFileError(UserError):
    """A genesis or node_info file is missing, corrupt or inconsistent (one sentence)."""


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
    privacy: Privacy | None = None,
    powers: Mapping[str, int] | None = None,
    evidence_consequence: str = "slash",
    max_regression: float | None = None,
) -> tuple[Genesis, bytes]:
    """The genesis of the members `node_infos` (from `read_node_info`) and its model blob.

    Every proof of possession is checked (`validate_genesis`); a bad one raises
    GenesisFileError naming the member. `powers` maps member names to voting power (default 1
    for every validator); a name that is not a member, a power below 1 or above
    `MAX_MEMBER_POWER`, or a power for a member without the validator role raises
    GenesisFileError.
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
    power_of = _member_powers(node_infos, powers or {})
    rule = AggregationRule(name=rule) if isinstance(rule, str) else rule
    verdict = verdict or LearningVerdictRule()
    members = tuple(
        ValidatorInfo(
            name=str(info["name"]),
            public_key=PublicKey(bytes(info["bls_public_key"])),
            proof_of_possession=Signature(bytes(info["bls_proof_of_possession"])),
            peer_id=str(info["peer_id"]),
            power=power_of[str(info["name"])],
            roles=tuple(sorted(set(info["roles"]))),
            agreement_key=bytes(info.get("agreement_public_key", b"")),
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
            metric=verdict.metric, noise_margin=float(verdict.noise_margin)
        ),
        timeouts=timeouts or Timeouts(),
        initial_model_hash=Hash(hashlib.sha256(model_bytes).digest()),
        expected_trainers=(
            sum(1 for m in members if ROLE_TRAINER in m.roles)
            if expected_trainers is None
            else expected_trainers
        ),
        genesis_time_ms=int(time.time() * 1000) if genesis_time_ms is None else genesis_time_ms,
        privacy=privacy or Privacy(),
        safeguards=Safeguards(
            evidence_consequence=evidence_consequence,
            **({} if max_regression is None else {"max_regression": float(max_regression)}),
        ),
    )
    check_genesis(genesis)
    return genesis, model_bytes


def _member_powers(
    node_infos: Sequence[Mapping[str, Any]], powers: Mapping[str, int]
) -> dict[str, int]:
    names = [str(info["name"]) for info in node_infos]
    for name, power in powers.items():
        if name not in names:
            raise GenesisFileError(
                f"--power names {name!r}, which is not a member (members: {', '.join(names)})"
            )
        if not 1 <= power <= MAX_MEMBER_POWER:
            raise GenesisFileError(
                f"--power {name}={power}: a power must be an integer from 1 to {MAX_MEMBER_POWER}"
            )
    out: dict[str, int] = {}
    for info in node_infos:
        name = str(info["name"])
        if ROLE_VALIDATOR not in info["roles"]:
            if name in powers:
                raise GenesisFileError(
                    f"--power {name}: {name} has no validator role, so it cannot hold power"
                )
            out[name] = 0
        else:
            out[name] = powers.get(name, 1)
    return out


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
    from node.chain import Chain
    from node.store import ChainStore

    home = NodeHome.of(home)
    _check_model(genesis, model_bytes)
    data = encode(genesis)
    if home.genesis_path.exists() and home.genesis_path.read_bytes() != data:
        store = ChainStore.open(home)
        try:
            if Chain(store).height:
                raise GenesisFileError(
                    f"{home.root} already follows another chain; use a fresh home for this genesis"
                )
        finally:
            store.close()
    home.root.mkdir(parents=True, exist_ok=True)
    store = ChainStore.open(home)
    try:
        Chain(store).put_blob(model_bytes, expected_hash=genesis.initial_model_hash)
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
    return read_genesis_file(NodeHome.of(home).genesis_path)


def load_genesis_model(home: Path | NodeHome, genesis: Genesis) -> bytes:
    """The genesis model blob of a home, adopting `HOME/genesis.model.safetensors` if needed.

    A stored model blob that was altered on disk is moved aside and replaced by the model
    file when there is one.
    """
    from node.blobs import BlobCorruptError
    from node.chain import Chain
    from node.store import ChainStore

    home = NodeHome.of(home)
    store = ChainStore.open(home)
    damaged = False
    try:
        chain = Chain(store)
        try:
            blob = chain.blob(genesis.initial_model_hash, quarantine=True)
        except BlobCorruptError:
            blob, damaged = None, True
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
            chain.put_blob(data, expected_hash=genesis.initial_model_hash)
            return data
    finally:
        store.close()
    where = "was altered on disk (moved aside) in" if damaged else "is not in"
    raise GenesisFileError(
        f"the genesis model {genesis.initial_model_hash.hex()[:16]} {where} {home.root}; copy "
        f"genesis{MODEL_FILE_SUFFIX} next to genesis.cbor"
    )


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

    return VerdictRule(
        metric=genesis.verdict_rule.metric, noise_margin=genesis.verdict_rule.noise_margin
    )


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
            "noise_margin": genesis.verdict_rule.noise_margin,
        },
        "expected_trainers": genesis.expected_trainers,
        "initial_model_hash": genesis.initial_model_hash.hex(),
        "genesis_time_ms": genesis.genesis_time_ms,
        "safeguards": {
            "max_samples_per_update": genesis.safeguards.max_samples_per_update,
            "timestamp_precision_ms": genesis.safeguards.timestamp_precision_ms,
            "message_delay_ms": genesis.safeguards.message_delay_ms,
            "max_regression": genesis.safeguards.max_regression,
            "evidence_consequence": genesis.safeguards.evidence_consequence,
        },
        "privacy": {
            f.name: getattr(genesis.privacy, f.name) for f in dataclasses.fields(genesis.privacy)
        },
    }
