"""Key files: mode 0600, stable identity, clear refusals."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from node.home import NodeHome
from node.keys import KeyFileError, generate_keys, load_node_identity, load_validator_key


def test_generated_key_files_are_0600_and_32_bytes(tmp_path: Path) -> None:
    """Both key files are written owner-only with 32-byte seeds."""
    home = NodeHome(tmp_path / "home")
    generate_keys(home)
    for path in (home.node_key_path, home.validator_key_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert len(path.read_bytes()) == 32


def test_identity_is_stable_across_loads(tmp_path: Path) -> None:
    """The peer id and BLS public key derived from the stored seeds do not change on reload."""
    home = NodeHome(tmp_path)
    identity, validator = generate_keys(home)
    assert load_node_identity(home).peer_id == identity.peer_id
    assert load_validator_key(home).public_key == validator.public_key
    assert identity.peer_id.startswith("12D3KooW")
    assert len(validator.public_key) == 48
    assert len(validator.proof_of_possession()) == 96


def test_group_readable_key_is_refused(tmp_path: Path) -> None:
    """A key file readable by others is refused with a sentence naming chmod 600."""
    home = NodeHome(tmp_path)
    generate_keys(home)
    os.chmod(home.validator_key_path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_validator_key(home)


def test_wrong_size_key_is_refused(tmp_path: Path) -> None:
    """A truncated key file is refused, naming its size."""
    home = NodeHome(tmp_path)
    generate_keys(home)
    home.node_key_path.write_bytes(b"short")
    with pytest.raises(KeyFileError, match="holds 5 bytes"):
        load_node_identity(home)


def test_missing_key_names_bcfl_init(tmp_path: Path) -> None:
    """A missing key file points the operator at `bcfl init`."""
    with pytest.raises(KeyFileError, match="bcfl init"):
        load_node_identity(NodeHome(tmp_path))


def test_generate_refuses_to_overwrite(tmp_path: Path) -> None:
    """Creating keys twice never replaces an existing identity."""
    home = NodeHome(tmp_path)
    generate_keys(home)
    with pytest.raises(KeyFileError, match="already exists"):
        generate_keys(home)


def test_the_agreement_key_is_0600_and_its_public_half_is_stable(tmp_path: Path) -> None:
    """Secure aggregation's X25519 key is written with the others (owner-only), a home made
    before it gets one on `ensure_agreement_key`, and a readable copy is refused."""
    from node.keys import ensure_agreement_key, load_agreement_key

    home = NodeHome(tmp_path / "home")
    generate_keys(home)
    assert stat.S_IMODE(home.agreement_key_path.stat().st_mode) == 0o600
    public = ensure_agreement_key(home)
    assert len(public) == 32 and ensure_agreement_key(home) == public
    home.agreement_key_path.unlink()
    assert ensure_agreement_key(home) != public  # an old home gets a fresh key
    os.chmod(home.agreement_key_path, 0o640)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_agreement_key(home)
