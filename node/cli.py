"""The `bcfl` command line: parses arguments and dispatches to `node.commands.*`.

Sub-command modules are imported lazily so that `bcfl --help` stays fast and a
command that needs torch or libp2p does not pay for the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from node.errors import UserError

# (command path, module under node.commands, one-line help)
COMMANDS: list[tuple[tuple[str, ...], str, str]] = [
    (("simulate", "consensus"), "simulate_consensus", "run the consensus simulator"),
    (("simulate", "learning"), "simulate_learning", "run the in-process federation simulator"),
    (("init",), "init", "create a node home with keys and a config"),
    (("data", "summary"), "data_summary", "a site's feature summary for the genesis"),
    (("genesis",), "genesis", "create a genesis from validators' keys, the task and the rules"),
    (("run",), "run", "run the node daemon"),
    (("status",), "status", "print a running node's status"),
    (("chain", "show"), "chain", "show the chain or one block"),
    (("chain", "verify"), "chain_verify", "replay and verify the chain from genesis"),
    (("model", "export"), "model_export", "export a committed model as safetensors"),
    (("member", "propose"), "member", "propose a member-set change (add, remove, power, rotate)"),
    (("member", "approve"), "member", "approve a pending member-set change"),
    (("member", "list"), "member", "show the member set and pending changes"),
    (("devnet", "up"), "devnet_up", "start a local devnet"),
    (("devnet", "down"), "devnet_down", "stop a local devnet"),
    (("devnet", "status"), "devnet_status", "show a local devnet's nodes"),
    (("report",), "report", "plot a node's chain to a PNG"),
]


def _available(module: str) -> bool:
    return importlib.util.find_spec(f"node.commands.{module}") is not None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bcfl", description=__doc__.splitlines()[0])
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}
    for path, module, help_text in COMMANDS:
        if not _available(module):
            continue
        if len(path) == 1:
            sub = top.add_parser(path[0], help=help_text)
        else:
            if path[0] not in groups:
                group_parser = top.add_parser(path[0], help=f"{path[0]} commands")
                groups[path[0]] = group_parser.add_subparsers(
                    dest=f"{path[0]}_command", required=True, metavar="SUBCOMMAND"
                )
            sub = groups[path[0]].add_parser(path[1], help=help_text)
        sub.set_defaults(_module=module)
        importlib.import_module(f"node.commands.{module}").add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = importlib.import_module(f"node.commands.{args._module}")
    try:
        return int(command.run(args))
    except UserError as exc:
        print(f"bcfl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
