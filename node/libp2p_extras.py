"""py-libp2p's optional features that bcfl never uses are not loaded: their packages are stood in.

py-libp2p 0.8.1's package `__init__` and `host/basic_host.py` import every transport and
service the library has (QUIC, WebSocket, WebTransport, mDNS, UPnP, AutoTLS, secio, RSA and
secp256k1 keys, the private-network cipher), and with them their third-party packages. A
daemon uses TCP, Noise, Yamux, gossipsub and Ed25519 keys only (node/network/host.py), yet
paid about 17 MiB of RSS and 0.3 s of start-up for the rest (docs/ARCHITECTURE.md, memory).

`install()` (run by `node/__init__.py`, so before any bcfl module imports the library) adds a
meta-path finder that acts once: while the `libp2p` package itself is being imported, an
import of a package in `STOOD_IN` that is not loaded yet gets a stand-in module. When that
import ends, the stand-ins leave `sys.modules` and the finder leaves `sys.meta_path`, so any
later `import requests` (by a model module, a notebook, a test) loads the real package. Only
the library's modules keep the stand-ins they bound.

A stand-in's attributes are classes of `_StandIn`, created on first access:
- calling or instantiating one raises `ExtraNotLoaded`, a `ValueError` (what the library's
  key parsers raise for a malformed key), so a peer that offers an RSA or secp256k1 identity
  key fails exactly where a malformed key of that type fails today: the handshake is refused
  and counted as `unsupported-key` (node/network/host.py), a pubsub frame is dropped and
  counted (node/network/guarded_pubsub.py);
- they are exception classes that nothing raises, so an `except aioquic.X:` clause on a path
  is valid and never matches, and `isinstance(obj, X)` is False: no instance can exist;
- attribute access, subscripting and `|` give stand-ins again, so module-level annotations
  and aliases of the library evaluate.

`tests/unit/node/test_libp2p_extras.py` checks that a daemon's import leaves these packages
unloaded, that the stand-ins behave as described, and that peers with RSA or secp256k1 keys
are refused cleanly; `STOOD_IN` lists, per package, the library features that need it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
from typing import Any

STOOD_IN: dict[str, str] = {
    "aioquic": "QUIC and WebTransport transports",
    "zeroconf": "mDNS discovery",
    "miniupnpc": "UPnP port mapping",
    "requests": "AutoTLS (ACME client) and the OSO provider",
    "httpx": "AutoTLS (ACME client)",
    "service_identity": "TLS security transport's certificate checks",
    "trio_websocket": "WebSocket transport",
    "wsproto": "WebSocket transport",
    "coincurve": "secp256k1 identity keys",
    "fastecdsa": "secio's ECDH key exchange",
    "Crypto": "RSA identity keys, secio's ciphers and the private-network (pnet) cipher",
}
"""Top-level package -> the py-libp2p features that need it (none of which bcfl uses)."""

BOUND_BY: tuple[str, ...] = (
    "libp2p.crypto.authenticated_encryption",  # secio
    "libp2p.crypto.ecc",  # secio
    "libp2p.crypto.key_exchange",  # secio
    "libp2p.crypto.rsa",  # RSA identity keys: refused as `unsupported-key`
    "libp2p.crypto.secp256k1",  # secp256k1 identity keys: refused as `unsupported-key`
    "libp2p.discovery.mdns",
    "libp2p.discovery.mdns.broadcaster",
    "libp2p.discovery.mdns.listener",
    "libp2p.discovery.mdns.mdns",
    "libp2p.discovery.upnp.upnp",
    "libp2p.security.pnet.psk_conn",
    "libp2p.security.tls.autotls.acme",
    "libp2p.security.tls.autotls.broker",
    "libp2p.transport.quic.connection",
    "libp2p.transport.quic.listener",
    "libp2p.transport.quic.stream",
    "libp2p.transport.quic.transport",
    "libp2p.transport.quic.utils",
    "libp2p.transport.websocket.connection",
    "libp2p.transport.websocket.listener",
)
"""The library modules (of a daemon's import) that bind a stand-in, each reviewed as a feature
bcfl does not use: no module of TCP, Noise, Yamux, the swarm, the host or pubsub is here. The
import contract test fails when a py-libp2p upgrade changes this list, so that the change is
reviewed before a daemon meets it."""


class ExtraNotLoaded(ValueError):
    """Raised by any use of a stood-in package: bcfl does not load that py-libp2p feature."""


class _StandInMeta(type):
    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        raise ExtraNotLoaded(
            f"{cls.__qualname__} is part of a py-libp2p feature bcfl does not load"
        )

    def __getattr__(cls, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        child = _stand_in(f"{cls.__qualname__}.{attr}")
        type.__setattr__(cls, attr, child)
        return child

    def __getitem__(cls, item: Any) -> Any:
        return cls

    def __or__(cls, other: Any) -> Any:
        return cls

    def __ror__(cls, other: Any) -> Any:
        return cls

    def __repr__(cls) -> str:
        return f"<stand-in {cls.__qualname__}>"


class _StandIn(Exception, metaclass=_StandInMeta):
    """Base of every stand-in class: never raised, never instantiated."""


def _stand_in(qualname: str) -> type:
    cls = _StandInMeta(qualname.rsplit(".", 1)[-1], (_StandIn,), {"__module__": __name__})
    cls.__qualname__ = qualname
    return cls


def not_loaded_cause(exc: BaseException) -> ExtraNotLoaded | None:
    """The `ExtraNotLoaded` behind `exc` (itself, or along its cause and context chain), if any:
    the library re-raises key-parse errors as its own (Noise: a plain `ValueError`)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ExtraNotLoaded):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def is_stand_in(obj: object) -> bool:
    """True for a stand-in module or class (what the library bound instead of a package)."""
    return isinstance(obj, StandInModule) or (isinstance(obj, type) and issubclass(obj, _StandIn))


class StandInModule(types.ModuleType):
    """A stood-in package or submodule: every attribute is a stand-in class."""

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        child = _stand_in(f"{self.__name__}.{attr}")
        setattr(self, attr, child)
        return child


class _StandInLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = StandInModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class _LibraryLoader(importlib.abc.Loader):
    """The real loader of the `libp2p` package, with the stand-ins active while it runs."""

    def __init__(self, finder: _ExtrasFinder, real: Any) -> None:
        self._finder = finder
        self._real = real

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._real.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__loader__ = self._real
        if module.__spec__ is not None:
            module.__spec__.loader = self._real
        self._finder.active = True
        try:
            self._real.exec_module(module)
        finally:
            self._finder.finish()


class _ExtrasFinder(importlib.abc.MetaPathFinder):
    def __init__(self, names: frozenset[str]) -> None:
        self.names = names
        self.active = False
        self.served: list[str] = []

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname == "libp2p" and not self.active:
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is not None and spec.loader is not None:
                spec.loader = _LibraryLoader(self, spec.loader)
            return spec
        if self.active and fullname.split(".")[0] in self.names:
            self.served.append(fullname)
            return importlib.machinery.ModuleSpec(fullname, _StandInLoader(), is_package=True)
        return None

    def finish(self) -> None:
        self.active = False
        for name in self.served:
            if is_stand_in(sys.modules.get(name)):
                del sys.modules[name]
        if self in sys.meta_path:
            sys.meta_path.remove(self)


def install() -> bool:
    """Stand in `STOOD_IN`'s packages for the coming import of py-libp2p.

    False (and nothing installed) when the library is already imported; packages already
    loaded keep their real modules.
    """
    if "libp2p" in sys.modules or any(isinstance(f, _ExtrasFinder) for f in sys.meta_path):
        return False
    names = frozenset(name for name in STOOD_IN if name not in sys.modules)
    sys.meta_path.insert(0, _ExtrasFinder(names))
    return True
