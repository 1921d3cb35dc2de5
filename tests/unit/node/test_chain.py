"""The chain-access layer (node/chain.py) over a real SQLite ChainStore in a temp home."""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from consensus.codec import InvalidMessage, block_hash, encode
from consensus.events import Commit
from consensus.types import (
    EMPTY_SIGNATURE,
    Block,
    CommitCertificate,
    Hash,
    Header,
    Height,
    ImprovementCertificate,
    Ledger,
    ParticipantRecord,
    Round,
    UpdateReceipt,
    ValidatorIndex,
)
from node.blobs import BlobCorruptError
from node.chain import Chain, ChainDataError, decode_stored
from node.errors import UserError
from node.home import NodeHome
from node.store import ChainStore, StoredBlock

ZERO = Hash(bytes(32))


def _hash(label: str) -> Hash:
    return Hash(hashlib.sha256(label.encode()).digest())


def _commit(height: int, parent: Hash = ZERO, *, updates: int = 2) -> Commit:
    """A well-formed (unsigned) committed block with `updates` receipts, its cert and ledger."""
    receipts = tuple(
        UpdateReceipt(
            author=ValidatorIndex(i),
            height=Height(height),
            base_model_hash=_hash(f"model-{height - 1}"),
            blob_hash=_hash(f"update-{height}-{i}"),
            n_samples=10 + i,
            train_loss=0.5,
            epsilon_spent=0.0,
        )
        for i in range(updates)
    )
    header = Header(
        chain_id="test-chain",
        height=Height(height),
        round=Round(0),
        time_ms=1_000 * height,
        parent_hash=parent,
        proposer=ValidatorIndex(0),
        model_hash=_hash(f"model-{height}"),
        updates_root=ZERO,
        last_commit_hash=ZERO,
        ledger_root=ZERO,
    )
    block = Block(
        header=header,
        receipts=receipts,
        rejected=(),
        rule="fedavg",
        improvement_certificate=ImprovementCertificate(ZERO, b"\x07", EMPTY_SIGNATURE),
        eval_reports=(),
        carry_over_reason="",
        last_commit=None,
        evidence=(),
    )
    cert = CommitCertificate(Height(height), Round(0), block_hash(block), b"\x07", EMPTY_SIGNATURE)
    ledger = Ledger(Height(height), header.model_hash, (ParticipantRecord(reputation=height),) * 3)
    return Commit(block, cert, ledger)


def _sql(home: Path, statement: str, params: tuple[object, ...] = ()) -> None:
    """Change the home's database behind the store's back (what disk damage looks like)."""
    with closing(sqlite3.connect(NodeHome(home).db_path, isolation_level=None)) as db:
        db.execute(statement, params)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ChainStore]:
    s = ChainStore.open(NodeHome(tmp_path))
    yield s
    s.close()


@pytest.fixture
def chain(store: ChainStore) -> Chain:
    return Chain(store)


def _append_heights(chain: Chain, n: int) -> list[Commit]:
    commits, parent = [], ZERO
    for height in range(1, n + 1):
        commit = _commit(height, parent)
        chain.append(commit)
        commits.append(commit)
        parent = block_hash(commit.block)
    return commits


def test_an_empty_chain_has_height_zero_and_no_tip(chain: Chain) -> None:
    """A fresh home: height 0, no tip, nothing at height 1."""
    assert chain.height == 0
    assert chain.tip() is None
    assert chain.block(1) is None and chain.committed(1) is None and chain.ledger(1) is None
    assert list(chain.committed_range()) == []


def test_append_then_tip_returns_the_last_block_certificate_and_ledger(chain: Chain) -> None:
    """After two appends the tip is height 2 with exactly what was appended."""
    commits = _append_heights(chain, 2)
    tip = chain.tip()
    assert chain.height == 2 and tip is not None
    assert (tip.block, tip.commit_certificate, tip.ledger) == (
        commits[1].block,
        commits[1].commit_certificate,
        commits[1].ledger,
    )


def test_append_writes_what_the_driver_wrote(chain: Chain, store: ChainStore) -> None:
    """The row holds the canonical encodings, the block hash and model + receipt blob refs."""
    commit = _commit(1)
    chain.append(commit)
    stored = store.get_block(1)
    assert stored == StoredBlock(
        1, block_hash(commit.block), encode(commit.block), encode(commit.commit_certificate)
    )
    assert store.get_ledger(1) == encode(commit.ledger)
    expected = {commit.block.header.model_hash, *(r.blob_hash for r in commit.block.receipts)}
    assert set(chain.blob_refs(1)) == expected


def test_block_certificate_ledger_and_committed_read_back_one_height(chain: Chain) -> None:
    """Each typed reader returns the value appended at that height."""
    commits = _append_heights(chain, 3)
    assert chain.block(2) == commits[1].block
    assert chain.certificate(2) == commits[1].commit_certificate
    assert chain.ledger(2) == commits[1].ledger
    assert chain.committed(3) == (commits[2].block, commits[2].commit_certificate)


def test_committed_range_yields_the_heights_in_order(chain: Chain) -> None:
    """The range reader yields first..last (default: to the tip) in height order."""
    _append_heights(chain, 5)
    assert [int(b.height) for b, _ in chain.committed_range()] == [1, 2, 3, 4, 5]
    assert [int(b.height) for b, _ in chain.committed_range(2, 4)] == [2, 3, 4]
    assert [int(b.height) for b, _ in chain.committed_range(4, 99)] == [4, 5]


def test_stored_range_returns_raw_rows_for_sync_serving(chain: Chain) -> None:
    """Sync serving gets the stored bytes untouched, bounded by count."""
    commits = _append_heights(chain, 3)
    rows = chain.stored_range(2, limit=5, max_bytes=1 << 20)
    assert [r.height for r in rows] == [2, 3]
    assert rows[0].block == encode(commits[1].block)


def test_phases_round_trip_and_are_none_when_not_recorded(chain: Chain) -> None:
    """Phases given to append come back per height; a synced height has none."""
    chain.append(_commit(1), phases={"train": 1.5, "block_interval": 3.25})
    chain.append(_commit(2, block_hash(_commit(1).block)))
    assert chain.phases(1) == {"train": 1.5, "block_interval": 3.25}
    assert chain.phases(2) is None


def test_blob_round_trips_and_absent_blob_is_none(chain: Chain) -> None:
    """put_blob returns the SHA-256; blob reads it back verified; an unknown hash is None."""
    blob_hash = chain.put_blob(b"model bytes")
    assert blob_hash == hashlib.sha256(b"model bytes").digest()
    assert chain.has_blob(blob_hash)
    assert chain.blob(blob_hash) == b"model bytes"
    assert chain.blob(_hash("nobody stored this")) is None


def test_a_tampered_blob_raises_naming_its_hash_and_stays_put(
    chain: Chain, store: ChainStore
) -> None:
    """Altered blob bytes raise BlobCorruptError with the full hash; the file is untouched."""
    blob_hash = chain.put_blob(b"update bytes")
    path = store.blobs.path(blob_hash)
    path.write_bytes(b"tampered")
    with pytest.raises(BlobCorruptError, match=blob_hash.hex()):
        chain.blob(blob_hash)
    assert path.read_bytes() == b"tampered"


def test_quarantine_moves_a_tampered_blob_aside(chain: Chain, store: ChainStore) -> None:
    """With quarantine the damaged file is moved aside, so the blob reads as absent next."""
    blob_hash = chain.put_blob(b"update bytes")
    store.blobs.path(blob_hash).write_bytes(b"tampered")
    with pytest.raises(BlobCorruptError):
        chain.blob(blob_hash, quarantine=True)
    assert not chain.has_blob(blob_hash) and chain.blob(blob_hash) is None


def test_put_blob_with_a_wrong_expected_hash_is_refused(chain: Chain) -> None:
    """Bytes that do not hash to the expected id are not stored."""
    with pytest.raises(BlobCorruptError):
        chain.put_blob(b"these bytes", expected_hash=_hash("other bytes"))


def test_decode_stored_accepts_a_row_as_written(chain: Chain, store: ChainStore) -> None:
    """A stored row decodes to the appended block and certificate."""
    commit = _commit(1)
    chain.append(commit)
    stored = store.get_block(1)
    assert stored is not None
    assert decode_stored(stored) == (commit.block, commit.commit_certificate)


def _row(commit: Commit, **changes: object) -> StoredBlock:
    row = StoredBlock(
        int(commit.block.height),
        block_hash(commit.block),
        encode(commit.block),
        encode(commit.commit_certificate),
    )
    return dataclasses.replace(row, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"hash": _hash("another block")}, "do not hash to its recorded hash"),
        ({"height": 7}, "claims height 1 but is recorded at 7"),
        ({"commit_cert": b"\x00garbage"}, "commit certificate does not decode"),
    ],
)
def test_decode_stored_refuses_a_row_that_lies(changes: dict[str, object], words: str) -> None:
    """A wrong hash, a wrong height or an undecodable certificate is InvalidMessage(reason)."""
    with pytest.raises(InvalidMessage) as exc:
        decode_stored(_row(_commit(1), **changes))
    assert words in exc.value.reason


def test_decode_stored_refuses_bytes_that_are_not_a_block() -> None:
    """Bytes that hash to the recorded hash but are no block: the reason says it does not decode."""
    junk = b"\x00not a block"
    row = _row(_commit(1), block=junk, hash=hashlib.sha256(junk).digest())
    with pytest.raises(InvalidMessage) as exc:
        decode_stored(row)
    assert "the block does not decode" in exc.value.reason


def test_decode_stored_refuses_a_certificate_for_another_block() -> None:
    """A valid certificate of a different block does not vouch for this one."""
    other = _commit(1, _hash("another parent")).commit_certificate
    with pytest.raises(InvalidMessage) as exc:
        decode_stored(_row(_commit(1), commit_cert=encode(other)))
    assert "for another block" in exc.value.reason


def test_a_damaged_stored_block_is_a_user_error_naming_the_height(
    chain: Chain, tmp_path: Path
) -> None:
    """A stored row whose bytes were altered: ChainDataError (a UserError) at that height."""
    _append_heights(chain, 2)
    _sql(tmp_path, "UPDATE blocks SET block = ? WHERE height = 2", (b"\x00altered",))
    with pytest.raises(ChainDataError) as exc:
        chain.block(2)
    assert isinstance(exc.value, UserError) and exc.value.height == 2
    assert "height 2" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(ChainDataError):
        chain.tip()
    assert [int(b.height) for b, _ in _take_until_error(chain)] == [1]


def _take_until_error(chain: Chain) -> list[tuple[Block, CommitCertificate]]:
    taken = []
    try:
        for pair in chain.committed_range():
            taken.append(pair)
    except ChainDataError:
        pass
    return taken


def test_a_tip_without_its_ledger_snapshot_is_a_user_error(chain: Chain, tmp_path: Path) -> None:
    """A restarting node never starts fresh on a tip whose ledger is gone."""
    _append_heights(chain, 1)
    _sql(tmp_path, "DELETE FROM ledger WHERE height = 1")
    with pytest.raises(ChainDataError, match="ledger"):
        chain.tip()


def test_reappending_the_stored_block_is_a_no_op(chain: Chain) -> None:
    """Appending the same commit twice leaves one block (as the store promises)."""
    commit = _commit(1)
    chain.append(commit)
    chain.append(commit, phases={"train": 2.0})
    assert chain.height == 1 and chain.block(1) == commit.block
    assert chain.phases(1) == {"train": 2.0}
