"""The chain commands end to end: `bcfl genesis`, `status`, `chain show`, `chain verify`,
`model export`, on a real chain and real node homes."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import trio

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from node.cli import main  # noqa: E402
from node.config import load_config, save_config  # noqa: E402
from node.genesis_files import load_genesis, load_genesis_model  # noqa: E402
from node.home import NodeHome  # noqa: E402
from node.httpapi import HttpApi, json_response  # noqa: E402
from tests.chain_fixture import chain_copy  # noqa: E402


@pytest.fixture
def home(tmp_path_factory: Any, tmp_path: Path) -> Path:
    """A private copy of the session's 3-block chain (block 2 is a carry-over)."""
    return chain_copy(tmp_path_factory, tmp_path, 3, not_improved_heights=(2,))


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


# -- chain show ----------------------------------------------------------------------------


def test_chain_show_lists_every_block(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`chain show` prints one line per block; `--json` gives the same blocks as objects."""
    assert main(["chain", "show", "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert "3 blocks" in out and "carry-over" in out and "4 updates" in out
    assert main(["chain", "show", "--home", str(home), "--json"]) == 0
    blocks = json.loads(capsys.readouterr().out)
    assert [b["height"] for b in blocks] == [1, 2, 3]
    assert [b["kind"] for b in blocks] == ["model", "carry-over", "model"]


def test_chain_show_one_block_and_the_genesis(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`chain show 3` gives the whole block; `chain show 0` the genesis summary."""
    assert main(["chain", "show", "3", "--home", str(home), "--json"]) == 0
    block = json.loads(capsys.readouterr().out)
    assert block["header"]["height"] == 3 and len(block["receipts"]) == 4
    assert block["improvement_certificate"] is not None
    assert main(["chain", "show", "0", "--home", str(home), "--json"]) == 0
    genesis = json.loads(capsys.readouterr().out)
    assert genesis["chain_id"] == "fixture-chain" and len(genesis["members"]) == 4


def test_chain_show_uncommitted_height_is_one_sentence(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Asking for a height beyond the tip exits 2 naming the tip."""
    assert main(["chain", "show", "9", "--home", str(home)]) == 2
    assert "ends at height 3" in _error_line(capsys.readouterr().err)


def test_chain_show_of_a_damaged_block_is_one_sentence_naming_its_height(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stored block altered on disk: `chain show` exits 2 naming the height, no traceback."""
    with closing(sqlite3.connect(NodeHome(home).db_path, isolation_level=None)) as db:
        db.execute("UPDATE blocks SET block = ? WHERE height = 2", (b"\x00altered",))
    assert main(["chain", "show", "--home", str(home)]) == 2
    line = _error_line(capsys.readouterr().err)
    assert "damaged at height 2" in line and "chain verify" in line


# -- chain verify --------------------------------------------------------------------------


def test_chain_verify_good_chain_exits_zero(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`chain verify` on an untouched home exits 0 and reports the replay."""
    assert main(["chain", "verify", "--home", str(home), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] and result["blocks"] == 3
    assert result["aggregation"]["replayed"] == [1, 3]


def test_chain_verify_tampered_block_exits_one_naming_the_height(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A flipped byte in stored block 3 makes `chain verify` exit 1 with one line: height 3."""
    with sqlite3.connect(NodeHome(home).db_path, isolation_level=None) as db:
        (raw,) = db.execute("SELECT block FROM blocks WHERE height = 3").fetchone()
        data = bytearray(raw)
        data[40] ^= 0xFF
        db.execute("UPDATE blocks SET block = ? WHERE height = 3", (bytes(data),))
    assert main(["chain", "verify", "--home", str(home)]) == 1
    line = _error_line(capsys.readouterr().err)
    assert line.startswith("bcfl: chain verify failed at height 3:")


def test_chain_verify_tampered_blob_exits_one(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An altered committed model blob makes `chain verify` fail at its height."""
    from node.chain import Chain
    from node.store import ChainStore

    store = ChainStore.open(NodeHome(home))
    block = Chain(store).block(1)
    store.close()
    assert block is not None
    model = block.header.model_hash
    path = NodeHome(home).blobs_dir / model.hex()[:2] / model.hex()[2:]
    path.write_bytes(path.read_bytes()[:-4] + b"\x00\x00\x80\x7f")
    assert main(["chain", "verify", "--home", str(home)]) == 1
    assert "height 1:" in _error_line(capsys.readouterr().err)


# -- model export --------------------------------------------------------------------------


def test_model_export_of_an_altered_model_says_so(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exporting a model whose blob bytes changed exits 2 and writes nothing."""
    out = tmp_path / "m.safetensors"
    assert main(["model", "export", "--home", str(home), "--out", str(out)]) == 0
    model = hashlib.sha256(out.read_bytes()).hexdigest()
    out.unlink()
    (NodeHome(home).blobs_dir / model[:2] / model[2:]).write_bytes(b"altered")
    capsys.readouterr()
    assert main(["model", "export", "--home", str(home), "--out", str(out)]) == 2
    assert "altered on disk" in _error_line(capsys.readouterr().err) and not out.exists()


def test_model_export_writes_the_committed_model(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The exported file hashes to the block's model hash; height 0 is the genesis model."""
    out = tmp_path / "m3.safetensors"
    assert main(["model", "export", "--home", str(home), "--height", "3", "--out", str(out)]) == 0
    assert main(["chain", "show", "3", "--home", str(home), "--json"]) == 0
    capsys.readouterr()
    from learning import bytes_to_weights
    from node.chain import Chain
    from node.store import ChainStore

    store = ChainStore.open(NodeHome(home))
    block = Chain(store).block(3)
    store.close()
    assert block is not None
    assert hashlib.sha256(out.read_bytes()).digest() == block.header.model_hash
    weights = bytes_to_weights(out.read_bytes())
    assert sum(w.size for w in weights.values()) == 31  # logreg: 30 features + bias
    genesis_out = tmp_path / "m0.safetensors"
    assert (
        main(["model", "export", "--home", str(home), "--height", "0", "--out", str(genesis_out)])
        == 0
    )
    genesis = load_genesis(home)
    assert genesis_out.read_bytes() == load_genesis_model(home, genesis)


def test_model_export_of_a_pruned_model_says_so(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exporting a model whose blob was pruned exits 2 with one sentence."""
    out = tmp_path / "m.safetensors"
    assert main(["model", "export", "--home", str(home), "--out", str(out)]) == 0
    model = hashlib.sha256(out.read_bytes()).hexdigest()
    (NodeHome(home).blobs_dir / model[:2] / model[2:]).unlink()
    capsys.readouterr()
    assert main(["model", "export", "--home", str(home), "--out", str(out)]) == 2
    assert "pruned" in _error_line(capsys.readouterr().err)


def test_model_export_onnx_without_the_onnx_package_says_how(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--format onnx` without the onnx package exits 2 and names the missing package."""
    import importlib.util

    if importlib.util.find_spec("onnx") is not None:
        pytest.skip("onnx is installed here")
    out = tmp_path / "m.onnx"
    assert (
        main(["model", "export", "--home", str(home), "--out", str(out), "--format", "onnx"]) == 2
    )
    assert "onnx" in _error_line(capsys.readouterr().err) and not out.exists()


# -- report --------------------------------------------------------------------------------


def test_report_of_a_home_reads_the_chain_in_the_cli_and_plots_it(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`bcfl report --home` turns the 3 stored blocks into report dicts and writes a PNG."""
    from node.commands.report import load_blocks

    blocks = load_blocks(home)
    assert [b["height"] for b in blocks] == [1, 2, 3]
    assert [b["carry_over"] for b in blocks] == [False, True, False]
    assert blocks[1]["contributions"] == {} and sum(blocks[0]["contributions"].values()) > 0
    assert set(blocks[2]["reputation"]) == {f"site-{i}" for i in range(4)}
    out = tmp_path / "chain.png"
    assert main(["report", "--home", str(home), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "3 blocks" in capsys.readouterr().out


# -- genesis -------------------------------------------------------------------------------


def _init_homes(tmp_path: Path, n: int) -> list[Path]:
    homes = [tmp_path / f"site-{i}" for i in range(n)]
    for i, h in enumerate(homes):
        assert main(["init", "--home", str(h), "--port", str(4200 + i)]) == 0
    return homes


def test_genesis_command_writes_files_and_installs_homes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`bcfl genesis` writes genesis + model to --out and into --install homes; prints the hash."""
    homes = _init_homes(tmp_path, 2)
    capsys.readouterr()
    infos = [str(h / "node_info.json") for h in homes]
    argv = ["genesis", *infos, "--out", str(tmp_path / "g"), "--rule", "median", "--install"]
    assert main([*argv, *map(str, homes)]) == 0
    out = capsys.readouterr().out
    genesis = load_genesis(homes[1])
    from consensus.codec import genesis_hash

    assert f"genesis hash {genesis_hash(genesis).hex()}" in out
    assert (tmp_path / "g" / "genesis.cbor").read_bytes() == (
        homes[0] / "genesis.cbor"
    ).read_bytes()
    assert (tmp_path / "g" / "genesis.model.safetensors").is_file()
    assert genesis.aggregation_rule == "median" and [m.name for m in genesis.validators] == [
        "site-0",
        "site-1",
    ]
    assert (
        hashlib.sha256(load_genesis_model(homes[0], genesis)).digest() == genesis.initial_model_hash
    )


def test_genesis_command_refuses_bad_node_info_in_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A node_info that is not JSON exits 2 with one line naming the file; nothing is written."""
    bad = tmp_path / "node_info.json"
    bad.write_text("this is not json")
    assert main(["genesis", str(bad), "--out", str(tmp_path / "g.cbor")]) == 2
    assert "node_info.json is not JSON" in _error_line(capsys.readouterr().err)
    assert not (tmp_path / "g.cbor").exists()


def test_genesis_command_refuses_a_bad_proof_of_possession(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A node_info whose proof of possession belongs to another key exits 2 in one line."""
    homes = _init_homes(tmp_path, 2)
    first = json.loads((homes[0] / "node_info.json").read_text())
    second = json.loads((homes[1] / "node_info.json").read_text())
    first["bls_proof_of_possession"] = second["bls_proof_of_possession"]
    (homes[0] / "node_info.json").write_text(json.dumps(first))
    capsys.readouterr()
    infos = [str(h / "node_info.json") for h in homes]
    assert main(["genesis", *infos, "--out", str(tmp_path / "g")]) == 2
    line = _error_line(capsys.readouterr().err)
    assert "member 0" in line and "proof of possession" in line


# -- status --------------------------------------------------------------------------------


def test_status_without_a_running_node_says_so(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`status` on a home whose node is down exits 1 and says it is not running."""
    with unused_port() as port:
        config = load_config(NodeHome(home).config_path)
        config.api.port = port
        save_config(config, NodeHome(home).config_path)
        assert main(["status", "--home", str(home)]) == 1
    assert "is not running" in _error_line(capsys.readouterr().err)


async def test_status_prints_the_running_node_table(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`status` GETs /status from a real local API and prints height, peers and metric."""
    status = {
        "name": "site-0",
        "height": 7,
        "round": 1,
        "step": "prevote",
        "peers": ["a", "b", "c"],
        "last_metric": {"name": "auc", "value": 0.987},
        "sync_state": "in_sync",
        "roles": ["trainer", "validator"],
        "chain_id": "fixture-chain",
        "peer_id": "12D3KooWtest",
    }
    api = HttpApi(routes={"/status": lambda _: json_response(status)})
    async with trio.open_nursery() as nursery:
        port = await nursery.start(api.run)
        config = load_config(NodeHome(home).config_path)
        config.api.port = port
        save_config(config, NodeHome(home).config_path)
        code = await trio.to_thread.run_sync(main, ["status", "--home", str(home)])
        code_json = await trio.to_thread.run_sync(main, ["status", "--home", str(home), "--json"])
        nursery.cancel_scope.cancel()
    assert code == 0 and code_json == 0
    table, raw = capsys.readouterr().out.split("\n{", 1)
    assert "height        7" in table and "auc 0.9870" in table and "peers         3" in table
    assert json.loads("{" + raw) == status


class unused_port:  # noqa: N801 - reads like a function in a with statement
    """A loopback TCP port held bound but not listening, so a connection is refused."""

    def __enter__(self) -> int:
        import socket

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        port: int = self._sock.getsockname()[1]
        return port

    def __exit__(self, *exc: object) -> None:
        self._sock.close()
