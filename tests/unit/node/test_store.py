"""ChainStore: WAL mode, ordered append, atomic block+ledger, blob hashing, pruning, signer state."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from node.blobs import BlobCorruptError, BlobStore
from node.home import NodeHome
from node.store import ChainStore, StoreConflictError


@pytest.fixture
def store(tmp_path: Path) -> ChainStore:
    s = ChainStore.open(NodeHome(tmp_path))
    yield s
    s.close()


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_database_is_in_wal_mode(store: ChainStore) -> None:
    """The chain database runs with journal_mode=WAL."""
    assert store.journal_mode() == "wal"


def test_blocks_append_in_order_and_read_back(store: ChainStore) -> None:
    """Blocks stored at consecutive heights come back byte-identical, by height and by hash."""
    for height in range(1, 4):
        store.put_block(height, h(b"b%d" % height), b"block%d" % height, b"cert%d" % height)
    assert store.tip_height() == 3
    got = store.get_block(2)
    assert got is not None and got.block == b"block2" and got.commit_cert == b"cert2"
    assert store.get_block_by_hash(h(b"b3")).height == 3  # type: ignore[union-attr]
    assert store.get_block(9) is None


def test_conflicting_block_and_gap_are_refused(store: ChainStore) -> None:
    """A different block at a stored height or a skipped height raises; a re-put is a no-op."""
    store.put_block(1, h(b"a"), b"a", b"c")
    store.put_block(1, h(b"a"), b"a", b"c")
    with pytest.raises(StoreConflictError, match="height 1 already holds"):
        store.put_block(1, h(b"x"), b"x", b"c")
    with pytest.raises(StoreConflictError, match="does not follow tip 1"):
        store.put_block(3, h(b"y"), b"y", b"c")


def test_get_blocks_respects_limit_and_byte_budget(store: ChainStore) -> None:
    """Sync batches stop at the count limit and at the byte budget (always at least one block)."""
    for height in range(10):
        store.put_block(height, h(b"%d" % height), b"x" * 100, b"")
    assert [b.height for b in store.get_blocks(2, limit=3, max_bytes=10**6)] == [2, 3, 4]
    assert [b.height for b in store.get_blocks(5, limit=100, max_bytes=250)] == [5, 6]
    assert [b.height for b in store.get_blocks(9, limit=100, max_bytes=1)] == [9]
    assert store.get_blocks(10, limit=5, max_bytes=10**6) == []


def test_block_ledger_and_refs_commit_together(store: ChainStore) -> None:
    """A failing insert inside put_block leaves no block, no ledger row and no blob refs."""
    store.put_block(1, h(b"a"), b"a", b"c", blob_refs=[h(b"m1")], ledger_snapshot=b"L1")
    with pytest.raises(sqlite3.ProgrammingError):
        # the block row and its refs are inserted, then the ledger insert fails
        store.put_block(2, h(b"b"), b"b", b"c", blob_refs=[h(b"m2")], ledger_snapshot=object())  # type: ignore[arg-type]
    assert store.tip_height() == 1
    assert store.get_ledger(2) is None and store.blob_refs(2) == []
    assert store.latest_ledger() == (1, b"L1")


def test_meta_commits_with_its_block_and_is_rewritten_on_a_re_append(store: ChainStore) -> None:
    """The block's phases go in its own transaction: a failing put_block leaves none; putting
    the stored block again rewrites them, and a different block there still conflicts."""
    with pytest.raises(sqlite3.ProgrammingError):
        store.put_block(1, h(b"a"), b"a", b"c", ledger_snapshot=object(), meta=[("p1", b"x")])  # type: ignore[arg-type]
    assert store.get_meta("p1") is None and store.tip_height() is None
    store.put_block(1, h(b"a"), b"a", b"c", meta=[("p1", b"first")])
    assert store.get_meta("p1") == b"first"
    store.put_block(1, h(b"a"), b"a", b"c", meta=[("p1", b"again")])
    assert store.get_meta("p1") == b"again" and store.tip_height() == 1
    with pytest.raises(StoreConflictError):
        store.put_block(1, h(b"z"), b"z", b"c", meta=[("p1", b"other")])
    assert store.get_meta("p1") == b"again"


def test_committed_block_survives_a_killed_process(tmp_path: Path) -> None:
    """A block committed by a process that is then SIGKILLed is there when the store reopens."""
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from node.home import NodeHome
        from node.store import ChainStore
        s = ChainStore.open(NodeHome(Path({str(tmp_path)!r})))
        s.put_block(1, b"h" * 32, b"block", b"cert", ledger_snapshot=b"L")
        s.save_signer_state(b"signed h1 r0 precommit")
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True)
    assert proc.returncode == -9, proc.stderr
    store = ChainStore.open(NodeHome(tmp_path))
    try:
        assert store.get_block(1).block == b"block"  # type: ignore[union-attr]
        assert store.get_ledger(1) == b"L"
        assert store.load_signer_state() == b"signed h1 r0 precommit"
    finally:
        store.close()


def test_signer_state_is_private_and_replaced_atomically(store: ChainStore, tmp_path: Path) -> None:
    """The signer state starts empty, is stored 0600, and a save replaces it whole."""
    assert store.load_signer_state() is None
    store.save_signer_state(b"one")
    store.save_signer_state(b"two")
    assert store.load_signer_state() == b"two"
    path = NodeHome(tmp_path).signer_state_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_blob_store_verifies_hash_on_write_and_read(tmp_path: Path) -> None:
    """Wrong bytes for an id are refused on put; a tampered file fails get and is moved aside."""
    blobs = BlobStore(tmp_path / "blobs")
    blob_id = blobs.put(b"model bytes")
    assert blob_id == h(b"model bytes")
    assert blobs.path(blob_id).parent.name == blob_id.hex()[:2]
    with pytest.raises(BlobCorruptError):
        blobs.put(b"other", expected_hash=blob_id)
    blobs.path(blob_id).write_bytes(b"tampered")
    with pytest.raises(BlobCorruptError, match="failed its hash check"):
        blobs.get(blob_id)
    assert not blobs.has(blob_id)
    with pytest.raises(KeyError):
        blobs.get(blob_id)


def test_pruning_keeps_recent_tip_pinned_and_young_orphans(store: ChainStore) -> None:
    """Old model blobs go; the last K heights, the tip's refs, pins and young orphans stay."""
    models = [store.blobs.put(b"model%d" % i) for i in range(6)]
    for height, model in enumerate(models):
        store.put_block(height, h(b"b%d" % height), b"blk", b"cert", blob_refs=[model])
    genesis_model = models[0]
    old_orphan = store.blobs.put(b"old rejected update")
    young_orphan = store.blobs.put(b"update in flight")
    past = 1_000_000.0
    os.utime(store.blobs.path(old_orphan), (past, past))
    deleted = set(store.prune_blobs(keep_last=2, pinned=[genesis_model], orphan_grace_s=60))
    assert deleted == {models[1], models[2], models[3], old_orphan}
    assert all(store.blobs.has(m) for m in (models[0], models[4], models[5], young_orphan))
    assert store.get_block(1) is not None  # block rows are never pruned
