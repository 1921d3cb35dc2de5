"""Secure aggregation of model updates: Bonawitz et al. 2017 with SecAgg+ neighbourhoods.

Modules: params (public parameters), quantize (fixed point), primitives (X25519, HKDF, ChaCha20
from `cryptography`), shamir (secret sharing), graph (who pairs with whom), protocol (a
participant's side), unmask (recovery and the recomputation anyone can run), session (one
in-process session), wire (the messages and the public transcript as strict CBOR). The protocol is described in learning/secagg/protocol.py and
docs/ARCHITECTURE.md "Secure aggregation"; what it hides from whom in docs/THREAT-MODEL.md.
"""

from learning.secagg.params import SecAggError, SecAggParams, secagg_plus_degree
from learning.secagg.session import (
    SessionResult,
    recompute_mean,
    run_session,
    secure_mean,
    transcript_of,
)
from learning.secagg.wire import Transcript, decode_transcript, encode_transcript

__all__ = [
    "SecAggError",
    "SecAggParams",
    "SessionResult",
    "Transcript",
    "decode_transcript",
    "encode_transcript",
    "recompute_mean",
    "run_session",
    "secagg_plus_degree",
    "secure_mean",
    "transcript_of",
]
