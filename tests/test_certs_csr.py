"""#12: the CSR flow. Each node makes its own keys (`certs request`); the CA only signs (`certs sign`), with the
profiles `certs init` uses, and refuses a request that does not fit its role."""

from __future__ import annotations

import base64
import ipaddress
import re
import stat
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from typer.testing import CliRunner

import fedcredit.runtime.security.certs.profiles as certs_profiles
from fedcredit.proto.v1 import job_pb2, job_pb2_grpc
from fedcredit.runtime.security.certs import SEAL_KEY_OID, CertLayout, create_ca, init_certs, read_request, request_certs, sign_requests
from fedcredit.runtime.cli.main import app
from fedcredit.runtime.errors import ConfigError, CryptoError
from fedcredit.runtime.security.sealing import load_seal_identity, verify_peer_seal_cert
from fedcredit.runtime.security.signing import load_signing_identity, verify_signing_cert
from fedcredit.runtime.security.transport import create_channel, serve
from fedcredit.protocols.core import Role
from fedcredit.protocols.hetero_lr.two_party import TwoPartyStep
from helpers import channel_for, endpoint, residual, running_job, serving_coordinator

NODES = (("coordinator", "coordinator"), ("bank", "party"), ("platform", "party"), ("operator", "operator"))


@pytest.fixture(scope="module")
def csr_flow(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CertLayout]:
    """The CA and four nodes, each making its own keys; only the .csr files reach the CA."""
    root = tmp_path_factory.mktemp("csr")
    create_ca(root / "ca")
    requests = [request_certs(root / "nodes", name, role) for name, role in NODES]
    sign_requests(root / "ca", [r.csr for r in requests], root / "nodes")
    return root, CertLayout.load(root / "nodes")


@pytest.fixture(scope="module")
def init_layout(layout: CertLayout) -> CertLayout:
    """What ``certs init`` issues (the layout of tests/conftest.py), for the CSR flow's profiles to match."""
    return layout


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _profile(cert: x509.Certificate) -> dict[str, Any]:
    """Everything about a certificate but its keys, serial and dates."""
    exts = []
    for ext in cert.extensions:
        value: Any = ext.value
        if isinstance(value, (x509.SubjectKeyIdentifier, x509.AuthorityKeyIdentifier)):
            value = type(value).__name__  # a key's digest: differs per key, present or not is the profile
        elif isinstance(value, x509.SubjectAlternativeName):
            value = [str(g.value) for g in value]
        exts.append((ext.oid.dotted_string, ext.critical, value))
    return {"subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string(), "key": type(cert.public_key()).__name__,
            "hash": cert.signature_hash_algorithm.name if cert.signature_hash_algorithm else None, "extensions": exts}


# --------------------------------------------------------------------------
# request: the keys stay on the node
# --------------------------------------------------------------------------
def test_request_writes_0600_keys_and_a_request_with_public_material_only(tmp_path: Path) -> None:
    req = request_certs(tmp_path, "bank", "party")
    keys = [req.files.tls_key, req.files.sign_key, req.files.seal_key]
    assert all(p is not None and p.is_file() for p in keys)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in keys if p is not None)
    assert stat.S_IMODE(req.files.tls_key.parent.stat().st_mode) == 0o700
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))  # atomic writes leave nothing behind
    text = req.csr.read_bytes()
    assert b"PRIVATE KEY" not in text and text.count(b"BEGIN CERTIFICATE REQUEST") == 2
    node = read_request(text)
    assert (node.name, node.role, node.hosts) == ("bank", "party", ())
    seal_key = serialization.load_pem_private_key(req.files.seal_key.read_bytes(), None)  # type: ignore[union-attr]
    assert isinstance(seal_key, x25519.X25519PrivateKey) and node.seal_key == seal_key.public_key()
    operator = request_certs(tmp_path, "operator", "operator")
    assert operator.files.seal_key is None and not (tmp_path / "operator" / "seal.key").exists()
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        request_certs(tmp_path, "bank", "party")
    with pytest.raises(ConfigError, match="only the coordinator's certificate carries host names"):
        request_certs(tmp_path / "x", "platform", "party", hosts=["localhost"])
    with pytest.raises(ConfigError, match="unknown role"):
        request_certs(tmp_path / "x", "platform", "admin")


def test_the_ca_never_sees_a_private_key(csr_flow: tuple[Path, CertLayout]) -> None:
    root, layout = csr_flow
    assert sorted(p.name for p in (root / "ca").iterdir()) == ["ca.crt", "ca.key"]
    assert layout.ca_cert.read_bytes() == (root / "ca" / "ca.crt").read_bytes()
    assert set(layout.nodes) == {"coordinator", "bank", "platform", "operator"} and set(layout.parties) == {"bank", "platform"}


# --------------------------------------------------------------------------
# sign: the same profiles as init, through the same function
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["coordinator", "bank", "operator"])
def test_csr_issued_certificates_have_the_profiles_init_issues(csr_flow: tuple[Path, CertLayout], init_layout: CertLayout, name: str) -> None:
    _, layout = csr_flow
    mine, theirs = layout.node(name), init_layout.node(name)
    for a, b in ((mine.tls_cert, theirs.tls_cert), (mine.sign_cert, theirs.sign_cert), (mine.seal_cert, theirs.seal_cert)):
        assert (a is None) == (b is None)
        if a is not None and b is not None:
            assert _profile(_cert(a)) == _profile(_cert(b))
            _cert(a).verify_directly_issued_by(_cert(layout.ca_cert))


def test_init_and_sign_issue_through_one_function(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str]] = []
    issue = certs_profiles._issue_node  # the one issuing function, in its own module

    def spy(ca: Any, node: Any, now: Any, days: int) -> Any:
        seen.append((node.name, node.role))
        return issue(ca, node, now, days)

    monkeypatch.setattr(certs_profiles, "_issue_node", spy)
    init_certs(tmp_path / "init", ["bank"])
    assert sorted(seen) == [("bank", "party"), ("coordinator", "coordinator"), ("operator", "operator")]
    seen.clear()
    create_ca(tmp_path / "ca")
    sign_requests(tmp_path / "ca", [request_certs(tmp_path / "n", "platform", "party").csr], tmp_path / "n")
    assert seen == [("platform", "party")]


def test_a_csr_issued_party_has_no_server_auth_and_works_for_a_real_call(tmp_path: Path, csr_flow: tuple[Path, CertLayout]) -> None:
    _, layout = csr_flow
    bank_tls = _cert(layout.node("bank").tls_cert)
    eku = bank_tls.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert [str(g.value) for g in bank_tls.extensions.get_extension_for_class(x509.SubjectAlternativeName).value] == ["bank"]
    coordinator_eku = _cert(layout.node("coordinator").tls_cert).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(coordinator_eku) == [ExtendedKeyUsageOID.SERVER_AUTH]

    # The signing and sealing certificates load with their keys and verify against the CA as a peer's would.
    ca = layout.ca_cert.read_bytes()
    for party in ("bank", "platform"):
        files = layout.node(party)
        assert load_seal_identity(files.seal_cert, files.seal_key).name == party  # type: ignore[arg-type]
        verify_peer_seal_cert(files.seal_cert.read_bytes(), ca, party)  # type: ignore[union-attr]
        assert load_signing_identity(files.sign_cert, files.sign_key).name == party  # type: ignore[arg-type]
        verify_signing_cert(files.sign_cert.read_bytes(), ca, party)  # type: ignore[union-attr]

    # Real calls with the CSR-issued certificates: a relayed, signed message, and an operator's call.
    with serving_coordinator(tmp_path, layout) as coord:
        job = running_job(coord, layout)
        endpoint(coord, layout, "platform", job).send(TwoPartyStep.RESIDUAL, Role.GUEST, residual(3))
        assert endpoint(coord, layout, "bank", job).recv(TwoPartyStep.RESIDUAL, Role.HOST) == residual(3)
        jobs = job_pb2_grpc.JobServiceStub(channel_for(coord, layout, "operator")).ListJobs(job_pb2.ListJobsRequest(), timeout=10)
        assert [j.job_id for j in jobs.jobs] == [job]

    # A party's certificate cannot serve: a client dialling its "coordinator" refuses it.
    with serve(layout.tls("bank"), grace_s=0.5) as (_, port):
        channel = create_channel(f"localhost:{port}", layout.tls("platform"), server_name="bank")
        try:
            with pytest.raises(grpc.RpcError) as err:
                health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            channel.close()


# --------------------------------------------------------------------------
# sign: requests that do not fit their role are refused
# --------------------------------------------------------------------------
def _subject(name: str, role: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name), x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role)])


def _craft(directory: Path, name: str = "bank", role: str = "party", *, eku: x509.ObjectIdentifier = ExtendedKeyUsageOID.CLIENT_AUTH,
           hosts: Sequence[str] = (), seal: bool = True, tls_extra: Sequence[x509.ExtensionType] = (),
           sign_subject: x509.Name | None = None, extra: bytes = b"", one_csr: bool = False) -> Path:
    """A request made by hand, to ask for what `certs request` never would."""
    tls_key, sign_key = ec.generate_private_key(ec.SECP256R1()), ed25519.Ed25519PrivateKey.generate()
    names: list[x509.GeneralName] = [x509.DNSName(name)]
    for h in hosts:
        names.append(x509.IPAddress(ipaddress.ip_address(h)) if h[0].isdigit() else x509.DNSName(h))
    builder = (x509.CertificateSigningRequestBuilder().subject_name(_subject(name, role))
               .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
               .add_extension(x509.SubjectAlternativeName(names), critical=False))
    for ext in tls_extra:
        builder = builder.add_extension(ext, critical=True)
    tls = builder.sign(tls_key, hashes.SHA256())
    sign_builder = x509.CertificateSigningRequestBuilder().subject_name(sign_subject or _subject(name, role))
    if seal:
        spki = x25519.X25519PrivateKey.generate().public_key().public_bytes(serialization.Encoding.DER,
                                                                              serialization.PublicFormat.SubjectPublicKeyInfo)
        sign_builder = sign_builder.add_extension(x509.UnrecognizedExtension(SEAL_KEY_OID, spki), critical=False)
    sign = sign_builder.sign(sign_key, None)
    pem = tls.public_bytes(serialization.Encoding.PEM) + (b"" if one_csr else sign.public_bytes(serialization.Encoding.PEM))
    path = directory / f"{name}-{uuid.uuid4().hex[:8]}.csr"
    path.write_bytes(pem + extra)
    return path


def _private_key_pem() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                                 serialization.NoEncryption())


REFUSED = [
    ("party asks for serverAuth", {"eku": ExtendedKeyUsageOID.SERVER_AUTH}, "clientAuth only; the CSR asks for serverAuth"),
    ("party asks for a DNS name", {"hosts": ("localhost",)}, "names only its node"),
    ("party asks for an IP address", {"hosts": ("127.0.0.1",)}, "names only its node"),
    ("coordinator asks for clientAuth", {"name": "coordinator", "role": "coordinator", "seal": False}, "serverAuth only"),
    ("coordinator asks for a wildcard", {"name": "coordinator", "role": "coordinator", "seal": False,
                                         "eku": ExtendedKeyUsageOID.SERVER_AUTH, "hosts": ("*.example.org",)}, "invalid host name"),
    ("coordinator role under another name", {"role": "coordinator", "seal": False, "eku": ExtendedKeyUsageOID.SERVER_AUTH},
     "only 'coordinator' may have the role coordinator"),
    ("the coordinator's name as a party", {"name": "coordinator"}, "only 'coordinator' may have the role coordinator"),
    ("operator with a sealing key", {"name": "operator", "role": "operator"}, "only parties get a sealing key"),
    ("party without a sealing key", {"seal": False}, "must carry its X25519 sealing key"),
    ("a CA certificate", {"tls_extra": (x509.BasicConstraints(ca=True, path_length=None),)}, "exactly an extended key usage"),
    ("the two CSRs name different nodes", {"sign_subject": _subject("platform", "party")}, "different nodes or roles"),
    ("a private key sent along", {"extra": _private_key_pem()}, "contains a private key"),
    ("one CSR only", {"one_csr": True}, "exactly two PEM CSRs"),
    ("an unknown role", {"role": "admin"}, "unknown role"),
]


@pytest.mark.parametrize("kwargs, match", [(k, m) for _, k, m in REFUSED], ids=[i for i, _, _ in REFUSED])
def test_sign_refuses_a_request_that_does_not_fit_its_role(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    create_ca(tmp_path / "ca")
    with pytest.raises(ConfigError, match=re.escape(match)):
        sign_requests(tmp_path / "ca", [_craft(tmp_path, **kwargs)], tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing issued


def test_a_coordinator_request_gets_its_own_host_names(tmp_path: Path) -> None:
    create_ca(tmp_path / "ca")
    csr = _craft(tmp_path, "coordinator", "coordinator", eku=ExtendedKeyUsageOID.SERVER_AUTH, hosts=("fed.example.org", "10.0.0.5"), seal=False)
    [node] = sign_requests(tmp_path / "ca", [csr], tmp_path / "out")
    san = node.issued.tls.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(g.value) for g in san] == ["coordinator", "fed.example.org", "10.0.0.5"]
    with pytest.raises(ConfigError, match="only 'hub' may have the role coordinator"):  # the signer names its coordinator
        sign_requests(tmp_path / "ca", [csr], tmp_path / "out2", coordinator="hub")


def test_a_csr_with_a_bad_signature_is_refused_and_nothing_is_issued(tmp_path: Path) -> None:
    create_ca(tmp_path / "ca")
    good = request_certs(tmp_path / "n", "platform", "party").csr
    forged = request_certs(tmp_path / "n", "bank", "party").csr
    blocks = re.findall(rb"-----BEGIN CERTIFICATE REQUEST-----\n(.*?)-----END CERTIFICATE REQUEST-----", forged.read_bytes(), re.S)
    der = base64.b64decode(b"".join(blocks[0].split()))
    altered = der.replace(b"bank", b"bant")  # the subject and names changed after signing
    assert altered != der
    body = base64.b64encode(altered)
    pem = b"-----BEGIN CERTIFICATE REQUEST-----\n" + b"".join(body[i:i + 64] + b"\n" for i in range(0, len(body), 64)) \
        + b"-----END CERTIFICATE REQUEST-----\n"
    forged.write_bytes(pem + forged.read_bytes().split(b"-----END CERTIFICATE REQUEST-----\n", 1)[1])
    with pytest.raises(CryptoError, match="signature does not verify"):
        sign_requests(tmp_path / "ca", [good, forged], tmp_path / "out")
    assert not (tmp_path / "out").exists()  # the good request was not issued either


def test_sign_refuses_duplicates_and_overwrites(tmp_path: Path) -> None:
    create_ca(tmp_path / "ca")
    csr = request_certs(tmp_path / "n", "bank", "party").csr
    with pytest.raises(ConfigError, match="two requests for the same node: bank"):
        sign_requests(tmp_path / "ca", [csr, csr], tmp_path / "n")
    sign_requests(tmp_path / "ca", [csr], tmp_path / "n")
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        sign_requests(tmp_path / "ca", [csr], tmp_path / "n")
    sign_requests(tmp_path / "ca", [csr], tmp_path / "n", overwrite=True)
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        create_ca(tmp_path / "ca")


def test_cli_ca_request_sign(tmp_path: Path) -> None:
    runner = CliRunner()
    ca, node = tmp_path / "ca", tmp_path / "bank-machine"
    assert runner.invoke(app, ["certs", "ca", str(ca)]).exit_code == 0
    made = runner.invoke(app, ["certs", "request", "--name", "bank", "--role", "party", "--out", str(node)])
    assert made.exit_code == 0, made.output
    signed = runner.invoke(app, ["certs", "sign", "--ca-dir", str(ca), str(node / "bank.csr"), "--out", str(node)])
    assert signed.exit_code == 0, signed.output
    assert re.search(r"tls: serial:[0-9a-f]+ sha256:[0-9a-f]{64}", signed.output)
    assert CertLayout.load(node).parties == ("bank",)
    refused = runner.invoke(app, ["certs", "request", "--name", "bank2", "--role", "party", "--out", str(node), "--hosts", "x.org"])
    assert refused.exit_code == 2 and "only the coordinator" in _all_output(refused)


def _all_output(result: Any) -> str:
    text = result.output
    try:
        text += result.stderr  # where the runner keeps stderr apart
    except (ValueError, AttributeError):
        pass
    return text
