"""`bcfl status --home DIR [--json]`: ask the running node of a home for its status.

GETs `/status` from the node's local HTTP API (`[api]` host and port of `HOME/config.toml`)
and prints a short table: height, round and step, peers, the last model metric, sync state,
roles, chain and peer id. When nothing answers, it says the node is not running and exits 1
(a state, not a usage error, so scripts can poll it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from node.errors import UserError

TIMEOUT_S = 5.0
MAX_BODY = 1024 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", required=True, type=Path, help="node home directory")
    parser.add_argument("--json", action="store_true", help="print the node's JSON as is")


def api_url(home: Path, path: str) -> str:
    """The URL of `path` on the local API of the node at `home` (from its config)."""
    from node.config import load_config
    from node.home import NodeHome

    node_home = NodeHome(home)
    if not node_home.config_path.is_file():
        raise UserError(f"{home} is not a node home (no config.toml); create it with `bcfl init`")
    config = load_config(node_home.config_path)
    host = config.api.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.api.port}{path}"


def fetch_json(url: str) -> Any:
    """GET a JSON document; raises ConnectionError when nothing answers, ValueError on junk."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310 - loopback
            body = response.read(MAX_BODY + 1)
    except urllib.error.HTTPError as exc:
        raise ValueError(f"{url} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ConnectionError(str(getattr(exc, "reason", exc))) from None
    if len(body) > MAX_BODY:
        raise ValueError(f"{url} answered more than {MAX_BODY} bytes")
    return json.loads(body)


def _metric(value: Any) -> str:
    if isinstance(value, dict) and "name" in value and isinstance(value.get("value"), int | float):
        return f"{value['name']} {value['value']:.4f}"
    return "-"


def _privacy(value: Any) -> str:
    if not isinstance(value, dict) or not isinstance(value.get("epsilon_spent"), int | float):
        return "differential privacy off"
    budget = value.get("epsilon_budget") or "no budget"
    text = f"epsilon {value['epsilon_spent']:.4f} of {budget} (delta {value.get('delta')})"
    if value.get("budget_exhausted"):
        text += ": budget spent, this site no longer contributes"
    return text


def format_status(status: dict[str, Any]) -> str:
    """The human table of a `/status` object."""
    peers = status.get("peers")
    rows = [
        ("node", status.get("name", "-")),
        ("chain", status.get("chain_id", "-")),
        ("height", status.get("height", "-")),
        ("round / step", f"{status.get('round', '-')} / {status.get('step', '-')}"),
        ("peers", len(peers) if isinstance(peers, list) else peers),
        ("last metric", _metric(status.get("last_metric"))),
        ("sync", status.get("sync_state", "-")),
        ("roles", ",".join(status.get("roles") or []) or "-"),
        ("peer id", status.get("peer_id", "-")),
        ("privacy", _privacy(status.get("privacy"))),
    ]
    return "\n".join(f"{key:<13} {value}" for key, value in rows)


def run(args: argparse.Namespace) -> int:
    url = api_url(args.home, "/status")
    try:
        status = fetch_json(url)
    except ConnectionError as exc:
        print(
            f"bcfl: the node of {args.home} is not running (nothing answers at {url}: {exc}); "
            f"start it with `bcfl run --home {args.home}`",
            file=sys.stderr,
        )
        return 1
    except ValueError as exc:
        print(f"bcfl: the node's API gave no usable status: {exc}", file=sys.stderr)
        return 1
    if not isinstance(status, dict):
        print(f"bcfl: {url} did not answer a JSON object", file=sys.stderr)
        return 1
    print(json.dumps(status, sort_keys=True) if args.json else format_status(status))
    return 0
