"""The one way the runtime writes a file: complete or not at all, with the permissions it asks for.

:func:`atomic_write` writes to a temporary file in the target's folder, sets its mode before any byte is
written, fsyncs it and renames it over the target, so a reader sees the old file or the new one, never a
part; on any failure the temporary file is removed. Private files (keys, checkpoints, results,
intersections, payload copies) use the default 0600 in a folder made 0700; certificates use 0644.

Owns: atomic writes. May import: the standard library only (it is the ground floor of the runtime).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write"]


def atomic_write(path: Path, data: bytes, mode: int = 0o600, *, folder_mode: int = 0o700, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically with permissions ``mode``; a missing folder is made ``folder_mode``.

    ``durable=False`` skips the fsync: the file survives a killed process (the kernel has it), not always a power
    cut. Only for a file written very often whose loss is detected and harmless (a node's outbox)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=folder_mode)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
