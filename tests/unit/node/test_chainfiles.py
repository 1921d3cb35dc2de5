"""Genesis files (node/chainfiles.py): node_info checks, PoP, write/load, block JSON."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from consensus.codec import genesis_hash  # noqa: E402
from consensus.crypto import BlsSigner  # noqa: E402
from node.chainfiles import (  # noqa: E402
    GenesisFileError,
    block_summary,
    block_to_json,
    build_genesis,
    genesis_rule,
    genesis_task,
    genesis_verdict,
    load_genesis,
    load_genesis_model,
    read_node_info,
    write_genesis,
    write_genesis_file,
)
from node.keys import NodeHome  # noqa: E402
from node.store import ChainStore  # noqa: E402
from node.verify import load_stored_block  # noqa: E402
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
        verdict=VerdictRule(metric="auc", tolerance=0.01),
        genesis_time_ms=1_000,
    )


def _one_line(exc: pytest.ExceptionInfo[GenesisFileError]) -> str:
    text = str(exc.value)
    assert "\n" not in text and text
    return text


def test_node_info_written_by_init_reads_back(tmp_path: Path) -> None:
    """`bcfl init`'s node_info.json yields the key, proof and roles build_genesis needs."""
    from node.cli import main

    assert main(["init", "--home", str(tmp_path / "a")]) == 0
    info = read_node_info(tmp_path / "a" / "node_info.json")
    assert len(info["bls_public_key"]) == 48 and len(info["bls_proof_of_possession"]) == 96
    assert info["roles"] == ["trainer", "validator"] and info["name"] == "a"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "is not JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps({"peer_id": "12D3KooWxyz" * 4}), "'name'"),
        (
            json.dumps(
                {
                    "name": "a",
                    "peer_id": "12D3KooW" + "A" * 44,
                    "bls_public_key": "zz",
                    "bls_proof_of_possession": "00" * 96,
                }
            ),
            "not hexadecimal",
        ),
        (
            json.dumps(
                {
                    "name": "a",
                    "peer_id": "12D3KooW" + "A" * 44,
                    "bls_public_key": "00" * 47,
                    "bls_proof_of_possession": "00" * 96,
                }
            ),
            "47 bytes but must be 48",
        ),
    ],
)
def test_bad_node_info_is_one_sentence(tmp_path: Path, content: str, words: str) -> None:
    """Each kind of broken node_info.json is refused with one line saying what is wrong."""
    path = tmp_path / "node_info.json"
    path.write_text(content)
    with pytest.raises(GenesisFileError) as exc:
        read_node_info(path)
    assert words in _one_line(exc)


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
    assert (verdict.metric, verdict.tolerance) == ("auc", 0.01)
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


def test_block_json_is_json_and_names_the_block(tmp_path_factory: Any, tmp_path: Path) -> None:
    """block_summary / block_to_json of stored blocks serialise and carry the key facts."""
    home = chain_copy(tmp_path_factory, tmp_path, 3, not_improved_heights=(2,))
    genesis = load_genesis(home)
    store = ChainStore.open(NodeHome(home))
    try:
        summaries = []
        for height in (1, 2):
            loaded = load_stored_block(store, height)
            assert loaded is not None
            block, cert, ledger = loaded
            summaries.append(block_summary(block, cert=cert, ledger=ledger, genesis=genesis))
            detail = json.loads(json.dumps(block_to_json(block, cert)))
            assert detail["header"]["height"] == height
            assert detail["commit_certificate"]["block_hash"] == detail["hash"]
        stored_hash = store.get_block(1).hash.hex()  # type: ignore[union-attr]
    finally:
        store.close()
    model, carry = json.loads(json.dumps(summaries))
    assert model["kind"] == "model" and model["updates"] == 4 and model["hash"] == stored_hash
    assert model["commit_signers"] >= 3 and 0.5 < model["metric"]["after"] <= 1.0
    assert model["reputation"] == {f"site-{i}": 10 for i in range(4)}
    assert carry["kind"] == "carry-over" and carry["metric"] is None
    assert "not improved" in carry["carry_over_reason"]
