"""Modeling options of the two-party LR (#14 item 6): class weights, and the job file's refusals.

Each option is checked against a centralized computation on the same rows, split and batches: the
fixed-point plaintext recursion the protocol must compute (tight), and scikit-learn (loose: the protocol
fits the Taylor loss for a few epochs, scikit-learn the exact loss to convergence).
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from fedcredit.protocols.core import Role, Send, run_local, tap
from fedcredit.protocols.errors import BudgetError
from fedcredit.protocols.hetero_lr import HeteroLRParams, epoch_batches, roc_auc
from fedcredit.protocols.hetero_lr import two_party as tp
from fedcredit.protocols.hetero_lr.params import CLASS_WEIGHT_FRAC_BITS, class_weights
from helpers import paillier_keypair, through_wire

CUT = 480  # training rows; the remaining 120 are the test rows


@pytest.fixture(scope="module")
def imbalanced():
    """600 rows, 15% defaults; the guest holds 3 features and the labels, the host 3 features."""
    rng = np.random.default_rng(5)
    n = 600
    xg, xh = rng.normal(size=(n, 3)), rng.normal(size=(n, 3))
    z = xg @ np.array([1.0, -0.6, 0.3]) + xh @ np.array([0.8, -1.0, 0.0]) - 2.5
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return np.clip(xg, -3, 3), np.clip(xh, -3, 3), y


@pytest.fixture(scope="module")
def keys():
    return paillier_keypair(1024, 1), paillier_keypair(1024, 2)


def _params(**kw) -> HeteroLRParams:
    base = dict(key_bits=1024, max_epochs=4, tol=0.0, batch_size=64, optimizer="nesterov", learning_rate=0.1,
                lr_decay=1.0, l2=1e-3)
    base.update(kw)
    return HeteroLRParams(**base)


def _train(data, keys, params, *, seen=None):
    xg, xh, y = data
    g = tp.guest_program(xg[:CUT], y[:CUT], xg[CUT:], y[CUT:], params, random.Random(10), keypair=keys[0])
    h = tp.host_program(xh[:CUT], xh[CUT:], params, random.Random(11), keypair=keys[1])
    if seen is not None:
        h = tap(h, lambda a: None, lambda r, p: seen.append((r.step, p)))
    out = run_local({Role.GUEST: through_wire(g), Role.HOST: through_wire(h)})
    return out[Role.GUEST], out[Role.HOST]


def _plain_weighted_taylor(data, params):
    """Centralized mini-batch Nesterov on the class-weighted Taylor loss, same rows, batches and steps."""
    xg, xh, y = data
    x = np.hstack([xg[:CUT], np.ones((CUT, 1)), xh[:CUT]])
    yy = 2.0 * y[:CUT] - 1
    c = np.round(class_weights(y[:CUT], params.class_weight) * 2**CLASS_WEIGHT_FRAC_BITS) / 2**CLASS_WEIGHT_FRAC_BITS  # the protocol's weights, at 2^-12
    w, v = np.zeros(x.shape[1]), np.zeros(x.shape[1])
    pen = np.ones(x.shape[1])
    pen[xg.shape[1]] = 0.0
    losses = []
    for epoch in range(params.max_epochs):
        lr, sq = params.learning_rate_at(epoch), 0.0
        for rows in epoch_batches(CUT, params.batch_size_for(CUT), params.seed, epoch):
            dd = x[rows] @ w - 2 * yy[rows]  # D = 4 d
            sq += float(np.sum(c[rows] * dd * dd))
            g = x[rows].T @ (c[rows] * dd / 4) / len(rows) + params.l2 * w * pen
            v = params.momentum * v + g
            w = w - lr * (g + params.momentum * v)
        losses.append(np.log(2) - 0.5 + sq / 8 / CUT)
    m = xg.shape[1]
    return w[:m], w[m], w[m + 1 :], losses


def _recall(y, z):
    return float(np.mean(z[y == 1] > 0))


def test_class_weights_match_a_centralized_weighted_fit_and_raise_recall(imbalanced, keys):
    xg, xh, y = imbalanced
    yt = y[CUT:]
    plain_g, plain_h = _train(imbalanced, keys, _params())
    seen: list = []
    bal_g, bal_h = _train(imbalanced, keys, _params(class_weight="balanced"), seen=seen)
    # 1. the protocol computes the weighted recursion (fixed point: 2^-24 weights, 2^-16 features): tight
    wg, b, wh, losses = _plain_weighted_taylor(imbalanced, _params(class_weight="balanced"))
    assert np.max(np.abs(bal_g.weights - wg)) < 1e-4 and abs(bal_g.intercept - b) < 1e-4
    assert np.max(np.abs(bal_h.weights - wh)) < 1e-4
    assert np.allclose(bal_g.losses, losses, atol=1e-4) and bal_g.losses == bal_h.losses
    # 2. balanced weights raise the recall of defaults at probability 0.5 (z > 0)
    assert _recall(yt, bal_g.test_scores) >= _recall(yt, plain_g.test_scores) + 0.5
    # 3. against scikit-learn's class_weight='balanced' (exact loss, converged) on the same rows and split:
    #    recall within 0.1, the same decision on >= 95% of test rows, AUC within 0.02, mean |Δp| < 0.1
    sk = LogisticRegression(class_weight="balanced", C=1 / (1e-3 * CUT)).fit(np.hstack([xg[:CUT], xh[:CUT]]), y[:CUT])
    zs = sk.decision_function(np.hstack([xg[CUT:], xh[CUT:]]))
    z = bal_g.test_scores
    assert abs(_recall(yt, z) - _recall(yt, zs)) <= 0.1
    assert np.mean((z > 0) == (zs > 0)) >= 0.95
    assert abs(roc_auc(yt, z) - roc_auc(yt, zs)) < 0.02
    assert np.mean(np.abs(1 / (1 + np.exp(-z)) - 1 / (1 + np.exp(-zs)))) < 0.1
    # 4. what the host receives: one masked lr2.reweight per batch, nothing in the clear
    steps = [s for s, _ in seen]
    assert steps.count(tp.TwoPartyStep.REWEIGHT) == 4 * len(epoch_batches(CUT, 64, 42, 0))
    assert {type(p).classification.value for _, p in seen} <= {"public", "ciphertext", "masked", "aggregate"}


def test_explicit_class_weights_equal_the_weighted_recursion(imbalanced, keys):
    params = _params(class_weight=(1.0, 3.0), max_epochs=1)
    g, h = _train(imbalanced, keys, params)
    wg, b, wh, losses = _plain_weighted_taylor(imbalanced, params)
    assert np.max(np.abs(g.weights - wg)) < 1e-4 and np.max(np.abs(h.weights - wh)) < 1e-4
    assert abs(g.losses[0] - losses[0]) < 1e-4


def _label_attack(imbalanced, keys, params) -> float:
    """The host's best attack on lr2.reweight: it knows its own residual shares D^H (it encrypted them) and the
    quantized weights (0: w0, 1: w1 from the job file); it reads a row's label wherever the value it decrypts is
    c · D^H for one of the two weights. Returns the fraction of rows it labels correctly."""
    xg, xh, y = imbalanced
    sk, ring = keys[1][1], (1 << params.ring_bits) - 1
    cq = [round(w * 2**CLASS_WEIGHT_FRAC_BITS) for w in params.class_weight]
    own: list[list[int]] = []
    opened: list[list[int]] = []

    def sent(a):
        if isinstance(a, Send) and a.step is tp.TwoPartyStep.RESIDUAL:
            own.append([sk.decrypt_raw(c) & ring for c in a.payload.values.values])

    def received(r, p):
        if r.step is tp.TwoPartyStep.REWEIGHT:
            opened.append([sk.decrypt_raw(c) & ring for c in p.values.values][:-1])

    g = tp.guest_program(xg[:CUT], y[:CUT], xg[CUT:], y[CUT:], params, random.Random(10), keypair=keys[0])
    h = tap(tp.host_program(xh[:CUT], xh[CUT:], params, random.Random(11), keypair=keys[1]), sent, received)
    run_local({Role.GUEST: g, Role.HOST: h})
    right = total = 0
    for rows, d_h, vals in zip(epoch_batches(CUT, 64, params.seed, 0), own, opened):
        for i, d, v in zip(rows, d_h, vals):
            guess = [k for k in (0, 1) if (cq[k] * d) & ring == v]
            right += guess == [int(y[i])]
            total += 1
    return right / total


def test_the_host_cannot_read_labels_from_the_reweighted_residual(imbalanced, keys, monkeypatch):
    params = _params(class_weight=(1.0, 8.0), max_epochs=1)
    assert _label_attack(imbalanced, keys, params) == 0.0  # masked: no value is c · D^H for either weight
    # the same attack on the step without its masks reads every label: the test can fail
    from fedcredit.protocols.hetero_lr import share_engine
    real, reweight_bits = share_engine._randbits, params.ring_bits + share_engine.row_weight_bits(params) + 80
    monkeypatch.setattr(share_engine, "_randbits",  # only lr2.reweight's masks are zero
                        lambda rng, bits, count: [0] * count if bits == reweight_bits else real(rng, bits, count))
    assert _label_attack(imbalanced, keys, params) == 1.0


def test_class_weights_are_refused_with_ckks_and_out_of_range():
    with pytest.raises(BudgetError, match="class_weight needs he_scheme paillier"):
        HeteroLRParams(class_weight="balanced", he_scheme="ckks")
    with pytest.raises(BudgetError, match="class_weight"):
        HeteroLRParams(class_weight=(1.0, 0.0))
    with pytest.raises(BudgetError, match="class_weight"):
        class_weights([0] * 999 + [1], "balanced")  # 500 for the defaults: above the planned maximum


# --------------------------------------------------------------------------- the job file

JOB = {"purpose": "financing.credit_risk_model", "guest": {"party": "bank", "dataset": "credit"},
       "host": {"party": "platform", "dataset": "credit"}}


def _load(tmp_path, training: dict):
    import yaml
    from fedcredit.runtime.config import load_job_spec
    p = tmp_path / "job.yaml"
    p.write_text(yaml.safe_dump({**JOB, "training": training}), encoding="utf-8")
    return load_job_spec(p)


def _refusal(tmp_path, training: dict) -> str:
    from fedcredit.runtime.errors import ConfigError
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, training)
    return str(info.value)


def test_job_file_options_reach_the_protocol_params_and_the_plan(tmp_path):
    from fedcredit.runtime.plan import plan_job
    spec = _load(tmp_path, {"validation_fraction": 0.2, "patience": 3, "validation_metric": "auc", "cv_folds": 5})
    assert (spec.lr_params().patience, spec.lr_params().validation_metric) == (3, "auc")
    plan = plan_job(spec)
    assert plan.train is not None and (plan.train.validation_fraction, plan.train.cv_folds) == (0.2, 5)
    assert not plan.can_resume("train") and plan_job(_load(tmp_path, {})).can_resume("train")
    assert _load(tmp_path, {"class_weight": "balanced"}).lr_params().class_weight == "balanced"
    assert _load(tmp_path, {"class_weight": {0: 1, 1: 4.5}}).lr_params().class_weight == (1.0, 4.5)
    assert _load(tmp_path, {}).lr_params().class_weight is None


@pytest.mark.parametrize("training, words", [
    ({"class_weight": "auto"}, ["training.class_weight"]),
    ({"class_weight": {1: 2.0}}, ["training.class_weight", "both classes"]),
    ({"class_weight": {0: 1.0, 1: -2}}, ["training.class_weight", "class 1"]),
    ({"class_weight": "balanced", "engine": "ckks"}, ["training.class_weight", "paillier"]),
    ({"l1": -0.1}, ["training.l1", ">= 0"]),
    ({"l1": 0.01}, ["training.l1", "secret-shared"]),
    ({"validation_fraction": 0.2}, ["training.validation_fraction", "patience"]),
    ({"patience": 2}, ["training.patience", "validation_fraction"]),
    ({"validation_fraction": 0.6, "patience": 1}, ["training.validation_fraction"]),
    ({"validation_fraction": 0.2, "patience": 1, "validation_metric": "ks"}, ["training.validation_metric"]),
    ({"cv_folds": 1}, ["training.cv_folds"]),
])
def test_job_file_refusals_name_the_field(tmp_path, training, words):
    msg = _refusal(tmp_path, training)
    for w in words:
        assert w in msg, msg


# --------------------------------------------------------------------------- early stopping


@pytest.fixture(scope="module")
def overfits():
    """100 training rows, 2 informative guest features and 16 noise host features, no L2, a large step:
    the validation loss falls to a minimum at epoch 7, then rises."""
    rng = np.random.default_rng(7)
    n, mg, mh = 400, 2, 16
    xg, xh = rng.normal(size=(n, mg)), rng.normal(size=(n, mh))
    y = (rng.random(n) < 1 / (1 + np.exp(-(xg @ np.array([1.0, -0.8]) - 0.3)))).astype(int)
    return np.clip(xg, -3, 3), np.clip(xh, -3, 3), y


def _plain_nesterov_per_epoch(xg, xh, y, params, n_train):
    """Centralized Nesterov on the Taylor loss: the weights after each epoch."""
    x = np.hstack([xg[:n_train], np.ones((n_train, 1)), xh[:n_train]])
    yy = 2.0 * y[:n_train] - 1
    w, v, out = np.zeros(x.shape[1]), np.zeros(x.shape[1]), []
    for epoch in range(params.max_epochs):
        for rows in epoch_batches(n_train, params.batch_size_for(n_train), params.seed, epoch):
            g = x[rows].T @ (x[rows] @ w / 4 - yy[rows] / 2) / len(rows)
            v = params.momentum * v + g
            w = w - params.learning_rate_at(epoch) * (g + params.momentum * v)
        out.append(w.copy())
    return out


@pytest.mark.parametrize(("engine", "metric", "reveal"), [("paillier", "loss", "owner"), ("paillier", "auc", "owner"),
                                                          ("ckks", "loss", "shared")])
def test_early_stopping_stops_on_validation_and_keeps_the_best_epoch(overfits, keys, engine, metric, reveal):
    xg, xh, y = overfits
    tr, va, te = slice(0, 100), slice(100, 300), slice(300, 400)
    params = _params(max_epochs=12, batch_size=50, learning_rate=0.5, lr_decay=0.0, l2=0.0, patience=2,
                     validation_metric=metric, he_scheme=engine, reveal_weights=reveal)
    gk, hk = keys if engine == "paillier" else (None, None)
    g = tp.guest_program(xg[tr], y[tr], xg[te], y[te], params, random.Random(10), keypair=gk, x_val=xg[va], y_val=y[va])
    h = tp.host_program(xh[tr], xh[te], params, random.Random(11), keypair=hk, x_val=xh[va])
    out = run_local({Role.GUEST: through_wire(g), Role.HOST: through_wire(h)})
    gm, hm = out[Role.GUEST], out[Role.HOST]
    # the validation metric, recomputed centrally from the same recursion's weights after each epoch
    per_epoch = _plain_nesterov_per_epoch(xg, xh, y, params, 100)
    xv = np.hstack([xg[va], np.ones((200, 1)), xh[va]])
    central = [float(np.mean(np.logaddexp(0, -(2.0 * y[va] - 1) * (xv @ w)))) if metric == "loss" else roc_auc(y[va], xv @ w)
               for w in per_epoch]
    assert np.allclose(gm.validation, central[: len(gm.validation)], atol=1e-5)
    best = (int(np.argmin(central[: gm.epochs])) if metric == "loss" else int(np.argmax(central[: gm.epochs]))) + 1
    # it stopped before max_epochs, `patience` epochs after the best one, and both parties agree on it
    assert gm.epochs < params.max_epochs and gm.epochs == best + params.patience
    assert gm.best_epoch == hm.best_epoch == best
    # the model kept is the best epoch's, not the last one's
    w = per_epoch[best - 1]
    if reveal == "owner":
        got = np.r_[gm.weights, gm.intercept, hm.weights]
    else:  # the weights stay shared: open them here, as no party can
        ring, frac = gm.shares.ring_bits, gm.shares.frac_bits
        def opened(own, peer):
            return np.array([tp.to_signed(a + b, ring) for a, b in zip(own, peer)]) / 2.0**frac
        got = np.r_[opened(gm.shares.own, hm.shares.peer), opened(hm.shares.own, gm.shares.peer)]
    assert np.max(np.abs(got - w)) < 1e-5
    assert np.max(np.abs(per_epoch[gm.epochs - 1][3:] - w[3:])) > 1e-3  # (the last epoch's differ)
    xt = np.hstack([xg[te], np.ones((100, 1)), xh[te]])
    assert np.max(np.abs(gm.test_scores - xt @ w)) < 1e-4  # the test rows are scored with the best epoch's weights


def test_early_stopping_refusals(overfits, keys):
    xg, xh, y = overfits
    with pytest.raises(BudgetError, match="patience"):
        HeteroLRParams(patience=-1)
    params = _params(patience=0)
    with pytest.raises(Exception, match="patience >= 1"):
        run_local({Role.GUEST: tp.guest_program(xg[:100], y[:100], xg[300:], y[300:], params, random.Random(1),
                                                keypair=keys[0], x_val=xg[100:300], y_val=y[100:300]),
                   Role.HOST: tp.host_program(xh[:100], xh[300:], params, random.Random(2), keypair=keys[1], x_val=xh[100:300])})


# --------------------------------------------------------------------------- L1 (coordinated protocol only)


def _plain_proximal(xg, xh, y, params, n_train):
    """Centralized proximal mini-batch SGD on the Taylor loss: a gradient step (with L2), then each penalized
    weight soft-thresholded by lr · l1; the same rows and batches."""
    x = np.hstack([xg[:n_train], np.ones((n_train, 1)), xh[:n_train]])
    yy = 2.0 * y[:n_train] - 1
    pen = np.ones(x.shape[1])
    pen[xg.shape[1]] = 0.0
    w = np.zeros(x.shape[1])
    for epoch in range(params.max_epochs):
        lr = params.learning_rate_at(epoch)
        for rows in epoch_batches(n_train, params.batch_size_for(n_train), params.seed, epoch):
            g = x[rows].T @ (x[rows] @ w / 4 - yy[rows] / 2) / len(rows) + params.l2 * w * pen
            w = w - lr * g
            w = np.where(pen > 0, np.sign(w) * np.maximum(np.abs(w) - lr * params.l1, 0.0), w)
    return w


def test_l1_proximal_step_by_each_owner_matches_centralized_and_gives_exact_zeros(overfits, keys):
    from fedcredit.protocols.hetero_lr import protocol as coordinated
    xg, xh, y = overfits
    zeros = []
    for l1 in (0.0, 0.02, 0.08):
        params = _params(optimizer="sgd", learning_rate=0.3, lr_decay=0.5, max_epochs=3, batch_size=50, l1=l1)
        out = run_local({
            Role.GUEST: coordinated.guest_program(xg[:200], y[:200], xg[300:], y[300:], params, random.Random(1)),
            Role.HOST: coordinated.host_program(xh[:200], xh[300:], params, random.Random(2)),
            Role.COORDINATOR: coordinated.coordinator_program(params, random.Random(3), keypair=keys[0]),
        })
        fed = np.r_[out[Role.GUEST].weights, out[Role.GUEST].intercept, out[Role.HOST].weights]
        ref = _plain_proximal(xg, xh, y, params, 200)
        assert np.max(np.abs(fed - ref)) < 1e-6, l1
        assert np.array_equal(fed == 0.0, ref == 0.0)  # the same weights are exactly zero
        zeros.append(int(np.sum(fed[np.r_[0:2, 3:19]] == 0.0)))
    assert zeros[0] == 0 and 0 < zeros[1] < zeros[2]  # larger l1, more exact zeros (among the penalized weights)
    assert out[Role.GUEST].intercept != 0.0  # the intercept takes no penalty


def test_l1_is_refused_by_the_two_party_protocol(imbalanced, keys):
    xg, xh, y = imbalanced
    with pytest.raises(BudgetError, match="secret-shared"):
        next(tp.guest_program(xg[:CUT], y[:CUT], xg[CUT:], y[CUT:], _params(l1=0.01), random.Random(1), keypair=keys[0]))
    with pytest.raises(BudgetError, match="l1"):
        HeteroLRParams(l1=-1.0)


def test_cli_job_submit_refuses_a_bad_option_naming_the_field(tmp_path):
    import yaml
    from typer.testing import CliRunner
    from fedcredit.runtime.cli.main import app
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({**JOB, "training": {"class_weight": {0: 1.0, 1: 0}, "cv_folds": 3}}), encoding="utf-8")
    out = CliRunner().invoke(app, ["job", "submit", str(job), "--client-config", str(tmp_path / "none.yaml")])
    assert out.exit_code != 0
    assert "training.class_weight" in out.output and "class 1" in out.output and str(job) in out.output
