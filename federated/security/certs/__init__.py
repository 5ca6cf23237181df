"""Certificates: a development CA, TLS identities, sealing and signing keys.

:func:`init_certs` writes this layout (and :func:`request_certs` + :func:`sign_requests` the same one, node by node)::

    DIR/ca.crt, DIR/ca.key                    the CA (EC P-256, self-signed)
    DIR/<name>/tls.crt, DIR/<name>/tls.key    every node: mTLS identity, CN=<name>
    DIR/<name>/seal.crt, DIR/<name>/seal.key  parties only: X25519 sealing key,
                                              certified by the same CA
    DIR/<name>/sign.crt, DIR/<name>/sign.key  every node: Ed25519 signing key for
                                              transcripts and envelopes, CN=<name>,
                                              keyUsage digitalSignature +
                                              contentCommitment (critical)

Only the coordinator's TLS certificate is a server's (serverAuth, its name and
host names); parties' and operators' are clientAuth-only with their own name.
Private keys are unencrypted PKCS#8 PEM with mode 0600; every file is written
atomically (temporary file + ``os.replace``).

Two ways to make them, with the same certificates (one issuing function,
``profiles._issue_node``):

* :func:`init_certs` makes every key and certificate in one folder: for
  development, demos and tests.
* The CSR flow keeps each node's private keys on its own machine:
  :func:`create_ca` (at the CA), :func:`request_certs` (at each node: keys and a
  ``.csr``), :func:`sign_requests` (at the CA: checks each request against its
  role's profile and issues the certificates).

The room, with arrows one way (dev, csr → profiles → layout → verify):

* :mod:`.layout` — node names and roles, the directory layout, PEM encoding,
  atomic 0600 writes, reading a node's mTLS files (:func:`load_tls`).
* :mod:`.profiles` — the CA, a node's keys, the role profiles and the one
  issuing function.
* :mod:`.dev` — :func:`init_certs` (``certs init``).
* :mod:`.csr` — :func:`create_ca`, :func:`request_certs`, :func:`read_request`,
  :func:`sign_requests` (``certs ca``, ``certs request``, ``certs sign``).
* :mod:`.verify` — checking certificates at run time: fingerprints, names,
  issuance and key usage, key pairs.

The package may import :mod:`fedcredit.runtime.errors`, :mod:`fedcredit.runtime.files` and
``cryptography`` only; the rest of the runtime imports it through the names below.
"""

from __future__ import annotations

from .csr import SEAL_KEY_OID, CertRequest, SignedNode, create_ca, read_request, request_certs, sign_requests
from .dev import init_certs
from .layout import NAME_PATTERN, ROLES, CertLayout, NodeFiles, TlsMaterial, load_tls, validate_name
from .profiles import IssuedNode, NodeRequest
from .verify import cert_fingerprint, check_cert_time, load_key_pair, single_cn, verify_issued_cert

__all__ = [
    "NAME_PATTERN",
    "ROLES",
    "SEAL_KEY_OID",
    "validate_name",
    "NodeFiles",
    "CertLayout",
    "TlsMaterial",
    "NodeRequest",
    "IssuedNode",
    "CertRequest",
    "SignedNode",
    "init_certs",
    "create_ca",
    "request_certs",
    "read_request",
    "sign_requests",
    "cert_fingerprint",
    "check_cert_time",
    "load_tls",
    # used by fedcredit.runtime.security.sealing and fedcredit.runtime.security.signing
    "single_cn",
    "verify_issued_cert",
    "load_key_pair",
]
