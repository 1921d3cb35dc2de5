"""The one chain-access layer: typed blocks, certificates, ledgers, phases and blobs of a store.

`ChainStore` (node/store.py) keeps opaque bytes so that it does not depend on the consensus
core. `Chain` is the only place that turns those bytes into consensus types and back; every
reader of a home's chain (the daemon's restart tip, the HTTP API, `bcfl chain show|verify`,
`bcfl model export`, `bcfl report`, block-sync serving) goes through it, and the driver
appends committed blocks with `Chain.append`. What is written per committed height, in one
SQLite transaction (node/store.py):

- the block (`codec.encode`), its id `codec.block_hash(block)` and the commit certificate;
- the blob refs: the header's model hash and every included receipt's blob hash (a carry-over
  block refers to the model it carries over), which keeps those blobs from being pruned;
- the ledger snapshot after the block;

and, outside that transaction, the driver's phase timings as JSON under the meta key
`phases/<height>` (none for a block that arrived by sync).

Two kinds of damage, two kinds of blame (docs/ARCHITECTURE.md, "Errors"):

- `decode_stored` checks a `StoredBlock` (a row of our store, or a block a peer sent by sync)
  and raises `codec.InvalidMessage(reason)`: the caller decides whose fault it is.
- `Chain`'s readers raise `ChainDataError` (a `UserError`: one sentence naming the height, and
  what to run) when the home's own chain is damaged or incomplete; a blob whose bytes no
  longer hash to its name raises `BlobCorruptError` naming the hash.

Blob reads are verified and, by default, read-only (`bcfl chain verify` runs next to a live
node); `quarantine=True` also moves a damaged blob aside so that it is fetched again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

from consensus import codec
from consensus.core import ChainTip
from consensus.events import Commit
from consensus.types import Block, CommitCertificate, Hash, Ledger
from node.blobs import BlobCorruptError
from node.errors import UserError
from node.store import ChainStore, StoredBlock

PHASES_META_KEY = "phases/{height}"


class ChainDataError(UserError):
    """The home's stored chain is damaged or incomplete at `height`; `reason` says how."""

    def __init__(self, height: int, reason: str) -> None:
        super().__init__(
            f"the stored chain is damaged at height {height}: {reason}; "
            "run `bcfl chain verify --home HOME` for the full picture"
        )
        self.height = height
        self.reason = reason


def decode_committed(
    block: bytes, commit_cert: bytes, *, max_size: int = codec.DEFAULT_MAX_SIZE
) -> tuple[Block, CommitCertificate]:
    """Strictly decode a block and its commit certificate; raises `InvalidMessage(reason)`.

    Only the encodings are checked, not that the certificate is for this block (the gossip
    edge reports that separately, as ``invalid``).
    """
    return (
        codec.decode_as(block, Block, max_size=max_size),
        codec.decode_as(commit_cert, CommitCertificate, max_size=max_size),
    )


def decode_stored(stored: StoredBlock) -> tuple[Block, CommitCertificate]:
    """Decode a stored (or synced) block and check it is what its record claims.

    Checks, in order: the block bytes hash to `stored.hash`; they decode canonically (so
    `codec.block_hash(block) == stored.hash`); the block's height is `stored.height`; the
    commit certificate decodes and is for exactly this block and height. Raises
    `codec.InvalidMessage(reason)` at the first failure. Sizes are the caller's to bound (the
    store holds what we wrote; block sync bounds each entry before it gets here). The
    certificate's signatures are not checked here: the core (or `bcfl chain verify`) does.
    """
    if hashlib.sha256(stored.block).digest() != stored.hash:
        raise codec.InvalidMessage(
            f"the block's bytes do not hash to its recorded hash {stored.hash.hex()[:16]}: "
            "they were altered"
        )
    try:
        block = codec.decode_as(stored.block, Block, max_size=len(stored.block))
    except codec.InvalidMessage as exc:
        raise codec.InvalidMessage(f"the block does not decode ({exc.reason})") from None
    if int(block.height) != stored.height:
        raise codec.InvalidMessage(
            f"the block claims height {int(block.height)} but is recorded at {stored.height}"
        )
    try:
        cert = codec.decode_as(
            stored.commit_cert, CommitCertificate, max_size=len(stored.commit_cert)
        )
    except codec.InvalidMessage as exc:
        raise codec.InvalidMessage(
            f"the commit certificate does not decode ({exc.reason})"
        ) from None
    if int(cert.height) != stored.height or cert.block_hash != stored.hash:
        raise codec.InvalidMessage("the commit certificate is for another block")
    return block, cert


class Chain:
    """Typed access to the committed chain of one `ChainStore` (which the caller owns).

    Stateless over the store, so it is as thread-safe as the store and cheap to build.
    """

    def __init__(self, store: ChainStore) -> None:
        self.store = store

    # -- writing --------------------------------------------------------------------------

    def append(
        self,
        commit: Commit,
        *,
        phases: dict[str, float] | None = None,
        extra_refs: tuple[bytes, ...] = (),
    ) -> None:
        """Store a committed block with its certificate, blob refs, ledger and phases.

        Re-appending the block already stored at its height is a no-op (phases are
        rewritten); a different block there, or a gap, is `StoreConflictError` (our bug).
        """
        block, cert = commit.block, commit.commit_certificate
        height = int(block.height)
        self.store.put_block(
            height,
            codec.block_hash(block),
            codec.encode(block),
            codec.encode(cert),
            # a carry-over's receipts (DP accounting) made no model: their blobs are not kept
            blob_refs=(
                block.header.model_hash,
                *(() if block.is_carry_over else (r.blob_hash for r in block.receipts)),
                *extra_refs,  # e.g. a secure aggregation transcript, kept with its block
            ),
            ledger_snapshot=codec.encode(commit.ledger),
            meta=(
                ()
                if phases is None
                else ((PHASES_META_KEY.format(height=height), json.dumps(phases).encode()),)
            ),
        )

    def put_blob(self, data: bytes, *, expected_hash: bytes | None = None) -> Hash:
        """Store a blob; returns its SHA-256. With `expected_hash`, other bytes are refused
        (`BlobCorruptError`)."""
        return Hash(self.store.blobs.put(data, expected_hash=expected_hash))

    # -- the tip --------------------------------------------------------------------------

    @property
    def height(self) -> int:
        """Height of the last committed block; 0 when the chain is empty."""
        return self.store.tip_height() or 0

    def tip(self) -> ChainTip | None:
        """The last block, its certificate and the ledger after it; None on a fresh home.

        This is what a restarting node hands the core; a damaged or missing tip is a
        `ChainDataError`, never a silent fresh start.
        """
        height = self.store.tip_height()
        if height is None:
            return None
        committed = self.committed(height)
        if committed is None:
            raise ChainDataError(height, "the tip block is missing")
        ledger = self.ledger(height)
        if ledger is None:
            raise ChainDataError(height, "the ledger snapshot of the tip is missing")
        return ChainTip(committed[0], committed[1], ledger)

    # -- reading one height ---------------------------------------------------------------

    def stored(self, height: int) -> StoredBlock | None:
        """The raw stored row of `height` (bytes as written), or None."""
        return self.store.get_block(height)

    def committed(self, height: int) -> tuple[Block, CommitCertificate] | None:
        """The checked block and commit certificate at `height`, or None when not stored."""
        stored = self.store.get_block(height)
        return None if stored is None else _checked(stored)

    def block(self, height: int) -> Block | None:
        """The checked block at `height`, or None."""
        committed = self.committed(height)
        return None if committed is None else committed[0]

    def certificate(self, height: int) -> CommitCertificate | None:
        """The commit certificate of the block at `height` (checked against it), or None."""
        committed = self.committed(height)
        return None if committed is None else committed[1]

    def ledger(self, height: int) -> Ledger | None:
        """The ledger snapshot stored after `height`, or None."""
        snapshot = self.store.get_ledger(height)
        if snapshot is None:
            return None
        try:
            return codec.decode_as(snapshot, Ledger, max_size=len(snapshot))
        except codec.InvalidMessage as exc:
            raise ChainDataError(
                height, f"the ledger snapshot does not decode ({exc.reason})"
            ) from None

    def phases(self, height: int) -> dict[str, float] | None:
        """The phase timings (seconds) recorded when this node committed `height`; None if
        it was synced or committed before phases were recorded."""
        raw = self.store.get_meta(PHASES_META_KEY.format(height=height))
        if not raw:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None  # telemetry only: a torn value is not worth stopping a reader for
        return value if isinstance(value, dict) else None

    # -- ranges ---------------------------------------------------------------------------

    def committed_range(
        self, first: int = 1, last: int | None = None
    ) -> Iterator[tuple[Block, CommitCertificate]]:
        """Checked (block, certificate) pairs from `first` to `last` (default: the tip).

        Lazy, in height order, read in batches; a height missing inside the range is a
        `ChainDataError` at that height (after the heights before it were yielded).
        """
        end = self.height if last is None else min(last, self.height)
        height = max(1, first)
        while height <= end:
            batch = self.store.get_blocks(
                height, limit=min(64, end - height + 1), max_bytes=16 * 1024 * 1024
            )
            if not batch:
                raise ChainDataError(height, "the block is missing from the store")
            for stored in batch:
                yield _checked(stored)
            height += len(batch)

    def stored_range(self, first: int, *, limit: int, max_bytes: int) -> list[StoredBlock]:
        """Raw consecutive rows from `first` for block-sync serving: at most `limit`, and
        (except the first) at most `max_bytes` of block + certificate bytes in total."""
        return self.store.get_blocks(first, limit=limit, max_bytes=max_bytes)

    # -- blobs ----------------------------------------------------------------------------

    def blob_refs(self, height: int) -> list[Hash]:
        """The blobs the block at `height` references (model hash, receipts' blob hashes)."""
        return [Hash(ref) for ref in self.store.blob_refs(height)]

    def has_blob(self, blob_hash: bytes) -> bool:
        """Whether a blob with this name is on disk (unverified: see `blob`)."""
        return self.store.blobs.has(blob_hash)

    def blob(self, blob_hash: bytes, *, quarantine: bool = False) -> bytes | None:
        """A blob's bytes, checked against its SHA-256 name; None when it is not stored.

        Bytes that no longer hash to the name raise `BlobCorruptError` naming the hash. With
        `quarantine`, the damaged file is also moved aside (so it can be fetched again);
        without, nothing on disk changes.
        """
        path = self.store.blobs.path(blob_hash)
        try:
            data = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return None
        if hashlib.sha256(data).digest() == blob_hash:
            return data
        if quarantine:
            try:
                return self.store.blobs.get(blob_hash)  # moves the damaged file aside
            except KeyError:
                return None
            except BlobCorruptError:
                pass
        raise BlobCorruptError(
            f"blob {blob_hash.hex()} was altered on disk (its bytes no longer hash to its name)"
        )


def _checked(stored: StoredBlock) -> tuple[Block, CommitCertificate]:
    try:
        return decode_stored(stored)
    except codec.InvalidMessage as exc:
        raise ChainDataError(stored.height, exc.reason) from None
