"""Model blobs under the daemon's secure aggregation (learning/secagg/chained.py).

- `masked_blob`: a trainer's update blob -> its masked blob (clipped at the source, quantised,
  masked); the update itself never leaves the site.
- `candidate_model`: base + the mean of the included updates, recomputed from the masked blobs
  and the transcript; the safetensors metadata names the transcript's hash
  (`TRANSCRIPT_KEY`), so the model hash a candidate and a block carry commits to the transcript
  and anyone holding the model blob finds the transcript (`transcript_hash_of`).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from safetensors.numpy import save as _st_save

from learning.secagg.chained import Pairing, Transcript, decode_masked, mask_update, masked_total
from learning.secagg.params import SecAggError
from learning.secagg.quantize import dequantise_sum
from learning.secagg.session import clip_l2, flatten
from learning.serialize import bytes_to_weights

TRANSCRIPT_KEY = "bcfl_secagg_transcript"


def masked_blob(
    pairing: Pairing, me: int, private: X25519PrivateKey, update: bytes, clip_norm: float | None
) -> bytes:
    """The masked blob of this trainer's update (an L2 clip first when the genesis sets one)."""
    return mask_update(pairing, me, private, clip_l2(flatten(update), clip_norm))


def candidate_model(
    pairing: Pairing,
    transcript: Transcript,
    transcript_hash: bytes,
    masked: Mapping[int, bytes],
    base: bytes,
) -> bytes:
    """base + mean of the included updates, as a model blob naming its transcript."""
    weights = bytes_to_weights(base)
    size = sum(weights[k].size for k in weights)
    decoded = {u: decode_masked(b, size) for u, b in masked.items()}
    total = masked_total(pairing, transcript, decoded, size)
    mean = dequantise_sum(total, len(decoded), pairing.params) / len(decoded)
    flat = flatten(base) + mean
    out, pos = {}, 0
    for name in sorted(weights):
        count = weights[name].size
        out[name] = np.ascontiguousarray(
            flat[pos : pos + count].reshape(weights[name].shape).astype(np.float32)
        )
        pos += count
    return bytes(_st_save(out, metadata={TRANSCRIPT_KEY: transcript_hash.hex()}))


def transcript_hash_of(model: bytes) -> bytes | None:
    """The transcript hash a model blob names (None: a model built without secure aggregation)."""
    if len(model) < 8:
        return None
    (size,) = struct.unpack("<Q", model[:8])
    if size > min(len(model) - 8, 1 << 24):
        return None
    try:
        header = json.loads(model[8 : 8 + size])
        text = header.get("__metadata__", {}).get(TRANSCRIPT_KEY)
        raw = bytes.fromhex(text) if isinstance(text, str) else b""
    except (ValueError, AttributeError, UnicodeDecodeError):
        return None
    if len(raw) != 32:
        return None
    return raw


def transcript_hash_in_file(path: Path) -> bytes | None:
    """`transcript_hash_of` reading only a model file's header."""
    try:
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return None
            (size,) = struct.unpack("<Q", head)
            return transcript_hash_of(head + f.read(min(size, 1 << 24)))
    except OSError:
        return None


def require_transcript_hash(model: bytes) -> bytes:
    """`transcript_hash_of`, or a clear error."""
    found = transcript_hash_of(model)
    if found is None:
        raise SecAggError("the candidate model names no secure aggregation transcript")
    return found
