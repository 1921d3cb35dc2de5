"""The layering rules of DESIGN.md: the cores do no I/O and consensus/ stays free of torch."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FORBIDDEN = {
    "consensus": {"trio", "libp2p", "socket", "torch", "asyncio", "telemetry", "node", "learning"},
    "learning": {"trio", "libp2p", "socket", "asyncio", "node", "telemetry"},
}


def imported_roots(path: Path) -> set[str]:
    """Return the top-level module names a source file imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_core_packages_do_not_import_io_libraries(package: str) -> None:
    """consensus/ and learning/ never import trio, libp2p or sockets; consensus/ never torch."""
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = imported_roots(path) & FORBIDDEN[package]
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, "\n".join(offenders)


def test_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The scanner itself finds `import trio` and `from socket import x`."""
    source = tmp_path / "m.py"
    source.write_text("import trio\nfrom socket import socket\nimport os.path\n")
    assert imported_roots(source) == {"trio", "socket", "os"}
