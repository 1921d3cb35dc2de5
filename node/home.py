"""The layout of a node home: one directory holding everything a node keeps.

::

    HOME/config.toml            node configuration (node/config.py)
    HOME/genesis.cbor           the consortium's genesis (node/genesis_files.py)
    HOME/node_info.json         public facts for the genesis maker (`bcfl init`, node/nodeinfo.py)
    HOME/keys/node_key          32-byte Ed25519 seed: the libp2p identity (node/keys.py)
    HOME/keys/validator_key     32-byte BLS seed (node/keys.py)
    HOME/keys/agreement_key     32-byte X25519 private key for secure aggregation (node/keys.py)
    HOME/data/chain.sqlite      blocks, certificates, ledger snapshots (node/store.py)
    HOME/data/blobs/ab/cdef...  content-addressed model and update blobs (node/blobs.py)
    HOME/data/signer_state      what the validator last signed (node/signer_state_file.py)

Only paths: nothing here reads or writes a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class NodeHome:
    """Paths inside one node home directory."""

    root: Path

    @classmethod
    def of(cls, home: Path | str | NodeHome) -> NodeHome:
        """`home` itself when it is a NodeHome, else the home rooted at that path."""
        return home if isinstance(home, NodeHome) else cls(Path(home))

    @property
    def config_path(self) -> Path:
        return self.root / "config.toml"

    @property
    def genesis_path(self) -> Path:
        return self.root / "genesis.cbor"

    @property
    def node_info_path(self) -> Path:
        return self.root / "node_info.json"

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def node_key_path(self) -> Path:
        return self.keys_dir / "node_key"

    @property
    def validator_key_path(self) -> Path:
        return self.keys_dir / "validator_key"

    @property
    def agreement_key_path(self) -> Path:
        return self.keys_dir / "agreement_key"

    @property
    def secagg_reveals_path(self) -> Path:
        """The height and U3 of this trainer's last reveal (node/services/secagg_round.py)."""
        return self.data_dir / "secagg_reveals.json"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "chain.sqlite"

    @property
    def blobs_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def signer_state_path(self) -> Path:
        return self.data_dir / "signer_state"

    @property
    def dp_releases_path(self) -> Path:
        """How many DP releases this site made (node/app.py `ReleaseLog`)."""
        return self.data_dir / "dp_releases.json"
