"""The CSR flow (``certs ca``, ``certs request``, ``certs sign``): each node keeps its private keys.

Owns :func:`create_ca` (at the CA: only ``ca.crt`` and ``ca.key``), :func:`request_certs`
(at each node: its keys, 0600, and a ``.csr`` of two PKCS#10 requests, the party's X25519
sealing key riding in :data:`SEAL_KEY_OID`), :func:`read_request` (the check of a request
against its role's profile: anything more is refused) and :func:`sign_requests` (at the
CA: every request checked before anything is issued, then issued through
``profiles._issue_node``, the one issuing function ``certs init`` uses too).

It may import :mod:`.profiles`, :mod:`.layout`, :mod:`fedcredit.runtime.errors` and
``cryptography``; not :mod:`.dev`.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from ...errors import ConfigError, CryptoError

from . import profiles
from .layout import (
    NAME_PATTERN,
    ROLES,
    CertLayout,
    NodeFiles,
    _cert_pem,
    _check_days,
    _node_files,
    _read,
    _refuse_existing,
    _write_files,
    validate_name,
)
from .profiles import IssuedNode, NodeRequest, _load_ca, _make_ca, _NodeKeys, _san_entries, _tls_profile, _utc

#: The extension of a party's signing CSR that carries its X25519 sealing public key (SubjectPublicKeyInfo, DER):
#: an X25519 key cannot sign its own CSR, so the party's Ed25519 signature over the CSR vouches for it. A UUID
#: OID (ITU-T X.667), so no registration is needed.
SEAL_KEY_OID = x509.ObjectIdentifier("2.25.218854664165407894382632781667904354019")

_EKU_NAMES = {ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth", ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth"}
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.S)


def create_ca(directory: Path, *, days: int = 365, overwrite: bool = False, now: _dt.datetime | None = None) -> CertLayout:
    """Create only a CA (``DIR/ca.crt``, ``DIR/ca.key`` 0600), to issue certificates from CSRs with :func:`sign_requests`.

    Raises:
        ConfigError: ``days < 1``, or a CA is already there and ``overwrite`` is false.
    """
    directory = Path(directory)
    _check_days(days)
    layout = CertLayout(directory)
    _refuse_existing([layout.ca_cert, layout.ca_key], overwrite, "a CA", "Pass --force to replace it.")
    ca = _make_ca(_utc(now), days)
    _write_files(directory, (), ca.outputs(layout.ca_key, layout.ca_cert))
    return layout


def _request_subject(name: str, role: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name), x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role)])


@dataclass(frozen=True)
class CertRequest:
    """What :func:`request_certs` wrote: the request to send to the CA, and where the node's keys are."""

    name: str
    role: str
    csr: Path
    files: NodeFiles


def request_certs(
    directory: Path,
    name: str,
    role: str,
    *,
    hosts: Sequence[str] | None = None,
    overwrite: bool = False,
) -> CertRequest:
    """Make one node's private keys and its certificate request, on the node's own machine.

    Writes ``DIR/<name>/tls.key`` and ``sign.key`` (and ``seal.key`` for a party), mode 0600, and the request
    ``DIR/<name>.csr``: two PKCS#10 CSRs with subject CN=<name>, OU=<role>. The TLS CSR (EC P-256) asks for the
    role's extended key usage and names; the signing CSR (Ed25519) of a party carries its X25519 sealing public
    key in the :data:`SEAL_KEY_OID` extension (an X25519 key cannot sign its own CSR). Only the ``.csr`` leaves
    the node; :func:`sign_requests` puts the certificates next to the keys.

    Args:
        directory: the node's certificate folder (the layout :func:`init_certs` writes).
        name: the node's name (its certificates' CN).
        role: ``party``, ``operator`` or ``coordinator``.
        hosts: the coordinator's DNS names and IP addresses; default ``localhost, 127.0.0.1``. Other roles take none.
        overwrite: replace existing keys and request.

    Raises:
        ConfigError: a bad name, role or host, or existing files and ``overwrite`` is false. Nothing is written then.
    """
    validate_name(name)
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r}: use {', '.join(ROLES)}")
    if hosts is None:
        hosts = ("localhost", "127.0.0.1") if role == "coordinator" else ()
    eku, names = _tls_profile(name, role, hosts)
    directory = Path(directory)
    files = _node_files(directory, name, role)
    csr_path = directory / f"{name}.csr"
    key_paths = [p for p in (files.tls_key, files.sign_key, files.seal_key) if p is not None]
    _refuse_existing([*key_paths, csr_path], overwrite, "a request or keys", "Pass --force to make new keys.")

    keys = _NodeKeys.generate(role)
    subject = _request_subject(name, role)
    tls_csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(keys.tls, hashes.SHA256())
    )
    sign_builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if keys.seal is not None:
        spki = keys.seal.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        sign_builder = sign_builder.add_extension(x509.UnrecognizedExtension(SEAL_KEY_OID, spki), critical=False)
    sign_csr = sign_builder.sign(keys.sign, None)
    request = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (tls_csr, sign_csr))
    # The keys first and the request last: a request on disk means its keys are there.
    _write_files(directory, [name], keys.outputs(files) + [(csr_path, request, 0o644)])
    return CertRequest(name, role, csr_path, files)


def _refuse(source: str, why: str) -> ConfigError:
    return ConfigError(f"refusing the request {source}: {why}")


def _request_identity(csr: x509.CertificateSigningRequest, source: str) -> tuple[str, str]:
    attrs = list(csr.subject)
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    ous = csr.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    if len(attrs) != 2 or len(cns) != 1 or len(ous) != 1:
        raise _refuse(source, "a CSR's subject must be exactly CN=<node name>, OU=<role>")
    name, role = str(cns[0].value), str(ous[0].value)
    if NAME_PATTERN.fullmatch(name) is None:
        raise _refuse(source, f"invalid node name {name!r}")
    if role not in ROLES:
        raise _refuse(source, f"unknown role {role!r} (use {', '.join(ROLES)})")
    return name, role


def read_request(data: bytes, *, coordinator: str = "coordinator", source: str = "request") -> NodeRequest:
    """Check a node's request (:func:`request_certs`) against the profile of its role, and return what to certify.

    Refused (:class:`ConfigError`, or :class:`CryptoError` for a signature): anything but exactly a TLS CSR (EC
    P-256) and a signing CSR (Ed25519), such as a private key; a CSR whose signature does not verify; subjects other
    than CN=<name>, OU=<role> or that differ between the two; a TLS CSR that asks for another extended key usage than
    its role's (serverAuth for the coordinator, clientAuth for parties and operators), for names other than its
    own (and, for the coordinator, its DNS names and IP addresses), or for any other extension; a sealing key
    from anyone but a party, or a party without one; the role ``coordinator`` under another name than
    ``coordinator``, or that name under another role.
    """
    blocks = [(m.group(1).decode("ascii"), m.group(0)) for m in _PEM_BLOCK.finditer(data)]
    if any("PRIVATE KEY" in kind for kind, _ in blocks):
        raise _refuse(source, "it contains a private key. Keys never leave their node: delete this file, "
                              "make new keys and a new request with `fedcredit certs request`")
    if len(blocks) != 2 or any(kind != "CERTIFICATE REQUEST" for kind, _ in blocks):
        raise _refuse(source, "a request holds exactly two PEM CSRs (TLS and signing), as `fedcredit certs request` writes")
    try:
        csrs = [x509.load_pem_x509_csr(pem) for _, pem in blocks]
    except ValueError:
        raise _refuse(source, "a CSR is not valid PEM/DER") from None
    for csr in csrs:
        if not csr.is_signature_valid:
            raise CryptoError(f"refusing the request {source}: a CSR's signature does not verify (altered or forged)")
    (name, role), other = _request_identity(csrs[0], source), _request_identity(csrs[1], source)
    if other != (name, role):
        raise _refuse(source, f"its two CSRs name different nodes or roles ({name}/{role}, {other[0]}/{other[1]})")
    if (role == "coordinator") != (name == coordinator):
        raise _refuse(source, f"only {coordinator!r} may have the role coordinator (a server certificate); "
                              f"this CSR is for {name!r} as {role}")
    tls = [c for c in csrs if isinstance(c.public_key(), ec.EllipticCurvePublicKey)]
    sign = [c for c in csrs if isinstance(c.public_key(), ed25519.Ed25519PublicKey)]
    if len(tls) != 1 or len(sign) != 1:
        raise _refuse(source, "it needs one TLS CSR with an EC P-256 key and one signing CSR with an Ed25519 key")
    tls_key, sign_key = tls[0].public_key(), sign[0].public_key()
    assert isinstance(tls_key, ec.EllipticCurvePublicKey) and isinstance(sign_key, ed25519.Ed25519PublicKey)
    if not isinstance(tls_key.curve, ec.SECP256R1):
        raise _refuse(source, f"the TLS key is on {tls_key.curve.name}, not P-256")

    # The TLS CSR: exactly the role's extended key usage and names.
    exts = {e.oid: e.value for e in tls[0].extensions}
    if set(exts) != {ExtensionOID.EXTENDED_KEY_USAGE, ExtensionOID.SUBJECT_ALTERNATIVE_NAME}:
        raise _refuse(source, "the TLS CSR must ask for exactly an extended key usage and subject alternative names")
    eku = exts[ExtensionOID.EXTENDED_KEY_USAGE]
    wanted = ExtendedKeyUsageOID.SERVER_AUTH if role == "coordinator" else ExtendedKeyUsageOID.CLIENT_AUTH
    assert isinstance(eku, x509.ExtendedKeyUsage)
    if list(eku) != [wanted]:
        asked = ", ".join(_EKU_NAMES.get(o, o.dotted_string) for o in eku) or "nothing"
        raise _refuse(source, f"a {role} certificate is {_EKU_NAMES[wanted]} only; the CSR asks for {asked}")
    san = exts[ExtensionOID.SUBJECT_ALTERNATIVE_NAME]
    assert isinstance(san, x509.SubjectAlternativeName)
    hosts: list[str] = []
    for entry in san:
        if isinstance(entry, x509.DNSName) and entry.value == name:
            continue
        if not isinstance(entry, (x509.DNSName, x509.IPAddress)):
            raise _refuse(source, f"the CSR asks for a {type(entry).__name__} name; only DNS names and IP addresses are issued")
        if role != "coordinator":
            raise _refuse(source, f"a {role} certificate names only its node ({name}); the CSR asks for {entry.value}")
        hosts.append(str(entry.value))
    try:
        profile = _san_entries(name, hosts)
    except ConfigError as exc:
        raise _refuse(source, exc.message) from None
    if set(profile) != set(san):
        raise _refuse(source, f"the CSR's names must be its node's, {name!r} (DNS), and for the coordinator its hosts")

    # The signing CSR: no extension but a party's sealing key.
    sexts = {e.oid: e.value for e in sign[0].extensions}
    seal_key = None
    if set(sexts) - {SEAL_KEY_OID}:
        raise _refuse(source, "the signing CSR asks for extensions; its certificate's profile is fixed")
    if role == "party":
        raw = sexts.get(SEAL_KEY_OID)
        if not isinstance(raw, x509.UnrecognizedExtension):
            raise _refuse(source, "a party's request must carry its X25519 sealing key")
        try:
            seal_key = serialization.load_der_public_key(raw.value)
        except (ValueError, TypeError):
            seal_key = None
        if not isinstance(seal_key, x25519.X25519PublicKey):
            raise _refuse(source, "the sealing key in the signing CSR is not an X25519 public key")
    elif sexts:
        raise _refuse(source, f"only parties get a sealing key; {name} is a {role}")
    return NodeRequest(name, role, tls_key, sign_key, seal_key, tuple(hosts))


@dataclass(frozen=True)
class SignedNode:
    """One node's certificates written by :func:`sign_requests`."""

    issued: IssuedNode
    files: NodeFiles

    @property
    def name(self) -> str:
        return self.issued.name


def sign_requests(
    ca_dir: Path,
    requests: Sequence[Path],
    out: Path,
    *,
    coordinator: str = "coordinator",
    days: int = 365,
    overwrite: bool = False,
    now: _dt.datetime | None = None,
) -> list[SignedNode]:
    """Issue certificates for nodes' requests, with the profiles :func:`init_certs` uses (one issuing function).

    Every request is checked by :func:`read_request` before anything is issued; one bad request issues nothing.
    Writes ``OUT/<name>/tls.crt``, ``sign.crt`` (and ``seal.crt`` for a party) and ``OUT/ca.crt`` (0644): copy them
    next to the node's keys (with ``--out`` the node's own folder, they land there).

    Args:
        ca_dir: the folder with ``ca.crt`` and ``ca.key`` (:func:`create_ca`, or :func:`init_certs`).
        requests: ``.csr`` files made by :func:`request_certs`.
        out: where to write the certificates.
        coordinator: the coordinator's name: the only node that may get a server certificate.
        days: validity (never past the CA's own).
        overwrite: replace existing certificates in ``out``.

    Raises:
        ConfigError: a refused request, two requests for one name, an unusable CA, or existing certificates.
        CryptoError: a CSR whose signature does not verify.
    """
    _check_days(days)
    if not requests:
        raise ConfigError("no requests to sign")
    validate_name(coordinator, "coordinator name")
    ca = _load_ca(ca_dir)
    nodes = [read_request(_read(Path(p), "certificate request"), coordinator=coordinator, source=str(p)) for p in requests]
    names = [n.name for n in nodes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"two requests for the same node: {', '.join(duplicates)}")
    out = Path(out)
    now = _utc(now)
    signed = [SignedNode(profiles._issue_node(ca, n, now, days), _node_files(out, n.name, n.role)) for n in nodes]
    outputs = [o for s in signed for o in s.issued.outputs(s.files)]
    _refuse_existing([p for p, _, _ in outputs], overwrite, "certificates", "Pass --force to replace them.")
    ca_pem = _cert_pem(ca.cert)
    ca_out = out / "ca.crt"
    if ca_out.exists() and ca_out.read_bytes() != ca_pem and not overwrite:
        raise ConfigError(f"{ca_out} holds another CA's certificate; refusing to overwrite it. Pass --force to replace it.")
    _write_files(out, names, outputs + [(ca_out, ca_pem, 0o644)])
    return signed
