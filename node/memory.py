"""Keeping a daemon's resident memory close to what it holds live.

glibc serves an allocation of at least M_MMAP_THRESHOLD bytes with its own mmap, returned to
the system on free; smaller ones come from heaps that keep freed memory for reuse. By default
the threshold adapts upward (up to 32 MB on 64-bit) each time a mapped chunk is freed, so after
the first model a daemon's multi-megabyte tensor and blob buffers move onto the heaps, and the
memory of one phase (training) is still resident when the next (aggregation, evaluation) adds
its own. Fixing the threshold at 1 MiB keeps every large buffer mapped: freeing it gives the
pages back at once. Measured on the resnet18 digits task (44.7 MB model): the training peak of
one process drops from 553 to 508 MB and its resident size after training from 510 to 420 MB.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3  # glibc <malloc.h>
MMAP_THRESHOLD_BYTES = 1 << 20


def release_large_buffers_promptly() -> bool:
    """Fix glibc's mmap threshold (see the module text); False where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
