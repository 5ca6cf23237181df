"""Tests for fedcredit.protocols.hetero_lr: the encrypted step functions, budgets, batching and the full protocol."""

from __future__ import annotations

import math
import random

import gmpy2
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve

from fedcredit.protocols.core import Role, Send, run_local, tap
from fedcredit.protocols.errors import BudgetError, FedCreditError, KeyMismatchError, ProtocolError
from fedcredit.protocols.hetero_lr import (
    HeteroLRParams,
    Standardizer,
    coordinator_program,
    epoch_batches,
    guest_program,
    host_program,
    ks_statistic,
    plan_budget,
    roc_auc,
    split_train_test,
)
from fedcredit.protocols.hetero_lr.protocol import (
    EncryptedResiduals,
    EncryptedScores,
    LRStep,
    check_batch_size,
    decrypt_masked,
    encrypted_gradient,
    guest_residuals,
    host_encrypt_scores,
    mask_gradient,
    quantize,
    unmask_gradient,
)
from fedcredit.protocols.paillier import Encryptor, FixedPoint, generate_keypair, ops, to_residue
from helpers import breast_arrays, paillier_keypair

LOG2 = math.log(2.0)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def keypair():
    return paillier_keypair(1024, 20240601)


@pytest.fixture(scope="module")
def other_keypair():
    return paillier_keypair(1024, 777)


@pytest.fixture(scope="module")
def params() -> HeteroLRParams:
    return HeteroLRParams(key_bits=1024)


def _batch(seed: int = 0, n: int = 80, m_guest: int = 4, m_host: int = 6):
    """A random mini-batch: guest features (intercept column last), host features, labels, weights."""
    rng = np.random.default_rng(seed)
    xg = np.hstack([rng.normal(size=(n, m_guest)), np.ones((n, 1))])
    xh = rng.normal(size=(n, m_host))
    y01 = rng.integers(0, 2, size=n)
    wg = rng.normal(scale=0.5, size=m_guest + 1)
    wh = rng.normal(scale=0.5, size=m_host)
    return xg, xh, y01, 2.0 * y01 - 1.0, xg @ wg, xh @ wh


def _encrypted_round(pk, sk, params, xg, xh, y_pm, u_g, u_h, *, mask_seed: int):
    """host_encrypt_scores -> guest_residuals -> gradient -> mask -> decrypt, for both parties."""
    fx = params.feature_frac_bits
    host_enc = Encryptor(pk, random.Random(1))
    guest_enc = Encryptor(pk, random.Random(2))
    scores = host_encrypt_scores(pk, host_enc, u_h, params)
    resid = guest_residuals(pk, guest_enc, scores, u_g, y_pm, params)
    out = {}
    for party, x, enc in (("guest", xg, guest_enc), ("host", xh, host_enc)):
        plan = plan_budget(params, n_train=len(x), max_abs_feature=float(np.max(np.abs(x))))
        grad_ct = encrypted_gradient(pk, resid, quantize(x, fx), fx)
        masked, masks = mask_gradient(pk, enc, grad_ct, plan, random.Random(mask_seed + len(party)))
        dec = decrypt_masked(sk, masked)
        out[party] = dict(plan=plan, grad_ct=grad_ct, masked=masked, masks=masks, dec=dec,
                          grad=unmask_gradient(dec, masks, len(x)))
    return scores, resid, out


def _exact_scaled_gradient(params, x, y_pm, u_g, u_h) -> list[int]:
    """The integer X_q^T d_q the protocol computes homomorphically (scale fr + fx)."""
    fr = params.residual_frac_bits
    d = [a + b for a, b in zip(FixedPoint(fr).encode(0.25 * u_h), FixedPoint(fr).encode(0.25 * u_g - 0.5 * y_pm))]
    xq = quantize(x, params.feature_frac_bits)
    return [sum(int(xq[i, j]) * d[i] for i in range(len(d))) for j in range(xq.shape[1])]


# --------------------------------------------------------------------------- encrypted steps


def test_encrypted_masked_gradient_equals_plaintext_gradient(keypair, params):
    pk, sk = keypair
    xg, xh, _, y_pm, u_g, u_h = _batch(seed=3)
    _, _, out = _encrypted_round(pk, sk, params, xg, xh, y_pm, u_g, u_h, mask_seed=100)
    d = (u_g + u_h) / 4.0 - y_pm / 2.0
    for party, x in (("guest", xg), ("host", xh)):
        expected = x.T @ d / len(x)
        got = out[party]["grad"]
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5, err_msg=party)
        # the decrypted value carries scale fr + fx
        assert out[party]["dec"].exponent == params.residual_frac_bits + params.feature_frac_bits
    # sanity: the gradient is not trivially zero
    assert np.max(np.abs(out["host"]["grad"])) > 1e-2


def test_coordinator_only_sees_masked_gradient(keypair, params):
    pk, sk = keypair
    xg, xh, _, y_pm, u_g, u_h = _batch(seed=5)
    _, _, run1 = _encrypted_round(pk, sk, params, xg, xh, y_pm, u_g, u_h, mask_seed=1000)
    _, _, run2 = _encrypted_round(pk, sk, params, xg, xh, y_pm, u_g, u_h, mask_seed=2000)
    for party, x in (("guest", xg), ("host", xh)):
        true_scaled = _exact_scaled_gradient(params, x, y_pm, u_g, u_h)
        r1, r2 = run1[party], run2[party]
        plan = r1["plan"]
        assert plan.mask_bits == plan.gradient_bits + params.mask_security_bits
        # what the coordinator decrypts is exactly gradient + mask, never the gradient
        assert [v - r for v, r in zip(r1["dec"].values, r1["masks"])] == true_scaled
        assert list(r1["dec"].values) != true_scaled
        assert all(v != g for v, g in zip(r1["dec"].values, true_scaled))
        assert all(0 <= r < 2**plan.mask_bits for r in r1["masks"])
        # the decrypted values are dominated by the mask: far beyond any possible gradient
        assert all(abs(v) > 2**plan.gradient_bits for v in r1["dec"].values)
        assert all(abs(g) < 2**plan.gradient_bits for g in true_scaled)
        # a different rng gives different decrypted values for the same gradient
        assert all(a != b for a, b in zip(r1["dec"].values, r2["dec"].values))
        np.testing.assert_array_equal(r1["grad"], r2["grad"])
        # the masked ciphertexts were rerandomized (not just grad * (1 + r n))
        cheap = [ops.add_plain(pk, c, r) for c, r in zip(r1["grad_ct"].values, r1["masks"])]
        assert all(c != m for c, m in zip(cheap, r1["masked"].values.values))


def test_guest_rerandomizes_residuals_so_host_cannot_divide_out_its_scores(keypair, params):
    pk, sk = keypair
    n, nsq = pk.n, pk.nsquare
    xg, xh, _, y_pm, u_g, u_h = _batch(seed=7, n=40)
    host_enc = Encryptor(pk, random.Random(11))
    guest_enc = Encryptor(pk, random.Random(12))
    scores = host_encrypt_scores(pk, host_enc, u_h, params)
    resid = guest_residuals(pk, guest_enc, scores, u_g, y_pm, params)
    q = scores.quarter_scores.values
    d = resid.residuals.values
    # The host knows [[u_H/4]] (it made them): [[d]] * [[u_H/4]]^-1 must not be 1 + m n.
    for c_d, c_q in zip(d, q):
        ratio = c_d * gmpy2.invert(c_q, nsq) % nsq
        assert (ratio - 1) % n != 0
    # ... and decryption still gives d = u_H/4 + u_G/4 - y/2
    fr = params.residual_frac_bits
    got = FixedPoint(fr).decode([int(v) if v <= n // 2 else int(v) - int(n) for v in sk.decrypt_raw_many(d)])
    np.testing.assert_allclose(got, (u_g + u_h) / 4 - y_pm / 2, atol=1e-8)
    # Control: the cheap c * (1 + m n) form would let the host read u_G/4 - y/2 (hence the labels).
    own = FixedPoint(fr).encode(0.25 * u_g - 0.5 * y_pm)
    for c_q, m in zip(q, own):
        cheap = ops.add_plain(pk, c_q, to_residue(pk, m))
        ratio = cheap * gmpy2.invert(c_q, nsq) % nsq
        assert (ratio - 1) % n == 0
        leaked = int((ratio - 1) // n)
        assert (leaked if leaked <= n // 2 else leaked - int(n)) == m


def test_residuals_under_another_key_raise_key_mismatch(keypair, other_keypair, params):
    pk, sk = keypair
    pk2, _ = other_keypair
    xg, xh, _, y_pm, u_g, u_h = _batch(seed=9, n=30)
    enc2 = Encryptor(pk2, random.Random(3))
    scores2 = host_encrypt_scores(pk2, enc2, u_h, params)
    resid2 = guest_residuals(pk2, enc2, scores2, u_g, y_pm, params)
    with pytest.raises(KeyMismatchError):
        encrypted_gradient(pk, resid2, quantize(xg, params.feature_frac_bits), params.feature_frac_bits)
    # the guest also refuses host scores under a key other than the coordinator's
    with pytest.raises(KeyMismatchError):
        guest_residuals(pk, Encryptor(pk, random.Random(4)), scores2, u_g, y_pm, params)
    # and the coordinator refuses to decrypt a vector labelled with another key
    grad2 = encrypted_gradient(pk2, resid2, quantize(xh, params.feature_frac_bits), params.feature_frac_bits)
    plan = plan_budget(params, n_train=30, max_abs_feature=float(np.max(np.abs(xh))))
    masked2, _ = mask_gradient(pk2, enc2, grad2, plan, random.Random(5))
    with pytest.raises(KeyMismatchError):
        decrypt_masked(sk, masked2)


def test_residuals_of_wrong_length_are_refused(keypair, params):
    pk, _ = keypair
    xg, _, _, y_pm, u_g, u_h = _batch(seed=10, n=30)
    enc = Encryptor(pk, random.Random(6))
    resid = guest_residuals(pk, enc, host_encrypt_scores(pk, enc, u_h, params), u_g, y_pm, params)
    with pytest.raises(ProtocolError):
        encrypted_gradient(pk, resid, quantize(xg[:-1], params.feature_frac_bits), params.feature_frac_bits)
    with pytest.raises(ProtocolError):
        guest_residuals(pk, enc, host_encrypt_scores(pk, enc, u_h[:-1], params), u_g, y_pm, params)


def test_diverged_scores_raise_budget_error(keypair, params):
    pk, _ = keypair
    enc = Encryptor(pk, random.Random(8))
    with pytest.raises(BudgetError):
        host_encrypt_scores(pk, enc, np.array([0.0, 2.0 * params.max_abs_score]), params)


# --------------------------------------------------------------------------- budget, batches, split


def test_plan_budget_passes_for_defaults_at_2048():
    p = HeteroLRParams()
    assert p.key_bits == 2048
    plan = plan_budget(p, n_train=24000, max_abs_feature=10.0)
    assert plan.key_bits == 2048 and plan.limit_bits == 2046
    assert max(plan.mask_bits + 1, plan.loss_bits, plan.score_bits) < plan.limit_bits
    assert plan.mask_bits == plan.gradient_bits + p.mask_security_bits


@pytest.mark.parametrize(
    "kwargs, max_abs_feature",
    [
        (dict(key_bits=1024, residual_frac_bits=64, feature_frac_bits=32), 2.0**900),
        (dict(key_bits=1024, residual_frac_bits=64, feature_frac_bits=32), 1e200),
        (dict(key_bits=1024, mask_security_bits=1000), 10.0),
        (dict(key_bits=1024, max_abs_score=2.0**500), 10.0),
        (dict(key_bits=2048, feature_frac_bits=16), 2.0**50),  # feature too wide for int64 exponents
        (dict(key_bits=2048), math.inf),
    ],
)
def test_plan_budget_refuses_plans_that_cannot_fit(kwargs, max_abs_feature):
    p = HeteroLRParams(**kwargs)
    with pytest.raises(BudgetError):
        plan_budget(p, n_train=10_000, max_abs_feature=max_abs_feature)


@pytest.mark.parametrize(
    "kwargs, max_abs_feature",
    [(dict(key_bits=2048), 1e300), (dict(key_bits=1024, max_abs_score=2.0**600), 10.0)],
)
def test_plan_budget_huge_finite_bounds_raise_budget_error(kwargs, max_abs_feature):
    with pytest.raises(BudgetError):
        plan_budget(HeteroLRParams(**kwargs), n_train=10_000, max_abs_feature=max_abs_feature)


def test_params_validation():
    for bad in (dict(learning_rate=0.0), dict(mask_security_bits=39), dict(feature_frac_bits=33),
                dict(residual_frac_bits=65), dict(max_epochs=0), dict(optimizer="rmsprop"), dict(batch_size=-1)):
        with pytest.raises(BudgetError):
            HeteroLRParams(**bad)


def test_check_batch_size_boundary():
    for w in (1, 11, 20):
        with pytest.raises(ProtocolError):
            check_batch_size(2 * w, w)
        with pytest.raises(ProtocolError):
            check_batch_size(w, w)
        check_batch_size(2 * w + 1, w)  # no error


def test_epoch_batches_merge_tiny_tail_and_cover_every_row_once():
    batches = epoch_batches(1030, 512, seed=42, epoch=0)
    assert len(batches) == 2
    assert sorted(len(b) for b in batches) == [512, 518]
    allrows = np.concatenate(batches)
    np.testing.assert_array_equal(np.sort(allrows), np.arange(1030))
    # a tail of at least half a batch is kept as its own batch
    batches = epoch_batches(1300, 512, seed=42, epoch=0)
    assert [len(b) for b in batches] == [512, 512, 276]
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(1300))
    # fewer rows than one batch: a single batch
    assert [len(b) for b in epoch_batches(100, 512, seed=1, epoch=0)] == [100]


def test_epoch_batches_deterministic_per_seed_and_epoch():
    a = epoch_batches(1030, 512, seed=42, epoch=3)
    b = epoch_batches(1030, 512, seed=42, epoch=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    other_epoch = epoch_batches(1030, 512, seed=42, epoch=4)
    other_seed = epoch_batches(1030, 512, seed=43, epoch=3)
    assert not np.array_equal(np.concatenate(a), np.concatenate(other_epoch))
    assert not np.array_equal(np.concatenate(a), np.concatenate(other_seed))
    # the permutation is shuffled, not the identity
    assert not np.array_equal(np.concatenate(a), np.arange(1030))


def test_split_train_test_is_order_independent_and_exact():
    ids = [f"id{i:05d}" for i in range(997)]
    train, test = split_train_test(ids, 42, 0.2)
    assert len(test) == round(997 * 0.2) == 199
    assert len(train) + len(test) == 997
    assert set(train.tolist()).isdisjoint(test.tolist())
    assert np.all(np.diff(test) > 0) and np.all(np.diff(train) > 0)  # sorted positions
    test_ids = {ids[i] for i in test}
    shuffled = ids[:]
    random.Random(5).shuffle(shuffled)
    train2, test2 = split_train_test(shuffled, 42, 0.2)
    assert {shuffled[i] for i in test2} == test_ids
    assert {shuffled[i] for i in train2} == {ids[i] for i in train}
    # another seed gives another split
    _, test3 = split_train_test(ids, 43, 0.2)
    assert {ids[i] for i in test3} != test_ids
    for n, frac in ((10, 0.25), (569, 0.2), (7, 0.5), (100, 0.0), (3, 0.9)):
        tr, te = split_train_test([str(i) for i in range(n)], 1, frac)
        assert len(te) == round(n * frac) and len(tr) == n - round(n * frac)
    with pytest.raises(Exception):
        split_train_test(ids, 42, 1.0)


# --------------------------------------------------------------------------- driver checks


def test_wrong_payload_type_for_step_raises_protocol_error(keypair, params):
    pk, _ = keypair
    enc = Encryptor(pk, random.Random(9))
    wrong = host_encrypt_scores(pk, enc, np.zeros(3), params)
    assert isinstance(wrong, EncryptedScores)

    def bad_guest():
        yield Send(LRStep.RESIDUALS, wrong)  # RESIDUALS carries EncryptedResiduals

    with pytest.raises(ProtocolError, match="EncryptedResiduals"):
        run_local({Role.GUEST: bad_guest()})

    def bad_sender():
        yield Send(LRStep.RESIDUALS, EncryptedResiduals(wrong.quarter_scores))  # host may not send it

    with pytest.raises(ProtocolError):
        run_local({Role.HOST: bad_sender()})


def test_batch_too_small_for_weights_is_refused_in_protocol(keypair):
    rng = np.random.default_rng(1)
    p = HeteroLRParams(key_bits=1024, batch_size=12, max_epochs=1)
    xg, xh = rng.normal(size=(40, 6)), rng.normal(size=(40, 3))
    y = rng.integers(0, 2, size=40)
    with pytest.raises(ProtocolError, match="per-row residuals"):
        run_local({
            Role.GUEST: guest_program(xg, y, xg[:5], y[:5], p, random.Random(1)),
            Role.HOST: host_program(xh, xh[:5], p, random.Random(2)),
            Role.COORDINATOR: coordinator_program(p, random.Random(3), keypair=keypair),
        })


def test_empty_training_set_fails_with_a_protocol_error(keypair):
    p = HeteroLRParams(key_bits=1024)
    with pytest.raises(FedCreditError):
        run_local({
            Role.GUEST: guest_program(np.zeros((0, 3)), np.zeros(0), np.zeros((2, 3)), np.array([0, 1]), p, random.Random(1)),
            Role.HOST: host_program(np.zeros((0, 2)), np.zeros((2, 2)), p, random.Random(2)),
            Role.COORDINATOR: coordinator_program(p, random.Random(3), keypair=keypair),
        })


def test_coordinator_refuses_key_smaller_than_job():
    small = generate_keypair(512, random.Random(4), insecure_allow_small=True)
    prog = coordinator_program(HeteroLRParams(key_bits=1024), random.Random(1), keypair=small)
    with pytest.raises(BudgetError):
        next(prog)


# --------------------------------------------------------------------------- full protocol


def _breast():
    ids, xg, xh, y = breast_arrays()
    train, test = split_train_test(list(ids), 42, 0.2)
    sg, sh = Standardizer.fit(xg[train]), Standardizer.fit(xh[train])
    return dict(
        xg_tr=sg.transform(xg[train]), xg_te=sg.transform(xg[test]),
        xh_tr=sh.transform(xh[train]), xh_te=sh.transform(xh[test]),
        y_tr=y[train], y_te=y[test],
    )


def _run(d, p, keypair, seeds=(1, 2, 3)):
    res = run_local({
        Role.GUEST: guest_program(d["xg_tr"], d["y_tr"], d["xg_te"], d["y_te"], p, random.Random(seeds[0])),
        Role.HOST: host_program(d["xh_tr"], d["xh_te"], p, random.Random(seeds[1])),
        Role.COORDINATOR: coordinator_program(p, random.Random(seeds[2]), keypair=keypair),
    })
    return res[Role.GUEST], res[Role.HOST], res[Role.COORDINATOR]


@pytest.fixture(scope="module")
def breast():
    return _breast()


@pytest.fixture(scope="module")
def breast_run(breast, keypair, params):
    return _run(breast, params, keypair)


def test_full_protocol_matches_sklearn_auc(breast, breast_run):
    guest, host, summary = breast_run
    d = breast
    clf = LogisticRegression(max_iter=5000).fit(np.hstack([d["xg_tr"], d["xh_tr"]]), d["y_tr"])
    sk_auc = roc_auc_score(d["y_te"], clf.decision_function(np.hstack([d["xg_te"], d["xh_te"]])))
    assert guest.metrics.auc == pytest.approx(sk_auc, abs=0.01)
    assert guest.metrics.auc > 0.95
    # the guest's AUC is the AUC of its reported test scores, which combine both parties' weights
    z = d["xg_te"] @ guest.weights + guest.intercept + d["xh_te"] @ host.weights
    np.testing.assert_allclose(guest.test_scores, z, rtol=1e-12, atol=1e-12)
    assert guest.metrics.auc == pytest.approx(roc_auc_score(d["y_te"], guest.test_scores), abs=1e-12)
    assert guest.metrics.n_test == len(d["y_te"]) and guest.metrics.positives == int(d["y_te"].sum())


def test_full_protocol_weights_losses_and_agreement(breast, breast_run, params):
    guest, host, summary = breast_run
    assert guest.weights.shape == (breast["xg_tr"].shape[1],)
    assert host.weights.shape == (breast["xh_tr"].shape[1],)
    assert np.all(guest.weights != 0) and np.all(host.weights != 0)
    assert np.max(np.abs(guest.weights)) > 1e-2 and np.max(np.abs(host.weights)) > 1e-2
    assert summary.epochs == guest.epochs == host.epochs == params.max_epochs
    assert len(summary.losses) == summary.epochs
    assert all(b < a for a, b in zip(summary.losses, summary.losses[1:])), summary.losses
    assert summary.losses[0] < LOG2
    assert guest.losses == summary.losses == host.losses
    assert guest.metrics == summary.metrics
    assert summary.key_bits == 1024


def _plaintext_reference(xg, y01, xh, p: HeteroLRParams, epochs: int):
    """Plain numpy SGD on the Taylor loss with the protocol's batches: losses and weights."""
    n, m = xg.shape
    xb = np.hstack([xg, np.ones((n, 1))])
    y = 2.0 * y01 - 1.0
    wg, wh = np.zeros(m + 1), np.zeros(xh.shape[1])
    pen = np.r_[np.ones(m), 0.0]
    losses = []
    for e in range(epochs):
        lr = p.learning_rate_at(e)
        total = 0.0
        for rows in epoch_batches(n, p.batch_size_for(n), p.seed, e):
            z = xb[rows] @ wg + xh[rows] @ wh
            total += float(np.sum(LOG2 - y[rows] * z / 2 + z * z / 8))
            d = z / 4 - y[rows] / 2
            gg = xb[rows].T @ d / len(rows) + p.l2 * wg * pen
            gh = xh[rows].T @ d / len(rows) + p.l2 * wh
            wg, wh = wg - lr * gg, wh - lr * gh
        losses.append(total / n)
    return losses, wg, wh


def test_taylor_loss_and_weights_match_plaintext_reference(keypair):
    rng = np.random.default_rng(11)
    n = 300
    xg, xh = rng.normal(size=(n, 3)), rng.normal(size=(n, 4))
    logit = xg @ np.array([1.0, -0.5, 0.3]) + xh @ np.array([0.8, 0.0, -1.2, 0.4]) + 0.2
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    p = HeteroLRParams(key_bits=1024, max_epochs=2, tol=0.0, learning_rate=0.3)
    g, h, c = _run(dict(xg_tr=xg, xg_te=xg[:50], xh_tr=xh, xh_te=xh[:50], y_tr=y, y_te=y[:50]), p, keypair)
    ref_losses, wg, wh = _plaintext_reference(xg, y, xh, p, epochs=2)
    np.testing.assert_allclose(c.losses, ref_losses, rtol=1e-6)
    np.testing.assert_allclose(g.weights, wg[:-1], atol=1e-5)
    assert g.intercept == pytest.approx(wg[-1], abs=1e-5)
    np.testing.assert_allclose(h.weights, wh, atol=1e-5)


def _random_data(seed: int, n: int = 200) -> dict:
    """Random features (3 for the guest, 4 for the host) and labels; the first 40 rows double as the test rows."""
    rng = np.random.default_rng(seed)
    xg, xh = rng.normal(size=(n, 3)), rng.normal(size=(n, 4))
    y = rng.integers(0, 2, size=n)
    return dict(xg_tr=xg, xg_te=xg[:40], xh_tr=xh, xh_te=xh[:40], y_tr=y, y_te=y[:40])


def test_loss_at_zero_weights_is_log2(keypair):
    d = _random_data(12)
    p = HeteroLRParams(key_bits=1024, max_epochs=1, learning_rate=1e-12)
    g, h, c = _run(d, p, keypair)
    assert c.epochs == 1 and len(c.losses) == 1
    assert c.losses[0] == pytest.approx(LOG2, abs=1e-6)


def test_loss_unchanged_when_weights_fixed(keypair):
    d = _random_data(13)
    p = HeteroLRParams(key_bits=1024, max_epochs=2, learning_rate=1e-12, tol=0.0)
    g, h, c = _run(d, p, keypair)
    assert c.epochs == 2 and len(c.losses) == 2
    assert c.losses[1] == pytest.approx(c.losses[0], abs=1e-9)
    assert c.losses[0] == pytest.approx(LOG2, abs=1e-6)
    # with the default tol the coordinator stops every role after epoch 2 (loss did not change)
    p_tol = HeteroLRParams(key_bits=1024, max_epochs=5, learning_rate=1e-12)
    g, h, c = _run(d, p_tol, keypair)
    assert c.epochs == g.epochs == h.epochs == 2


# --------------------------------------------------------------------------- metrics


def test_roc_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(21)
    for trial in range(5):
        n = 200 + 37 * trial
        y = rng.integers(0, 2, size=n)
        score = rng.integers(0, 6, size=n).astype(float)  # many ties
        assert roc_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
        cont = rng.normal(size=n) + y
        assert roc_auc(y, cont) == pytest.approx(roc_auc_score(y, cont), abs=1e-12)
    assert math.isnan(roc_auc(np.ones(5), np.arange(5.0)))


def test_ks_statistic_matches_roc_curve_with_ties():
    rng = np.random.default_rng(22)
    for trial in range(5):
        n = 150 + 41 * trial
        y = rng.integers(0, 2, size=n)
        for score in (rng.integers(0, 6, size=n).astype(float), rng.normal(size=n) + 0.7 * y):
            fpr, tpr, _ = roc_curve(y, score, drop_intermediate=False)
            assert ks_statistic(y, score) == pytest.approx(float(np.max(np.abs(tpr - fpr))), abs=1e-12)
    # perfect separation
    assert ks_statistic(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])) == pytest.approx(1.0)
    assert math.isnan(ks_statistic(np.zeros(4), np.arange(4.0)))


def _recording(gen, sent: list):
    """Pass a role program through, keeping every payload it sends."""
    return tap(gen, lambda a: sent.append((a.step, a.payload)) if isinstance(a, Send) else None)


def test_pool_encryption_sends_exactly_the_serial_ciphertexts(keypair):
    """With a process pool for the encryption randomness, every message equals the serial run's."""
    from concurrent.futures import ProcessPoolExecutor

    rng = np.random.default_rng(5)
    n = 2200
    xg, xh = rng.normal(size=(n, 3)), rng.normal(size=(n, 2))
    y = (xg[:, 0] + xh[:, 0] + rng.normal(size=n) > 0).astype(int)
    p = HeteroLRParams(key_bits=1024, batch_size=1100, max_epochs=1)

    def run(map_fn):
        sent = {Role.GUEST: [], Role.HOST: []}
        out = run_local({
            Role.GUEST: _recording(guest_program(xg, y, xg[:50], y[:50], p, random.Random(1), map_fn=map_fn), sent[Role.GUEST]),
            Role.HOST: _recording(host_program(xh, xh[:50], p, random.Random(2), map_fn=map_fn), sent[Role.HOST]),
            Role.COORDINATOR: coordinator_program(p, random.Random(3), keypair=keypair),
        })
        return out, sent

    serial, serial_sent = run(None)
    with ProcessPoolExecutor(2) as pool:
        pooled, pooled_sent = run(pool.map)
    assert any(s == LRStep.HOST_SCORES for s, _ in serial_sent[Role.HOST])
    for role in (Role.GUEST, Role.HOST):
        assert len(pooled_sent[role]) == len(serial_sent[role])
        for (s1, a), (s2, b) in zip(serial_sent[role], pooled_sent[role]):
            assert s1 == s2 and a == b, s1
    assert np.array_equal(serial[Role.GUEST].weights, pooled[Role.GUEST].weights)
