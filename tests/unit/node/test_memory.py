"""node/memory.py: large freed buffers go back to the system at once."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
from node.memory import release_large_buffers_promptly
if sys.argv[1] == "fixed":
    assert release_large_buffers_promptly()
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) * 1024
# free one large mapped buffer (glibc then raises its threshold to its size), then allocate
# 8 MB buffers with a small live object after them (it pins the top of the heap)
first = bytearray(16 << 20)
del first
blocks, pins = [], []
for _ in range(20):
    block = bytearray(8 << 20)
    block[::4096] = b"x" * 2048  # touch every page
    blocks.append(block)
    pins.append(bytearray(200 << 10))
held = rss()
del blocks
print(held - rss())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_fixed_threshold_returns_freed_buffers() -> None:
    def freed(mode: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
        )
        return int(out.stdout.strip())

    assert freed("fixed") > 100 << 20  # the 160 MB of buffers left the process
    assert freed("adaptive") < freed("fixed")
