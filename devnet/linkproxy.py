"""A delaying, lossy TCP proxy on every peer link of a devnet: WAN links without netem.

`bcfl devnet up --link-delay 40ms --link-loss 1%` gives every node a proxy port; the other
nodes' bootstrap addresses name the proxy, not the node, so every libp2p connection (gossip,
blobs, sync) crosses one. The proxy forwards each direction chunk by chunk:

- every chunk is held for half of `--link-delay` (the link's added round-trip time);
- a chunk "lost" (probability `--link-loss`) is held one retransmission timeout more,
  `max(200 ms, 2 x RTT)` as TCP's would, and every later chunk of that direction waits
  behind it (TCP's in-order delivery: head-of-line blocking). TCP never hands a gap to
  the application, so dropping bytes instead would only emulate a broken TCP.

One process serves every link of a devnet (`python -m devnet.linkproxy CONFIG`, CONFIG a
JSON file `{"delay_ms": .., "loss": .., "seed": .., "links": [[listen, target], ...]}`);
the launcher starts it before the nodes and stops it with them.
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
from pathlib import Path
from typing import Any

import trio

MIN_RTO_S = 0.2
CHUNK = 65536


def parse_duration_ms(value: str) -> float:
    """'40ms', '0.04s' or '40' (milliseconds) -> milliseconds, >= 0."""
    text = value.strip().lower()
    try:
        if text.endswith("ms"):
            ms = float(text[:-2])
        elif text.endswith("s"):
            ms = float(text[:-1]) * 1000.0
        else:
            ms = float(text)
    except ValueError:
        raise ValueError(f"a duration like 40ms or 0.04s, got {value!r}") from None
    if ms < 0:
        raise ValueError(f"a duration must not be negative, got {value!r}")
    return ms


def parse_percent(value: str) -> float:
    """'1%' or '0.01' -> a fraction in [0, 1)."""
    text = value.strip()
    try:
        fraction = float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError(f"a loss like 1% or 0.01, got {value!r}") from None
    if not 0 <= fraction < 1:
        raise ValueError(f"a loss must be in [0%, 100%), got {value!r}")
    return fraction


LINKS_FILE = "links.json"


def write_links(
    directory: Path,
    delay_ms: float,
    loss: float,
    seed: int,
    infos: list[dict[str, Any]],
    proxy_ports: list[int],
) -> dict[str, str]:
    """With WAN links, write the proxy's config; return each node's real -> proxied multiaddr.

    `infos` are the nodes' `node_info.json` contents, `proxy_ports` one free port per node
    (none: no WAN links, no config).
    """
    path = directory / LINKS_FILE
    path.unlink(missing_ok=True)
    if not proxy_ports:
        return {}
    mapping, links = {}, []
    for info, proxy in zip(infos, proxy_ports, strict=True):
        parts = info["multiaddr"].split("/")  # /ip4/127.0.0.1/tcp/PORT/p2p/ID
        links.append([proxy, int(parts[4])])
        parts[4] = str(proxy)
        mapping[info["multiaddr"]] = "/".join(parts)
    config = {"delay_ms": delay_ms, "loss": loss, "seed": seed, "links": links}
    path.write_text(json.dumps(config, indent=2))
    return mapping


class Link:
    """The delay and loss of one direction of one connection."""

    def __init__(self, delay_ms: float, loss: float, rng: random.Random) -> None:
        self.one_way = delay_ms / 2000.0
        self.rto = max(MIN_RTO_S, 2 * delay_ms / 1000.0)
        self.loss = loss
        self.rng = rng
        self.last_due = 0.0

    def due(self, now: float) -> float:
        """When a chunk read now is handed on (in order after every earlier chunk)."""
        at = now + self.one_way
        if self.loss and self.rng.random() < self.loss:
            at += self.rto
        self.last_due = max(self.last_due, at)
        return self.last_due


async def _pump(
    source: trio.SocketStream, sink: trio.SocketStream, link: Link, done: trio.CancelScope
) -> None:
    send, receive = trio.open_memory_channel[tuple[float, bytes]](4096)

    async def reader() -> None:
        async with send:
            while True:
                try:
                    data = await source.receive_some(CHUNK)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                if not data:
                    return
                await send.send((link.due(trio.current_time()), data))

    async def writer() -> None:
        async with receive:
            async for due, data in receive:
                await trio.sleep_until(due)
                try:
                    await sink.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
        with trio.move_on_after(1):
            with contextlib.suppress(
                trio.BrokenResourceError, trio.ClosedResourceError, AttributeError
            ):
                await sink.send_eof()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        nursery.start_soon(writer)
    done.cancel()  # one direction ended: end the connection (libp2p does not half-close)


async def _serve(
    listen: int, target: int, delay_ms: float, loss: float, rng: random.Random
) -> None:
    async def handle(client: trio.SocketStream) -> None:
        try:
            upstream = await trio.open_tcp_stream("127.0.0.1", target)
        except OSError:
            await client.aclose()  # the node is not up yet: refuse like it would
            return
        async with upstream:
            with trio.CancelScope() as done:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_pump, client, upstream, Link(delay_ms, loss, rng), done)
                    nursery.start_soon(_pump, upstream, client, Link(delay_ms, loss, rng), done)

    await trio.serve_tcp(handle, listen, host="127.0.0.1")


async def serve(config: dict[str, object]) -> None:
    """Serve every link of `config` until cancelled."""
    rng = random.Random(int(config.get("seed", 0)))  # type: ignore[call-overload]
    delay_ms = float(config["delay_ms"])  # type: ignore[arg-type]
    loss = float(config["loss"])  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        for listen, target in config["links"]:  # type: ignore[attr-defined]
            nursery.start_soon(_serve, int(listen), int(target), delay_ms, loss, rng)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m devnet.linkproxy CONFIG.json", file=sys.stderr)
        return 2
    config = json.loads(Path(args[0]).read_text())
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(serve, config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
