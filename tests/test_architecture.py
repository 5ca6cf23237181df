"""Imports point one way: fedcredit.runtime (federated/) -> fedcredit.protocols (protocols/). Protocol math has no network, files or clocks."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN_IN_PROTOCOLS = {"grpc", "federated", "fedcredit", "time", "datetime", "socket", "os", "pathlib", "sqlite3", "threading", "subprocess", "secrets"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_protocols_are_pure() -> None:
    files = sorted((ROOT / "protocols").rglob("*.py"))
    assert files
    bad = {str(p.relative_to(ROOT)): sorted(_imports(p) & FORBIDDEN_IN_PROTOCOLS) for p in files}
    assert {k: v for k, v in bad.items() if v} == {}


def test_protocols_never_call_open() -> None:
    for p in sorted((ROOT / "protocols").rglob("*.py")):
        tree = ast.parse(p.read_text(encoding="utf-8"))
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in ("open", "print", "input")]
        assert not calls, f"{p.name} calls {[c.func.id for c in calls]}"


# The runtime's floors, top down (federated/__init__.py): a module may import its own room and any lower floor.
RUNTIME_FLOORS = {
    "cli": 6,
    "audit": 5, "coordinator": 5,
    "node": 4,
    "plan": 3, "driver": 3,
    "codec": 2, "transcript": 2, "config": 2,
    "security": 1,
    "errors": 0, "files": 0,
}
# Beside the floors: the centralized references (used by the demo and the benchmarks) and `make proto`'s generator.
STANDALONE = {"reference", "protogen", "example_data"}


def _runtime_room(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if parts[:2] == ["fedcredit", "runtime"] and len(parts) > 2 else None


def _absolute_imports(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute (``from ..x import y`` resolved against where the file installs)."""
    package = _installed_package(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            elif package is None:
                continue
            else:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            names.add(base)
            names |= {f"{base}.{a.name}" for a in node.names}
    return names


def _installed_package(path: Path) -> str | None:
    """The package a file of ``federated/`` or ``protocols/`` installs in (``fedcredit.runtime.node``, ...)."""
    for folder, package in (("federated", "fedcredit.runtime"), ("protocols", "fedcredit.protocols")):
        try:
            rel = path.relative_to(ROOT / folder)
        except ValueError:
            continue
        return ".".join([package, *rel.parts[:-1]])
    return None


def test_everything_imports_through_the_one_fedcredit_namespace() -> None:
    """No file reaches the code by its folder name (``protocols``, ``federated``) or the old ``fedcredit.v1``."""
    files = [p for d in ("federated", "protocols", "tests", "benchmarks", "examples") for p in (ROOT / d).rglob("*.py")]
    assert len(files) > 100
    bad = {}
    for p in files:
        wrong = {m for m in _absolute_imports(p) if m.split(".")[0] in ("protocols", "federated") or m.startswith("fedcredit.v1")}
        if wrong:
            bad[str(p.relative_to(ROOT))] = sorted(wrong)
    assert bad == {}


def test_protocols_import_each_other_relatively() -> None:
    """``protocols/`` is one self-contained package: mypy checks it as it lies, and it never names the runtime."""
    for p in sorted((ROOT / "protocols").rglob("*.py")):
        tree = ast.parse(p.read_text(encoding="utf-8"))
        absolute = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0 and (n.module or "").startswith("fedcredit")]
        absolute += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names if a.name.startswith("fedcredit")]
        assert not absolute, p
        assert all(m.startswith("fedcredit.protocols") for m in _absolute_imports(p) if m.startswith("fedcredit")), p


def test_runtime_imports_point_down() -> None:
    rooms = {p.relative_to(ROOT / "federated").parts[0].removesuffix(".py") for p in (ROOT / "federated").glob("*") if not p.name.startswith("__")}
    assert rooms == set(RUNTIME_FLOORS) | STANDALONE - {"example_data"}, "a new room needs its floor here and in federated/__init__.py"
    upward = []
    for p in sorted((ROOT / "federated").rglob("*.py")):
        own = p.relative_to(ROOT / "federated").parts[0].removesuffix(".py")
        if own in STANDALONE or own.startswith("__"):
            continue
        for module in _absolute_imports(p):
            room = _runtime_room(module)
            if room is None or room == own or room not in RUNTIME_FLOORS and room not in STANDALONE:
                continue
            if room in STANDALONE and own == "cli":
                continue
            if room in STANDALONE or RUNTIME_FLOORS[room] >= RUNTIME_FLOORS[own]:
                upward.append(f"{p.relative_to(ROOT)} imports {module}")
    assert upward == []


def test_the_runtime_imports_itself_relatively() -> None:
    """Inside ``federated/`` the runtime's own modules are imported relatively (``from ..errors import``), as in
    ``protocols/``: the folders are not named ``fedcredit/...`` on disk, so only relative imports let a reader (and
    tools that draw the tree's imports) find the file an import means. ``fedcredit.protocols`` stays absolute."""
    bad = []
    for p in sorted((ROOT / "federated").rglob("*.py")):
        tree = ast.parse(p.read_text(encoding="utf-8"))
        for n in ast.walk(tree):
            names = [n.module or ""] if isinstance(n, ast.ImportFrom) and n.level == 0 else [a.name for a in n.names] if isinstance(n, ast.Import) else []
            bad += [f"{p.relative_to(ROOT)}: {m}" for m in names if m == "fedcredit.runtime" or m.startswith("fedcredit.runtime.")]
    assert bad == []
