"""The node's long-lived secrets, kept in the node home (layout: node/home.py)::

    HOME/keys/node_key          32-byte Ed25519 seed: the libp2p identity (peer id), mode 0600
    HOME/keys/validator_key     32-byte seed for blspy PopSchemeMPL.key_gen, mode 0600
    HOME/keys/agreement_key     32-byte X25519 private key (secure aggregation), mode 0600

Key files hold raw seeds, not serialised key objects: 32 bytes are easy to check, back up
and audit. A key file that is readable by group or others, or that has the wrong size, is
refused with one sentence saying how to fix it (an operator copying keys between machines
is the usual cause), never silently used.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from node.errors import UserError
from node.fsutil import atomic_write
from node.home import NodeHome

SEED_SIZE = 32
KEY_FILE_MODE = 0o600


class KeyFileError(UserError):
    """A key file is missing, has the wrong size, or is readable by others."""


@dataclass(frozen=True, slots=True)
class ValidatorKey:
    """A BLS12-381 key (proof-of-possession scheme) derived from a 32-byte seed."""

    seed: bytes

    def secret_key(self):  # noqa: ANN201 - blspy has no type stubs
        """The blspy `PrivateKey` (derived on demand; keep it out of logs)."""
        from blspy import PopSchemeMPL

        return PopSchemeMPL.key_gen(self.seed)

    @property
    def public_key(self) -> bytes:
        """48-byte compressed G1 public key."""
        return bytes(self.secret_key().get_g1())

    def proof_of_possession(self) -> bytes:
        """96-byte proof of possession for the genesis (defeats rogue-key attacks)."""
        from blspy import PopSchemeMPL

        return bytes(PopSchemeMPL.pop_prove(self.secret_key()))


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """The libp2p Ed25519 identity derived from a 32-byte seed; the peer id is stable."""

    seed: bytes

    def key_pair(self):  # noqa: ANN201 - libp2p KeyPair
        """The libp2p `KeyPair` for `new_host(key_pair=...)`."""
        from libp2p.crypto.ed25519 import create_new_key_pair

        return create_new_key_pair(self.seed)

    @property
    def peer_id(self) -> str:
        """The base58 peer id (12D3KooW...)."""
        from libp2p.peer.id import ID

        return ID.from_pubkey(self.key_pair().public_key).to_base58()


def write_seed(path: Path, seed: bytes) -> None:
    """Write a 32-byte seed atomically with mode 0600."""
    if len(seed) != SEED_SIZE:
        raise ValueError(f"a key seed is {SEED_SIZE} bytes, got {len(seed)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    atomic_write(path, seed, mode=KEY_FILE_MODE)


def read_seed(path: Path) -> bytes:
    """Read a 32-byte seed, refusing a missing, mis-sized or group/world-readable file."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise KeyFileError(
            f"key file {path} does not exist; create the node home with `bcfl init --home DIR`"
        ) from None
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise KeyFileError(
            f"key file {path} has mode {stat.S_IMODE(info.st_mode):04o} but must be 0600; "
            f"fix it with `chmod 600 {path}`"
        )
    seed = path.read_bytes()
    if len(seed) != SEED_SIZE:
        raise KeyFileError(
            f"key file {path} holds {len(seed)} bytes but a key seed is {SEED_SIZE} bytes; "
            "restore it from a backup"
        )
    return seed


def generate_keys(home: NodeHome, *, overwrite: bool = False) -> tuple[NodeIdentity, ValidatorKey]:
    """Create both key files with fresh randomness (refuses to overwrite existing keys)."""
    for path in (home.node_key_path, home.validator_key_path):
        if path.exists() and not overwrite:
            raise KeyFileError(f"key file {path} already exists; refusing to overwrite a key")
    node_seed, validator_seed = os.urandom(SEED_SIZE), os.urandom(SEED_SIZE)
    write_seed(home.node_key_path, node_seed)
    write_seed(home.validator_key_path, validator_seed)
    ensure_agreement_key(home)
    return NodeIdentity(node_seed), ValidatorKey(validator_seed)


def ensure_agreement_key(home: NodeHome) -> bytes:
    """The X25519 public key of this home's agreement key, creating the key file (0600, fresh
    from the OS CSPRNG) when a home made before secure aggregation has none."""
    from learning.secagg.primitives import new_private_key, private_bytes, public_bytes

    path = home.agreement_key_path
    if not path.exists():
        write_seed(path, private_bytes(new_private_key()))
    return public_bytes(load_agreement_key(home))


def load_agreement_key(home: NodeHome):  # noqa: ANN201 - cryptography's X25519PrivateKey
    """The X25519 private key of secure aggregation (docs/ARCHITECTURE.md)."""
    from learning.secagg.primitives import load_private

    return load_private(read_seed(home.agreement_key_path))


def load_node_identity(home: NodeHome) -> NodeIdentity:
    """Load the libp2p identity of a node home."""
    return NodeIdentity(read_seed(home.node_key_path))


def load_validator_key(home: NodeHome) -> ValidatorKey:
    """Load the BLS validator key of a node home."""
    return ValidatorKey(read_seed(home.validator_key_path))
