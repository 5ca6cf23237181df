"""``fedcredit score``: call the bank node's ScoreApplicant over mTLS, as the bank's own services do (#14)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import grpc

from fedcredit.proto.v1 import scoring_pb2, scoring_pb2_grpc

from ..config import TlsConfig
from ..errors import from_rpc_error
from ..security.certs import init_certs, load_tls
from ..security.transport import create_channel

__all__ = ["score_online", "ScoringClient", "dev_scoring_pki"]


def dev_scoring_pki(directory: Path, server: str = "bank-scoring", client: str = "risk-service") -> tuple[TlsConfig, TlsConfig]:
    """A development PKI for the bank's scoring endpoint (tests, benchmark, demo): a CA, the endpoint's server
    certificate (localhost, 127.0.0.1) and one caller's client certificate. Returns ``(server tls, client tls)``."""
    init_certs(directory, ["unused"], coordinator=server, operators=[client], overwrite=True)
    ca = directory / "ca.crt"
    return (TlsConfig(ca=ca, cert=directory / server / "tls.crt", key=directory / server / "tls.key"),
            TlsConfig(ca=ca, cert=directory / client / "tls.crt", key=directory / client / "tls.key"))


class ScoringClient:
    """A channel to the bank node's ScoreApplicant, with a caller's certificate of the endpoint's CA."""

    def __init__(self, address: str, tls: TlsConfig, server_name: str = "bank-scoring") -> None:
        self.address = address
        self.channel = create_channel(address, load_tls(tls.ca, tls.cert, tls.key), server_name=server_name)
        self.stub = scoring_pb2_grpc.ScoringServiceStub(self.channel)

    def score(self, ids: Sequence[str], timeout: float = 30.0) -> Any:
        try:
            return self.stub.ScoreApplicant(scoring_pb2.ScoreApplicantRequest(ids=list(ids)), timeout=timeout)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, target=self.address) from None

    def close(self) -> None:
        self.channel.close()


def score_online(ids: Sequence[str], address: str, tls: TlsConfig, *, server_name: str = "bank-scoring") -> Any:
    client = ScoringClient(address, tls, server_name)
    try:
        return client.score(ids)
    finally:
        client.close()
