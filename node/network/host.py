"""Build the libp2p host: TCP + Noise + Yamux only, a persistent Ed25519 identity, and
connection gating by peer id.

Without `sec_opt` py-libp2p 0.8.1 also offers TLS, secio and *plaintext*, and without
`muxer_opt` it offers Mplex (5-8x slower than Yamux); we name Noise and Yamux explicitly
(docs/libp2p-compat.md).

Gating: py-libp2p's own `ConnectionGate` filters by IP address only. We check the peer id
right after the security handshake, the first point where it is authenticated (Noise), for
both directions (`libp2p_compat.wrap_upgrade_security`): a peer id outside the allow-list
gets its connection closed before any muxer, stream or pubsub state exists, and the refusal
is counted. A peer whose identity key is RSA or secp256k1 (types bcfl does not load,
node/libp2p_extras.py) fails inside the handshake and is refused and counted apart.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Collection

import multiaddr
from libp2p import new_host
from libp2p.abc import IHost, ISecureConn
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.config import ConnectionConfig
from libp2p.peer.id import ID
from libp2p.security.exceptions import HandshakeFailure  # noqa: F401  (re-exported for tests)
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.transport.exceptions import SecurityUpgradeFailure

from node.libp2p_extras import ExtraNotLoaded
from node.network.libp2p_compat import wrap_upgrade_security

logger = logging.getLogger(__name__)


class PeerGate:
    """The allow-list of peer ids that may hold a connection to us (genesis + observers)."""

    def __init__(
        self,
        allowed: Collection[str] | None,
        on_refused: Callable[[ID], None],
        on_unsupported_key: Callable[[], None] = lambda: None,
    ) -> None:
        # None means "allow everyone" (only for tools and tests that have no genesis yet).
        self.allowed: set[str] | None = None if allowed is None else set(allowed)
        self._on_refused = on_refused
        self.on_unsupported_key = on_unsupported_key

    def allows(self, peer_id: ID) -> bool:
        return self.allowed is None or peer_id.to_base58() in self.allowed

    def refuse(self, peer_id: ID) -> None:
        self._on_refused(peer_id)


def install_gate(host: IHost, gate: PeerGate) -> None:
    """Check every secured connection of `host` so that only gated-in peer ids keep one."""

    async def admit(secured: ISecureConn) -> None:
        remote = secured.get_remote_peer()
        if not gate.allows(remote):
            gate.refuse(remote)
            with contextlib.suppress(Exception):
                await secured.close()
            raise SecurityUpgradeFailure(f"peer {remote} is not in the allow-list")

    def unsupported(exc: ExtraNotLoaded) -> SecurityUpgradeFailure:
        gate.on_unsupported_key()
        logger.info("refused a connection: the peer's identity key is of a type bcfl does not load")
        return SecurityUpgradeFailure(f"the peer's identity key is not supported: {exc}")

    wrap_upgrade_security(host, admit, unsupported)


def consortium_connection_config() -> ConnectionConfig:
    """Connection-manager limits for a consortium of known peers, not the public network.

    The defaults keep 100-300 connections and make the auto-connector dial the peerstore
    every few seconds to get there ("below target (200 ...); initiating 187 new dials"), on
    top of the node's own redials of its known peers (`NodeNetwork._dial`). Here nothing
    is ever pruned below 256 connections (4 per peer for 64 sites) and the auto-connector's
    periodic pass is pushed out to once an hour (`min_connections` 0: never "critical").
    """
    return ConnectionConfig(
        max_connections=1024,
        min_connections=0,
        low_watermark=0,
        high_watermark=256,
        auto_connect_interval=3600.0,
    )


def build_host(key_pair: KeyPair, listen: str, gate: PeerGate) -> IHost:
    """A host with Noise + Yamux only and peer-id gating; call `host.run([listen])` to start."""
    noise = NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)
    host = new_host(
        key_pair=key_pair,
        sec_opt={TProtocol(NOISE_PROTOCOL_ID): noise},
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        listen_addrs=[multiaddr.Multiaddr(listen)],
        connection_config=consortium_connection_config(),
    )
    install_gate(host, gate)
    return host
