"""Tests for fedcredit.runtime.config (YAML files) and fedcredit.runtime.node.data (CSV loading) plus the Standardizer."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from fedcredit.runtime.config import (
    ClientConfig,
    CoordinatorConfig,
    DatasetConfig,
    JobSpec,
    PartyConfig,
    load_config,
    load_job_spec,
)
from fedcredit.runtime.node.data import load_dataset
from fedcredit.runtime.errors import ConfigError
from fedcredit.protocols.errors import DataError
from fedcredit.protocols.hetero_lr import HeteroLRParams, Standardizer

TLS = {"ca": "certs/ca.crt", "cert": "certs/node.crt", "key": "certs/node.key"}
PARTY = {
    "name": "bank",
    "coordinator": "127.0.0.1:50051",
    "tls": TLS,
    "seal": {"cert": "seal/seal.crt", "key": "/abs/seal.key"},
    "sign": {"cert": "sign.crt", "key": "sign.key"},
    "datasets": {"credit": {"path": "data/guest.csv", "label_column": "y"}},
}
COORD = {"tls": TLS, "sign": {"cert": "sign.crt", "key": "sign.key"}, "parties": ["bank", "platform"]}
JOB = {"purpose": "financing.credit_risk_model", "guest": {"party": "bank", "dataset": "credit"}, "host": {"party": "platform", "dataset": "credit"}}


def _write(folder: Path, name: str, data) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return p


# --------------------------------------------------------------------------- config: valid files


def test_party_config_resolves_relative_paths_against_its_folder(tmp_path, monkeypatch):
    folder = tmp_path / "etc" / "bank"
    path = _write(folder, "party.yaml", PARTY)
    monkeypatch.chdir(tmp_path)  # resolution must not depend on the working directory
    cfg = load_config(PartyConfig, path)
    base = folder.resolve()
    assert cfg.name == "bank"
    assert cfg.tls.ca == base / "certs" / "ca.crt"
    assert cfg.tls.cert == base / "certs" / "node.crt"
    assert cfg.tls.key == base / "certs" / "node.key"
    assert cfg.seal.cert == base / "seal" / "seal.crt"
    assert cfg.seal.key == Path("/abs/seal.key")  # absolute paths are kept
    assert cfg.workdir == base / "work"  # defaults are relative to the file too
    ds = cfg.datasets["credit"]
    assert ds.path == base / "data" / "guest.csv"
    assert ds.label_column == "y" and ds.id_column == "id" and ds.missing_values == "impute_mean"


def test_party_config_from_relative_config_path(tmp_path, monkeypatch):
    _write(tmp_path / "conf", "party.yaml", PARTY)
    monkeypatch.chdir(tmp_path)
    cfg = load_config(PartyConfig, "conf/party.yaml")
    assert cfg.datasets["credit"].path == (tmp_path / "conf" / "data" / "guest.csv").resolve()


def test_coordinator_and_client_config_load(tmp_path):
    cfg = load_config(CoordinatorConfig, _write(tmp_path, "coordinator.yaml", {**COORD, "port_file": "run/port"}))
    base = tmp_path.resolve()
    assert cfg.parties == ["bank", "platform"]
    assert cfg.tls.ca == base / "certs" / "ca.crt"
    assert cfg.port_file == base / "run" / "port"
    assert cfg.database == base / "coordinator.sqlite"
    client = load_config(ClientConfig, _write(tmp_path, "client.yaml", {"coordinator": "h:1", "tls": TLS}))
    assert client.tls.key == base / "certs" / "node.key"


def test_job_spec_loads_with_defaults(tmp_path):
    spec = load_job_spec(_write(tmp_path, "job.yaml", JOB))
    assert isinstance(spec, JobSpec)
    assert spec.kind == "train" and spec.psi.reveal == "both"
    assert spec.training.key_bits == 2048 and spec.training.batch_size == "auto"
    p = spec.lr_params()
    assert isinstance(p, HeteroLRParams)
    assert p.key_bits == 2048 and p.seed == spec.seed == 42


def test_psi_job_may_reveal_to_guest_only(tmp_path):
    spec = load_job_spec(_write(tmp_path, "job.yaml", {**JOB, "kind": "psi", "psi": {"reveal": "guest"}}))
    assert spec.kind == "psi" and spec.psi.reveal == "guest"


def test_batch_size_auto_and_explicit(tmp_path):
    spec = load_job_spec(_write(tmp_path, "auto.yaml", {**JOB, "training": {"batch_size": "auto"}}))
    p = spec.lr_params()
    assert p.batch_size == 0
    assert p.batch_size_for(24000) == 512
    assert p.batch_size_for(455) == 64
    assert p.batch_size_for(2048) == 128
    spec = load_job_spec(_write(tmp_path, "fixed.yaml", {**JOB, "training": {"batch_size": 256}, "seed": 7}))
    p = spec.lr_params()
    assert p.batch_size == 256 and p.batch_size_for(24000) == 256 and p.seed == 7


# --------------------------------------------------------------------------- config: errors


def _config_error(model, path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(model, path)
    return str(info.value)


@pytest.mark.parametrize(
    "model, base, patch, field",
    [
        (PartyConfig, PARTY, {"colour": "red"}, "colour"),
        (PartyConfig, PARTY, {"message_timeout_s": "soon"}, "message_timeout_s"),
        (PartyConfig, PARTY, {"name": "Bank!"}, "name"),
        (PartyConfig, PARTY, {"coordinator_name": "the coordinator"}, "coordinator_name"),
        (PartyConfig, PARTY, {"datasets": {"credit": {"path": "x.csv", "missing_values": "drop"}}}, "datasets.credit.missing_values"),
        (PartyConfig, PARTY, {"datasets": {"credit": {"path": "x.csv", "colour": 1}}}, "datasets.credit.colour"),
        (PartyConfig, PARTY, {"tls": {"ca": "a", "cert": "b"}}, "tls.key"),
        (CoordinatorConfig, COORD, {"parties": ["bank", "Plat form"]}, "parties"),
        (CoordinatorConfig, COORD, {"name": "-coord"}, "name"),
        (CoordinatorConfig, COORD, {"listen_port": 1}, "listen_port"),
        (JobSpec, JOB, {"trainning": {}}, "trainning"),
        (JobSpec, JOB, {"training": {"max_epochs": "five"}}, "training.max_epochs"),
        (JobSpec, JOB, {"training": {"key_bits": 1000}}, "training.key_bits"),
        (JobSpec, JOB, {"training": {"colour": 1}}, "training.colour"),
        (JobSpec, JOB, {"guest": {"party": "Bank", "dataset": "credit"}}, "guest.party"),
        (JobSpec, JOB, {"host": {"party": "bank", "dataset": "credit"}}, "host"),
        (JobSpec, JOB, {"psi": {"reveal": "guest"}}, "psi.reveal"),
        (JobSpec, JOB, {"training": {"learning_rate": -1}}, "learning_rate"),
        (JobSpec, JOB, {"evaluation": {"test_fraction": 1.0}}, "evaluation.test_fraction"),
        (JobSpec, JOB, {"training": {"topology": "arbiter"}}, "training.topology"),
        (JobSpec, JOB, {"training": {"engine": "ckks", "ckks": {"rlwe_degree": 8192}}}, "training.ckks.rlwe_degree"),
        (JobSpec, JOB, {"training": {"optimizer": "adam"}}, "sgd"),
        (PartyConfig, PARTY, {"policy": {"max_test_fraction": 1.5}}, "policy.max_test_fraction"),
        (PartyConfig, PARTY, {"policy": {"allowed_topologies": ["two_party"]}}, "policy.allowed_topologies"),
    ],
)
def test_config_errors_name_file_and_field(tmp_path, model, base, patch, field):
    path = _write(tmp_path / "cfg", "bad.yaml", {**base, **patch})
    msg = _config_error(model, path)
    assert str(path) in msg
    assert field in msg


def test_two_party_is_the_default_and_the_policy_bounds_it(tmp_path):
    from fedcredit.runtime.node.approval import check_policy

    spec = load_job_spec(_write(tmp_path, "job.yaml", JOB))
    assert spec.training.topology == "two_party" and spec.training.reveal_weights == "owner"
    cfg = load_config(PartyConfig, _write(tmp_path, "party.yaml", PARTY))
    assert cfg.policy.max_test_fraction == 0.25 and cfg.policy.min_key_bits == 2048
    base = JOB  # the bank is the guest
    ok = check_policy(load_job_spec(_write(tmp_path, "ok.yaml", base)), cfg)
    assert ok.ok, ok.violations
    bad = load_job_spec(_write(tmp_path, "bad.yaml", {**base, "training": {"key_bits": 1024},
                                                        "evaluation": {"test_fraction": 0.5}}))
    v = " | ".join(check_policy(bad, cfg).violations)
    assert "1024 bits is below" in v and "0.5 exceeds" in v
    # the CKKS engine has no Paillier key: its parameters are sized by the job and checked against the HE standard
    ckks = check_policy(load_job_spec(_write(tmp_path, "ckks.yaml", {**base, "training": {"engine": "ckks", "key_bits": 1024}})), cfg)
    assert ckks.ok and any("128-bit" in c for c in ckks.checks)
    # the coordinated topology is gone: a job asking for it is refused with the reason
    msg = _config_error(JobSpec, _write(tmp_path, "coord.yaml", {**base, "training": {"topology": "coordinated"}}))
    assert "training.topology" in msg and "removed" in msg


def test_guest_equal_host_is_refused(tmp_path):
    path = _write(tmp_path, "job.yaml", {**JOB, "host": {"party": "bank", "dataset": "other"}})
    msg = _config_error(JobSpec, path)
    assert str(path) in msg and "guest" in msg and "host" in msg


def test_unreadable_or_non_mapping_config(tmp_path):
    missing = tmp_path / "nope.yaml"
    assert str(missing) in _config_error(PartyConfig, missing)
    lst = _write(tmp_path, "list.yaml", "- a\n- b\n")
    assert str(lst) in _config_error(JobSpec, lst)
    broken = _write(tmp_path, "broken.yaml", "a: [\n")
    assert str(broken) in _config_error(JobSpec, broken)


# --------------------------------------------------------------------------- data


def _csv(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _load(path: Path, *, require_label: bool = True, **kw):
    label = kw.pop("label_column", "y" if require_label else None)
    return load_dataset(DatasetConfig(path=path, label_column=label, **kw), require_label=require_label)


def _data_error(path: Path, **kw) -> str:
    with pytest.raises(DataError) as info:
        _load(path, **kw)
    return str(info.value)


def test_load_valid_dataset(tmp_path):
    p = _csv(tmp_path, "g.csv", "id,y,a,b\n a1 ,1,1.5,-2\nB2,0,3,4e2\n")
    ds = _load(p)
    assert ds.ids == ["A1", "B2"]
    assert ds.feature_names == ["a", "b"]
    np.testing.assert_array_equal(ds.features, [[1.5, -2.0], [3.0, 400.0]])
    np.testing.assert_array_equal(ds.labels, [1, 0])
    assert ds.features.dtype == np.float64
    host = _load(_csv(tmp_path, "h.csv", "id,a\nx,1\n"), require_label=False)
    assert host.labels is None and host.feature_names == ["a"]


def test_non_numeric_cell_names_file_line_and_column(tmp_path):
    p = _csv(tmp_path, "g.csv", "id,y,income,age\na,1,100,30\nb,0,200,31\nc,1,300,thirty\n")
    msg = _data_error(p)
    assert str(p) in msg
    rest = msg.replace(str(p), "")
    assert "line 4" in rest and "line 2" not in rest and "line 3" not in rest
    assert "'age'" in msg


def test_amounts_with_thousands_separators_and_exponents_parse(tmp_path):
    p = _csv(tmp_path, "g.csv", 'id,y,amount,big\na,1,"1,000,000",1e6\nb,0,"2,500.5",-1.5E-3\n')
    ds = _load(p)
    np.testing.assert_array_equal(ds.features, [[1e6, 1e6], [2500.5, -1.5e-3]])


def test_missing_values_impute_mean_gives_nan(tmp_path):
    p = _csv(tmp_path, "g.csv", "id,y,a,b\na,1,,1\nb,0,NA,2\nc,1,3,null\nd,0,4,5\n")
    ds = _load(p, missing_values="impute_mean")
    assert np.isnan(ds.features[0, 0]) and np.isnan(ds.features[1, 0]) and np.isnan(ds.features[2, 1])
    assert ds.features[3, 0] == 4.0 and ds.features[3, 1] == 5.0
    assert int(np.isnan(ds.features).sum()) == 3


def test_missing_values_error_names_line_and_column(tmp_path):
    p = _csv(tmp_path, "g.csv", "id,y,a,b\na,1,1,1\nb,0,2,2\nc,1,3,\n")
    msg = _data_error(p, missing_values="error")
    assert str(p) in msg and "line 4" in msg and "'b'" in msg


def test_bad_label_names_label_column_and_line(tmp_path):
    p = _csv(tmp_path, "g.csv", "id,target,a\na,1,1\nb,0,2\nc,2,3\n")
    msg = _data_error(p, label_column="target")
    assert str(p) in msg and "'target'" in msg and "line 4" in msg


def test_duplicate_id_names_both_lines(tmp_path):
    p = _csv(tmp_path, "g.csv", "id,y,a\nabc,1,1\nxyz,0,2\n ABC ,1,3\n")
    msg = _data_error(p)
    assert str(p) in msg and "line 4" in msg and "line 2" in msg
    assert "abc" not in msg.lower().replace(str(p).lower(), "")  # ids are never echoed


def test_missing_id_column_names_header_columns(tmp_path):
    p = _csv(tmp_path, "g.csv", "ident,y,alpha\na,1,1\n")
    msg = _data_error(p)
    assert str(p) in msg and "'id'" in msg
    for col in ("ident", "y", "alpha"):
        assert col in msg


def test_missing_file_and_missing_label_column(tmp_path):
    missing = tmp_path / "none.csv"
    assert str(missing) in _data_error(missing)
    p = _csv(tmp_path, "g.csv", "id,a\nx,1\n")
    assert "'y'" in _data_error(p)


def test_line_numbers_count_blank_lines(tmp_path):
    p = _csv(tmp_path, "g.csv", "id,y,a\na,1,1\n\nb,0,2\nc,1,oops\n")
    msg = _data_error(p)
    assert "line 5" in msg


# --------------------------------------------------------------------------- Standardizer


def test_standardizer_ignores_nan_and_fills_with_mean():
    x = np.array([[1.0, 10.0, 5.0], [np.nan, 20.0, 5.0], [3.0, np.nan, 5.0], [5.0, 30.0, 5.0]])
    s = Standardizer.fit(x)
    np.testing.assert_allclose(s.mean, [3.0, 20.0, 5.0])
    np.testing.assert_allclose(s.scale, [np.std([1.0, 3.0, 5.0]), np.std([10.0, 20.0, 30.0]), 1.0])
    z = s.transform(x)
    assert not np.isnan(z).any()
    assert z[1, 0] == 0.0 and z[2, 1] == 0.0  # missing -> mean -> 0
    np.testing.assert_allclose(z[:, 2], 0.0)  # zero-variance column: scale 1, centred
    np.testing.assert_allclose(z[[0, 2, 3], 0], (np.array([1.0, 3.0, 5.0]) - 3.0) / np.std([1.0, 3.0, 5.0]))
    # fitted on training rows, applied to new rows (NaN there also takes the training mean)
    new = s.transform(np.array([[np.nan, 40.0, 6.0]]))
    np.testing.assert_allclose(new, [[0.0, 20.0 / np.std([10.0, 20.0, 30.0]), 1.0]])


@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning", "ignore:Degrees of freedom:RuntimeWarning")
def test_standardizer_all_missing_and_empty():
    s = Standardizer.fit(np.array([[np.nan, 1.0], [np.nan, 3.0]]))
    assert s.mean[0] == 0.0 and s.scale[0] == 1.0
    assert math.isfinite(s.transform(np.array([[np.nan, 2.0]]))[0, 0])
    e = Standardizer.fit(np.empty((0, 3)))
    np.testing.assert_array_equal(e.mean, np.zeros(3))
    np.testing.assert_array_equal(e.scale, np.ones(3))
    with pytest.raises(DataError):
        Standardizer.fit(np.zeros(3))


def test_a_node_refuses_a_spec_that_does_not_hash_to_the_digest_it_signs(tmp_path):
    from fedcredit.proto.v1 import job_pb2
    from fedcredit.runtime.node.approval import checked_spec
    from fedcredit.runtime.config import spec_digest
    from fedcredit.runtime.errors import PermissionDeniedError

    spec = load_job_spec(_write(tmp_path, "job.yaml", JOB))
    info = job_pb2.JobInfo(job_id="j", spec_json=spec.canonical_json(), spec_sha256=spec_digest(spec))
    assert checked_spec(info) == spec
    # A coordinator showing one spec and asking for a signature over another's digest
    other = load_job_spec(_write(tmp_path, "other.yaml", {**JOB, "evaluation": {"test_fraction": 0.9}}))
    forged = job_pb2.JobInfo(job_id="j", spec_json=spec.canonical_json(), spec_sha256=spec_digest(other))
    with pytest.raises(PermissionDeniedError, match="does not hash"):
        checked_spec(forged)


def test_a_dataset_with_a_header_only_is_refused_at_load_time(tmp_path):
    """#12: an empty dataset failed late, after PSI, with a misleading "intersection has 0"."""
    path = tmp_path / "empty.csv"
    path.write_text("id,y,x0\n\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_dataset(DatasetConfig(path=path, label_column="y"), require_label=True)
    assert "no data rows" in str(info.value) and str(path) in str(info.value)
    assert str(path) not in info.value.public_message and "no data rows" in info.value.public_message
