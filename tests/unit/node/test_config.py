"""Config: defaults are valid, TOML round-trips, each bad value is one sentence naming its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import ConfigError, NodeConfig, from_dict, load_config, save_config

PEER = "12D3KooWSNeuSCEdRQWnVsTcTwE2HZZcGu1LsuTAbv8iTnb5jFJL"


def test_defaults_round_trip_through_toml(tmp_path: Path) -> None:
    """The default config is valid, binds loopback, and reads back equal."""
    config = NodeConfig()
    config.network.bootstrap = [f"/ip4/127.0.0.1/tcp/4002/p2p/{PEER}"]
    save_config(config, tmp_path / "config.toml")
    loaded = load_config(tmp_path / "config.toml")
    assert loaded == config
    assert loaded.api.host == "127.0.0.1"
    assert loaded.network.listen.startswith("/ip4/127.0.0.1/tcp/")
    assert loaded.node.roles == ["validator", "trainer"]


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"node": {"roles": ["miner"]}}, "node.roles"),
        ({"node": {"roles": []}}, "node.roles"),
        ({"node": {"name": ""}}, "node.name"),
        ({"network": {"listen": "not-an-addr"}}, "network.listen"),
        ({"network": {"listen": "/ip4/127.0.0.1/udp/4001"}}, "network.listen"),
        ({"network": {"bootstrap": ["/ip4/127.0.0.1/tcp/4002"]}}, "network.bootstrap[0]"),
        ({"network": {"bootstrap": "x"}}, "network.bootstrap"),
        ({"network": {"observers": ["nope"]}}, "network.observers[0]"),
        ({"network": {"bootstrap_peers": []}}, "network.bootstrap_peers"),
        ({"api": {"port": 70000}}, "api.port"),
        ({"api": {"port": "80"}}, "api.port"),
        ({"metrics": {"port": -1}}, "metrics.port"),
        ({"data": {"site_index": 4, "site_count": 4}}, "data.site_index"),
        ({"data": {"builtin": "", "csv": ""}}, "data.builtin"),
        ({"training": {"learning_rate": 0}}, "training.learning_rate"),
        ({"training": {"optimizer": "lbfgs"}}, "training.optimizer"),
        ({"training": {"batch_size": True}}, "training.batch_size"),
        ({"storage": {"keep_last_models": 0}}, "storage.keep_last_models"),
        ({"log": {"format": "xml"}}, "log.format"),
        ({"nodes": {}}, "nodes"),
    ],
)
def test_invalid_value_is_one_sentence_naming_the_key(raw: dict[str, object], key: str) -> None:
    """Every invalid value raises ConfigError whose single-line message starts with its key."""
    with pytest.raises(ConfigError) as info:
        from_dict(raw)  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith(key), message
    assert "\n" not in message


def test_broken_toml_is_reported_without_traceback(tmp_path: Path) -> None:
    """A syntax error in the file becomes a ConfigError naming the file."""
    path = tmp_path / "config.toml"
    path.write_text("[node\nname = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
