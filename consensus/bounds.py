"""Domain bounds of the integers the codec accepts (docs/ARCHITECTURE.md "Wire and storage
formats"): a value outside them is a peer's lie, never a chain state.

Every other integer is bounded to int64 by the codec itself.
"""

from __future__ import annotations

from consensus.types import (
    EvalReport,
    Genesis,
    Header,
    Height,
    Privacy,
    Round,
    Safeguards,
    UpdateReceipt,
    ValidatorIndex,
)

MAX_HEIGHT = 2**48
MAX_ROUND = 2**32
MAX_MEMBERS = 2**16
MAX_TIME_MS = 2**50
"""Block times in Unix milliseconds end in year ~37 000; bounded so `time + 1` stays encodable."""
MAX_SAMPLES = 2**40
MAX_MODULUS_BITS = 62
"""Secure-aggregation sums stay below 2^62, so they fit int64 on every platform."""

# Domain integers have domain bounds: a value outside them is a peer's lie, never a chain state.
NEWTYPE_BOUNDS: dict[object, tuple[int, int]] = {
    Height: (0, MAX_HEIGHT),
    Round: (-1, MAX_ROUND),
    ValidatorIndex: (0, MAX_MEMBERS - 1),
}
# Plain int fields with tighter bounds than the int64 default.
FIELD_BOUNDS: dict[tuple[type, str], tuple[int, int]] = {
    (Header, "time_ms"): (0, MAX_TIME_MS),
    (Genesis, "genesis_time_ms"): (0, MAX_TIME_MS),
    (UpdateReceipt, "n_samples"): (0, MAX_SAMPLES),
    (EvalReport, "n_samples"): (0, MAX_SAMPLES),
    (Safeguards, "max_samples_per_update"): (1, MAX_SAMPLES),
    (Safeguards, "timestamp_precision_ms"): (0, MAX_TIME_MS),
    (Safeguards, "message_delay_ms"): (0, MAX_TIME_MS),
    (Privacy, "secagg_neighbours"): (0, MAX_MEMBERS),
    (Privacy, "secagg_threshold"): (0, MAX_MEMBERS),
    (Privacy, "secagg_quant_range"): (1, 2**MAX_MODULUS_BITS),
    (Privacy, "secagg_modulus_bits"): (1, MAX_MODULUS_BITS),
}
