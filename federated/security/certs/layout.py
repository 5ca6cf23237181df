"""Where a node's certificates and keys live, and how they are written and read back.

Owns: node names (:data:`NAME_PATTERN`, :func:`validate_name`) and :data:`ROLES`; the
directory layout (:class:`CertLayout`, :class:`NodeFiles`: ``DIR/ca.crt``, ``DIR/ca.key``,
``DIR/<name>/{tls,sign,seal}.{crt,key}``); PEM encoding of keys and certificates; the
atomic writes (temporary file + ``os.replace``, keys 0600, folders 0700) and the refusal
to overwrite; reading a node's mTLS files back (:func:`load_tls`, :class:`TlsMaterial`).

It issues nothing. It may import :mod:`fedcredit.runtime.errors`, ``cryptography`` and :mod:`.verify`
(to refuse an expired or not-yet-valid certificate when it loads one); no other module of
:mod:`fedcredit.runtime.security.certs` (:mod:`.profiles`, :mod:`.dev` and :mod:`.csr` import this one).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519

from ...errors import ConfigError
from ...files import atomic_write

from .verify import check_cert_time

#: Node names: lowercase, start with a letter or digit, at most 63 characters.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")

#: The roles a node's certificates are issued for. Only the coordinator's TLS certificate allows serverAuth.
ROLES = ("party", "operator", "coordinator")


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


def _node_files(directory: Path, name: str, role: str) -> NodeFiles:
    d = Path(directory) / name
    seal = {"seal_cert": d / "seal.crt", "seal_key": d / "seal.key"} if role == "party" else {}
    return NodeFiles(d / "tls.crt", d / "tls.key", sign_cert=d / "sign.crt", sign_key=d / "sign.key", **seal)


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


def _write_files(directory: Path, subdirs: Sequence[str], outputs: Sequence[tuple[Path, bytes, int]]) -> None:
    """Create ``directory`` and its node folders (0700), then write every file atomically, in order."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for n in subdirs:
            (directory / n).mkdir(mode=0o700, exist_ok=True)
        for path, data, mode in outputs:
            atomic_write(path, data, mode)
    except OSError as exc:
        raise ConfigError(f"cannot write certificates to {directory}: {exc}") from exc


def _check_days(days: int) -> None:
    if days < 1:
        raise ConfigError(f"certificate validity must be at least 1 day, got {days}")


def _refuse_existing(paths: Sequence[Path], overwrite: bool, what: str, hint: str) -> None:
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise ConfigError(f"{existing[0].parent} already contains {what} ({existing[0]}); refusing to overwrite it. {hint}")


def _key_pem(key: ec.EllipticCurvePrivateKey | x25519.X25519PrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


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
        CertificateExpiredError / CertificateNotYetValidError: the certificate
            or the CA is not valid by this machine's clock (the message says
            which, when it ends or starts, and what the clock reads).
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
    check_cert_time(leaf, f"TLS certificate {cert}")
    check_cert_time(x509.load_pem_x509_certificates(ca_pem)[0], f"CA certificate {ca}")
    return TlsMaterial(ca=ca_pem, cert=cert_pem, key=key_pem)
