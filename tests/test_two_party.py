"""Two-party vertical LR (protocols/hetero_lr/two_party.py): correctness, budgets, ring arithmetic, refusals.

The privacy claims are attacked in tests/attacks/; here the protocol must compute
what plaintext mini-batch SGD on the Taylor loss computes, from secret shares.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedcredit.protocols.core import Role, run_local, tap
from fedcredit.protocols.errors import BudgetError, ProtocolError
from fedcredit.protocols.hetero_lr import HeteroLRParams, epoch_batches
from fedcredit.protocols.hetero_lr import protocol as coordinated
from fedcredit.protocols.hetero_lr import two_party as tp
from fedcredit.protocols.paillier import generate_keypair
from helpers import paillier_keypair, through_wire

L = 160


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    n, mg, mh = 300, 3, 4
    xg, xh = rng.normal(size=(n, mg)), rng.normal(size=(n, mh))
    z = xg @ np.array([1.0, -0.5, 0.3]) + xh @ np.array([0.8, 0.0, -1.2, 0.4]) + 0.2
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    cut = 240
    return np.clip(xg, -3, 3), np.clip(xh, -3, 3), y, cut


@pytest.fixture(scope="module")
def keys():
    return paillier_keypair(1024, 1), paillier_keypair(1024, 2)


def _params(**kw) -> HeteroLRParams:
    base = dict(key_bits=1024, max_epochs=2, tol=0.0, batch_size=64)
    base.update(kw)
    return HeteroLRParams(**base)


def _open_shares(own, peer, ring_bits: int, frac_bits: int) -> np.ndarray:
    """The weights a party's own shares and the other party's shares of them add up to, signed, in fixed point."""
    return np.array([tp.to_signed(x + y, ring_bits) for x, y in zip(own, peer)]) / 2.0**frac_bits


def _run(data, keys, params, wire: bool = False):
    xg, xh, y, cut = data
    (gk, hk) = keys if params.he_scheme == "paillier" else (None, None)  # RLWE keys: generated from the rngs
    g = tp.guest_program(xg[:cut], y[:cut], xg[cut:], y[cut:], params, random.Random(10), keypair=gk)
    h = tp.host_program(xh[:cut], xh[cut:], params, random.Random(11), keypair=hk)
    if wire:  # every message through its protobuf codec, as the runtime sends it
        g, h = through_wire(g), through_wire(h)
    return run_local({Role.GUEST: g, Role.HOST: h})


def _plain_sgd(data, params):
    """Mini-batch SGD (or Nesterov) on the Taylor loss in float64: what the protocol must compute."""
    xg, xh, y, cut = data
    x = np.hstack([xg[:cut], np.ones((cut, 1)), xh[:cut]])
    yy = 2.0 * y[:cut] - 1
    w = np.zeros(x.shape[1])
    v = np.zeros(x.shape[1])
    mu = params.momentum
    pen = np.ones(x.shape[1])
    pen[xg.shape[1]] = 0.0
    for epoch in range(params.max_epochs):
        lr = params.learning_rate_at(epoch)
        for rows in epoch_batches(cut, params.batch_size_for(cut), params.seed, epoch):
            d = x[rows] @ w / 4 - yy[rows] / 2
            g = x[rows].T @ d / len(rows) + params.l2 * w * pen
            if params.optimizer == "nesterov":
                v = mu * v + g
                g = g + mu * v
            w = w - lr * g
    m = xg.shape[1]
    return w[:m], w[m], w[m + 1 :]


@pytest.mark.parametrize("optimizer", ["sgd", "nesterov"])
def test_two_party_equals_plaintext_sgd_and_the_coordinated_mode(data, keys, optimizer):
    params = _params(optimizer=optimizer, learning_rate=0.1 if optimizer == "nesterov" else 0.2)
    out = _run(data, keys, params, wire=True)
    g, h = out[Role.GUEST], out[Role.HOST]
    wg, b, wh = _plain_sgd(data, params)
    # Fixed point (2^-24 weights, 2^-16 features) and local truncation: far below any effect on the model.
    assert np.max(np.abs(g.weights - wg)) < 1e-5 and abs(g.intercept - b) < 1e-5 and np.max(np.abs(h.weights - wh)) < 1e-5
    assert g.epochs == h.epochs == 2 and g.losses == h.losses
    xg, xh, y, cut = data
    c = run_local({
        Role.GUEST: coordinated.guest_program(xg[:cut], y[:cut], xg[cut:], y[cut:], params, random.Random(1)),
        Role.HOST: coordinated.host_program(xh[:cut], xh[cut:], params, random.Random(2)),
        Role.COORDINATOR: coordinated.coordinator_program(params, random.Random(3), keypair=keys[0]),
    })
    assert np.allclose(g.losses, c[Role.GUEST].losses, atol=1e-6)
    assert abs(g.metrics.auc - c[Role.GUEST].metrics.auc) < 1e-9
    # the epoch loss is the Taylor loss of the weights during the epoch: it must fall
    assert g.losses[1] < g.losses[0] < np.log(2) + 1e-9


def test_what_each_party_receives_is_typed_and_never_plaintext_during_training(data, keys):
    params = _params(max_epochs=1)
    seen: dict[Role, list] = {Role.GUEST: [], Role.HOST: []}
    xg, xh, y, cut = data
    g = tap(tp.guest_program(xg[:cut], y[:cut], xg[cut:], y[cut:], params, random.Random(10), keypair=keys[0]),
            lambda a: None, lambda r, p: seen[Role.GUEST].append((r.step, p)))
    h = tap(tp.host_program(xh[:cut], xh[cut:], params, random.Random(11), keypair=keys[1]),
            lambda a: None, lambda r, p: seen[Role.HOST].append((r.step, p)))
    run_local({Role.GUEST: g, Role.HOST: h})
    for role, msgs in seen.items():
        classes = {type(p).classification.value for _, p in msgs}
        allowed = {"public", "ciphertext", "masked", "aggregate"} | ({"plaintext"} if role is Role.GUEST else set())
        assert classes <= allowed, (role, classes)
        plain = [s for s, p in msgs if type(p).classification.value == "plaintext"]
        assert plain == ([tp.TwoPartyStep.TEST_SCORES] if role is Role.GUEST else [])
        own_fp = (keys[0] if role is Role.GUEST else keys[1])[0].fingerprint()
        for step, p in msgs:  # ciphertexts are under the *sender's* key; masked ones under the receiver's
            vec = getattr(p, "values", None)
            if hasattr(vec, "key_fingerprint"):
                assert (vec.key_fingerprint == own_fp) == (type(p).classification.value == "masked"), step


@given(x=st.integers(-(2**100), 2**100), share=st.integers(2**101, 2**L - 2**101), bits=st.integers(1, 60))
@settings(max_examples=300, deadline=None)
def test_local_truncation_is_off_by_at_most_one(x, share, bits):
    # The guest's share is uniform mod 2^160 (a mask); it lands within 2^101 of 0 mod 2^160 -- the only
    # case where the rule fails for |x| <= 2^100 -- with probability 2^-58. Outside it, the rule is exact:
    a = share
    b = (x - share) % (1 << L)
    t = (tp.truncate_share(a, bits, L, True) + tp.truncate_share(b, bits, L, False)) % (1 << L)
    assert tp.to_signed(t, L) - (x >> bits) in (0, 1)


def test_local_truncation_fails_only_where_the_budget_says():
    # the failure zone exists (so the property above is not vacuous): a guest share of 0 and x = 1
    b = 1
    t = (tp.truncate_share(0, 1, L, True) + tp.truncate_share(b, 1, L, False)) % (1 << L)
    assert abs(tp.to_signed(t, L)) > 2**100


def test_plan_refuses_what_cannot_fit():
    p = _params()
    plan = tp.plan_two_party(p, n_own=20, n_train=10_000, batch_rows=512, key_bits=2048)
    assert plan.slots >= 6 and plan.slots * plan.slot_bits <= 2046
    with pytest.raises(BudgetError, match="ring_bits"):
        tp.plan_two_party(_params(ring_bits=96), n_own=20, n_train=10_000, batch_rows=512, key_bits=2048)
    with pytest.raises(BudgetError, match="key"):
        tp.plan_two_party(_params(ring_bits=512, mask_security_bits=80), n_own=20, n_train=10_000, batch_rows=512, key_bits=1024)


def test_feature_outside_the_public_bound_is_refused_before_any_message(data, keys):
    xg, xh, y, cut = data
    bad = xh[:cut].copy()
    bad[0, 0] = 40.0  # |x| >= 2^5 after standardization: needs clipping
    h = tp.host_program(bad, xh[cut:], _params(), random.Random(1), keypair=keys[1])
    with pytest.raises(BudgetError, match="clip"):
        next(h)


def test_parties_that_disagree_on_sizes_stop(data, keys):
    xg, xh, y, cut = data
    g = tp.guest_program(xg[:cut], y[:cut], xg[cut:], y[cut:], _params(), random.Random(1), keypair=keys[0])
    h = tp.host_program(xh[: cut - 1], xh[cut:], _params(), random.Random(2), keypair=keys[1])
    with pytest.raises(ProtocolError, match="disagree"):
        run_local({Role.GUEST: g, Role.HOST: h})


def test_a_party_refuses_its_own_key_echoed_back(data, keys):
    xg, xh, y, cut = data
    g = tp.guest_program(xg[:cut], y[:cut], xg[cut:], y[cut:], _params(), random.Random(1), keypair=keys[0])
    h = tp.host_program(xh[:cut], xh[cut:], _params(), random.Random(2), keypair=keys[0])
    with pytest.raises(ProtocolError, match="own public key"):
        run_local({Role.GUEST: g, Role.HOST: h})


def test_a_short_peer_key_is_refused(data, keys):
    xg, xh, y, cut = data
    g = tp.guest_program(xg[:cut], y[:cut], xg[cut:], y[cut:], _params(key_bits=2048), random.Random(1),
                         keypair=generate_keypair(2048, random.Random(5)))
    h = tp.host_program(xh[:cut], xh[cut:], _params(), random.Random(2), keypair=keys[1])
    with pytest.raises(ProtocolError, match="2048"):
        run_local({Role.GUEST: g, Role.HOST: h})


def test_shared_weights_score_the_test_rows_without_revealing_weights_or_host_scores(data, keys):
    owner = _run(data, keys, _params())
    shared = _run(data, keys, _params(reveal_weights="shared"), wire=True)
    g, h = shared[Role.GUEST], shared[Role.HOST]
    assert g.weights is None and g.intercept is None and h.weights is None
    # the joint scores equal those of the revealed model, to fixed-point precision
    assert np.max(np.abs(g.test_scores - owner[Role.GUEST].test_scores)) < 1e-4
    assert abs(g.metrics.auc - owner[Role.GUEST].metrics.auc) < 1e-9
    # the two parts add up to the weights; neither part alone is near them
    wg, b, wh = _plain_sgd(data, _params())
    Lb, fw = g.shares.ring_bits, g.shares.frac_bits
    w_guest = _open_shares(g.shares.own, h.shares.peer, Lb, fw)
    w_host = _open_shares(h.shares.own, g.shares.peer, Lb, fw)
    assert np.max(np.abs(w_guest - np.r_[wg, b])) < 1e-5 and np.max(np.abs(w_host - wh)) < 1e-5
    assert min(abs(tp.to_signed(x, Lb)) for x in g.shares.own + h.shares.peer) > 2**60


@pytest.mark.parametrize(("cut", "host_cols", "reveal"), [(280, 4, "owner"), (300, 1, "owner"), (300, 1, "shared")],
                         ids=["merged-tail-batch", "one-host-feature-no-test-rows", "shared-no-test-rows"])
def test_edge_shapes_still_equal_plaintext_sgd(data, keys, cut, host_cols, reveal):
    xg, xh, y, _ = data
    xh = xh[:, :host_cols]
    params = _params(optimizer="nesterov", learning_rate=0.1, reveal_weights=reveal)
    if cut == 280:  # 4 x 64 rows and a tail of 24 < 32, merged into the last batch
        assert [len(b) for b in epoch_batches(cut, 64, params.seed, 0)] == [64, 64, 64, 88]
    out = _run((xg, xh, y, cut), keys, params, wire=True)
    g, h = out[Role.GUEST], out[Role.HOST]
    wg, b, wh = _plain_sgd((xg, xh, y, cut), params)
    if reveal == "owner":
        assert np.max(np.abs(g.weights - wg)) < 1e-5 and abs(g.intercept - b) < 1e-5 and np.max(np.abs(h.weights - wh)) < 1e-5
    else:
        w_host = _open_shares(h.shares.own, g.shares.peer, g.shares.ring_bits, g.shares.frac_bits)
        assert np.max(np.abs(w_host - wh)) < 1e-5
    assert g.metrics.n_test == len(y) - cut and len(g.test_scores) == len(y) - cut


# --------------------------------------------------------------------------- the CKKS (RLWE) engine


@pytest.mark.parametrize(("cut", "host_cols", "reveal", "optimizer"),
                         [(240, 4, "owner", "sgd"), (280, 4, "owner", "nesterov"), (240, 4, "shared", "nesterov"),
                          (300, 1, "shared", "nesterov")],
                         ids=["sgd", "merged-tail-batch", "shared", "shared-no-test-rows"])
def test_ckks_engine_computes_what_plaintext_sgd_computes(data, keys, cut, host_cols, reveal, optimizer):
    """The same protocol over RLWE ciphertexts: the same model (to fixed point) as plaintext SGD and as Paillier."""
    xg, xh, y, _ = data
    d = (xg, xh[:, :host_cols], y, cut)
    params = _params(he_scheme="ckks", optimizer=optimizer, learning_rate=0.1 if optimizer == "nesterov" else 0.2,
                     reveal_weights=reveal)
    out = _run(d, keys, params, wire=True)
    g, h = out[Role.GUEST], out[Role.HOST]
    wg, b, wh = _plain_sgd(d, params)
    if reveal == "owner":
        assert np.max(np.abs(g.weights - wg)) < 1e-5 and abs(g.intercept - b) < 1e-5 and np.max(np.abs(h.weights - wh)) < 1e-5
    else:
        w_host = _open_shares(h.shares.own, g.shares.peer, g.shares.ring_bits, g.shares.frac_bits)
        assert np.max(np.abs(w_host - wh)) < 1e-5
    paillier = _run(d, keys, _params(optimizer=optimizer, learning_rate=params.learning_rate, reveal_weights=reveal))
    # the same model up to local truncation (±1 unit of 2^-24 per step, which engine's masks decide)
    assert np.allclose(g.losses, paillier[Role.GUEST].losses, rtol=0, atol=1e-6)
    assert len(g.test_scores) == len(y) - cut
    if len(y) > cut:
        assert abs(g.metrics.auc - paillier[Role.GUEST].metrics.auc) < 1e-9


def test_ckks_engine_messages_are_rlwe_under_the_right_keys(data, keys):
    params = _params(he_scheme="ckks", max_epochs=1)
    seen: dict[Role, list] = {Role.GUEST: [], Role.HOST: []}
    xg, xh, y, cut = data
    g = tap(tp.guest_program(xg[:cut], y[:cut], xg[cut:], y[cut:], params, random.Random(10)),
            lambda a: None, lambda r, p: seen[Role.GUEST].append((r.step, p)))
    h = tap(tp.host_program(xh[:cut], xh[cut:], params, random.Random(11)),
            lambda a: None, lambda r, p: seen[Role.HOST].append((r.step, p)))
    run_local({Role.GUEST: g, Role.HOST: h})
    from fedcredit.protocols.rlwe.scheme import RlweCiphertexts, RlwePublicKey
    own_fp = {}
    for role, msgs in seen.items():
        setup = next(p for s, p in msgs if s is tp.TwoPartyStep.SETUP)
        assert isinstance(setup.public_key, RlwePublicKey)
        own_fp[role.other if hasattr(role, "other") else (Role.HOST if role is Role.GUEST else Role.GUEST)] = setup.public_key.fingerprint()
    for role, msgs in seen.items():
        hes = [(s, p) for s, p in msgs if hasattr(p, "values") and not isinstance(p.values, tuple)]
        assert hes and all(isinstance(p.values, RlweCiphertexts) for _, p in hes)
        for step, p in hes:  # sender's key on ciphertexts, the receiver's own key on masked values
            assert (p.values.key_fingerprint == own_fp[role]) == (type(p).classification.value == "masked"), step


def test_ckks_engine_refuses_a_peer_with_smaller_parameters(data):
    """The masks a party adds are sized by the RLWE parameters: a peer's key with narrower ones is refused."""
    import dataclasses

    from fedcredit.protocols.rlwe import scheme as rl
    xg, xh, y, cut = data
    params = _params(he_scheme="ckks", max_epochs=1)
    honest = tp.make_share_engine(params, random.Random(5), n_train=cut, max_rows=64, n_batches=3)
    weak = dataclasses.replace(honest.rlwe, mask_bits=honest.rlwe.mask_bits - 40, n_primes=honest.rlwe.n_primes - 1)
    h = tp.host_program(xh[:cut], xh[cut:], params, random.Random(11), keypair=rl.keygen(weak, random.Random(6)))
    g = tp.guest_program(xg[:cut], y[:cut], xg[cut:], y[cut:], params, random.Random(10))
    with pytest.raises((ProtocolError, BudgetError)):
        run_local({Role.GUEST: g, Role.HOST: h})


def test_ckks_engine_refuses_a_plan_whose_messages_exceed_the_relay_limit() -> None:
    """A job the relay would stop halfway (a message over fedcredit.protocols.core.MAX_PAYLOAD_BYTES) is refused before any work."""
    params = _params(he_scheme="ckks", batch_size=8192)
    eng = tp.make_share_engine(params, random.Random(3), n_train=100_000, max_rows=8192, n_batches=12)
    peer = tp.make_share_engine(params, random.Random(4), n_train=100_000, max_rows=8192, n_batches=12)
    with pytest.raises(BudgetError, match="relay"):
        eng.bind(peer.public_key, m_own=4096, m_peer=4096)
    small = tp.make_share_engine(_params(he_scheme="ckks"), random.Random(3), n_train=300, max_rows=64, n_batches=4)
    small.bind(tp.make_share_engine(_params(he_scheme="ckks"), random.Random(4), n_train=300, max_rows=64,
                                    n_batches=4).public_key, m_own=14, m_peer=10)  # a default-sized job passes
