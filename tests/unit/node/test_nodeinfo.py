"""node_info.json (node/nodeinfo.py): what `bcfl init` writes reads back; bad files are one sentence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.genesis_files import GenesisFileError
from node.nodeinfo import read_node_info


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
    assert len(info["agreement_public_key"]) == 32  # secure aggregation's X25519 key
    raw = json.loads((tmp_path / "a" / "node_info.json").read_text())
    raw["agreement_public_key"] = "00" * 31
    (tmp_path / "b.json").write_text(json.dumps(raw))
    with pytest.raises(GenesisFileError, match="'agreement_public_key' is 31 bytes"):
        read_node_info(tmp_path / "b.json")


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
