"""Regenerate the committed protobuf/gRPC code from ``proto/fedcredit/v1/*.proto``.

The .proto files keep the layout buf and protoc expect for ``package fedcredit.v1``
(``fedcredit/v1/x.proto``), so the wire names (``/fedcredit.v1.RelayService/Send``,
``fedcredit.v1.Envelope``) and the descriptors' file names are those. The Python
modules install as ``fedcredit.proto.v1`` (the ``proto/fedcredit`` folder is the
package ``fedcredit.proto``): after protoc runs, :func:`python_modules` rewrites
the generated imports and module names from ``fedcredit.v1`` to ``fedcredit.proto.v1``
and nothing else.

Run ``make proto`` (or ``python -m fedcredit.runtime.protogen``). ``tests/test_proto.py``
regenerates into a temporary folder and fails if the committed files differ,
so generated code can never silently go stale. The generator is pinned
(``grpcio-tools`` in the ``dev`` extra) because its output changes across versions.
"""

from __future__ import annotations

import re
import sys
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PROTO_DIR = PROTO_ROOT / "fedcredit" / "v1"


def proto_files() -> list[Path]:
    return sorted(PROTO_DIR.glob("*.proto"))


_PYTHON_MODULE = re.compile(r"\bfedcredit\.v1(?=\.\w+_pb2\b| import )")


def python_modules(text: str) -> str:
    """Generated code's Python module paths, ``fedcredit.v1.x_pb2``, moved to ``fedcredit.proto.v1.x_pb2``.

    Only imports and module names change: ``from fedcredit.v1 import`` and ``'fedcredit.v1.relay_pb2'``.
    Wire names such as ``'/fedcredit.v1.RelayService/Send'`` and the serialized descriptors are untouched.
    """
    return _PYTHON_MODULE.sub("fedcredit.proto.v1", text)


def generate(out_dir: Path = PROTO_ROOT) -> list[Path]:
    """Generate ``*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py`` into ``out_dir / "fedcredit" / "v1"``."""
    from grpc_tools import protoc  # dev-only dependency

    include = str(resources.files("grpc_tools") / "_proto")
    files = [str(p.relative_to(PROTO_ROOT)) for p in proto_files()]
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *files,
    ]
    code = protoc.main(args)
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code}")
    generated = sorted((out_dir / "fedcredit" / "v1").glob("*_pb2*.py*"))
    for path in generated:
        path.write_text(python_modules(path.read_text()))
    return generated


def main() -> int:
    for path in generate():
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
