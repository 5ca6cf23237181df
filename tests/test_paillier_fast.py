"""Tests for the fast paths of fedcredit.protocols.paillier: randomness pool, packing, map_fn parallelism.

python-paillier (phe) is the independent oracle throughout: ciphertexts from
every new path must decrypt with phe, and phe's ciphertexts must go through
the new paths and decrypt with ours.
"""

from __future__ import annotations

import random
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import gmpy2
import numpy as np
import pytest
from gmpy2 import mpz
from hypothesis import given, settings
from hypothesis import strategies as st
from phe import paillier as phe_paillier

from fedcredit.protocols.errors import BudgetError, KeyMismatchError
from fedcredit.protocols.paillier import (
    Encryptor,
    RandomnessPool,
    add,
    add_plain,
    clear_table_cache,
    compute_factors,
    compute_factors_task,
    decrypt_packed,
    decrypt_task,
    dot,
    dot_task,
    encrypt_with_factors,
    from_residue,
    generate_keypair,
    matvec_t,
    mul_plain,
    pack,
    pack_task,
    packed_count,
    plan_packing,
    slots_per_ciphertext,
    to_residue,
    unpack,
)
from fedcredit.protocols.paillier import encrypt as encrypt_module
from helpers import dec_signed, paillier_with_phe

PROPERTY = settings(max_examples=30, deadline=None)


@pytest.fixture(scope="module")
def small():
    """A 512-bit (insecure, test-only) key pair and its phe twin."""
    return paillier_with_phe(512, 20240513)


@pytest.fixture(scope="module")
def big():
    """A 2048-bit key pair (the production size)."""
    return paillier_with_phe(2048, 2048)


# --------------------------------------------------------------------------- encrypt_with_factors / compute_factors


def test_compute_factors_matches_powmod(small):
    pk, _, _ = small
    enc = Encryptor(pk, random.Random(1), window_bits=6)
    eb = enc.exponent_bits
    rng = random.Random(2)
    alphas = [0, 1, (1 << eb) - 1] + [rng.getrandbits(eb) for _ in range(5)]
    got = compute_factors(int(pk.n), int(enc.hs), alphas, 6, eb)
    assert all(type(f) is int for f in got)
    assert got == [int(gmpy2.powmod(enc.hs, a, pk.nsquare)) for a in alphas]
    # the task form, and a different window, agree
    assert compute_factors_task((int(pk.n), int(enc.hs), 3, eb, tuple(alphas))) == got
    with pytest.raises(ValueError):
        compute_factors(int(pk.n), int(enc.hs), [1 << eb], 6, eb)
    with pytest.raises(ValueError):
        compute_factors(int(pk.n), int(enc.hs), [-1], 6, eb)
    with pytest.raises(ValueError):
        compute_factors(int(pk.n), int(enc.hs), [1], 13, eb)


def test_table_cache_is_bounded_and_clearable(small):
    pk, _, _ = small
    clear_table_cache()
    for w in (2, 3, 4, 5, 6, 7):
        compute_factors(int(pk.n), 4, [5], w, 128)
    assert len(encrypt_module._TABLE_CACHE) <= encrypt_module._MAX_CACHED_TABLES
    clear_table_cache()
    assert not encrypt_module._TABLE_CACHE


def test_encrypt_with_factors_is_the_online_step(small):
    pk, sk, phe_sk = small
    enc = Encryptor(pk, random.Random(3))
    ms = [0, 1, int(pk.n) - 1, int(pk.max_int), to_residue(pk, -5)]
    factors = enc.random_factors(len(ms))
    cs = encrypt_with_factors(pk, ms, factors)
    assert cs == [(1 + m * pk.n) * r % pk.nsquare for m, r in zip(ms, factors)]
    assert sk.decrypt_raw_many(cs) == ms == [phe_sk.raw_decrypt(int(c)) for c in cs]
    # the same factors in the same order give what a same-seed encryptor makes
    assert Encryptor(pk, random.Random(3)).encrypt_raw_many(ms) == cs
    with pytest.raises(ValueError):
        encrypt_with_factors(pk, ms, factors[:-1])
    with pytest.raises(ValueError):
        encrypt_with_factors(pk, [1], [0])
    with pytest.raises(ValueError):
        encrypt_with_factors(pk, [1], [pk.nsquare])
    with pytest.raises(TypeError):
        encrypt_with_factors(pk, [1.0], factors[:1])


# --------------------------------------------------------------------------- randomness pool


def test_pool_fill_take_available(small):
    pk, sk, phe_sk = small
    enc = Encryptor(pk, random.Random(4))
    pool = RandomnessPool(enc)
    assert pool.available == 0 and pool.take(3) == []
    assert pool.fill(5) == 5 and pool.available == 5
    first = pool.take(2)
    rest = pool.take(10)  # up to k: only 3 left
    assert len(first) == 2 and len(rest) == 3 and pool.available == 0
    taken = first + rest
    assert len({int(f) for f in taken}) == 5  # never handed out twice
    assert all(sk.decrypt_raw(f) == 0 == phe_sk.raw_decrypt(int(f)) for f in taken)
    with pytest.raises(ValueError):
        pool.take(-1)
    with pytest.raises(ValueError):
        pool.fill()  # no capacity, no count
    assert "available=0" in repr(pool)


def test_pool_is_deterministic_and_matches_plain_encryption(small):
    """Pool factors drawn from a seeded rng give exactly the ciphertexts a same-seed encryptor makes."""
    pk, sk, phe_sk = small
    ms = [0, 7, int(pk.n) - 1, int(pk.max_int), to_residue(pk, -int(pk.max_int))]
    enc = Encryptor(pk, random.Random(5))
    pool = RandomnessPool(enc)
    pool.fill(len(ms))
    via_pool = enc.encrypt_raw_many(ms, pool=pool)
    assert pool.available == 0
    assert via_pool == Encryptor(pk, random.Random(5)).encrypt_raw_many(ms)
    assert sk.decrypt_raw_many(via_pool) == ms == [phe_sk.raw_decrypt(int(c)) for c in via_pool]
    assert [from_residue(pk, phe_sk.raw_decrypt(int(c))) for c in via_pool[3:]] == [int(pk.max_int), -int(pk.max_int)]


def test_pool_partial_then_fallback(small):
    pk, sk, _ = small
    enc = Encryptor(pk, random.Random(6))
    pool = RandomnessPool(enc)
    pool.fill(3)
    ms = list(range(10, 18))
    cs = enc.encrypt_raw_many(ms, pool=pool)
    assert pool.available == 0
    assert sk.decrypt_raw_many(cs) == ms
    assert cs == Encryptor(pk, random.Random(6)).encrypt_raw_many(ms)  # same α order either way
    assert len(set(map(int, cs))) == len(cs)


def test_pool_capacity_tasks_and_add(small):
    pk, sk, _ = small
    enc = Encryptor(pk, random.Random(7))
    pool = RandomnessPool(enc, capacity=6)
    assert pool.fill(4) == 4
    assert pool.fill(10) == 2  # clipped to capacity
    assert pool.fill() == 0
    pool.take(3)
    assert pool.fill() == 3 and pool.available == 6
    assert pool.clear() == 6 and pool.available == 0
    with pytest.raises(ValueError):
        RandomnessPool(enc, capacity=0)

    # tasks() + compute_factors_task anywhere + add() equals fill() from the same rng state
    a = RandomnessPool(Encryptor(pk, random.Random(8)))
    b = RandomnessPool(Encryptor(pk, random.Random(8)))
    a.fill(7)
    tasks = b.tasks(7, chunk_size=3)
    assert len(tasks) == 3 and all(isinstance(x, int) for x in tasks[0][:4])
    for factors in map(compute_factors_task, tasks):
        b.add(factors)
    assert a.take(7) == b.take(7)
    with pytest.raises(ValueError):
        b.add([0])
    with pytest.raises(ValueError):
        b.add([int(pk.nsquare)])


def test_pool_key_mismatch(small, big):
    enc_small = Encryptor(small[0], random.Random(9))
    enc_big = Encryptor(big[0], random.Random(9))
    pool = RandomnessPool(enc_big)
    with pytest.raises(KeyMismatchError):
        enc_small.encrypt_raw_many([1], pool=pool)
    with pytest.raises(KeyMismatchError):
        enc_small.rerandomize(mpz(5), pool=pool)
    with pytest.raises(KeyMismatchError):
        enc_small.rerandomize_many([mpz(5)], pool=pool)


def test_pool_rerandomize(small):
    pk, sk, phe_sk = small
    enc = Encryptor(pk, random.Random(10))
    pool = RandomnessPool(enc)
    pool.fill(3)
    c = enc.encrypt_raw(99)
    r = enc.rerandomize(c, pool=pool)
    assert r != c and sk.decrypt_raw(r) == 99 and pool.available == 2
    cs = [enc.encrypt_raw(m) for m in (1, 2, 3, 4)]
    rs = enc.rerandomize_many(cs, pool=pool)
    assert pool.available == 0
    assert [phe_sk.raw_decrypt(int(x)) for x in rs] == [1, 2, 3, 4]
    assert all(x != y for x, y in zip(rs, cs))
    assert enc.rerandomize(c, pool=pool) != c  # empty pool: computed on the spot


def test_pool_concurrent_fill_and_take_never_reuses(small):
    """The runtime fills from a background thread while encrypting: no factor may be taken twice."""
    pk, sk, _ = small
    enc = Encryptor(pk, random.Random(11))
    pool = RandomnessPool(enc)
    done = threading.Event()
    taken: list[int] = []

    def filler():
        for _ in range(20):
            pool.fill(10)
        done.set()

    with ThreadPoolExecutor(1) as ex:
        fut = ex.submit(filler)
        while not done.is_set() or pool.available:
            taken.extend(int(f) for f in pool.take(4))
        fut.result()
    assert len(taken) == 200 and len(set(taken)) == 200
    assert all(sk.decrypt_raw(f) == 0 for f in taken[::17])


@PROPERTY
@given(data=st.data())
def test_pool_ciphertexts_homomorphic_ops_match_phe(small, data):
    pk, sk, phe_sk = small
    bound = 2**100
    a = data.draw(st.integers(-bound, bound))
    b = data.draw(st.integers(-bound, bound))
    k = data.draw(st.integers(-(2**20), 2**20))
    enc = Encryptor(pk, random.Random(data.draw(st.integers(0, 2**32))))
    pool = RandomnessPool(enc)
    pool.fill(2)
    ca, cb = enc.encrypt_raw_many([to_residue(pk, a), to_residue(pk, b)], pool=pool)
    phe_pk = pk.to_phe()
    ea, eb = phe_paillier.EncryptedNumber(phe_pk, int(ca)), phe_paillier.EncryptedNumber(phe_pk, int(cb))
    assert from_residue(pk, phe_sk.raw_decrypt((ea + eb).ciphertext(False))) == a + b == dec_signed(sk, add(pk, ca, cb))
    assert phe_sk.raw_decrypt((ea * k).ciphertext(False)) == sk.decrypt_raw(mul_plain(pk, ca, k)) == (a * k) % pk.n


# --------------------------------------------------------------------------- packing


def test_slots_and_plan(small, big):
    pk, _, _ = small
    # 512-bit key: n/3 holds 509 or 510 bits
    cap = int((pk.max_int + 1).bit_length()) - 1
    assert slots_per_ciphertext(pk, 64) == cap // 64
    assert slots_per_ciphertext(pk, cap) == 1
    with pytest.raises(BudgetError):
        slots_per_ciphertext(pk, cap + 1)
    with pytest.raises(ValueError):
        slots_per_ciphertext(pk, 1)
    assert packed_count(pk, 64, 0) == 0 and packed_count(pk, 64, cap // 64 + 1) == 2
    plan = plan_packing(pk, 62)
    assert (plan.slot_bits, plan.offset, plan.slots, plan.signed) == (64, 2**62, cap // 64, True)
    plan_u = plan_packing(pk, 63, signed=False)
    assert (plan_u.slot_bits, plan_u.offset) == (64, 0)
    with pytest.raises(BudgetError):
        plan_packing(pk, 600)
    with pytest.raises(ValueError):
        plan_packing(pk, 0)
    # 2048-bit: a masked LR gradient slot (~160 bits) packs 12 to a ciphertext
    assert slots_per_ciphertext(big[0], 164) == 12


def test_pack_is_the_horner_product(small):
    pk, sk, _ = small
    enc = Encryptor(pk, random.Random(12))
    vals = [3, 0, 1, 2**30, 5]
    cs = enc.encrypt_raw_many(vals)
    s = 40
    packed = pack(pk, cs, s)
    k = slots_per_ciphertext(pk, s)
    assert len(packed) == 1 and k >= len(vals)
    naive = mpz(1)
    for i, c in enumerate(cs):
        naive = naive * gmpy2.powmod(c, mpz(2) ** (s * i), pk.nsquare) % pk.nsquare
    assert packed[0] == naive
    assert sk.decrypt_raw(packed[0]) == sum(v << (s * i) for i, v in enumerate(vals))


@PROPERTY
@given(data=st.data())
def test_pack_unpack_round_trip_unsigned(small, data):
    pk, sk, phe_sk = small
    s = data.draw(st.integers(2, 120))
    count = data.draw(st.integers(0, 25))
    vals = data.draw(st.lists(st.integers(0, 2 ** (s - 1) - 1), min_size=count, max_size=count))
    enc = Encryptor(pk, random.Random(count))
    cs = enc.encrypt_raw_many(vals)
    packed = pack(pk, cs, s)
    assert len(packed) == packed_count(pk, s, count)
    plain = sk.decrypt_raw_many(packed)
    assert plain == [phe_sk.raw_decrypt(int(c)) for c in packed]  # phe decrypts packed ciphertexts too
    assert unpack(pk, plain, s, count) == vals
    assert decrypt_packed(sk, packed, s, count) == vals


@PROPERTY
@given(data=st.data())
def test_pack_unpack_signed_with_offset(small, data):
    pk, sk, _ = small
    value_bits = data.draw(st.integers(1, 100))
    plan = plan_packing(pk, value_bits)
    bound = 2**value_bits - 1
    count = data.draw(st.integers(1, 3 * plan.slots))
    vals = data.draw(
        st.lists(st.one_of(st.integers(-bound, bound), st.sampled_from([0, bound, -bound])), min_size=count, max_size=count)
    )
    enc = Encryptor(pk, random.Random(value_bits))
    cs = enc.encrypt_raw_many([to_residue(pk, v) for v in vals])
    packed = pack(pk, cs, plan.slot_bits, offset=plan.offset)
    assert decrypt_packed(sk, packed, plan.slot_bits, count, offset=plan.offset) == vals


def test_pack_offset_added_by_caller(small):
    """The caller may add the offset itself (add_plain per value) and tell only unpack."""
    pk, sk, _ = small
    s, off = 34, 2**32
    vals = [-(2**32) + 1, -1, 0, 1, 2**32 - 1]
    enc = Encryptor(pk, random.Random(13))
    cs = [add_plain(pk, c, off) for c in enc.encrypt_raw_many([to_residue(pk, v) for v in vals])]
    assert decrypt_packed(sk, pack(pk, cs, s), s, len(vals), offset=off) == vals


def test_masked_gradient_packing_scenario(big):
    """LR: the key holder decrypts g + r (|g| < 2^G, r uniform in [0, 2^M)) at 1/k of a decryption each."""
    pk, sk, phe_sk = big
    rng = random.Random(14)
    G, M = 81, 161
    grads = [rng.randrange(-(2**G) + 1, 2**G) for _ in range(30)]
    masks = [rng.getrandbits(M) for _ in grads]
    enc = Encryptor(pk, random.Random(15))
    cts = [add_plain(pk, c, r) for c, r in zip(enc.encrypt_raw_many([to_residue(pk, g) for g in grads]), masks)]
    plan = plan_packing(pk, M + 1)
    assert plan.slots == 12
    packed = enc.rerandomize_many(pack(pk, cts, plan.slot_bits, offset=plan.offset))
    assert len(packed) == 3
    masked = decrypt_packed(sk, packed, plan.slot_bits, len(cts), offset=plan.offset)
    assert [v - r for v, r in zip(masked, masks)] == grads
    # phe agrees on the packed plaintexts
    assert unpack(pk, [phe_sk.raw_decrypt(int(c)) for c in packed], plan.slot_bits, len(cts), offset=plan.offset) == masked


def test_slot_overflow_raises_budget_error(small):
    pk, sk, _ = small
    enc = Encryptor(pk, random.Random(16))
    s = 16
    # a value too wide for its slot (guard bit set)
    for vals in ([1, 2**15, 3], [2**16 - 1, 0], [0, 0, 2**15 + 7]):
        cs = enc.encrypt_raw_many(vals)
        with pytest.raises(BudgetError, match="overflow|exceeds"):
            decrypt_packed(sk, pack(pk, cs, s), s, len(vals))
    # a negative value without an offset: borrows through the guard
    for vals in ([5, -1, 5], [-3], [1, 2, -(2**15)]):
        cs = enc.encrypt_raw_many([to_residue(pk, v) for v in vals])
        with pytest.raises(BudgetError):
            decrypt_packed(sk, pack(pk, cs, s), s, len(vals))
    # signed values beyond the planned bound, with the offset
    plan = plan_packing(pk, 14)
    for bad in (2**14, -(2**14) - 1, 2**15 + 2**14 - 1):
        vals = [1, bad, -1]
        cs = enc.encrypt_raw_many([to_residue(pk, v) for v in vals])
        with pytest.raises(BudgetError):
            decrypt_packed(sk, pack(pk, cs, plan.slot_bits, offset=plan.offset), plan.slot_bits, 3, offset=plan.offset)
    # the last in-range values still pass
    ok = [2**14 - 1, -(2**14) + 1]
    cs = enc.encrypt_raw_many([to_residue(pk, v) for v in ok])
    assert decrypt_packed(sk, pack(pk, cs, plan.slot_bits, offset=plan.offset), plan.slot_bits, 2, offset=plan.offset) == ok
    # bad offsets and shapes
    with pytest.raises(BudgetError):
        pack(pk, cs, 16, offset=2**15)
    with pytest.raises(BudgetError):
        unpack(pk, [0], 16, 1, offset=-1)
    with pytest.raises(ValueError):
        unpack(pk, [0, 0], 16, 1)


def test_phe_ciphertexts_pack_and_decrypt_here(small):
    pk, sk, _ = small
    phe_pk = pk.to_phe()
    vals = [0, 1, 2**20, 12345, 2**23 - 1]
    cs = [phe_pk.raw_encrypt(v) for v in vals]
    assert decrypt_packed(sk, pack(pk, cs, 24), 24, len(vals)) == vals


# --------------------------------------------------------------------------- map_fn parallelism


def test_map_fn_builtin_map_equals_serial(small):
    pk, sk, phe_sk = small
    rng = random.Random(17)
    ms = np.array([rng.randrange(2**40) for _ in range(23)], dtype=np.int64)
    serial = Encryptor(pk, random.Random(18)).encrypt_raw_many(ms)
    mapped = Encryptor(pk, random.Random(18)).encrypt_raw_many(ms, map_fn=map, chunk_size=5)
    assert mapped == serial
    assert [phe_sk.raw_decrypt(int(c)) for c in mapped] == ms.tolist()

    vals = rng.sample(range(-(2**30), 2**30), 30)
    cs = Encryptor(pk, random.Random(19)).encrypt_raw_many([to_residue(pk, v) for v in vals])
    X = np.array([[rng.randrange(-(2**20), 2**20) for _ in range(4)] for _ in range(30)], dtype=np.int64)
    X[:, 1] = 0
    assert matvec_t(pk, cs, X, map_fn=map) == matvec_t(pk, cs, X)
    assert matvec_t(pk, cs, X.astype(object) * 3, map_fn=map) == matvec_t(pk, cs, X * 3)
    with pytest.raises(TypeError):
        matvec_t(pk, cs, X.astype(np.float64), map_fn=map)
    with pytest.raises(TypeError):
        matvec_t(pk, cs, np.full((30, 1), 1.5, dtype=object), map_fn=map)

    assert pack(pk, cs[:7], 40, offset=2**36, map_fn=map, chunk_size=1) == pack(pk, cs[:7], 40, offset=2**36)
    assert sk.decrypt_raw_many(cs, map_fn=map, chunk_size=4) == sk.decrypt_raw_many(cs)
    assert RandomnessPool(Encryptor(pk, random.Random(20))).fill(9, map_fn=map, chunk_size=2) == 9


def test_worker_functions_take_plain_ints(small):
    pk, sk, _ = small
    enc = Encryptor(pk, random.Random(21))
    cs = enc.encrypt_raw_many([to_residue(pk, v) for v in (5, -6, 7)])
    n = int(pk.n)
    assert dot_task((n, [int(c) for c in cs], [2, 3, -1])) == int(dot(pk, cs, [2, 3, -1]))
    with pytest.raises(ValueError):
        dot_task((n, [int(c) for c in cs], [1]))
    assert decrypt_task((int(sk.p), int(sk.q), [int(c) for c in cs])) == sk.decrypt_raw_many(cs)
    assert pack_task((n, 30, 0, ((int(cs[0]), int(cs[2])),))) == [int(c) for c in pack(pk, [cs[0], cs[2]], 30)]


def test_process_pool_results_identical_to_serial(small):
    """One executor, two processes: every map_fn path returns exactly the serial result."""
    pk, sk, phe_sk = small
    rng = random.Random(22)
    ms = [rng.randrange(int(pk.n)) for _ in range(40)]
    vals = [rng.randrange(-(2**30), 2**30) for _ in range(40)]
    X = np.array([[rng.randrange(-(2**20), 2**20) for _ in range(3)] for _ in range(40)], dtype=np.int64)
    with ProcessPoolExecutor(2) as ex:
        par = Encryptor(pk, random.Random(23)).encrypt_raw_many(ms, map_fn=ex.map, chunk_size=8)
        ser = Encryptor(pk, random.Random(23)).encrypt_raw_many(ms)
        assert par == ser
        assert [phe_sk.raw_decrypt(int(c)) for c in par] == ms

        enc = Encryptor(pk, random.Random(24))
        pool = RandomnessPool(enc)
        assert pool.fill(12, map_fn=ex.map, chunk_size=5) == 12
        pooled = enc.encrypt_raw_many([to_residue(pk, v) for v in vals[:12]], pool=pool)
        assert pooled == Encryptor(pk, random.Random(24)).encrypt_raw_many([to_residue(pk, v) for v in vals[:12]])
        assert [from_residue(pk, phe_sk.raw_decrypt(int(c))) for c in pooled] == vals[:12]

        cs = Encryptor(pk, random.Random(25)).encrypt_raw_many([to_residue(pk, v) for v in vals])
        got = matvec_t(pk, cs, X, map_fn=ex.map)
        assert got == matvec_t(pk, cs, X)
        assert [dec_signed(sk, c) for c in got] == [sum(int(X[i, j]) * vals[i] for i in range(40)) for j in range(3)]

        plan = plan_packing(pk, 31)
        packed = pack(pk, cs, plan.slot_bits, offset=plan.offset, map_fn=ex.map, chunk_size=1)
        assert packed == pack(pk, cs, plan.slot_bits, offset=plan.offset)
        assert sk.decrypt_raw_many(packed, map_fn=ex.map, chunk_size=1) == sk.decrypt_raw_many(packed)
        assert decrypt_packed(sk, packed, plan.slot_bits, len(vals), offset=plan.offset, map_fn=ex.map) == vals


def test_production_size_parallel_paths_match_phe(big):
    pk, sk, phe_sk = big
    rng = random.Random(26)
    vals = [0, -1, 1, 2**60, -(2**60)] + [rng.randrange(-(2**40), 2**40) for _ in range(7)]
    enc = Encryptor(pk, random.Random(27))
    pool = RandomnessPool(enc)
    pool.fill(6, map_fn=map, chunk_size=4)
    cs = enc.encrypt_raw_many([to_residue(pk, v) for v in vals], pool=pool, map_fn=map)
    assert [from_residue(pk, phe_sk.raw_decrypt(int(c))) for c in cs] == vals
    X = np.array([[rng.randrange(-(2**20), 2**20) for _ in range(2)] for _ in vals], dtype=np.int64)
    got = matvec_t(pk, cs, X, map_fn=map)
    phe_pk = pk.to_phe()
    for j, c in enumerate(got):
        phe_sum = sum(phe_paillier.EncryptedNumber(phe_pk, int(ci)) * int(X[i, j]) for i, ci in enumerate(cs))
        assert phe_sk.decrypt(phe_sum) == dec_signed(sk, c) == sum(int(X[i, j]) * v for i, v in enumerate(vals))


def test_dot_many_equals_dot_for_every_row():
    import random as _r

    from fedcredit.protocols.paillier import Encryptor, generate_keypair, ops

    pk, sk = generate_keypair(1024, _r.Random(7))
    enc = Encryptor(pk, _r.Random(8))
    ms = [_r.Random(9).getrandbits(100) for _ in range(12)]
    cs = enc.encrypt_raw_many(ms)
    rng = _r.Random(10)
    rows = [[rng.randrange(-2**18, 2**18) for _ in range(12)] for _ in range(9)] + [[0] * 12, [5] + [0] * 11, [-(2**18)] * 12]
    got = ops.dot_many(pk, cs, rows)
    assert got == [ops.dot(pk, cs, r) for r in rows]
    for r, c in zip(rows, got):
        assert sk.decrypt_raw(c) == sum(x * m for x, m in zip(r, ms)) % pk.n
    assert ops.dot_many(pk, cs, []) == []
    # every window width gives the same products as the automatic choice
    assert all(ops.dot_many(pk, cs, rows[:3], window_bits=w) == got[:3] for w in (1, 4, 8))


@pytest.mark.parametrize("base_kind", ["canonical", "drawn"])
@pytest.mark.parametrize("exponent_bits", [None, 1024 + 80])
def test_secret_encryptor_makes_the_public_encryptors_ciphertexts(base_kind, exponent_bits):
    """The key holder's CRT encryption is an optimisation only: same rng, same ciphertexts, serial or pooled."""
    from fedcredit.protocols.paillier import canonical_base
    from fedcredit.protocols.paillier.crt import SecretEncryptor, crt_factors_task

    pk, sk = generate_keypair(1024, random.Random(31))
    base = canonical_base(pk) if base_kind == "canonical" else None
    ms = [random.Random(32).getrandbits(900) for _ in range(40)] + [0, pk.n - 1]
    want = Encryptor(pk, random.Random(33), exponent_bits=exponent_bits, base=base).encrypt_raw_many(ms)
    got = SecretEncryptor(sk, random.Random(33), exponent_bits=exponent_bits, base=base).encrypt_raw_many(ms)
    assert got == want
    pooled = SecretEncryptor(sk, random.Random(33), exponent_bits=exponent_bits, base=base)
    assert pooled.encrypt_raw_many(ms, map_fn=map, chunk_size=7) == want
    assert [sk.decrypt_raw(c) for c in got] == [m % pk.n for m in ms]
    enc = SecretEncryptor(sk, random.Random(34), window_bits=5, base=base)  # the general (non-byte) window path
    assert enc.encrypt_raw_many(ms[:5]) == Encryptor(pk, random.Random(34), window_bits=5, base=base).encrypt_raw_many(ms[:5])
    p, q = int(sk.p), int(sk.q)
    assert crt_factors_task((p, q, int(enc.hs), 8, (0, 1, 2**1023))) == compute_factors(int(pk.n), int(enc.hs), [0, 1, 2**1023], 8, 1024)
    with pytest.raises(ValueError):
        SecretEncryptor(sk, random.Random(1), exponent_bits=64)


def test_owner_engine_encrypts_like_the_public_engine_and_decrypts_in_a_pool():
    from fedcredit.protocols.hetero_lr.he import PaillierPublic, PaillierSecret

    pk, sk = generate_keypair(1024, random.Random(41))
    ms = list(range(300))
    owner = PaillierSecret(sk, random.Random(42), map_fn=map)  # >= MIN_PARALLEL values go through the map_fn
    public = PaillierPublic(pk, random.Random(42))
    cs = owner.encrypt_many(ms)
    assert cs == public.encrypt_many(ms)
    assert owner.decrypt_many(cs) == ms
    assert PaillierSecret(sk, random.Random(42), engine="phe").decrypt_many(cs[:3]) == ms[:3]
