"""`node_info.json`: the public facts of one site that the genesis maker collects.

`bcfl init` writes `HOME/node_info.json` (name, peer id, roles, BLS public key and proof of
possession, optionally a multiaddr); `bcfl genesis` reads one per member with
`read_node_info`, which checks everything but the proof of possession itself (that needs the
BLS library: `node.genesis_files.build_genesis` does it). A bad file is a `GenesisFileError`:
one sentence naming the file and the field.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from consensus.types import PUBLIC_KEY_SIZE, ROLE_TRAINER, ROLE_VALIDATOR, ROLES, SIGNATURE_SIZE
from node.genesis_files import GenesisFileError

MAX_NODE_INFO_BYTES = 64 * 1024
_PEER_ID = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{20,100}$")  # base58


def read_node_info(path: Path | str) -> dict[str, Any]:
    """Read and check one site's `node_info.json`; raise GenesisFileError naming the problem.

    Returns {name, peer_id, roles (sorted list), bls_public_key (bytes), bls_proof_of_possession
    (bytes), multiaddr (str or None), agreement_public_key (X25519, bytes; empty when absent)}. The proof of possession itself is checked by
    `build_genesis` (it needs the BLS library).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise GenesisFileError(f"cannot read node info {path}: {exc.strerror}") from None
    if len(raw) > MAX_NODE_INFO_BYTES:
        raise GenesisFileError(f"node info {path} is larger than {MAX_NODE_INFO_BYTES} bytes")
    try:
        info = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise GenesisFileError(
            f"node info {path} is not JSON; use the node_info.json that `bcfl init` wrote"
        ) from None
    if not isinstance(info, dict):
        raise GenesisFileError(f"node info {path} must be a JSON object")

    def text(key: str) -> str:
        value = info.get(key)
        if not isinstance(value, str) or not value.strip():
            raise GenesisFileError(f"node info {path} lacks a non-empty string {key!r}")
        return value.strip()

    def hex_bytes(key: str, size: int) -> bytes:
        value = text(key)
        try:
            data = bytes.fromhex(value)
        except ValueError:
            raise GenesisFileError(f"node info {path}: {key!r} is not hexadecimal") from None
        if len(data) != size:
            raise GenesisFileError(
                f"node info {path}: {key!r} is {len(data)} bytes but must be {size}"
            )
        return data

    name, peer_id = text("name"), text("peer_id")
    if not _PEER_ID.match(peer_id):
        raise GenesisFileError(f"node info {path}: {peer_id!r} is not a libp2p peer id")
    roles = info.get("roles", [ROLE_VALIDATOR, ROLE_TRAINER])
    if (
        not isinstance(roles, list)
        or not roles
        or not all(isinstance(r, str) and r in ROLES for r in roles)
    ):
        raise GenesisFileError(
            f"node info {path}: 'roles' must be a non-empty list of {', '.join(sorted(ROLES))}"
        )
    multiaddr = info.get("multiaddr")
    agreement = hex_bytes("agreement_public_key", 32) if "agreement_public_key" in info else b""
    return {
        "name": name,
        "peer_id": peer_id,
        "roles": sorted(set(roles)),
        "bls_public_key": hex_bytes("bls_public_key", PUBLIC_KEY_SIZE),
        "bls_proof_of_possession": hex_bytes("bls_proof_of_possession", SIGNATURE_SIZE),
        "multiaddr": multiaddr if isinstance(multiaddr, str) else None,
        "agreement_public_key": agreement,
    }
