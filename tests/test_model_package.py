"""The model package (federated/node/model_package.py): both parts of a trained model, their joint spec, and
scores equal to the same model applied centrally -- in memory, on the breast example."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from fedcredit.protocols.core import Role, run_local
from fedcredit.protocols.hetero_lr import HeteroLRParams, Standardizer, split_train_test, two_party
from fedcredit.protocols.scoring import ScoringMode, ScoringParams, build_table, guest_program, host_program, new_key, sigmoid
from fedcredit.runtime.errors import ConfigError, DataError, NotFoundError
from fedcredit.runtime.node.data import LocalDataset
from fedcredit.runtime.node.model_package import JointSpec, list_packages, load_package, write_package
from fedcredit.runtime.node.train_runner import _std_json, _weights_json
from fedcredit.runtime.node.workdir import NodeStore
from fedcredit.runtime.plan import plan_job
from helpers import breast_arrays, job_spec

PARAMS = HeteroLRParams(key_bits=1024, max_epochs=1, tol=0.0, seed=42)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """A breast model trained in memory, packaged at the bank (guest) and the platform (host), as a job leaves it."""
    ids, xg, xh, y = breast_arrays()
    train, test = split_train_test(list(ids), 42, 0.2)
    sg, sh = Standardizer.fit(xg[train], clip=3.0), Standardizer.fit(xh[train], clip=3.0)
    out = run_local({
        Role.GUEST: two_party.guest_program(sg.transform(xg[train]), y[train], sg.transform(xg[test]), y[test], PARAMS, random.Random(1)),
        Role.HOST: two_party.host_program(sh.transform(xh[train]), sh.transform(xh[test]), PARAMS, random.Random(2)),
    })
    plan = plan_job(job_spec("train"))
    stores = {}
    for role, x, std, name in ((Role.GUEST, xg, sg, "bank"), (Role.HOST, xh, sh, "platform")):
        data = LocalDataset(Path("x.csv"), [str(i) for i in ids], x, [f"{role.value}_{j}" for j in range(x.shape[1])], None)
        store = NodeStore(tmp_path_factory.mktemp(name))
        files = store.job("job-1")
        files.write_model({"job_id": "job-1", "role": role.value, **_weights_json(data, out[role], PARAMS),
                           "standardizer": _std_json(data, std)})
        write_package(store, files, plan, "job-1", "ab" * 32, name)
        stores[role] = store
    central = sg.transform(xg) @ out[Role.GUEST].weights + out[Role.GUEST].intercept + sh.transform(xh) @ out[Role.HOST].weights
    return ids, xg, xh, y, test, out, stores, central


def test_both_parts_share_one_spec_and_version(trained):
    *_, stores, _ = trained
    (jg, pg), = list_packages(stores[Role.GUEST])
    (jh, ph), = list_packages(stores[Role.HOST])
    assert jg == jh and jg.version == pg.version == ph.version and len(jg.version) == 64
    assert jg.roles == {"guest": {"party": "bank", "dataset": "d", "columns": None},
                        "host": {"party": "platform", "dataset": "d", "columns": None}}
    assert jg.intercept == "guest" and jg.engine == "paillier" and jg.reveal_weights == "owner" and jg.clip == 3.0
    assert (pg.role, ph.role) == ("guest", "host")


def test_neither_part_alone_scores(trained):
    ids, xg, xh, y, test, out, stores, central = trained
    _, pg = load_package(stores[Role.GUEST], "job-1")
    _, ph = load_package(stores[Role.HOST], "job-1")
    assert pg.intercept is not None and ph.intercept is None
    assert not set(pg.features) & set(ph.features)  # no part holds a weight of the other's features
    # each partial alone is not the model's score; the sum of both is, to float precision
    ug, uh = pg.partial(xg), ph.partial(xh)
    assert np.max(np.abs(ug - central)) > 0.1 and np.max(np.abs(uh - central)) > 0.1
    assert np.max(np.abs(ug + uh - central)) < 1e-9


def test_scores_equal_the_central_model_through_private_and_plain_scoring(trained):
    ids, xg, xh, y, test, out, stores, central = trained
    jg, pg = load_package(stores[Role.GUEST], "job-1")
    _, ph = load_package(stores[Role.HOST], "job-1")
    version = bytes.fromhex(jg.version)
    rows = test[:60]
    applicants = [str(ids[i]) for i in rows] + ["NOT-A-CUSTOMER-1", "NOT-A-CUSTOMER-2"]
    own = list(pg.partial(xg[rows])) + [0.0, 0.0]
    uh = dict(zip((str(i) for i in ids), ph.partial(xh)))
    key = new_key(random.Random(3))
    table = build_table(list(uh), list(uh.values()), key, b"t" * 16, version, random.Random(4))
    for mode in ScoringMode:
        params = ScoringParams(mode=mode, batch_size=16)
        res = run_local({Role.GUEST: guest_program(applicants, own, version, params, random.Random(5)),
                         Role.HOST: host_program(version, params, key=key, table=table, partials=uh)})[Role.GUEST]
        assert res.found == (True,) * 60 + (False, False)
        want = [sigmoid(v) for v in central[rows]]
        assert np.max(np.abs(np.array(res.probability[:60]) - want)) < 1e-6
        assert res.probability[60:] == (None, None)
    # the central computation is the training's own evaluation of the test rows
    assert np.max(np.abs(central[test] - out[Role.GUEST].test_scores)) < 1e-9


def test_shared_weights_do_not_score_alone(tmp_path):
    plan = plan_job(job_spec("train", training={"reveal_weights": "shared"}))
    store = NodeStore(tmp_path)
    files = store.job("j")
    files.write_model({"job_id": "j", "role": "host", "features": ["a"], "standardizer": {"a": {"mean": 0.0, "scale": 1.0, "clip": 3.0}},
                       "weight_shares": {"own": {"a": "123"}, "peer": ["5"], "ring_bits": 160, "frac_bits": 20}})
    write_package(store, files, plan, "j", "cd" * 32, "platform")
    joint, part = load_package(store, "j")
    assert joint.reveal_weights == "shared" and part.weights is None and part.weight_shares["own"] == {"a": "123"}
    with pytest.raises(ConfigError, match="shares"):
        part.partial(np.zeros((1, 1)))


def test_a_changed_spec_or_a_missing_model_is_refused(trained, tmp_path):
    *_, stores, _ = trained
    with pytest.raises(NotFoundError):
        load_package(stores[Role.GUEST], "nope")
    files = stores[Role.GUEST].model("job-1")
    d = json.loads(files.spec.read_text())
    d["clip"] = 5.0
    with pytest.raises(DataError, match="version"):
        JointSpec.from_dict(d)


def test_cli_model_list_and_show(trained, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from fedcredit.runtime.cli.main import app

    *_, stores, _ = trained
    tls = {"ca": "ca.crt", "cert": "n.crt", "key": "n.key"}
    cfg = {"name": "bank", "coordinator": "127.0.0.1:1", "tls": tls, "seal": {"cert": "s.crt", "key": "s.key"},
           "sign": {"cert": "g.crt", "key": "g.key"}, "datasets": {"d": {"path": "d.csv"}}, "workdir": str(stores[Role.GUEST].workdir)}
    path = tmp_path / "party.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    runner = CliRunner()
    listed = runner.invoke(app, ["model", "list", "--config", str(path), "--json"])
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.output)
    assert row["model_id"] == "job-1" and row["role"] == "guest" and row["reveal_weights"] == "owner"
    shown = runner.invoke(app, ["model", "show", "job-1", "--config", str(path)])
    assert shown.exit_code == 0, shown.output
    d = json.loads(shown.output)
    assert d["spec"]["version"] == row["version"] == d["part"]["version"] and "intercept" in d["part"]
    missing = runner.invoke(app, ["model", "show", "nope", "--config", str(path)])
    assert missing.exit_code == 1 and "no model" in missing.output
