"""Imports point one way: federated -> protocols. Protocol math has no network, files or clocks."""

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
