"""The command line: the ``fedcredit`` command, the demo and the operator's client.

It owns the Typer app (:mod:`.main`, also ``python -m fedcredit.runtime.cli``), the local demo cluster
(:mod:`.demo`), the operator's gRPC client (:mod:`.client`) and job progress display
(:mod:`.progress`).

It is the top floor: it may import every other room; none imports it.
"""

from __future__ import annotations

from .main import main

__all__ = ["main"]
