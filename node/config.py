"""The node configuration: `HOME/config.toml`, read with `tomllib`, written with `tomli_w`.

Every invalid value is reported as one `ConfigError` sentence that names the dotted key and
says what is expected (an IT operator edits this file by hand). Unknown keys are errors too:
a misspelt `bootstrap_peers` silently ignored would leave a node alone on the network.

Choices where the issue is silent:
- The API and metrics servers bind 127.0.0.1 by default; a non-loopback API host is allowed
  (the operator may front it with a proxy) but must be asked for explicitly.
- Bootstrap peers must carry `/p2p/<peer id>`: the node gates connections by peer id, so an
  address without an identity could never be verified.
- `roles` defaults to validator + trainer (docs/ARCHITECTURE.md); `observer` cannot be combined with
  `validator` (an observer only follows the chain).
- Blob pruning keeps the last `keep_last_models` model blobs plus anything the last committed
  block references; committed blocks are never pruned.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from node.errors import UserError
from node.fsutil import atomic_write_text

ROLES = ("validator", "trainer", "observer")
TRANSPORTS = ("direct", "gossip")  # network.transport (node/network/direct.py)
LOG_FORMATS = ("text", "json")
OPTIMIZERS = ("sgd", "adam")
DEFAULT_PORT = 4001


class ConfigError(UserError):
    """An invalid configuration value; the message is one sentence naming the key."""


@dataclass(slots=True)
class NodeSection:
    name: str = "node"
    roles: list[str] = field(default_factory=lambda: ["validator", "trainer"])


@dataclass(slots=True)
class NetworkSection:
    listen: str = f"/ip4/127.0.0.1/tcp/{DEFAULT_PORT}"
    bootstrap: list[str] = field(default_factory=list)
    # Peer ids (besides the genesis validators) allowed to connect: auditors, dashboards.
    observers: list[str] = field(default_factory=list)
    # "direct": messages straight to each peer (a full mesh, the default); "gossip": through
    # GossipSub, which relays, for members that cannot all reach each other
    transport: str = "direct"


@dataclass(slots=True)
class ApiSection:
    host: str = "127.0.0.1"
    port: int = 8545


@dataclass(slots=True)
class MetricsSection:
    host: str = "127.0.0.1"
    port: int = 9100  # 0 disables the exporter
    enabled: bool = True  # false: no metric is recorded at all (e.g. to measure their cost)


@dataclass(slots=True)
class DataSection:
    builtin: str = "breast-cancer"  # a built-in dataset or task entry point, "" with csv/path
    csv: str = ""  # path to a CSV file (relative paths are relative to the node home)
    path: str = ""  # a site's own data file or folder, read by the task (e.g. an image folder)
    site_index: int = 0
    site_count: int = 1
    partition: str = "iid"
    seed: int = 0


@dataclass(slots=True)
class TrainingSection:
    optimizer: str = "sgd"
    local_epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 0.05
    fedprox_mu: float = 0.0
    torch_threads: int = 1
    device: str = "cpu"  # auto (cuda when available), cpu or cuda


REMOVED_DP_KEYS = frozenset({"dp_clip_norm", "dp_noise_multiplier", "dp_epsilon", "dp_delta"})
"""Former per-site privacy knobs: the genesis privacy policy now binds every site."""


@dataclass(slots=True)
class StorageSection:
    keep_last_models: int = 10


BYZANTINE_BEHAVIOURS = (
    "",
    "poison",
    "garbage",
    "equivocate",
    "timestamp",
    "inflate",
    "forge-rejection",
    "drift",
    "rule-swap",
    "double-propose",
    "secagg-silent",
)
BUILTIN_DATASETS = ("breast-cancer", "diabetes", "digits", "surveillance")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(slots=True)
class ByzantineSection:
    """Test networks only: make this node misbehave ("" = honest)."""

    behaviour: str = ""


@dataclass(slots=True)
class LogSection:
    format: str = "text"
    level: str = "info"


@dataclass(slots=True)
class NodeConfig:
    """The whole `config.toml`, one dataclass per TOML table."""

    node: NodeSection = field(default_factory=NodeSection)
    network: NetworkSection = field(default_factory=NetworkSection)
    api: ApiSection = field(default_factory=ApiSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)
    data: DataSection = field(default_factory=DataSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    storage: StorageSection = field(default_factory=StorageSection)
    log: LogSection = field(default_factory=LogSection)
    byzantine: ByzantineSection = field(default_factory=ByzantineSection)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict in TOML table order."""
        return asdict(self)

    @property
    def listen_port(self) -> int:
        """The TCP port of the listen address."""
        return int(self.network.listen.rsplit("/tcp/", 1)[1].split("/")[0])

    def has_role(self, role: str) -> bool:
        return role in self.node.roles


def _type_name(kind: type) -> str:
    return {int: "an integer", float: "a number", str: "a string", list: "a list of strings"}[kind]


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Check `value` has the type of `default`, naming `key` when it does not."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    if isinstance(default, list):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key} must be a list of strings, got {value!r}")
        return list(value)
    raise AssertionError(f"no coercion for {key}")  # our bug: a new field type


def _check_multiaddr(key: str, value: str, *, need_peer_id: bool) -> None:
    from multiaddr import Multiaddr

    try:
        addr = Multiaddr(value)
    except Exception as exc:  # multiaddr raises several unrelated types
        raise ConfigError(f"{key} is not a valid multiaddr ({value!r}: {exc})") from None
    protocols = [p.name for p in addr.protocols()]
    if "tcp" not in protocols:
        raise ConfigError(
            f"{key} must be a TCP multiaddr like /ip4/127.0.0.1/tcp/4001, got {value!r}"
        )
    if need_peer_id and "p2p" not in protocols:
        raise ConfigError(
            f"{key} must end in /p2p/<peer id> so the peer can be verified, got {value!r}"
        )
    if not need_peer_id and "p2p" in protocols:
        raise ConfigError(f"{key} must not contain /p2p/, got {value!r}")


def _check_peer_id(key: str, value: str) -> None:
    from libp2p.peer.id import ID

    try:
        raw = ID.from_base58(value).to_bytes()
    except Exception:
        raw = b""
    # A peer id is a multihash: identity (0x00, 36-byte Ed25519 key) or sha256 (0x12 0x20).
    if not (
        (raw[:1] == b"\x00" and len(raw) == raw[1] + 2)
        or (raw[:2] == b"\x12\x20" and len(raw) == 34)
    ):
        raise ConfigError(f"{key} holds {value!r}, which is not a base58 peer id")


def _check_port(key: str, value: int, *, allow_zero: bool) -> None:
    low = 0 if allow_zero else 1
    if not low <= value <= 65535:
        raise ConfigError(f"{key} must be a port between {low} and 65535, got {value}")


def validate(config: NodeConfig) -> None:
    """Check the semantic rules; raises `ConfigError` naming the first bad key."""
    if not config.node.name or len(config.node.name) > 64 or not config.node.name.isprintable():
        raise ConfigError(f"node.name must be 1-64 printable characters, got {config.node.name!r}")
    if not config.node.roles:
        raise ConfigError("node.roles must name at least one of validator, trainer, observer")
    for role in config.node.roles:
        if role not in ROLES:
            raise ConfigError(f"node.roles holds {role!r}; allowed roles are {', '.join(ROLES)}")
    if "observer" in config.node.roles and "validator" in config.node.roles:
        raise ConfigError("node.roles cannot hold both observer and validator")
    _check_multiaddr("network.listen", config.network.listen, need_peer_id=False)
    if config.network.transport not in TRANSPORTS:
        raise ConfigError(
            f'network.transport must be "direct" or "gossip", got {config.network.transport!r}'
        )
    _check_port("network.listen", config.listen_port, allow_zero=True)
    for i, addr in enumerate(config.network.bootstrap):
        _check_multiaddr(f"network.bootstrap[{i}]", addr, need_peer_id=True)
    for i, peer in enumerate(config.network.observers):
        _check_peer_id(f"network.observers[{i}]", peer)
    if not config.api.host:
        raise ConfigError("api.host must be a host name or address such as 127.0.0.1")
    _check_port("api.port", config.api.port, allow_zero=True)
    _check_port("metrics.port", config.metrics.port, allow_zero=True)
    data = config.data
    if sum(bool(v) for v in (data.builtin, data.csv, data.path)) != 1:
        raise ConfigError(
            "data.builtin, data.csv and data.path: set exactly one of them "
            "(a dataset name, a CSV path or a data folder)"
        )
    if data.builtin and data.builtin not in BUILTIN_DATASETS and ":" not in data.builtin:
        raise ConfigError(
            f"data.builtin must be one of {', '.join(BUILTIN_DATASETS)} or a task entry point "
            f"package.module:task, got {data.builtin!r}"
        )
    if data.site_count < 1:
        raise ConfigError(f"data.site_count must be at least 1, got {data.site_count}")
    if not 0 <= data.site_index < data.site_count:
        raise ConfigError(
            f"data.site_index must be between 0 and data.site_count - 1 ({data.site_count - 1}), "
            f"got {data.site_index}"
        )
    training = config.training
    if training.optimizer not in OPTIMIZERS:
        raise ConfigError(
            f"training.optimizer must be one of {', '.join(OPTIMIZERS)}, got {training.optimizer!r}"
        )
    if training.device not in DEVICES:
        raise ConfigError(
            f"training.device must be one of {', '.join(DEVICES)}, got {training.device!r}"
        )
    for key in ("local_epochs", "batch_size", "torch_threads"):
        if getattr(training, key) < 1:
            raise ConfigError(f"training.{key} must be at least 1, got {getattr(training, key)}")
    if not training.learning_rate > 0:
        raise ConfigError(f"training.learning_rate must be positive, got {training.learning_rate}")
    if training.fedprox_mu < 0:
        raise ConfigError(f"training.fedprox_mu must not be negative, got {training.fedprox_mu}")
    if config.storage.keep_last_models < 1:
        raise ConfigError(
            f"storage.keep_last_models must be at least 1, got {config.storage.keep_last_models}"
        )
    if config.log.format not in LOG_FORMATS:
        raise ConfigError(
            f"log.format must be one of {', '.join(LOG_FORMATS)}, got {config.log.format!r}"
        )
    if config.byzantine.behaviour not in BYZANTINE_BEHAVIOURS:
        raise ConfigError(
            "byzantine.behaviour must be empty or one of "
            f"{', '.join(BYZANTINE_BEHAVIOURS[1:])}, got {config.byzantine.behaviour!r}"
        )
    if config.log.level not in ("debug", "info", "warning", "error"):
        raise ConfigError(
            f"log.level must be debug, info, warning or error, got {config.log.level!r}"
        )


def from_dict(raw: dict[str, Any]) -> NodeConfig:
    """Build and validate a config from parsed TOML."""
    config = NodeConfig()
    section_names = {f.name for f in fields(NodeConfig)}
    for table, values in raw.items():
        if table not in section_names:
            raise ConfigError(
                f"{table} is not a config table; known tables are {', '.join(sorted(section_names))}"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"{table} must be a table ([{table}]), got {values!r}")
        section = getattr(config, table)
        known = {f.name for f in fields(section)}
        for key, value in values.items():
            if table == "training" and key in REMOVED_DP_KEYS:
                raise ConfigError(
                    f"training.{key} is no longer a site setting: the genesis privacy policy"
                    " (bcfl genesis --dp-clip/--dp-noise/--dp-epsilon) binds every site, so"
                    " remove the key"
                )
            if key not in known:
                raise ConfigError(
                    f"{table}.{key} is not a known key; known keys are {', '.join(sorted(known))}"
                )
            setattr(section, key, _coerce(f"{table}.{key}", value, getattr(section, key)))
    validate(config)
    return config


def load_config(path: Path) -> NodeConfig:
    """Read and validate `config.toml`; every problem is one `ConfigError` sentence."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist; create it with `bcfl init`"
        ) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML ({exc})") from None
    return from_dict(raw)


def save_config(config: NodeConfig, path: Path) -> None:
    """Validate and write `config.toml` atomically."""
    import tomli_w

    validate(config)
    atomic_write_text(path, tomli_w.dumps(config.to_dict()), mode=0o644)
