"""`bcfl init --home DIR`: create a node home with fresh keys (mode 0600) and a config.

Besides the secrets and `config.toml`, init writes `HOME/node_info.json`: the public facts
the consortium needs to put this node in a genesis (name, peer id, listen address, BLS public
key and proof of possession, roles). It holds no secret and may be mailed around.
"""

from __future__ import annotations

import argparse
import json

from node.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", required=True, help="node home directory to create")
    parser.add_argument("--name", default=None, help="node name (default: the directory name)")
    parser.add_argument("--port", type=int, default=None, help="libp2p TCP port (default 4001)")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument(
        "--roles", default="validator,trainer", help="comma list of validator,trainer,observer"
    )
    parser.add_argument(
        "--bootstrap", action="append", default=[], help="bootstrap multiaddr with /p2p/ID (repeat)"
    )
    parser.add_argument("--api-port", type=int, default=None, help="local HTTP API port")
    parser.add_argument("--metrics-port", type=int, default=None, help="Prometheus port (0: off)")
    parser.add_argument("--dataset", default=None, help="built-in dataset name")
    parser.add_argument("--csv", default=None, help="CSV data file instead of a built-in dataset")
    parser.add_argument("--site-index", type=int, default=None, help="this site's partition index")
    parser.add_argument("--site-count", type=int, default=None, help="number of partitions")
    parser.add_argument("--partition", default=None, help="partitioner (iid, dirichlet:ALPHA, ...)")
    parser.add_argument("--seed", type=int, default=None, help="data partition seed")
    parser.add_argument(
        "--force", action="store_true", help="overwrite an existing config (never keys)"
    )
    parser.add_argument("--json", action="store_true", help="print node_info as JSON")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from node.config import ConfigError, NodeConfig, save_config, validate
    from node.fsutil import atomic_write_text
    from node.home import NodeHome
    from node.keys import (
        ensure_agreement_key,
        generate_keys,
        load_node_identity,
        load_validator_key,
    )

    home = NodeHome(Path(args.home).expanduser().resolve())
    if home.config_path.exists() and not args.force:
        raise UserError(f"{home.config_path} already exists; pass --force to rewrite the config")
    config = NodeConfig()
    config.node.name = args.name or home.root.name
    config.node.roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    port = config.listen_port if args.port is None else args.port
    config.network.listen = f"/ip4/{args.host}/tcp/{port}"
    config.network.bootstrap = list(args.bootstrap)
    if args.api_port is not None:
        config.api.port = args.api_port
    if args.metrics_port is not None:
        config.metrics.port = args.metrics_port
    if args.csv is not None:
        config.data.csv, config.data.builtin = args.csv, ""
    if args.dataset is not None:
        config.data.builtin = args.dataset
    for attr in ("site_index", "site_count", "partition", "seed"):
        if getattr(args, attr) is not None:
            setattr(config.data, attr, getattr(args, attr))
    try:
        validate(config)  # before touching the disk: a typo must not leave half a home behind
    except ConfigError as exc:
        raise UserError(str(exc)) from None

    home.root.mkdir(parents=True, exist_ok=True)
    if home.node_key_path.exists() and home.validator_key_path.exists():
        identity, validator = load_node_identity(home), load_validator_key(home)
    else:
        identity, validator = generate_keys(home)
    save_config(config, home.config_path)
    home.data_dir.mkdir(exist_ok=True)
    info = {
        "name": config.node.name,
        "peer_id": identity.peer_id,
        "listen": config.network.listen,
        "multiaddr": f"{config.network.listen}/p2p/{identity.peer_id}",
        "roles": config.node.roles,
        "bls_public_key": validator.public_key.hex(),
        "bls_proof_of_possession": validator.proof_of_possession().hex(),
        "agreement_public_key": ensure_agreement_key(home).hex(),
    }
    atomic_write_text(home.node_info_path, json.dumps(info, indent=2) + "\n")
    if args.json:
        print(json.dumps(info))
    else:
        print(f"created node home {home.root}")
        print(f"  peer id:  {identity.peer_id}")
        print(f"  address:  {info['multiaddr']}")
        print(f"  BLS key:  {info['bls_public_key']}")
    return 0
