"""#16: a party's kernels on a real Dask cluster (a LocalCluster of 2 worker processes), never mocked.

The same PSI intersection, the same Paillier ciphertexts and the same model as the local executor.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from fedcredit.protocols.core import Role, run_local
from fedcredit.protocols.paillier.encrypt import Encryptor
from fedcredit.protocols.psi import PsiParams, guest_program, host_program
from fedcredit.protocols.psi.ecdh import hash_and_blind, hash_worker, random_scalar
from fedcredit.runtime.cli.client import OperatorClient
from fedcredit.runtime.cli.demo import Cluster
from fedcredit.runtime.config import DatasetConfig, ExecutorConfig, JobSpec, PartyConfig, TlsConfig, parse_config
from fedcredit.runtime.errors import ConfigError
from fedcredit.runtime.node.executors import DaskExecutor, Executor, LocalExecutor, make_executor
from helpers import paillier_keypair, read_breast

distributed = pytest.importorskip("distributed", reason="the cluster extra (dask[distributed]) is in .[dev]")

SALT = b"executor-test-16"


def _executed(client: Any) -> int:
    """Tasks the cluster's workers have run so far (read from the workers themselves)."""
    return sum(client.run(lambda dask_worker: dask_worker.state.executed_count).values())


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[Any]:
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    try:
        with distributed.Client(cluster) as client:
            yield cluster, client
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def dask_executor(dask_cluster: Any) -> Iterator[DaskExecutor]:
    ex = DaskExecutor(dask_cluster[0].scheduler_address)
    yield ex
    ex.close()


@pytest.fixture(scope="module")
def local_executor() -> Iterator[LocalExecutor]:
    ex = LocalExecutor(2)
    yield ex
    ex.close()


def _ids(prefix: str, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{prefix}{rng.getrandbits(40):012x}" for _ in range(n)]


def test_both_executors_satisfy_the_interface_and_run_on_workers(dask_cluster: Any, dask_executor: DaskExecutor,
                                                                  local_executor: LocalExecutor) -> None:
    assert isinstance(dask_executor, Executor) and isinstance(local_executor, Executor)
    assert dask_executor.workers() == 2
    before = _executed(dask_cluster[1])
    tasks = [(SALT, tuple(x.encode() for x in _ids("k", 50, i))) for i in range(6)]
    serial = list(map(hash_worker, tasks))
    assert list(dask_executor.map(hash_worker, tasks)) == serial == list(local_executor.map(hash_worker, tasks))
    handles = [ex.submit(hash_worker, tasks[0]) for ex in (dask_executor, local_executor)]
    assert dask_executor.gather(handles[:1]) == local_executor.gather(handles[1:]) == [serial[0]]
    assert _executed(dask_cluster[1]) - before == len(tasks) + 1  # every task ran on the cluster's workers


def test_ecdh_psi_on_the_cluster_equals_the_local_executor(dask_cluster: Any, dask_executor: DaskExecutor,
                                                            local_executor: LocalExecutor) -> None:
    common = _ids("c", 300, 1)
    guest_ids, host_ids = common + _ids("g", 120, 2), _ids("h", 80, 3) + common[::-1]
    params = PsiParams(salt=SALT, batch_size=128)

    def run(map_fn: Any) -> tuple[Any, Any]:
        out = run_local({Role.GUEST: guest_program(guest_ids, params, random.Random(1), map_fn=map_fn),
                         Role.HOST: host_program(host_ids, params, random.Random(2), map_fn=map_fn)})
        return out[Role.GUEST], out[Role.HOST]

    before = _executed(dask_cluster[1])
    g_dask, h_dask = run(dask_executor.map)
    assert _executed(dask_cluster[1]) - before >= 8  # hashing and both blindings went to the workers
    g_local, h_local = run(local_executor.map)
    g_serial, _ = run(None)
    assert list(g_dask.rows) == list(g_local.rows) == list(g_serial.rows)
    assert list(h_dask.rows) == list(h_local.rows)
    assert {guest_ids[i] for i in g_dask.rows} == set(common) and g_dask.size == len(common)
    scalar = random_scalar(random.Random(9))  # the kernel itself, byte for byte
    assert hash_and_blind(SALT, scalar, guest_ids, dask_executor.map) == hash_and_blind(SALT, scalar, guest_ids)


def test_paillier_batch_on_the_cluster_equals_the_serial_one(dask_executor: DaskExecutor) -> None:
    pk, sk = paillier_keypair(1024, 3)
    ms = list(range(-200, 200, 3))
    on_cluster = Encryptor(pk, random.Random(5)).encrypt_raw_many(ms, map_fn=dask_executor.map, chunk_size=16)
    assert on_cluster == Encryptor(pk, random.Random(5)).encrypt_raw_many(ms)


def test_private_scoring_on_the_cluster_gives_the_serial_scores(dask_cluster: Any, dask_executor: DaskExecutor) -> None:
    """Batch scoring's kernels (the platform's sealed table, the bank's and the platform's blinding) on the cluster."""
    from fedcredit.protocols.scoring import ScoringMode, ScoringParams
    from fedcredit.protocols.scoring.protocol import build_table, guest_program as score_guest, host_program as score_host, new_key

    platform_ids, bank_ids = _ids("p", 300, 11), _ids("p", 300, 11)[::3] + _ids("b", 40, 12)
    rng = random.Random(13)
    u_h = {p: rng.uniform(-2, 2) for p in platform_ids}
    u_g = [rng.uniform(-1, 1) for _ in bank_ids]
    key, version, salt = new_key(random.Random(0)), b"v" * 32, b"scoring-salt-16b"
    params = ScoringParams(mode=ScoringMode.PRIVATE, batch_size=64, table_batch_size=100)

    def run(map_fn: Any) -> Any:
        table = build_table(platform_ids, [u_h[p] for p in platform_ids], key, salt, version, random.Random(1), map_fn=map_fn)
        out = run_local({Role.GUEST: score_guest(bank_ids, u_g, version, params, random.Random(2), map_fn=map_fn),
                         Role.HOST: score_host(version, params, key=key, table=table, map_fn=map_fn)})
        return table, out[Role.GUEST]

    before = _executed(dask_cluster[1])
    table_c, res_c = run(dask_executor.map)
    assert _executed(dask_cluster[1]) - before >= 8  # the table's hashing and blinding, and the queries'
    table_s, res_s = run(None)
    assert table_c == table_s
    assert list(res_c.found) == list(res_s.found) and list(res_c.z) == list(res_s.z)
    assert sum(res_c.found) == 100


def test_executor_config_is_checked_and_an_unreachable_scheduler_is_named() -> None:
    assert ExecutorConfig().kind == "local"
    for bad, field in (({"kind": "dask"}, "address"), ({"kind": "local", "address": "tcp://x:1"}, "no address"),
                       ({"kind": "dask", "address": "tls://x:1"}, "executor.tls"), ({"kind": "ray"}, "executor.kind")):
        with pytest.raises(ConfigError, match=field):
            parse_config(PartyConfig, {"name": "bank", "coordinator": "x:1", "tls": {"ca": "a", "cert": "b", "key": "c"},
                                       "seal": {"cert": "a", "key": "b"}, "sign": {"cert": "a", "key": "b"},
                                       "datasets": {"d": {"path": "d.csv"}}, "executor": bad}, source="party.yaml")
    with pytest.raises(ConfigError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        make_executor(ExecutorConfig(kind="dask", address="tcp://127.0.0.1:9", connect_timeout_s=1.0))


# --------------------------------------------------------------------------- over the runtime


@pytest.mark.integration
def test_a_train_job_on_the_cluster_gives_the_local_executors_intersection_and_model(tmp_path: Path, dask_cluster: Any) -> None:
    """Two pairs of party nodes under one coordinator: one pair sends every kernel to the Dask cluster
    (``min_items: 0``), the other to its own process pool. Same job, same seed: same intersection, same model."""
    g, h = read_breast()
    g, h = g.iloc[20:], h.drop(h.index[60:90]).sample(frac=1.0, random_state=3)
    gp, hp = tmp_path / "guest.csv", tmp_path / "host.csv"
    g.to_csv(gp, index=False)
    h.to_csv(hp, index=False)
    common = set(g["id"]) & set(h["id"])
    address = dask_cluster[0].scheduler_address
    on_cluster = {"executor": {"kind": "dask", "address": address, "min_items": 0}}
    local = {"executor": {"kind": "local", "workers": 2, "min_items": 0}}
    parties = {p: {"breast": DatasetConfig(path=gp if p.startswith("bank") else hp, id_column="id",
                                           label_column="y" if p.startswith("bank") else None)}
               for p in ("bank", "platform", "bank-l", "platform-l")}
    before = _executed(dask_cluster[1])
    with Cluster(tmp_path / "c", parties, party_settings={"bank": on_cluster, "platform": on_cluster,
                                                          "bank-l": local, "platform-l": local}) as cluster:
        with OperatorClient(cluster.client_config()) as client:
            jobs = {}
            for suffix in ("", "-l"):
                spec = parse_config(JobSpec, {"kind": "train", "name": "exec", "purpose": "financing.credit_risk_model",
                                              "guest": {"party": "bank" + suffix, "dataset": "breast"},
                                              "host": {"party": "platform" + suffix, "dataset": "breast"},
                                              "psi": {"protocol": "ecdh"}, "training": {"key_bits": 1024, "max_epochs": 2},
                                              "seed": 7}, source="job")
                jobs[suffix] = client.submit(spec).job_id
            infos = {s: client.wait(j, timeout_s=240) for s, j in jobs.items()}
        assert all(i.state == "succeeded" for i in infos.values()), {s: i.error for s, i in infos.items()}
        ran = _executed(dask_cluster[1]) - before
        out = {s: cluster.workdir / ("bank" + s) / "jobs" / j for s, j in jobs.items()}
        inter = {s: list(pd.read_csv(o / "intersection.csv", dtype=str)["id"]) for s, o in out.items()}
        models = {s: json.loads((o / "model.json").read_text()) for s, o in out.items()}
        results = {s: cluster.party_result("bank" + s, j) for s, j in jobs.items()}
    assert ran > 0  # the cluster pair's kernels ran on the Dask workers
    assert set(inter[""]) == common and inter[""] == inter["-l"]
    # the two-party LR re-randomizes its shares each run: a truncation may be off by one unit of 2^-24, no more
    w, w_l = models[""]["features"], models["-l"]["features"]
    assert set(w) == set(w_l) and all(abs(w[k] - w_l[k]) <= 1e-5 for k in w), (w, w_l)
    assert abs(models[""]["intercept"] - models["-l"]["intercept"]) <= 1e-5
    assert abs(results[""]["metrics"]["joint"]["auc"] - results["-l"]["metrics"]["joint"]["auc"]) <= 1e-3


def _cluster_pki(d: Path) -> TlsConfig:
    """The bank's internal PKI for its cluster: a CA and one certificate every member (scheduler, workers,
    the node) presents, valid for both ends of a connection (Dask's workers also serve each other)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    import ipaddress

    now = dt.datetime.now(dt.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bank-cluster-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1)).add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bank-cluster")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    out = TlsConfig(ca=d / "ca.pem", cert=d / "member.pem", key=d / "member.key")
    out.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return out


def test_a_tls_cluster_is_reached_with_the_configured_certificates_only(tmp_path: Path) -> None:
    """``executor: {kind: dask, address: tls://..., tls: ...}``: mutual TLS inside the bank's network."""
    tls = _cluster_pki(tmp_path)
    security = distributed.Security(tls_ca_file=str(tls.ca), tls_client_cert=str(tls.cert), tls_client_key=str(tls.key),
                                    tls_scheduler_cert=str(tls.cert), tls_scheduler_key=str(tls.key),
                                    tls_worker_cert=str(tls.cert), tls_worker_key=str(tls.key), require_encryption=True)
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, protocol="tls", security=security,
                                       dashboard_address=":0")
    try:
        address = cluster.scheduler_address
        assert address.startswith("tls://")
        ex = make_executor(ExecutorConfig(kind="dask", address=address, tls=tls))
        try:
            tasks = [(SALT, tuple(x.encode() for x in _ids("t", 40, i))) for i in range(3)]
            assert list(ex.map(hash_worker, tasks)) == list(map(hash_worker, tasks))
        finally:
            ex.close()
        (tmp_path / "other").mkdir()
        other = _cluster_pki(tmp_path / "other")
        with pytest.raises(ConfigError, match="cannot reach the Dask scheduler"):  # a certificate of another CA is refused
            make_executor(ExecutorConfig(kind="dask", address=address, tls=other, connect_timeout_s=3.0))
    finally:
        cluster.close()
