"""Yamux receive credit on a stream of small frames (docs/libp2p-compat.md, pitfall 8 of
node/network/libp2p_patches.py), on real libp2p hosts on 127.0.0.1."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
from libp2p.custom_types import TProtocol

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from node.network.libp2p_compat import send_window_updates_by_halves  # noqa: E402
from tests.integration.test_direct_transport import connect_all, direct_net  # noqa: E402
from tests.integration.test_libp2p_network import (  # noqa: E402
    collect_libp2p_garbage,  # noqa: F401  (the same autouse fixture)
    pytestmark,  # noqa: F401  (the same warning filter: the library's leaked sockets)
    start_all,
)

PROTOCOL = TProtocol("/bcfl-test/window/1.0.0")
FRAME = 300  # about a vote's size


async def _updates_for(
    tmp: Path, pieces: Callable[[int], list[int]], *, by_halves: bool
) -> tuple[int, int, int]:
    """Send `pieces(window)` (sizes) from a to b over one stream, each write awaited and each
    read by b as it comes; return (WINDOW_UPDATE frames b sent, bytes b read, bytes sent)."""
    a, b = direct_net(tmp, "a"), direct_net(tmp, "b")
    updates: list[int] = []
    received: list[int] = []
    own: list[bool] = []
    done = trio.Event()

    async def handler(stream: Any) -> None:
        if by_halves:
            assert send_window_updates_by_halves(stream)
        muxed = stream.muxed_stream
        own.append("_auto_tune_and_send_window_update" in vars(muxed))  # per instance
        real = muxed.send_window_update

        async def counted(increment: int, skip_lock: bool = False) -> None:
            updates.append(increment)
            await real(increment, skip_lock=skip_lock)

        muxed.send_window_update = counted
        try:
            while chunk := await stream.read(64 * 1024):
                received.append(len(chunk))
        except Exception:  # the writer closed its end
            pass
        done.set()

    async with trio.open_nursery() as nursery:
        await start_all(nursery, [a, b])
        await connect_all([a, b])
        b.host.set_stream_handler(PROTOCOL, handler)
        stream = await a.host.new_stream(b.host.get_id(), [PROTOCOL])
        sizes = pieces(stream.muxed_stream.send_window)  # the window b granted
        with trio.fail_after(30):  # a stall (credit never returned) fails here
            for size in sizes:
                await stream.write(b"x" * size)
                await trio.sleep(0)  # let b read it before the next one
            await stream.close()
            await done.wait()
        nursery.cancel_scope.cancel()
    assert own == [by_halves]
    return len(updates), sum(received), sum(sizes)


async def test_small_frames_are_not_answered_by_window_updates(tmp_path: Path) -> None:
    """200 frames of 300 bytes: the stock rule answers many of them with a WINDOW_UPDATE
    (its partial-slack branch); by halves, none (60 KB is less than half a window), and every
    byte still arrives."""

    def pieces(window: int) -> list[int]:
        assert window // 2 > 200 * FRAME
        return [FRAME] * 200

    stock, got, sent = await _updates_for(tmp_path / "stock", pieces, by_halves=False)
    assert got == sent and stock >= 20
    halves, got, sent = await _updates_for(tmp_path / "halves", pieces, by_halves=True)
    assert got == sent and halves == 0


async def test_a_transfer_larger_than_the_window_does_not_stall(tmp_path: Path) -> None:
    """Two and a half windows' worth, in 64 KiB writes, passes by halves within the deadline
    (the writer would wait for credit after one window): credit comes back each half window,
    about five updates."""

    def pieces(window: int) -> list[int]:
        return [64 * 1024] * math.ceil(2.5 * window / (64 * 1024))

    updates, got, sent = await _updates_for(tmp_path, pieces, by_halves=True)
    assert got == sent
    assert 3 <= updates <= 10


def test_a_stream_that_is_not_yamux_is_left_alone() -> None:
    """Anything else (an Mplex stream, a test double) is reported, not patched."""

    class Other:
        muxed_stream = object()

    assert send_window_updates_by_halves(Other()) is False
