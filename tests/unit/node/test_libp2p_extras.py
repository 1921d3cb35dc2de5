"""The stand-ins for py-libp2p's unused optional packages (node/libp2p_extras.py).

The import contract runs in fresh interpreters, so that what an earlier test imported cannot
hide or fake the effect."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from node import libp2p_extras
from node.libp2p_extras import BOUND_BY, STOOD_IN, ExtraNotLoaded, is_stand_in

ROOT = Path(__file__).resolve().parents[3]

_PROBE = """
import json, sys
{first}
import node.daemon, node.network
import libp2p.crypto.rsa, libp2p.crypto.secp256k1, libp2p.security.pnet.psk_conn
from node.libp2p_extras import BOUND_BY, STOOD_IN, is_stand_in
loaded = sorted(n for n in STOOD_IN if n in sys.modules)
bound = {{
    "rsa": is_stand_in(libp2p.crypto.rsa.RSA),
    "secp256k1": is_stand_in(libp2p.crypto.secp256k1.coincurve),
    "pnet": is_stand_in(libp2p.security.pnet.psk_conn.Salsa20),
}}
binders = sorted(n for n, m in list(sys.modules.items()) if n.startswith("libp2p")
    and m is not None and any(is_stand_in(v) for v in vars(m).values()))
import requests  # a later import by anyone else gets the real package
print(json.dumps({{"loaded": loaded, "bound": bound, "binders": binders, "requests_real": hasattr(requests, "get")
    and not is_stand_in(requests), "hooks": sum(type(f).__name__ == "_ExtrasFinder"
    for f in sys.meta_path)}}))
"""


def _probe(first: str = "") -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(first=first)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_a_daemons_import_loads_none_of_the_unused_packages() -> None:
    got = _probe()
    assert got["loaded"] == []
    assert got["bound"] == {"rsa": True, "secp256k1": True, "pnet": True}
    assert got["requests_real"] is True
    assert got["hooks"] == 0  # the finder acted once and left
    assert got["binders"] == sorted(BOUND_BY)  # a library upgrade that changes it is reviewed


def test_without_the_stand_ins_the_library_loads_them_all() -> None:
    """The contrast: py-libp2p imported before `node` (so before `install`) loads every one."""
    got = _probe("import libp2p")
    assert got["loaded"] == sorted(STOOD_IN)
    assert got["bound"] == {"rsa": False, "secp256k1": False, "pnet": False}


def test_this_suite_runs_with_the_stand_ins() -> None:
    """tests/conftest.py imports `node` first, so in-process network tests see production's
    library."""
    import libp2p.crypto.secp256k1

    assert is_stand_in(libp2p.crypto.secp256k1.coincurve)
    assert libp2p_extras.install() is False  # the library is imported: nothing to do


def test_a_stand_in_refuses_every_use_with_a_value_error() -> None:
    from libp2p.crypto.secp256k1 import Secp256k1PrivateKey, Secp256k1PublicKey

    with pytest.raises(ExtraNotLoaded, match="coincurve.PublicKey is part of a py-libp2p feature"):
        Secp256k1PublicKey.from_bytes(b"\x02" + bytes(32))
    with pytest.raises(ValueError):  # what the key parsers raise for a malformed key
        Secp256k1PrivateKey.new()


def test_a_stand_in_class_is_inert_in_except_isinstance_and_annotations() -> None:
    import libp2p.crypto.secp256k1

    stand_in = libp2p.crypto.secp256k1.coincurve.keys.PublicKey
    assert is_stand_in(stand_in)
    assert stand_in is libp2p.crypto.secp256k1.coincurve.keys.PublicKey  # created once
    assert not isinstance(object(), stand_in)
    assert stand_in[int] is stand_in and (stand_in | None) is stand_in
    with pytest.raises(KeyError):  # a valid clause that matches nothing bcfl raises
        try:
            raise KeyError("x")
        except stand_in:
            pytest.fail("a stand-in class caught an exception")

    class Sub(stand_in):  # type: ignore[misc, valid-type]
        pass

    with pytest.raises(ExtraNotLoaded):
        Sub()
