"""`bcfl member propose|approve|list`: change the consortium's member set on the running chain.

- `bcfl member propose add NODE_INFO.json [--power P]`: a new site joins (its `node_info.json`
  from `bcfl init`, BLS key with proof of possession included);
- `bcfl member propose remove NAME`, `bcfl member propose power NAME P`;
- `bcfl member propose rotate NAME NODE_INFO.json`: NAME takes the BLS key and peer id of a
  new node_info (a compromised key, a moved host);
- `bcfl member approve ID` (a unique prefix of the id is enough);
- `bcfl member list [--json]`: the current set with power, pending proposals with their
  approvals, and the changes scheduled with their activation height.

Each talks to the local node of `--home` (default `$BCFL_HOME`, else the current directory)
through its HTTP API on 127.0.0.1, which signs with the node's member key and gossips the
transaction; a change takes effect two heights after the block that carries approvals of more
than 2/3 of the power (docs/ARCHITECTURE.md "Governance"). Every refusal is one sentence.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from node.errors import UserError

TIMEOUT_S = 10.0
MAX_BODY = 1024 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--home",
        type=Path,
        default=Path(os.environ.get("BCFL_HOME", ".")),
        help="node home directory (default $BCFL_HOME or .)",
    )
    parser.add_argument("--json", action="store_true", help="print the node's JSON answer")
    command = parser.prog.split()[-1]
    if command == "propose":
        kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
        add = kinds.add_parser("add", help="add a site from its node_info.json")
        add.add_argument("node_info", type=Path, metavar="NODE_INFO.json")
        add.add_argument("--power", type=int, default=None, help="voting power (default 1)")
        remove = kinds.add_parser("remove", help="remove a member")
        remove.add_argument("name", metavar="NAME")
        power = kinds.add_parser("power", help="change a member's voting power")
        power.add_argument("name", metavar="NAME")
        power.add_argument("power", type=int, metavar="P")
        rotate = kinds.add_parser("rotate", help="give a member a new BLS key and peer id")
        rotate.add_argument("name", metavar="NAME")
        rotate.add_argument("node_info", type=Path, metavar="NODE_INFO.json")
    elif command == "approve":
        parser.add_argument("proposal_id", metavar="ID", help="the proposal id (or a prefix)")


def _node_info_json(path: Path) -> dict[str, Any]:
    from node.nodeinfo import read_node_info

    info = read_node_info(path)  # one sentence naming the file and field when it is bad
    return {
        "name": info["name"],
        "peer_id": info["peer_id"],
        "roles": info["roles"],
        "bls_public_key": bytes(info["bls_public_key"]).hex(),
        "bls_proof_of_possession": bytes(info["bls_proof_of_possession"]).hex(),
        "agreement_public_key": bytes(info["agreement_public_key"]).hex(),
    }


def request(home: Path, path: str, body: dict[str, Any] | None = None) -> Any:
    """GET (or POST `body` to) `path` on the node of `home`; raise UserError with the node's
    sentence when it refuses, or when nothing answers."""
    import urllib.error
    import urllib.request

    from node.commands.status import api_url

    url = api_url(home, path)
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(  # noqa: S310 - the node's loopback API
        url, data=data, headers={"Content-Type": "application/json"} if data else {}
    )
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as response:  # noqa: S310
            raw = response.read(MAX_BODY + 1)
    except urllib.error.HTTPError as exc:
        try:
            sentence = json.loads(exc.read(MAX_BODY)).get("error", f"HTTP {exc.code}")
        except ValueError:
            sentence = f"the node answered HTTP {exc.code}"
        raise UserError(str(sentence)) from None
    except (urllib.error.URLError, OSError):
        raise UserError(
            f"no node answers at {url}; start it with `bcfl run --home {home}`"
        ) from None
    try:
        return json.loads(raw)
    except ValueError:
        raise UserError(f"the node at {url} answered something that is not JSON") from None


def format_members(view: dict[str, Any]) -> str:
    """The human table of `GET /members`."""
    lines = [f"member set at height {view['height']} (total power {view['total_power']})"]
    for m in view["members"]:
        state = "" if m["current"] else "  (removed)"
        roles = ",".join(m["roles"]) or "-"
        lines.append(f"  {m['index']:>3} {m['name']:<20} power {m['power']:<4} {roles}{state}")
    lines.append("pending proposals:" if view["pending"] else "pending proposals: none")
    for p in view["pending"]:
        who = ", ".join(p["approvers"])
        lines.append(
            f"  {p['id'][:16]} {p['kind']} {p['target']}: approved by {who} "
            f"({p['approved_power']} of {view['total_power']} power)"
        )
    for s in view["scheduled"]:
        lines.append(f"  scheduled: {s['kind']} {s['target']} from height {s['activation']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    command = getattr(args, "member_command", None)
    if command == "list":
        view = request(args.home, "/members")
        print(json.dumps(view) if args.json else format_members(view))
        return 0
    if command == "approve":
        answer = request(args.home, "/members/approve", {"proposal_id": args.proposal_id})
        print(json.dumps(answer) if args.json else f"approved {answer['approved'][:16]}")
        return 0
    body: dict[str, Any] = {"kind": args.kind}
    if args.kind == "add":
        if args.power is not None and args.power < 1:
            raise UserError(f"--power {args.power}: a power must be an integer of at least 1")
        body.update(node_info=_node_info_json(args.node_info), power=args.power)
    elif args.kind == "rotate":
        body.update(target=args.name, node_info=_node_info_json(args.node_info))
    elif args.kind == "power":
        body.update(target=args.name, power=args.power)
    else:
        body.update(target=args.name)
    answer = request(args.home, "/members/propose", body)
    if args.json:
        print(json.dumps(answer))
    else:
        print(f"proposed {answer['kind']} {answer['target']}: id {answer['proposal_id']}")
        print("  members approve it with `bcfl member approve ID`")
    return 0
