"""A development certificate authority: TLS identities, sealing and signing keys.

:func:`init_certs` writes this layout::

    DIR/ca.crt, DIR/ca.key                    the CA (EC P-256, self-signed)
    DIR/<name>/tls.crt, DIR/<name>/tls.key    every node: mTLS identity, CN=<name>
    DIR/<name>/seal.crt, DIR/<name>/seal.key  parties only: X25519 sealing key,
                                              certified by the same CA
    DIR/<name>/sign.crt, DIR/<name>/sign.key  every node: Ed25519 signing key for
                                              transcripts and envelopes, CN=<name>,
                                              keyUsage digitalSignature +
                                              contentCommitment (critical)

Private keys are unencrypted PKCS#8 PEM with mode 0600; every file is written
atomically (temporary file + ``os.replace``). This is for development and
demos; production deployments bring their own PKI with the same layout.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cryptography.exceptions import InvalidSignature

from federated.errors import ConfigError, CryptoError

__all__ = [
    "NAME_PATTERN",
    "validate_name",
    "NodeFiles",
    "CertLayout",
    "TlsMaterial",
    "init_certs",
    "load_tls",
]

#: Node names: lowercase, start with a letter or digit, at most 63 characters.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")

_CA_CN = "fedcredit development CA"
_CLOCK_SKEW = _dt.timedelta(minutes=5)


def validate_name(name: str, what: str = "node name") -> str:
    """Return ``name`` if it matches :data:`NAME_PATTERN`, else raise ConfigError."""
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        raise ConfigError(
            f"invalid {what} {name!r}: use 1-63 characters a-z, 0-9, '_' or '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class NodeFiles:
    """The files of one node. ``seal_*`` are ``None`` for non-party nodes.

    ``sign_*`` (the Ed25519 signing identity) exist for every node written by
    :func:`init_certs`; layouts made before signing keys existed lack the files.
    """

    tls_cert: Path
    tls_key: Path
    seal_cert: Path | None = None
    seal_key: Path | None = None
    sign_cert: Path | None = None
    sign_key: Path | None = None


@dataclass(frozen=True)
class CertLayout:
    """Where :func:`init_certs` put (or would put) everything."""

    directory: Path
    nodes: tuple[str, ...] = ()
    parties: tuple[str, ...] = ()

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    def node(self, name: str) -> NodeFiles:
        """The files of node ``name``; ConfigError if the layout has no such node."""
        if name not in self.nodes:
            raise ConfigError(
                f"no certificates for {name!r} in {self.directory} "
                f"(known: {', '.join(self.nodes) or 'none'})"
            )
        d = self.directory / name
        sign = {"sign_cert": d / "sign.crt", "sign_key": d / "sign.key"}
        if name in self.parties:
            return NodeFiles(d / "tls.crt", d / "tls.key", d / "seal.crt", d / "seal.key", **sign)
        return NodeFiles(d / "tls.crt", d / "tls.key", **sign)

    def tls(self, name: str) -> TlsMaterial:
        """Load node ``name``'s mTLS material (CA, certificate, key)."""
        files = self.node(name)
        return load_tls(self.ca_cert, files.tls_cert, files.tls_key)

    @classmethod
    def load(cls, directory: Path) -> CertLayout:
        """Discover an existing layout on disk (nodes = sub-directories with tls.crt)."""
        directory = Path(directory)
        if not (directory / "ca.crt").is_file():
            raise ConfigError(f"no CA certificate at {directory / 'ca.crt'}; run init_certs first")
        nodes, parties = [], []
        for sub in sorted(p for p in directory.iterdir() if p.is_dir()):
            if NAME_PATTERN.fullmatch(sub.name) and (sub / "tls.crt").is_file():
                nodes.append(sub.name)
                if (sub / "seal.crt").is_file():
                    parties.append(sub.name)
        return cls(directory, tuple(nodes), tuple(parties))


@dataclass(frozen=True)
class TlsMaterial:
    """PEM bytes for one mTLS endpoint. The key is kept out of ``repr``."""

    ca: bytes
    cert: bytes
    key: bytes = field(repr=False)


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------
def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _key_pem(key: ec.EllipticCurvePrivateKey | x25519.X25519PrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _san_entries(name: str, hosts: Sequence[str]) -> list[x509.GeneralName]:
    entries: list[x509.GeneralName] = [x509.DNSName(name)]
    seen = {("dns", name)}
    for host in hosts:
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


def _builder(
    subject_cn: str,
    issuer: x509.Name,
    public_key: object,
    now: _dt.datetime,
    days: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
        .issuer_name(issuer)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + _dt.timedelta(days=days))
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
    """Create a development CA and certificates for every node.

    Every node (coordinator, parties, operators) gets an mTLS identity and an
    Ed25519 signing identity (``sign.crt``/``sign.key``); parties also get an
    X25519 sealing key.

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
    if days < 1:
        raise ConfigError(f"certificate validity must be at least 1 day, got {days}")
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
    existing = [p for p in targets if p.exists()]
    if existing and not overwrite:
        what = "a CA" if (layout.ca_cert in existing or layout.ca_key in existing) else "certificates"
        raise ConfigError(
            f"{directory} already contains {what} ({existing[0]}); refusing to overwrite "
            "it. Pass overwrite=True to replace the CA and every node certificate."
        )

    now = now or _dt.datetime.now(_dt.timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=_dt.timezone.utc)

    # --- CA -----------------------------------------------------------------
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _CA_CN)])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        _builder(_CA_CN, ca_name, ca_key.public_key(), now, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)

    outputs: list[tuple[Path, bytes, int]] = [
        (layout.ca_key, _key_pem(ca_key), 0o600),
        (layout.ca_cert, _cert_pem(ca_cert), 0o644),
    ]

    # --- nodes --------------------------------------------------------------
    for n in names:
        nf = layout.node(n)
        tls_key = ec.generate_private_key(ec.SECP256R1())
        # Only the coordinator serves: serverAuth and the host names it listens on. Parties and operators only
        # dial out: clientAuth and their own name, so no node's certificate can pose as the coordinator.
        server = n == coordinator
        eku = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        tls_cert = (
            _builder(n, ca_name, tls_key.public_key(), now, days)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
            .add_extension(x509.SubjectAlternativeName(_san_entries(n, hosts if server else ())), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(tls_key.public_key()), critical=False)
            .add_extension(aki, critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        outputs += [(nf.tls_key, _key_pem(tls_key), 0o600), (nf.tls_cert, _cert_pem(tls_cert), 0o644)]

        if nf.seal_cert is not None and nf.seal_key is not None:
            seal_key = x25519.X25519PrivateKey.generate()
            seal_cert = (
                _builder(n, ca_name, seal_key.public_key(), now, days)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(_key_usage(key_agreement=True), critical=True)
                .add_extension(aki, critical=False)
                .sign(ca_key, hashes.SHA256())
            )
            outputs += [(nf.seal_key, _key_pem(seal_key), 0o600), (nf.seal_cert, _cert_pem(seal_cert), 0o644)]

        if nf.sign_cert is not None and nf.sign_key is not None:
            sign_key = ed25519.Ed25519PrivateKey.generate()
            sign_cert = (
                _builder(n, ca_name, sign_key.public_key(), now, days)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(_key_usage(digital_signature=True, content_commitment=True), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(sign_key.public_key()), critical=False)
                .add_extension(aki, critical=False)
                .sign(ca_key, hashes.SHA256())
            )
            outputs += [(nf.sign_key, _key_pem(sign_key), 0o600), (nf.sign_cert, _cert_pem(sign_cert), 0o644)]

    # --- write (all generated first, so a crypto failure writes nothing) -----
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for n in names:
            (directory / n).mkdir(mode=0o700, exist_ok=True)
        # Node files first and the CA last, so an existing ca.crt means the
        # whole layout was written.
        for path, data, mode in outputs[2:] + outputs[:2]:
            _atomic_write(path, data, mode)
    except OSError as exc:
        raise ConfigError(f"cannot write certificates to {directory}: {exc}") from exc
    return layout


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------
def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what} file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file {path}: {exc.strerror or exc}") from None


def load_tls(ca: Path, cert: Path, key: Path) -> TlsMaterial:
    """Read and sanity-check one node's mTLS files.

    Raises:
        ConfigError: a file is missing or unreadable, is not PEM of the
            expected kind, or the key does not belong to the certificate.
    """
    ca_pem = _read(ca, "CA certificate")
    cert_pem = _read(cert, "TLS certificate")
    key_pem = _read(key, "TLS private key")
    try:
        x509.load_pem_x509_certificates(ca_pem)
    except ValueError:
        raise ConfigError(f"CA certificate file {ca} is not a PEM certificate") from None
    try:
        leaf = x509.load_pem_x509_certificates(cert_pem)[0]
    except ValueError:
        raise ConfigError(f"TLS certificate file {cert} is not a PEM certificate") from None
    try:
        private = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"TLS private key file {key} is not an unencrypted PEM private key") from None
    if private.public_key() != leaf.public_key():
        raise ConfigError(f"TLS private key {key} does not match certificate {cert}")
    return TlsMaterial(ca=ca_pem, cert=cert_pem, key=key_pem)


def single_cn(cert: x509.Certificate) -> str | None:
    """The certificate's one common name, or None if it has none or several."""
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(attrs) != 1:
        return None
    value = attrs[0].value
    return value if isinstance(value, str) else None


def verify_issued_cert(pem: bytes, ca_cert_pem: bytes, expected_name: str, *, what: str, usage: str,
                       now: _dt.datetime | None = None) -> x509.Certificate:
    """Check that ``pem`` was issued by the CA to ``expected_name``, is valid ``now`` and allows ``usage``.

    ``what`` names the certificate in messages ("sealing", "signing"); ``usage`` is a
    :class:`x509.KeyUsage` attribute (``key_agreement``, ``digital_signature``). The
    caller checks the key type. Any failure raises :class:`CryptoError`.
    """
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except (ValueError, TypeError):
        raise CryptoError(f"{what} certificate for {expected_name!r} is not a PEM certificate") from None
    try:
        ca = x509.load_pem_x509_certificate(ca_cert_pem)
    except (ValueError, TypeError):
        raise CryptoError("the CA certificate is not a PEM certificate") from None
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise CryptoError(f"{what} certificate for {expected_name!r} is not signed by the job's CA") from None
    now = now or _dt.datetime.now(_dt.timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=_dt.timezone.utc)
    if now < cert.not_valid_before_utc:
        raise CryptoError(f"{what} certificate for {expected_name!r} is not valid before {cert.not_valid_before_utc.isoformat()}")
    if now > cert.not_valid_after_utc:
        raise CryptoError(f"{what} certificate for {expected_name!r} expired at {cert.not_valid_after_utc.isoformat()}")
    cn = single_cn(cert)
    if cn != expected_name:
        raise CryptoError(f"{what} certificate belongs to {cn!r}, expected {expected_name!r}")
    try:
        key_usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise CryptoError(f"{what} certificate for {expected_name!r} has no keyUsage extension") from None
    if not getattr(key_usage, usage):
        words = {"key_agreement": "key agreement", "digital_signature": "digital signatures"}.get(usage, usage)
        raise CryptoError(f"{what} certificate for {expected_name!r} does not allow {words}")
    return cert


def load_key_pair(cert: Path, key: Path, *, what: str, key_type: type, key_name: str,
                  missing_hint: str = "") -> tuple[str, object, bytes]:
    """Load a node's certificate and matching private key: (CN, private key, certificate PEM).

    ``what`` names the pair in messages ("sealing", "signing"); the key must be a
    ``key_type`` (named ``key_name``) and match the certificate. Raises ConfigError.
    """
    try:
        cert_pem = Path(cert).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} certificate {cert}: {exc.strerror or exc}{missing_hint}") from None
    try:
        key_pem = Path(key).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} key {key}: {exc.strerror or exc}") from None
    try:
        certificate = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise ConfigError(f"{what} certificate {cert} is not a PEM certificate") from None
    try:
        private = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{what} key {key} is not an unencrypted PEM private key") from None
    if not isinstance(private, key_type):
        raise ConfigError(f"{what} key {key} is not an {key_name} key")
    name = single_cn(certificate)
    if name is None:
        raise ConfigError(f"{what} certificate {cert} has no single common name")
    try:
        cert_public = certificate.public_key()
    except Exception:  # noqa: BLE001 - unsupported key types raise various errors
        raise ConfigError(f"{what} certificate {cert} has an unsupported public key") from None
    if cert_public != private.public_key():  # type: ignore[attr-defined]
        raise ConfigError(f"{what} key {key} does not match certificate {cert}")
    return name, private, cert_pem
