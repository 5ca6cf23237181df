"""The certificate profiles and the ONE function that issues a node's certificates.

Owns: the CA (:class:`_Ca`: making one, :func:`_make_ca`, and loading one from disk,
:func:`_load_ca`); a node's key pairs (:class:`_NodeKeys`); what a certificate is issued
for (:class:`NodeRequest`) and what was issued (:class:`IssuedNode`); each role's TLS
profile (:func:`_tls_profile`: serverAuth and host names for the coordinator only,
clientAuth and its own name for parties and operators); and :func:`_issue_node`, the one
place the TLS, signing and sealing profiles live, used by both ``certs init``
(:mod:`.dev`) and ``certs sign`` (:mod:`.csr`).

Callers reach the issuing function as ``profiles._issue_node`` (an attribute of this
module, not a name imported from it), so there is one function to replace in a test.

It writes nothing itself. It may import :mod:`.layout`, :mod:`fedcredit.runtime.errors` and
``cryptography``; not :mod:`.dev` or :mod:`.csr`.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ...errors import ConfigError

from .layout import ROLES, NodeFiles, _cert_pem, _key_pem, _read, validate_name

_CA_CN = "fedcredit development CA"
_CLOCK_SKEW = _dt.timedelta(minutes=5)
_HOST_PATTERN = re.compile(r"(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*")


def _check_host(host: str) -> str:
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    if _HOST_PATTERN.fullmatch(host) is None:
        raise ConfigError(f"invalid host name {host!r} for a certificate: use a DNS name (no wildcards) or an IP address")
    return host


def _san_entries(name: str, hosts: Sequence[str]) -> list[x509.GeneralName]:
    entries: list[x509.GeneralName] = [x509.DNSName(name)]
    seen = {("dns", name)}
    for host in hosts:
        _check_host(host)
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            key = ("dns", host)
            entry: x509.GeneralName = x509.DNSName(host)
        else:
            key = ("ip", str(ip))
            entry = x509.IPAddress(ip)
        if key not in seen:
            seen.add(key)
            entries.append(entry)
    return entries


def _tls_profile(name: str, role: str, hosts: Sequence[str]) -> tuple[x509.ObjectIdentifier, list[x509.GeneralName]]:
    """The one rule for a node's TLS certificate: its extended key usage and its names.

    Only the coordinator serves: serverAuth, its name and the host names it listens on. Parties and operators only
    dial out: clientAuth and their own name, so no node's certificate can pose as the coordinator.
    """
    if role == "coordinator":
        return ExtendedKeyUsageOID.SERVER_AUTH, _san_entries(name, hosts)
    if hosts:
        raise ConfigError(f"{name} is a {role}: only the coordinator's certificate carries host names (it alone serves)")
    return ExtendedKeyUsageOID.CLIENT_AUTH, _san_entries(name, ())


def _builder(
    subject_cn: str,
    issuer: x509.Name,
    public_key: object,
    now: _dt.datetime,
    days: int,
    not_after: _dt.datetime | None = None,
) -> x509.CertificateBuilder:
    end = now + _dt.timedelta(days=days)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
        .issuer_name(issuer)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(min(end, not_after) if not_after is not None else end)
    )


def _key_usage(*, digital_signature: bool = False, content_commitment: bool = False,
               key_agreement: bool = False, key_cert_sign: bool = False,
               crl_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=content_commitment,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=key_agreement,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _utc(now: _dt.datetime | None) -> _dt.datetime:
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return now.replace(tzinfo=_dt.timezone.utc) if now.tzinfo is None else now


@dataclass(frozen=True)
class _Ca:
    """The CA's key and certificate, as the issuing function needs them."""

    key: ec.EllipticCurvePrivateKey = field(repr=False)
    cert: x509.Certificate

    @property
    def aki(self) -> x509.AuthorityKeyIdentifier:
        ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)

    def outputs(self, key_path: Path, cert_path: Path) -> list[tuple[Path, bytes, int]]:
        """The CA's two files as ``(path, bytes, mode)``: the key 0600, the certificate 0644."""
        return [(key_path, _key_pem(self.key), 0o600), (cert_path, _cert_pem(self.cert), 0o644)]


def _make_ca(now: _dt.datetime, days: int) -> _Ca:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _CA_CN)])
    ca_cert = (
        _builder(_CA_CN, ca_name, ca_key.public_key(), now, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return _Ca(ca_key, ca_cert)


def _load_ca(ca_dir: Path) -> _Ca:
    cert_path, key_path = Path(ca_dir) / "ca.crt", Path(ca_dir) / "ca.key"
    try:
        cert = x509.load_pem_x509_certificate(_read(cert_path, "CA certificate"))
    except ValueError:
        raise ConfigError(f"CA certificate file {cert_path} is not a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(_read(key_path, "CA private key"), password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"CA private key file {key_path} is not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise ConfigError(f"CA private key {key_path} does not match the CA certificate {cert_path}")
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise ConfigError(f"{cert_path} is not a CA certificate made by `fedcredit certs ca` or `certs init`")
    return _Ca(key, cert)


@dataclass(frozen=True)
class _NodeKeys:
    """One node's private keys: a TLS key for every node, a signing key for every node, a sealing key for parties."""

    tls: ec.EllipticCurvePrivateKey = field(repr=False)
    sign: ed25519.Ed25519PrivateKey = field(repr=False)
    seal: x25519.X25519PrivateKey | None = field(default=None, repr=False)

    @classmethod
    def generate(cls, role: str) -> _NodeKeys:
        seal = x25519.X25519PrivateKey.generate() if role == "party" else None
        return cls(ec.generate_private_key(ec.SECP256R1()), ed25519.Ed25519PrivateKey.generate(), seal)

    def outputs(self, files: NodeFiles) -> list[tuple[Path, bytes, int]]:
        out = [(files.tls_key, _key_pem(self.tls), 0o600)]
        if files.sign_key is not None:
            out.append((files.sign_key, _key_pem(self.sign), 0o600))
        if self.seal is not None and files.seal_key is not None:
            out.append((files.seal_key, _key_pem(self.seal), 0o600))
        return out


@dataclass(frozen=True)
class NodeRequest:
    """What a certificate is issued for: a node's name, role, host names (coordinator only) and public keys.

    :func:`init_certs` makes one from keys it generates; :func:`read_request` from a node's CSRs.
    """

    name: str
    role: str
    tls_key: ec.EllipticCurvePublicKey
    sign_key: ed25519.Ed25519PublicKey
    seal_key: x25519.X25519PublicKey | None = None
    hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class IssuedNode:
    """The certificates issued to one node (``seal`` for parties only)."""

    name: str
    role: str
    tls: x509.Certificate
    sign: x509.Certificate
    seal: x509.Certificate | None = None

    def outputs(self, files: NodeFiles) -> list[tuple[Path, bytes, int]]:
        out = [(files.tls_cert, _cert_pem(self.tls), 0o644)]
        if files.sign_cert is not None:
            out.append((files.sign_cert, _cert_pem(self.sign), 0o644))
        if self.seal is not None and files.seal_cert is not None:
            out.append((files.seal_cert, _cert_pem(self.seal), 0o644))
        return out


def _issue_node(ca: _Ca, node: NodeRequest, now: _dt.datetime, days: int) -> IssuedNode:
    """Issue one node's certificates: the ONE place the profiles live, used by ``certs init`` and ``certs sign``.

    * TLS (EC P-256): keyUsage digitalSignature (critical), the role's extended key usage and names
      (:func:`_tls_profile`), SKI and AKI.
    * signing (Ed25519), every node: keyUsage digitalSignature + contentCommitment (critical), SKI and AKI.
    * sealing (X25519), parties only: keyUsage keyAgreement (critical) and AKI.

    Every certificate has CN=<name> only, basicConstraints CA:FALSE (critical), and ends no later than the CA.
    """
    validate_name(node.name)
    if node.role not in ROLES:
        raise ConfigError(f"unknown role {node.role!r} for {node.name}: use {', '.join(ROLES)}")
    if (node.role == "party") != (node.seal_key is not None):
        raise ConfigError(f"{node.name}: parties, and only parties, get a sealing certificate")
    eku, names = _tls_profile(node.name, node.role, node.hosts)
    issuer, aki, until = ca.cert.subject, ca.aki, ca.cert.not_valid_after_utc

    def leaf(public_key: object) -> x509.CertificateBuilder:
        return (_builder(node.name, issuer, public_key, now, days, until)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))

    tls = (
        leaf(node.tls_key)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(node.tls_key), critical=False)
        .add_extension(aki, critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    sign = (
        leaf(node.sign_key)
        .add_extension(_key_usage(digital_signature=True, content_commitment=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(node.sign_key), critical=False)
        .add_extension(aki, critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    seal = None
    if node.seal_key is not None:
        seal = (
            leaf(node.seal_key)
            .add_extension(_key_usage(key_agreement=True), critical=True)
            .add_extension(aki, critical=False)
            .sign(ca.key, hashes.SHA256())
        )
    return IssuedNode(node.name, node.role, tls, sign, seal)
