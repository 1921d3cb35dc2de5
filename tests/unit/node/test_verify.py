"""Chain replay (node/verify.py) on a real 3-block chain, and what tampering it is caught as."""

from __future__ import annotations

import sqlite3
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from consensus.codec import block_hash, decode_as, encode  # noqa: E402
from consensus.types import Block, Ledger  # noqa: E402
from node.home import NodeHome  # noqa: E402
from node.verify import verify_chain  # noqa: E402
from tests.chain_fixture import chain_copy  # noqa: E402

CARRY_OVER_AT = (2,)


@pytest.fixture
def home(tmp_path_factory: Any, tmp_path: Path) -> Path:
    """A private copy of the session's 3-block chain (block 2 is a carry-over)."""
    return chain_copy(tmp_path_factory, tmp_path, 3, not_improved_heights=CARRY_OVER_AT)


def _db(home: Path) -> sqlite3.Connection:
    return sqlite3.connect(NodeHome(home).db_path, isolation_level=None)


def _block(home: Path, height: int) -> Block:
    with _db(home) as db:
        (raw,) = db.execute("SELECT block FROM blocks WHERE height = ?", (height,)).fetchone()
    return decode_as(bytes(raw), Block)


def test_untouched_chain_verifies_and_replays_every_model_block(home: Path) -> None:
    """A chain written as the driver writes it verifies, with the aggregation replayed."""
    result = verify_chain(home)
    assert result.ok, result.problem
    assert (result.blocks, result.model_blocks, result.carry_over_blocks) == (3, 2, 1)
    assert result.replayed == [1, 3]
    assert result.skipped == []


def test_flipped_byte_in_a_stored_block_fails_at_its_height(home: Path) -> None:
    """One altered byte in block 2's stored bytes is reported at height 2."""
    with _db(home) as db:
        (raw,) = db.execute("SELECT block FROM blocks WHERE height = 2").fetchone()
        data = bytearray(raw)
        data[len(data) // 2] ^= 0x01
        db.execute("UPDATE blocks SET block = ? WHERE height = 2", (bytes(data),))
    result = verify_chain(home)
    assert result.problem is not None
    assert result.problem.height == 2
    assert "altered" in result.problem.message
    assert result.blocks == 1


def test_rewritten_block_with_matching_hash_fails_on_its_commit_certificate(home: Path) -> None:
    """A re-encoded forged block 3 (more samples claimed) with its hash updated is caught."""
    block = _block(home, 3)
    forged = replace(
        block, receipts=(replace(block.receipts[0], n_samples=10_000), *block.receipts[1:])
    )
    with _db(home) as db:
        db.execute(
            "UPDATE blocks SET block = ?, hash = ? WHERE height = 3",
            (encode(forged), block_hash(forged)),
        )
    result = verify_chain(home)
    assert result.problem is not None
    assert result.problem.height == 3
    assert "commit certificate" in result.problem.message


def test_altered_ledger_snapshot_fails_at_its_height(home: Path) -> None:
    """A ledger snapshot that credits a member more reputation is reported at that height."""
    with _db(home) as db:
        (raw,) = db.execute("SELECT snapshot FROM ledger WHERE height = 3").fetchone()
        ledger = decode_as(bytes(raw), Ledger)
        first = replace(ledger.participants[0], reputation=ledger.participants[0].reputation + 50)
        forged = replace(ledger, participants=(first, *ledger.participants[1:]))
        db.execute("UPDATE ledger SET snapshot = ? WHERE height = 3", (encode(forged),))
    result = verify_chain(home)
    assert result.problem is not None
    assert result.problem.height == 3
    assert "ledger" in result.problem.message


def test_altered_update_blob_fails_at_the_height_that_includes_it(home: Path) -> None:
    """An update blob of block 3 whose bytes changed on disk is reported at height 3."""
    blob = _block(home, 3).receipts[1].blob_hash
    path = NodeHome(home).blobs_dir / blob.hex()[:2] / blob.hex()[2:]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x40
    path.write_bytes(bytes(data))
    result = verify_chain(home)
    assert result.problem is not None
    assert result.problem.height == 3
    assert "altered" in result.problem.message


def test_pruned_update_blob_skips_that_aggregation_without_failing(home: Path) -> None:
    """A pruned update blob leaves the chain valid and lists the height as skipped."""
    blob = _block(home, 1).receipts[0].blob_hash
    (NodeHome(home).blobs_dir / blob.hex()[:2] / blob.hex()[2:]).unlink()
    result = verify_chain(home)
    assert result.ok, result.problem
    assert [h for h, _ in result.skipped] == [1]
    assert result.replayed == [3]


def test_pruned_model_blob_is_recomputed_by_the_replay(home: Path) -> None:
    """With block 1's model blob pruned the replay rebuilds it and still checks block 3."""
    model = _block(home, 1).header.model_hash
    (NodeHome(home).blobs_dir / model.hex()[:2] / model.hex()[2:]).unlink()
    result = verify_chain(home)
    assert result.ok, result.problem
    assert result.replayed == [1, 3]


def test_aggregation_that_misses_the_header_model_hash_fails(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the aggregation of the stored updates differs from the header's model: a failure."""
    from node import verify

    monkeypatch.setattr(verify.ChainVerifier, "_aggregate", lambda *args: b"other model bytes")
    result = verify_chain(home)
    assert result.problem is not None
    assert result.problem.height == 1
    assert "committed model hash" in result.problem.message


def test_missing_genesis_is_reported_at_height_zero(home: Path) -> None:
    """Without genesis.cbor the replay cannot start: the problem names the genesis."""
    NodeHome(home).genesis_path.unlink()
    result = verify_chain(home)
    assert result.problem is not None
    assert result.problem.height == 0
    assert str(result.problem).startswith("the genesis: no genesis at")
