"""`bcfl init`: keys with mode 0600, a valid config, public node info, clear refusals."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from node.cli import main
from node.config import load_config
from node.home import NodeHome


def test_init_writes_keys_config_and_info(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """init creates 0600 keys, a loadable config with the port, and node_info.json."""
    home = NodeHome(tmp_path / "site-a")
    assert main(["init", "--home", str(home.root), "--port", "4111", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert stat.S_IMODE(home.node_key_path.stat().st_mode) == 0o600
    config = load_config(home.config_path)
    assert config.listen_port == 4111 and config.node.name == "site-a"
    assert info["multiaddr"].endswith(f"/tcp/4111/p2p/{info['peer_id']}")
    assert json.loads((home.root / "node_info.json").read_text()) == info


def test_init_refuses_existing_home_and_bad_role(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second init and an invalid role both exit 2 with one sentence."""
    assert main(["init", "--home", str(tmp_path / "a")]) == 0
    assert main(["init", "--home", str(tmp_path / "a")]) == 2
    assert main(["init", "--home", str(tmp_path / "b"), "--roles", "miner"]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "node.roles" in err
    assert not (tmp_path / "b").exists()
