"""Benchmark of one direct message: the CPU a 300-byte message costs its sender and receiver.

Two `NodeNetwork`s on the direct transport (node/network/direct.py) in one process, on
127.0.0.1, with real Noise and Yamux: a sends `--messages` messages of `--size` bytes to b, one
at a time (the next leaves once b has delivered the last, as votes of a height are spaced), and
the process's CPU time is divided by the count. Each message a devnet node sends to one
peer costs this, the sender's half and the receiver's together, and a node sends and receives
about 4(n - 1) a height each way at n nodes; the figure isolates the network layer's share of
`bench_scale.py`'s CPU per height from the noise of a whole devnet. Prints
`cpu_us_per_message` and `wall_us_per_message` (median of `--repeat` runs, after a warm-up of
300 messages each).

    python bench/bench_direct.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import trio  # noqa: E402

from node.home import NodeHome  # noqa: E402
from node.keys import NodeIdentity  # noqa: E402
from node.network import NodeNetwork, Topic  # noqa: E402
from node.network.settings import NetworkSettings  # noqa: E402
from node.store import ChainStore  # noqa: E402

WARM_UP = 300


def _net(base: Path, name: str) -> NodeNetwork:
    settings = NetworkSettings(
        chain_id="bench", transport="direct", rate_per_peer=1e9, burst_per_peer=1e9
    )
    store = ChainStore.open(NodeHome(base / name))
    return NodeNetwork(NodeIdentity(os.urandom(32)).key_pair(), settings, store)


async def _measure(base: Path, messages: int, size: int, repeat: int) -> list[tuple[float, float]]:
    sender, receiver = _net(base, "a"), _net(base, "b")
    delivered = [trio.Event()]

    async def handle(data: bytes, origin: str) -> None:
        delivered[0].set()

    receiver.subscribe(Topic.CONSENSUS, handle)
    runs: list[tuple[float, float]] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(sender.run)
        await nursery.start(receiver.run)
        await receiver.connect(sender.listen_addrs[0])
        with trio.fail_after(15):
            while not sender.peers():
                await trio.sleep(0.01)
        for run in range(repeat + 1):
            count = WARM_UP if run == 0 else messages
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(count):
                delivered[0] = trio.Event()
                await sender.publish(Topic.CONSENSUS, os.urandom(size))
                with trio.fail_after(10):  # a message lost is an error, not a slow figure
                    await delivered[0].wait()
            if run:
                runs.append((time.process_time() - cpu, time.perf_counter() - wall))
        nursery.cancel_scope.cancel()
    return runs


def run(messages: int, size: int, repeat: int) -> dict[str, Any]:
    """The benchmark's figures (see the module text)."""
    with tempfile.TemporaryDirectory(prefix="bcfl-bench-direct-") as tmp:
        runs = trio.run(_measure, Path(tmp), messages, size, repeat)
    return {
        "messages": messages,
        "size_bytes": size,
        "repeat": repeat,
        "cpu_us_per_message": 1e6 * statistics.median(c for c, _ in runs) / messages,
        "wall_us_per_message": 1e6 * statistics.median(w for _, w in runs) / messages,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--size", type=int, default=300, help="payload bytes (a vote: ~300)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.repeat < 1 or not 1 <= args.size <= 64 * 1024:
        parser.error("--messages and --repeat must be at least 1, --size 1..65536")
    result = run(args.messages, args.size, args.repeat)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['messages']} messages of {result['size_bytes']} bytes: "
            f"{result['cpu_us_per_message']:.1f} us CPU, "
            f"{result['wall_us_per_message']:.1f} us wall per message (median of {args.repeat})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
