"""Small modules and classes (docs/architecture.md): no module of the package over MAX_MODULE_LINES,
no class over MAX_CLASS_LINES, so the structure the splits gave it holds as the code grows.

The limits leave headroom over the aim (modules under ~400 lines, classes under ~300): a module that
crosses one is split along a real seam (see how gateway/config.py, gateway/link.py or
providers/fakes/common.py were), not squeezed. An exception needs an entry in EXCEPTIONS with its
reason; there are none today.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("audio", "gateway", "providers")
MAX_MODULE_LINES = 450
MAX_CLASS_LINES = 320
# "path" or "path:Class" → why it may be bigger. Keep it empty; say why when it is not.
EXCEPTIONS: dict[str, str] = {}


def oversized(root: Path, packages: tuple[str, ...] = PACKAGES, *, max_module: int = MAX_MODULE_LINES,
              max_class: int = MAX_CLASS_LINES) -> list[str]:
    found = []
    for path in sorted(p for pkg in packages for p in (root / pkg).rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > max_module and rel not in EXCEPTIONS:
            found.append(f"{rel}: {lines} lines (limit {max_module})")
        for node in ast.walk(ast.parse(text, filename=rel)):
            if isinstance(node, ast.ClassDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > max_class and f"{rel}:{node.name}" not in EXCEPTIONS:
                    found.append(f"{rel}: class {node.name} is {size} lines (limit {max_class})")
    return found


def test_no_module_or_class_over_the_limit() -> None:
    assert oversized(ROOT) == []


def test_exceptions_name_existing_code_and_say_why() -> None:
    for key, reason in EXCEPTIONS.items():
        assert (ROOT / key.partition(":")[0]).is_file(), f"{key}: no such module"
        assert len(reason.split()) >= 3, f"{key}: say why it may be bigger"


def test_the_check_sees_a_big_module_and_a_big_class(tmp_path: Path) -> None:
    pkg = tmp_path / "gateway"
    pkg.mkdir()
    (pkg / "small.py").write_text("class A:\n    x = 1\n")
    (pkg / "big.py").write_text("x = 1\n" * 12)
    (pkg / "wide.py").write_text("class Wide:\n" + "    x = 1\n" * 6)
    assert oversized(tmp_path, ("gateway",), max_module=10, max_class=5) == [
        "gateway/big.py: 12 lines (limit 10)",
        "gateway/wide.py: class Wide is 7 lines (limit 5)",
    ]
