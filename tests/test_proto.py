"""The committed generated code must equal what the pinned protoc emits now."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

from fedcredit.runtime import protogen


def test_generated_code_is_current(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    fresh = {p.name: p for p in protogen.generate(tmp_path)}
    committed = {p.name: p for p in (protogen.PROTO_DIR).glob("*_pb2*.py*")}
    assert fresh, "protoc generated nothing"
    assert sorted(fresh) == sorted(committed), "generated file set differs: run `make proto`"
    stale = [name for name, path in fresh.items() if not filecmp.cmp(path, committed[name], shallow=False)]
    assert not stale, f"stale generated code {stale}: run `make proto` and commit the result"


def test_every_proto_is_versioned_package() -> None:
    for path in protogen.proto_files():
        text = path.read_text()
        assert "package fedcredit.v1;" in text, path.name


def test_every_rpc_has_its_own_request_response_pair() -> None:
    import re

    for path in protogen.proto_files():
        for name, req, resp in re.findall(r"rpc\s+(\w+)\((?:stream\s+)?(\w+)\)\s+returns\s+\((?:stream\s+)?(\w+)\)", path.read_text()):
            assert req == f"{name}Request", (path.name, name, req)
            assert resp == f"{name}Response", (path.name, name, resp)
