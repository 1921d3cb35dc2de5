"""Genesis files (node/genesis_files.py): PoP, the rules learning reads back, write/load."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from consensus.codec import genesis_hash  # noqa: E402
from consensus.crypto import BlsSigner  # noqa: E402
from node.genesis_files import (  # noqa: E402
    GenesisFileError,
    build_genesis,
    genesis_rule,
    genesis_task,
    genesis_verdict,
    load_genesis,
    load_genesis_model,
    write_genesis,
    write_genesis_file,
)
from node.home import NodeHome  # noqa: E402
from node.store import ChainStore  # noqa: E402
from tests.chain_fixture import chain_copy, node_infos  # noqa: E402


def _signers(n: int = 3) -> list[BlsSigner]:
    return [BlsSigner(hashlib.sha256(b"genesis-test-%d" % i).digest()) for i in range(n)]


def _genesis(infos: list[dict[str, Any]]) -> tuple[Any, bytes]:
    from learning import AggregationRule, VerdictRule, builtin_task

    return build_genesis(
        infos,
        chain_id="test-chain",
        task=builtin_task("breast-cancer"),
        init_seed=3,
        rule=AggregationRule(name="multi-krum", krum_f=1),
        verdict=VerdictRule(metric="auc", noise_margin=0.01),
        genesis_time_ms=1_000,
    )


def _genesis(infos: list[dict[str, Any]]) -> tuple[Any, bytes]:
    from learning import AggregationRule, VerdictRule, builtin_task

    return build_genesis(
        infos,
        chain_id="test-chain",
        task=builtin_task("breast-cancer"),
        init_seed=3,
        rule=AggregationRule(name="multi-krum", krum_f=1),
        verdict=VerdictRule(metric="auc", noise_margin=0.01),
        genesis_time_ms=1_000,
    )


def _one_line(exc: pytest.ExceptionInfo[GenesisFileError]) -> str:
    text = str(exc.value)
    assert "\n" not in text and text
    return text


def test_swapped_proof_of_possession_is_refused() -> None:
    """A member whose proof of possession is another key's cannot enter the genesis."""
    infos = node_infos(_signers())
    infos[1]["bls_proof_of_possession"] = infos[2]["bls_proof_of_possession"]
    with pytest.raises(GenesisFileError) as exc:
        _genesis(infos)
    assert "member 1" in _one_line(exc) and "proof of possession" in str(exc.value)


def test_genesis_carries_the_rules_learning_reads_back() -> None:
    """Task, rule and verdict round-trip through the genesis; the model hash is its sha256."""
    genesis, model = _genesis(node_infos(_signers()))
    assert genesis.initial_model_hash == hashlib.sha256(model).digest()
    assert genesis_task(genesis).name == "breast-cancer"
    rule = genesis_rule(genesis)
    assert (rule.name, rule.krum_f) == ("multi-krum", 1)
    verdict = genesis_verdict(genesis)
    assert (verdict.metric, verdict.noise_margin) == ("auc", 0.01)
    assert genesis.expected_trainers == 3


def test_genesis_file_and_model_file_install_by_copying(tmp_path: Path) -> None:
    """A home holding the copied genesis.cbor and model file loads both (model adopted)."""
    genesis, model = _genesis(node_infos(_signers()))
    cbor, model_file = write_genesis_file(tmp_path / "out" / "genesis.cbor", genesis, model)
    home = NodeHome(tmp_path / "home")
    home.root.mkdir()
    (home.root / "genesis.cbor").write_bytes(cbor.read_bytes())
    (home.root / model_file.name).write_bytes(model_file.read_bytes())
    loaded = load_genesis(home)
    assert genesis_hash(loaded) == genesis_hash(genesis)
    assert load_genesis_model(home, loaded) == model
    store = ChainStore.open(home)
    assert store.blobs.has(genesis.initial_model_hash)
    store.close()


def test_write_genesis_refuses_another_chain_in_a_used_home(
    tmp_path_factory: Any, tmp_path: Path
) -> None:
    """A home that already committed blocks of one chain cannot be given another genesis."""
    home = chain_copy(tmp_path_factory, tmp_path, 3, not_improved_heights=(2,))
    genesis, model = _genesis(node_infos(_signers()))
    with pytest.raises(GenesisFileError) as exc:
        write_genesis(home, genesis, model)
    assert "another chain" in _one_line(exc)


@pytest.mark.parametrize("content", [None, b"\x00garbage"])
def test_missing_or_corrupt_genesis_is_one_sentence(tmp_path: Path, content: bytes | None) -> None:
    """load_genesis on a missing or corrupt file raises one line naming the file."""
    if content is not None:
        (tmp_path / "genesis.cbor").write_bytes(content)
    with pytest.raises(GenesisFileError) as exc:
        load_genesis(tmp_path)
    assert "genesis" in _one_line(exc)


def test_an_altered_genesis_model_blob_is_replaced_by_the_model_file(tmp_path: Path) -> None:
    """A stored genesis model whose bytes changed is moved aside and the model file adopted."""
    genesis, model = _genesis(node_infos(_signers()))
    cbor, model_file = write_genesis_file(tmp_path / "out" / "genesis.cbor", genesis, model)
    home = NodeHome(tmp_path / "home")
    write_genesis(home, genesis, model)
    store = ChainStore.open(home)
    blob_path = store.blobs.path(genesis.initial_model_hash)
    store.close()
    blob_path.write_bytes(b"not the model")
    with pytest.raises(GenesisFileError) as exc:
        load_genesis_model(home, genesis)
    assert "altered on disk" in _one_line(exc)
    (home.root / model_file.name).write_bytes(model_file.read_bytes())
    assert load_genesis_model(home, genesis) == model
    assert blob_path.read_bytes() == model


def test_power_option_weights_members_and_names_bad_input() -> None:
    """`bcfl genesis --power NAME=P`: the named member gets P, the others 1; an unknown name, a
    power out of range or a malformed item is one sentence naming the item."""
    from learning import builtin_task
    from node.commands.genesis import parse_powers
    from node.errors import UserError

    infos = node_infos(_signers())
    names = [info["name"] for info in infos]
    genesis, _ = build_genesis(
        infos,
        chain_id="c",
        task=builtin_task("breast-cancer"),
        powers=parse_powers([f"{names[1]}=3"]),
        genesis_time_ms=1,
    )
    assert [m.power for m in genesis.validators] == [1, 3, 1]
    for powers, needle in (({"nobody": 2}, "not a member"), ({names[0]: 0}, "from 1 to")):
        with pytest.raises(GenesisFileError) as exc:
            build_genesis(infos, chain_id="c", task=builtin_task("breast-cancer"), powers=powers)
        assert needle in _one_line(exc)
    for item in ("node0", "node0=x", "=3"):
        with pytest.raises(UserError) as uexc:
            parse_powers([item])
        assert item in str(uexc.value) and "\n" not in str(uexc.value)
