"""The layering rules (docs/ARCHITECTURE.md): who may import whom, checked on the source.

- consensus/ and learning/ do no I/O; consensus/ stays free of torch;
- telemetry/ imports nothing from node/ (the CLI reads node data and passes plain values in);
- below the CLI, no module of node/ imports `node.cli` (errors live in node/errors.py);
- the modules of consensus/ import each other without cycles, lazy imports included.

Every rule is a function over a source tree, so each test of a rule on this repository has
a twin that runs it on a small tree with a violation and shows that it is caught.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FORBIDDEN = {
    "consensus": {"trio", "libp2p", "socket", "torch", "asyncio", "telemetry", "node", "learning"},
    "learning": {"trio", "libp2p", "socket", "asyncio", "node", "telemetry"},
    "telemetry": {"node"},
}

# The only modules that may import the command line (it dispatches to node.commands.*).
CLI_MODULE = "node.cli"
CLI_IMPORTERS_ALLOWED = ("node.cli", "node.commands")


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, *, runtime: bool = False) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, those inside functions included; with `runtime`, not those
    under `if TYPE_CHECKING:` (they never execute, so they cannot make an import cycle)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif runtime and _is_type_checking(node):
            assert isinstance(node, ast.If)
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


def imported_roots(path: Path) -> set[str]:
    """Return the top-level module names a source file imports."""
    roots: set[str] = set()
    for node in _imports(path):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def module_name(path: Path, root: Path) -> str:
    """The dotted module name of a source file under `root` (a package's `__init__` is it)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _import_targets(
    path: Path, root: Path, *, runtime: bool = False
) -> Iterator[tuple[str | None, list[str]]]:
    """Per import statement: (the `from` module or None, the dotted names it may bind).

    Relative imports are resolved against the file's own package.
    """
    here = module_name(path, root).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    for node in _imports(path, runtime=runtime):
        if isinstance(node, ast.Import):
            yield None, [alias.name for alias in node.names]
            continue
        if node.level:
            base = package[: len(package) - node.level + 1]
            prefix = ".".join([*base, node.module] if node.module else base)
        else:
            prefix = node.module or ""
        yield prefix, [f"{prefix}.{alias.name}" if prefix else alias.name for alias in node.names]


def imported_modules(path: Path, root: Path) -> set[str]:
    """Every dotted name a file may import: `from a.b import c` gives `a.b` and `a.b.c`."""
    names: set[str] = set()
    for prefix, targets in _import_targets(path, root):
        if prefix:
            names.add(prefix)
        names.update(targets)
    return names


def forbidden_imports(root: Path, package: str, forbidden: set[str]) -> list[str]:
    """`file imports [...]` for each file of `package` that imports a forbidden root."""
    offenders = []
    for path in sorted((root / package).rglob("*.py")):
        bad = imported_roots(path) & forbidden
        if bad:
            offenders.append(f"{path.relative_to(root)} imports {sorted(bad)}")
    return offenders


def cli_importers(root: Path) -> list[str]:
    """Modules of node/ other than the CLI and its commands that import `node.cli`."""
    offenders = []
    for path in sorted((root / "node").rglob("*.py")):
        name = module_name(path, root)
        if any(name == a or name.startswith(a + ".") for a in CLI_IMPORTERS_ALLOWED):
            continue
        if any(
            m == CLI_MODULE or m.startswith(CLI_MODULE + ".") for m in imported_modules(path, root)
        ):
            offenders.append(f"{path.relative_to(root)} imports {CLI_MODULE}")
    return offenders


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """module -> the modules of the same package it imports at run time (anywhere in the file,
    function bodies included; not under `if TYPE_CHECKING:`).

    `from a import b` is an edge to the submodule `a.b` when there is one, else to `a`; the
    parent packages Python imports implicitly are not edges (a package's `__init__` that is
    running is already importable, so they never make a cycle at import time).
    """
    paths = {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        edges = graph.setdefault(name, set())
        for prefix, targets in _import_targets(path, root, runtime=True):
            for target in targets:
                if target in paths:
                    edges.add(target)
                elif prefix in paths:
                    edges.add(prefix)
        edges.discard(name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None when the graph is acyclic."""
    done: set[str] = set()
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(name: str) -> list[str] | None:
        stack.append(name)
        on_stack.add(name)
        for target in sorted(graph.get(name, ())):
            if target in on_stack:
                return [*stack[stack.index(target) :], target]
            if target not in done:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        on_stack.discard(name)
        done.add(name)
        return None

    for start in sorted(graph):
        if start not in done:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def _tree(root: Path, files: dict[str, str]) -> Path:
    for relative, source in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return root


# -- the rules on this repository -----------------------------------------------------------


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_do_not_import_what_their_layer_forbids(package: str) -> None:
    """consensus/ and learning/ import no I/O library (consensus/ no torch); telemetry/ no node."""
    offenders = forbidden_imports(ROOT, package, FORBIDDEN[package])
    assert not offenders, "\n".join(offenders)


def test_only_the_cli_and_its_commands_import_node_cli() -> None:
    """Below the CLI (config, keys, genesis files, chain, daemon, ...) nobody imports node.cli."""
    offenders = cli_importers(ROOT)
    assert not offenders, "\n".join(offenders)


def test_consensus_modules_import_each_other_without_cycles() -> None:
    """The import graph of consensus/ (lazy imports inside functions included) is acyclic."""
    cycle = find_cycle(import_graph(ROOT, "consensus"))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


# -- the scanners catch violations ----------------------------------------------------------


def test_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The scanner itself finds `import trio` and `from socket import x`."""
    source = tmp_path / "m.py"
    source.write_text("import trio\nfrom socket import socket\nimport os.path\n")
    assert imported_roots(source) == {"trio", "socket", "os"}


def test_telemetry_importing_node_is_caught_even_inside_a_function(tmp_path: Path) -> None:
    """A telemetry module with a lazy `from node.store import ChainStore` is an offender."""
    root = _tree(
        tmp_path,
        {
            "telemetry/__init__.py": "",
            "telemetry/plots.py": "import math\n",
            "telemetry/report.py": "def load():\n    from node.store import ChainStore\n",
        },
    )
    assert forbidden_imports(root, "telemetry", FORBIDDEN["telemetry"]) == [
        "telemetry/report.py imports ['node']"
    ]


def test_a_node_module_importing_the_cli_is_caught_in_every_spelling(tmp_path: Path) -> None:
    """`from node.cli import X`, `from node import cli`, `import node.cli` and `from .cli import
    X` below the CLI are caught; the CLI and node.commands.* may import it."""
    root = _tree(
        tmp_path,
        {
            "node/__init__.py": "",
            "node/cli.py": "from node.errors import UserError\n",
            "node/errors.py": "class UserError(Exception): ...\n",
            "node/a.py": "from node.cli import UserError\n",
            "node/b.py": "def f():\n    from node import cli\n",
            "node/c.py": "import node.cli\n",
            "node/d.py": "from .cli import UserError\n",
            "node/fine.py": "from node.errors import UserError\nimport node.client_tools\n",
            "node/commands/__init__.py": "",
            "node/commands/run.py": "from node.cli import UserError\n",
        },
    )
    assert cli_importers(root) == [f"node/{m}.py imports node.cli" for m in "abcd"]


def test_a_lazy_import_cycle_is_found(tmp_path: Path) -> None:
    """a -> b at import time and b -> a inside a function is a cycle; c -> a only under
    TYPE_CHECKING is not an edge."""
    root = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.b import g\nfrom pkg import c\n",
            "pkg/b.py": "def g():\n    from pkg.a import f\n",
            "pkg/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n",
        },
    )
    graph = import_graph(root, "pkg")
    assert graph["pkg.a"] == {"pkg.b", "pkg.c"} and graph["pkg.c"] == set()
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]
    assert find_cycle({"pkg.a": {"pkg.c"}, "pkg.c": set()}) is None


# -- one interpreter of the core's actions, and module size -------------------------------

ACTION_TYPES = frozenset(
    {
        "Broadcast",
        "ScheduleTimeout",
        "StartTraining",
        "BuildCandidate",
        "EvaluateCandidate",
        "PersistSignerState",
        "Commit",
        "ReportEvidence",
        "RequestSync",
        "Rejected",
    }
)
SHELL = "consensus/shell/shell.py"
MAX_MODULE_LINES = 500
SHIPPED = ("consensus", "learning", "node", "telemetry", "devnet", "bench")


def action_dispatchers(root: Path) -> list[str]:
    """Shipped modules that test a value against one of the core's action types."""
    found = []
    for package in SHIPPED:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id == "isinstance"
                    and len(node.args) == 2
                    and {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
                    & ACTION_TYPES
                ):
                    found.append(str(path.relative_to(root)))
                    break
    return found


def oversized_modules(root: Path) -> list[str]:
    """Shipped modules longer than MAX_MODULE_LINES."""
    return [
        f"{path.relative_to(root)}: {n} lines"
        for package in SHIPPED
        for path in sorted((root / package).rglob("*.py"))
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]


def test_only_the_node_shell_dispatches_on_the_cores_actions() -> None:
    """The daemon, the simulator and the fixtures all go through consensus/shell: no other
    shipped module interprets the core's actions."""
    assert action_dispatchers(ROOT) == [SHELL]


def test_a_second_action_interpreter_is_caught(tmp_path: Path) -> None:
    """The scanner finds `isinstance(a, Commit)` and `isinstance(a, Broadcast | Commit)`."""
    root = _tree(
        tmp_path,
        {
            "node/a.py": "def f(a):\n    return isinstance(a, Commit)\n",
            "node/b.py": "def f(a):\n    return isinstance(a, Vote | Broadcast)\n",
            "node/c.py": "def f(a):\n    return isinstance(a, Vote)\n",
        },
    )
    assert action_dispatchers(root) == ["node/a.py", "node/b.py"]


def test_no_shipped_module_is_over_500_lines() -> None:
    """Modules outside tests/ stay under 500 lines (split along a seam instead)."""
    assert oversized_modules(ROOT) == []


def test_an_oversized_module_is_caught(tmp_path: Path) -> None:
    """The size scanner names a 501-line module and passes a short one."""
    root = _tree(tmp_path, {"learning/big.py": "x = 1\n" * 501, "learning/ok.py": "x = 1\n"})
    assert oversized_modules(root) == ["learning/big.py: 501 lines"]
