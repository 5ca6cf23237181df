"""Ring-LWE engine of the two-party CKKS mode (protocols/rlwe): ring arithmetic, exact masked products, refusals.

The protocol-level attacks on what the owner sees are in tests/attacks/.
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from fedcredit.protocols.errors import BudgetError, KeyMismatchError, ProtocolError
from fedcredit.protocols.rlwe import scheme as rl
from fedcredit.protocols.rlwe.ring import RingContext, ntt_primes

L = 160


@pytest.fixture(scope="module")
def params():
    return rl.plan_rlwe(ring_bits=L, sigma=80, max_value_bits=55, plain_bits=21, max_products=4096)


@pytest.fixture(scope="module")
def keys(params):
    return rl.keygen(params, random.Random(1)), rl.keygen(params, random.Random(2))


def test_primes_are_distinct_ntt_friendly_and_below_2_31():
    qs = ntt_primes(16384, 12)
    assert len(set(qs)) == 12 and all(q < 2**31 and (q - 1) % 32768 == 0 for q in qs)
    assert list(qs) == sorted(qs, reverse=True)


def test_ntt_product_is_the_negacyclic_convolution():
    rng = np.random.default_rng(7)
    n = 64
    ctx = RingContext(n, ntt_primes(n, 3))
    a, b = rng.integers(-1000, 1000, n), rng.integers(-(2**20), 2**20, n)
    full = np.convolve(a.astype(object), b.astype(object))
    want = list(full[:n])
    for i in range(n - 1):
        want[i] -= full[n + i]  # x^N = -1
    got = ctx.crt(ctx.intt(ctx.mul(ctx.ntt(ctx.from_small(a)), ctx.ntt(ctx.from_small(b)))), np.arange(n))
    assert got == [int(v) for v in want]
    x = ctx.uniform(random.Random(3))
    assert np.array_equal(ctx.intt(ctx.ntt(x)), x)


def test_sampling_distributions():
    ctx = RingContext(16384, ntt_primes(16384, 2))
    r = random.Random(4)
    t = ctx.ternary(r)
    counts = np.bincount(t + 1)
    assert set(np.unique(t)) == {-1, 0, 1} and counts.min() > 5000  # about 5461 each
    e = ctx.cbd(r)
    assert np.abs(e).max() <= 21 and 3.0 < e.std() < 3.5
    u = ctx.uniform(r)
    assert np.all(u < ctx.qs[:, None]) and abs(u[0].mean() / ctx.primes[0] - 0.5) < 0.01
    assert np.array_equal(ctx.uniform_from_seed(b"s" * 32), ctx.uniform_from_seed(b"s" * 32))


@pytest.mark.parametrize(("rows", "inner"), [(512, 14), (14, 512), (8, 512), (3, 5), (700, 1)])
def test_masked_product_gives_exact_shares(params, keys, rows, inner):
    owner, peer = keys
    rng = random.Random(rows * 1000 + inner)
    layout = rl.plan_layout(rows, inner, params.limbs, params.degree)
    v = [rng.getrandbits(L) for _ in range(inner)]
    a = np.array([[rng.randrange(-(2**21) + 1, 2**21) for _ in range(inner)] for _ in range(rows)], dtype=np.int64)
    op = rl.encrypt_operand(owner, v, layout, rng)
    acc = rl.multiply(owner.public, op, a, layout)
    masked, peer_shares = rl.mask(owner.public, acc, rng)
    owner_shares = rl.open_masked(owner, masked, layout)
    want = [sum(int(a[r, k]) * v[k] for k in range(inner)) % 2**L for r in range(rows)]
    assert [(x + y) % 2**L for x, y in zip(owner_shares, peer_shares)] == want
    # each party's shares alone look uniform: none is the product itself
    assert owner_shares != want and peer_shares != want


def test_products_of_several_batches_add_up_before_one_mask(params, keys):
    owner, _ = keys
    rng = random.Random(9)
    layout = rl.plan_layout(8, 100, params.limbs, params.degree)
    acc, want = None, [0] * 8
    for _ in range(3):
        v = [rng.getrandbits(L) for _ in range(100)]
        a = np.array([[rng.getrandbits(20) for _ in range(100)] for _ in range(8)], dtype=np.int64)
        acc = rl.multiply(owner.public, rl.encrypt_operand(owner, v, layout, rng), a, layout, acc)
        want = [(w + sum(int(a[r, k]) * v[k] for k in range(100))) % 2**L for r, w in enumerate(want)]
    masked, mine = rl.mask(owner.public, acc, rng)
    assert [(x + y) % 2**L for x, y in zip(rl.open_masked(owner, masked, layout), mine)] == want


def test_refusals(params, keys):
    owner, peer = keys
    rng = random.Random(5)
    layout = rl.plan_layout(4, 4, params.limbs, params.degree)
    op = rl.encrypt_operand(owner, [1, 2, 3, 4], layout, rng)
    with pytest.raises(KeyMismatchError):  # multiplied under another party's key
        rl.multiply(peer.public, op, np.ones((4, 4), dtype=np.int64), layout)
    with pytest.raises(ProtocolError):
        rl.encrypt_operand(owner, [2**L], layout, rng)  # outside the ring
    with pytest.raises(ProtocolError):
        rl.multiply(owner.public, op, np.ones((5, 4), dtype=np.int64), layout)  # does not fit the layout
    masked, _ = rl.mask(owner.public, rl.multiply(owner.public, op, np.ones((4, 4), dtype=np.int64), layout), rng)
    with pytest.raises(KeyMismatchError):
        rl.open_masked(peer, masked, layout)
    # a malicious peer's oversized "mask" is caught by the range check, not silently wrapped
    bad = dataclasses.replace(masked, c0=masked.c0.copy())
    bad.c0[0, :, :] = 0
    with pytest.raises(ProtocolError):
        rl.open_masked(owner, bad, layout)


def test_plan_refuses_parameters_above_the_security_bound():
    with pytest.raises(BudgetError):  # 80-bit masks need ~340 bits of modulus: too much for degree 8192
        rl.plan_rlwe(ring_bits=L, sigma=80, max_value_bits=55, plain_bits=21, max_products=4096, degree=8192)
    p = rl.plan_rlwe(ring_bits=L, sigma=40, max_value_bits=55, plain_bits=21, max_products=4096, degree=16384)
    assert p.log_q <= rl.HE_STANDARD_128[16384]
    with pytest.raises(BudgetError):
        dataclasses.replace(p, n_primes=20).check()  # log Q above 438


def test_public_key_fingerprint_binds_every_parameter(params, keys):
    owner, _ = keys
    k = owner.public
    assert k == rl.RlwePublicKey(k.params, k.seed, k.b.copy())
    assert k != rl.RlwePublicKey(dataclasses.replace(k.params, mask_bits=k.params.mask_bits + 1), k.seed, k.b)
    assert k != rl.RlwePublicKey(k.params, bytes(32), k.b)
