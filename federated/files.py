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

__all__ = ["atomic_write", "check_writable"]


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` as an ``OSError`` of the same errno that names ``path`` (a full disk's ``write`` names no file)."""
    if exc.errno is None:
        return exc
    return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path))  # the errno picks the subclass


def atomic_write(path: Path, data: bytes, mode: int = 0o600, *, folder_mode: int = 0o700, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically with permissions ``mode``; a missing folder is made ``folder_mode``.

    ``durable=False`` skips the fsync: the file survives a killed process (the kernel has it), not always a power
    cut. Only for a file written very often whose loss is detected and harmless (a node's outbox).

    Raises:
        OSError: the folder or the file cannot be written (read-only or full disk, no permission); its
            ``filename`` is the folder or ``path`` itself, never the temporary file, and nothing is left behind.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=folder_mode)
    except OSError as exc:  # it names the folder that could not be made
        raise _naming(exc, Path(exc.filename) if exc.filename is not None else path.parent) from exc
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _naming(exc, path) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise _naming(exc, path) from exc
        raise


def check_writable(folder: Path, *, folder_mode: int = 0o700) -> None:
    """Make ``folder`` if missing (``folder_mode``) and prove a file can be created in it (and removed).

    A node calls it at start, so a read-only or missing workdir is named then, not at its first job.

    Raises:
        OSError: naming ``folder``.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=folder_mode)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-check.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise _naming(exc, folder) from exc
