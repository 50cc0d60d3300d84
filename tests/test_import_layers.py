"""Layers import one way (docs/architecture.md): a test over the import graph of the package.

From the bottom: `audio` (pure numpy) → the base layer (errors, events, clock, session config) →
`providers` (sans-I/O adapters, their registry, the fakes) → runners (link, session, failover,
breakers, runtime, config, logs, metrics) → edges (client protocols, HTTP app, admin, CLI).
A module may import its own layer or any layer below it, never above; every import counts, also
the ones inside functions and under `if TYPE_CHECKING:`, because an arrow drawn lazily is still an
arrow. Runner and edge modules must not import each other in a cycle either.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("audio", "gateway", "providers")

# The base layer: the vocabulary every other layer speaks. It imports only `audio` and itself.
BASE = frozenset({"gateway", "gateway.errors", "gateway.events", "gateway.clock", "gateway.session_config"})
# Edges: what faces clients and operators. Nothing below imports them.
EDGE_PREFIXES = ("gateway.clients", "gateway.telephony", "gateway.app", "gateway.admin", "gateway.cli",
                 "gateway.serve", "gateway.bench_cli", "gateway.fleet.admin_api", "gateway.fleet.prestop")
LAYERS = ("audio", "base", "providers", "runners", "edges")


def layer_of(module: str) -> str:
    if module == "audio" or module.startswith("audio."):
        return "audio"
    if module in BASE:
        return "base"
    if module == "providers" or module.startswith("providers."):
        return "providers"
    if any(module == p or module.startswith(p + ".") for p in EDGE_PREFIXES):
        return "edges"
    return "runners"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module of ours that `path` imports (absolute names; `from x import y` counts `x.y` when
    that is a module of ours, else `x`)."""
    ours: set[str] = set()
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            ours.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                own = module_name(path)
                package = own if path.name == "__init__.py" else own.rpartition(".")[0]
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            ours.add(base)
            ours.update(f"{base}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                ours.add(arg.value)
    return ours


def import_graph() -> dict[str, set[str]]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    modules = {module_name(p): p for p in files}
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def upward_imports(graph: Mapping[str, Iterable[str]]) -> list[str]:
    rank = {name: i for i, name in enumerate(LAYERS)}
    bad = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if rank[layer_of(target)] > rank[layer_of(module)]:
                bad.append(f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)})")
    return bad


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Import cycles between modules of ours (a package importing its own submodules excepted)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith(node + "."):
                continue  # a package's __init__ re-exporting its submodules is not a cycle
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_no_layer_imports_upward() -> None:
    assert upward_imports(import_graph()) == []


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_the_check_sees_an_upward_import() -> None:
    """The checker itself: each forbidden arrow of the issue is reported."""
    graph = {
        "audio.g711": {"gateway.errors"},  # audio imports the product
        "gateway.events": {"gateway.link"},  # the base layer imports a runner
        "providers.openai": {"gateway.runtime"},  # a provider imports the runtime
        "gateway.link": {"gateway.clients.native"},  # a runner imports an edge
        "gateway.session": {"providers.base", "gateway.errors", "audio.convert"},  # all fine
    }
    assert upward_imports(graph) == [
        "audio.g711 (audio) imports gateway.errors (base)",
        "gateway.events (base) imports gateway.link (runners)",
        "gateway.link (runners) imports gateway.clients.native (edges)",
        "providers.openai (providers) imports gateway.runtime (runners)",
    ]
    assert cycles({"gateway.runtime": {"gateway.session"}, "gateway.session": {"gateway.runtime"}}) == [
        ["gateway.runtime", "gateway.session", "gateway.runtime"]]


def test_lazy_and_type_checking_imports_count(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from gateway.session import X\n"
                   "def f():\n    import providers.fakes\n    __import__('gateway.auth')\n")
    assert {"gateway.session", "providers.fakes", "gateway.auth"} <= imports_of(src)
