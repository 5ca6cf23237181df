"""``certs init``: a development CA and every node's keys and certificates, in one folder.

Owns :func:`init_certs`, for development, demos and tests: it makes the CA and each
node's private keys on one machine, and issues their certificates through the same
issuing function as the CSR flow (``profiles._issue_node``). To keep each node's
private keys on its own machine, use :mod:`.csr` instead.

It may import :mod:`.profiles`, :mod:`.layout` and :mod:`fedcredit.runtime.errors`; not :mod:`.csr`.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from pathlib import Path

from ...errors import ConfigError

from . import profiles
from .layout import CertLayout, _check_days, _refuse_existing, _write_files, validate_name
from .profiles import NodeRequest, _make_ca, _NodeKeys, _utc


def init_certs(
    directory: Path,
    parties: Sequence[str],
    *,
    coordinator: str = "coordinator",
    operators: Sequence[str] = ("operator",),
    hosts: Sequence[str] = ("localhost", "127.0.0.1"),
    days: int = 365,
    overwrite: bool = False,
    now: _dt.datetime | None = None,
) -> CertLayout:
    """Create a development CA and certificates for every node, all in one directory.

    Every node (coordinator, parties, operators) gets an mTLS identity and an
    Ed25519 signing identity (``sign.crt``/``sign.key``); parties also get an
    X25519 sealing key. The certificates are those :func:`sign_requests` issues
    (one issuing function); to keep each node's private keys on its own
    machine, use :func:`create_ca`, :func:`request_certs` and :func:`sign_requests`.

    Args:
        directory: where to write the layout (created if missing).
        parties: party names; each gets a TLS identity and a sealing key pair.
        coordinator: the coordinator's name (no sealing key).
        operators: operator names (no sealing key; e.g. for the CLI).
        hosts: extra SANs on the coordinator's TLS certificate, the only server (IP literals become IP SANs).
        days: validity of all certificates.
        overwrite: replace an existing CA and node files.
        now: issuing time (UTC); defaults to the current time.

    Returns:
        The :class:`CertLayout` describing the written files.

    Raises:
        ConfigError: a bad or duplicate name, ``days < 1``, or existing files
            and ``overwrite`` is false. Nothing is written in these cases.
    """
    directory = Path(directory)
    if not parties:
        raise ConfigError("init_certs needs at least one party name")
    _check_days(days)
    names = [coordinator, *parties, *operators]
    for n in names:
        validate_name(n)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"node names must be unique; repeated: {', '.join(duplicates)}")
    layout = CertLayout(directory, tuple(names), tuple(parties))

    targets = [layout.ca_cert, layout.ca_key]
    for n in names:
        nf = layout.node(n)
        targets += [p for p in (nf.tls_cert, nf.tls_key, nf.seal_cert, nf.seal_key, nf.sign_cert, nf.sign_key) if p]
    hint = "Pass overwrite=True to replace the CA and every node certificate."
    _refuse_existing([layout.ca_cert, layout.ca_key], overwrite, "a CA", hint)
    _refuse_existing(targets, overwrite, "certificates", hint)

    now = _utc(now)
    ca = _make_ca(now, days)
    ca_files = ca.outputs(layout.ca_key, layout.ca_cert)
    node_files: list[tuple[Path, bytes, int]] = []
    for n in names:
        role = "coordinator" if n == coordinator else "party" if n in parties else "operator"
        keys = _NodeKeys.generate(role)
        request = NodeRequest(n, role, keys.tls.public_key(), keys.sign.public_key(),
                              keys.seal.public_key() if keys.seal is not None else None,
                              tuple(hosts) if role == "coordinator" else ())
        issued = profiles._issue_node(ca, request, now, days)
        node_files += keys.outputs(layout.node(n)) + issued.outputs(layout.node(n))

    # All generated first, so a crypto failure writes nothing. Node files first and the CA last, so an existing
    # ca.crt means the whole layout was written.
    _write_files(directory, names, node_files + ca_files)
    return layout
