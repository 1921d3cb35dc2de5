"""One secure aggregation session run in process: the simulator's, the bench's and the tests'.

`run_session` plays the four steps of learning/secagg/protocol.py among real `Participant`s,
with the "server" only routing messages, and can make participants go silent before sharing
keys (they are left out of U2), after publishing their masked input (they do not reveal), or
before masking (their input is missing and their pair masks are recovered). `secure_mean`
turns model update blobs into the mean of their clipped deltas through such a session, so
`bcfl simulate learning --secure-aggregation` aggregates exactly what a federation under the
protocol would.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from learning.secagg.params import SecAggError, SecAggParams
from learning.secagg.protocol import KeyAdvert, Participant, SealedShares, UnmaskRecord
from learning.secagg.quantize import F64, U32, dequantise_sum
from learning.secagg.unmask import masked_sum, unmask
from learning.secagg.wire import Transcript
from learning.serialize import bytes_to_weights, weights_to_bytes


@dataclass(slots=True)
class SessionResult:
    """Everything an observer of the session sees, and the recovered sum."""

    adverts: dict[int, KeyAdvert]
    shared: frozenset[int]
    masked: dict[int, bytes]
    record: UnmaskRecord
    total: U32
    sealed: list[SealedShares] = field(default_factory=list)

    @property
    def included(self) -> frozenset[int]:
        """The participants whose updates are in the sum."""
        return frozenset(self.masked)


def run_session(
    params: SecAggParams,
    session: bytes,
    vectors: Mapping[int, F64],
    *,
    silent_before_sharing: Collection[int] = (),
    silent_before_masking: Collection[int] = (),
    silent_after_masking: Collection[int] = (),
) -> SessionResult:
    """Run the four steps among `vectors`' owners; return what was published and the sum."""
    if not vectors:
        raise SecAggError("a session needs at least one participant")
    length = {v.size for v in vectors.values()}
    if len(length) != 1:
        raise SecAggError("the participants' updates differ in length")
    size = length.pop()
    parts = {i: Participant(i, params, session) for i in sorted(vectors)}
    adverts = {i: p.advertise() for i, p in parts.items()}
    sharing = [i for i in parts if i not in silent_before_sharing]
    sealed = [m for i in sharing for m in parts[i].share_keys(adverts)]
    shared = frozenset(sharing)
    for i in sharing:
        parts[i].receive_shares(sealed)
    masked = {
        i: parts[i].masked_input(vectors[i], shared)
        for i in sharing
        if i not in silent_before_masking
    }
    reveals = [
        parts[i].reveal(shared, masked)
        for i in sharing
        if i not in silent_before_masking and i not in silent_after_masking
    ]
    record = unmask(params, session, adverts, shared, masked, reveals)
    total = masked_sum(params, session, adverts, shared, masked, record, size)
    return SessionResult(adverts, shared, masked, record, total, sealed)


def flatten(update: bytes) -> F64:
    """An update blob's coordinates as one float64 vector, tensors in name order."""
    weights = bytes_to_weights(update)
    return np.concatenate([weights[k].astype(np.float64).ravel() for k in sorted(weights)])


def unflatten(vector: F64, like: bytes) -> bytes:
    """Put a flat vector back into the tensors of `like` (float32)."""
    weights = bytes_to_weights(like)
    out, pos = {}, 0
    for name in sorted(weights):
        count = weights[name].size
        out[name] = vector[pos : pos + count].reshape(weights[name].shape).astype(np.float32)
        pos += count
    if pos != vector.size:
        raise SecAggError("a flat update does not match the model's tensors")
    return weights_to_bytes(out)


def clip_l2(vector: F64, clip_norm: float | None) -> F64:
    """Scale a delta down to at most `clip_norm` in L2 norm (at the source: nobody else can)."""
    if clip_norm is None:
        return vector
    norm = float(np.linalg.norm(vector))
    return vector * (clip_norm / norm) if norm > clip_norm else vector


def secure_mean(
    params: SecAggParams,
    session: bytes,
    global_blob: bytes,
    updates: Sequence[bytes],
    clip_norm: float | None = None,
    silent_after_masking: Collection[int] = (),
) -> tuple[bytes, SessionResult]:
    """The candidate global + mean of the updates' deltas, computed under secure aggregation.

    Each participant weighs one share: the masks cancel only in an unweighted sum, and a
    self-reported sample count inside a masked vector could not be checked (the plain fedavg
    rule's median weight cap gives equal-sized sites the same weights). `silent_after_masking`
    (positions in `updates`) publish their masked update and then go silent: their self masks
    are recovered from their neighbours' shares.
    """
    vectors = {i: clip_l2(flatten(u), clip_norm) for i, u in enumerate(updates)}
    result = run_session(params, session, vectors, silent_after_masking=silent_after_masking)
    return _mean_blob(params, result.total, len(result.masked), global_blob), result


def _mean_blob(params: SecAggParams, total: U32, count: int, global_blob: bytes) -> bytes:
    mean = dequantise_sum(total, count, params) / count
    return unflatten(flatten(global_blob) + mean, global_blob)


def transcript_of(result: SessionResult) -> Transcript:
    """The public record of a session (what a block would carry next to the masked blobs)."""
    return Transcript(result.adverts, result.shared, result.record)


def recompute_mean(
    params: SecAggParams,
    session: bytes,
    transcript: Transcript,
    masked: Mapping[int, bytes],
    global_blob: bytes,
) -> bytes:
    """What a validator, an observer or `bcfl chain verify` runs: global + the mean, from the
    public transcript and the masked blobs only (same bytes as the aggregator's)."""
    size = flatten(global_blob).size
    total = masked_sum(
        params, session, transcript.adverts, transcript.shared, masked, transcript.record, size
    )
    return _mean_blob(params, total, len(masked), global_blob)
