"""Update validation: every way an update can be unusable, as a named rejection reason.

A malformed update is the sender's fault, never a crash: `validate_update` returns a short stable
reason (used in rejections, the ledger and metrics) or None when the update may be aggregated.
Reasons: "undecodable", "dtype-mismatch", "missing-tensor", "unexpected-tensor", "shape-mismatch",
"non-finite", "norm-exceeded" (L2 norm of the whole delta above the bound).
"""

from __future__ import annotations

import numpy as np

from learning.serialize import DEFAULT_MAX_BLOB_BYTES, BlobError, Weights, bytes_to_weights
from learning.task import TaskSpec

REASONS = (
    "undecodable",
    "dtype-mismatch",
    "missing-tensor",
    "unexpected-tensor",
    "shape-mismatch",
    "non-finite",
    "norm-exceeded",
)


def update_norm(update: Weights) -> float:
    """Return the L2 norm of an update over all its tensors (float64, name order)."""
    total = 0.0
    for name in sorted(update):
        flat = update[name].astype(np.float64).ravel()
        total += float(np.sum(flat * flat))
    return float(np.sqrt(total))


def validate_update(
    task: TaskSpec,
    global_blob: bytes,
    update_blob: bytes,
    max_norm: float | None = None,
    max_bytes: int = DEFAULT_MAX_BLOB_BYTES,
) -> str | None:
    """Return why an update (delta blob) must be rejected, or None if it is acceptable.

    The expected tensor names and shapes are those of the global model blob (which the node has
    already checked against the task); `task` is accepted so a future check can use the schema.
    """
    del task  # the global blob fixes the architecture
    reference = bytes_to_weights(global_blob)
    try:
        update = bytes_to_weights(update_blob, max_bytes=max_bytes)
    except BlobError as exc:
        return exc.reason
    if set(reference) - set(update):
        return "missing-tensor"
    if set(update) - set(reference):
        return "unexpected-tensor"
    for name, array in reference.items():
        if update[name].shape != array.shape:
            return "shape-mismatch"
    if not all(np.isfinite(update[name]).all() for name in update):
        return "non-finite"
    if max_norm is not None and update_norm(update) > max_norm:
        return "norm-exceeded"
    return None
