"""The cryptographic primitives of secure aggregation, all from `cryptography` (never our own).

- X25519 key agreement (RFC 7748) for the pairwise mask seeds and the share-encryption keys;
- HKDF-SHA256 (RFC 5869) to turn a shared secret into a 32-byte key bound to the session
  (chain id, height, parent block) and to the ordered pair of participants;
- ChaCha20 (RFC 8439) as the PRG: the keystream of a 32-byte seed, read as little-endian uint32,
  is the mask vector (each seed is used for one vector only, so the nonce is fixed at zero);
- ChaCha20-Poly1305 to encrypt a participant's shares to each neighbour (one key per ordered
  pair and session, so the fixed nonce never repeats under one key).
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from learning.secagg.params import SecAggError

KEY_BYTES = 32
_ZERO_NONCE_16 = bytes(16)
_ZERO_NONCE_12 = bytes(12)
_PRG_STEP = 1 << 22  # coordinates of keystream per call, to bound the zero buffer


def session_id(chain_id: str, height: int, parent_hash: bytes) -> bytes:
    """The public session of one height: every derived key and the neighbour graph depend on it."""
    return hashlib.sha256(
        b"bcfl-secagg-session\x00"
        + chain_id.encode()
        + b"\x00"
        + height.to_bytes(8, "big")
        + parent_hash
    ).digest()


def new_private_key() -> X25519PrivateKey:
    """A fresh X25519 private key from the OS's CSPRNG."""
    return X25519PrivateKey.generate()


def private_bytes(key: X25519PrivateKey) -> bytes:
    """The raw 32 bytes of a private key (what is Shamir-shared)."""
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def public_bytes(key: X25519PrivateKey) -> bytes:
    """The raw 32 bytes of the public key of a private key."""
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_private(raw: bytes) -> X25519PrivateKey:
    """A private key from its raw bytes."""
    if len(raw) != KEY_BYTES:
        raise SecAggError(f"an X25519 private key is {KEY_BYTES} bytes, got {len(raw)}")
    return X25519PrivateKey.from_private_bytes(raw)


def agree(private: X25519PrivateKey, peer_public: bytes, info: bytes) -> bytes:
    """HKDF-SHA256 of the X25519 shared secret with `info`: a 32-byte key."""
    if len(peer_public) != KEY_BYTES:
        raise SecAggError(f"an X25519 public key is {KEY_BYTES} bytes, got {len(peer_public)}")
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError as exc:  # a low-order point gives the all-zero secret
        raise SecAggError("an X25519 public key is a low-order point") from exc
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(shared)


def pair_info(session: bytes, purpose: bytes, first: int, second: int) -> bytes:
    """The HKDF info binding a key to its session, purpose and ordered pair of participants."""
    return (
        b"bcfl-secagg-"
        + purpose
        + b"\x00"
        + session
        + first.to_bytes(4, "big")
        + (second.to_bytes(4, "big"))
    )


def mask_vector(seed: bytes, length: int, modulus_bits: int = 32) -> npt.NDArray[np.uint32]:
    """The PRG: `length` uint32 values of ChaCha20's keystream under `seed`, reduced mod 2^b."""
    if len(seed) != KEY_BYTES:
        raise SecAggError(f"a mask seed is {KEY_BYTES} bytes, got {len(seed)}")
    encryptor = Cipher(algorithms.ChaCha20(seed, _ZERO_NONCE_16), mode=None).encryptor()
    out = np.empty(length, dtype=np.uint32)
    for start in range(0, length, _PRG_STEP):
        stop = min(length, start + _PRG_STEP)
        out[start:stop] = np.frombuffer(encryptor.update(bytes(4 * (stop - start))), dtype="<u4")
    if modulus_bits < 32:
        out &= np.uint32((1 << modulus_bits) - 1)
    return out


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate under a single-use key (ChaCha20-Poly1305)."""
    return ChaCha20Poly1305(key).encrypt(_ZERO_NONCE_12, plaintext, aad)


def open_sealed(key: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """Decrypt what `seal` made; a clear error when it was not made under this key."""
    try:
        return ChaCha20Poly1305(key).decrypt(_ZERO_NONCE_12, ciphertext, aad)
    except InvalidTag as exc:
        raise SecAggError("an encrypted share does not open under the pair's key") from exc
