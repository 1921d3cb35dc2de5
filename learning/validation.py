"""Update validation: every way an update can be unusable, as a named rejection reason.

A malformed update is the sender's fault, never a crash: `validate_update` returns a short stable
reason (used in rejections, the ledger and metrics) or None when the update may be aggregated.
Reasons: "undecodable", "dtype-mismatch", "missing-tensor", "unexpected-tensor", "shape-mismatch",
"non-finite", "norm-exceeded" (L2 norm of the whole delta above the bound).
"""

from __future__ import annotations

import numpy as np

from learning.serialize import DEFAULT_MAX_BLOB_BYTES, Blob, BlobError, TensorView, Weights
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
CHUNK = 1 << 20  # coordinates read at a time


def update_norm(update: Weights) -> float:
    """Return the L2 norm of an update over all its tensors (float64, name order)."""
    total = 0.0
    for name in sorted(update):
        flat = update[name].astype(np.float64).ravel()
        total += float(np.sum(flat * flat))
    return float(np.sqrt(total))


def validate_update(
    task: TaskSpec,
    global_blob: Blob,
    update_blob: Blob,
    max_norm: float | None = None,
    max_bytes: int = DEFAULT_MAX_BLOB_BYTES,
) -> str | None:
    """Return why an update (delta blob) must be rejected, or None if it is acceptable.

    The expected tensor names and shapes are those of the global model blob (which the node has
    already checked against the task); `task` is accepted so a future check can use the schema.
    The update is read a chunk at a time, so a large model is never held twice.
    """
    del task  # the global blob fixes the architecture
    reference = TensorView(global_blob)
    try:
        update = TensorView(update_blob, max_bytes=max_bytes)
    except BlobError as exc:
        return exc.reason
    if set(reference.names) - set(update.names):
        return "missing-tensor"
    if set(update.names) - set(reference.names):
        return "unexpected-tensor"
    for name in reference.names:
        if update.shape(name) != reference.shape(name):
            return "shape-mismatch"
    total = 0.0
    for name, start, stop in update.spans(CHUNK):
        flat = update.read(name, start, stop).astype(np.float64)
        if not np.isfinite(flat).all():
            return "non-finite"
        total += float(np.sum(flat * flat))
    if max_norm is not None and float(np.sqrt(total)) > max_norm:
        return "norm-exceeded"
    return None
