"""A py-libp2p 0.8.1 node with the *stock* Pubsub (no guard), for the crash reproduction.

Run as a script: prints its multiaddr, then serves until killed. The malformed-frame test
sends it one bad RPC frame and expects this process to die, which is why the node itself
uses `GuardedPubsub`.
"""

from __future__ import annotations

import os
import sys

import multiaddr
import trio
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V12, GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service

from node.keys import NodeIdentity
from node.network.host import PeerGate, build_host


async def main() -> None:
    host = build_host(
        NodeIdentity(os.urandom(32)).key_pair(), "/ip4/127.0.0.1/tcp/0", PeerGate(None, print)
    )
    router = GossipSub([PROTOCOL_ID_V12], 6, 4, 12, heartbeat_interval=1)
    pubsub = Pubsub(host, router)
    async with (
        host.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]),
        background_trio_service(pubsub),
        background_trio_service(router),
    ):
        await pubsub.subscribe("bcfl/test/consensus")
        print(f"{host.get_addrs()[0]}", flush=True)
        await trio.sleep_forever()


if __name__ == "__main__":
    sys.exit(trio.run(main))
