"""Fixed-point quantisation of an update into the ring Z_(2^b), and back for a sum.

Each coordinate is clipped to [-c, c] and mapped linearly onto the integers [0, Q - 1]
(c the clip range, Q the quantisation range) with deterministic round-to-nearest (ties to
even, `numpy.rint`): the same update always gives the same integers, and the error is at most
c / (Q - 1) per coordinate and site (1.9e-6 at the defaults). Stochastic rounding would be
unbiased but needs a secret random source; at Q = 2^22 the bias is far below the training
noise. A sum of m quantised vectors is at most m (Q - 1), so it is exact mod 2^b as long as
m (Q - 1) < 2^b (`SecAggParams.max_summands`, 1024 at the defaults).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from learning.secagg.params import SecAggError, SecAggParams

U32 = npt.NDArray[np.uint32]
F64 = npt.NDArray[np.float64]


def quantise(vector: F64, params: SecAggParams) -> U32:
    """Clip every coordinate to the clip range and map it onto [0, Q - 1] (uint32)."""
    c = params.clip_range
    scaled = (np.clip(vector.astype(np.float64), -c, c) + c) * ((params.quant_range - 1) / (2 * c))
    return np.rint(scaled).astype(np.uint32)


def dequantise_sum(total: U32, count: int, params: SecAggParams) -> F64:
    """Return the float sum of `count` vectors from the sum of their quantisations."""
    if not 1 <= count <= params.max_summands():
        raise SecAggError(
            f"{count} summands do not fit a quantisation range of {params.quant_range} "
            f"in a modulus of 2^{params.modulus_bits}"
        )
    c = params.clip_range
    return total.astype(np.float64) * (2 * c / (params.quant_range - 1)) - count * c
