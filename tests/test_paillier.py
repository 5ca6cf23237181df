"""Tests for fedcredit.protocols.paillier, with python-paillier (phe) as an independent oracle."""

from __future__ import annotations

import hashlib
import random

import gmpy2
import numpy as np
import pytest
from gmpy2 import mpz
from hypothesis import given, settings
from hypothesis import strategies as st
from phe import paillier as phe_paillier
from phe.encoding import EncodedNumber

from fedcredit.protocols.errors import BudgetError, CryptoError, KeyMismatchError
from fedcredit.protocols.paillier import (
    Encryptor,
    FixedPoint,
    PaillierPrivateKey,
    PaillierPublicKey,
    add,
    add_many,
    add_plain,
    add_plain_many,
    check_ciphertext,
    check_same_key,
    dot,
    encrypt_raw_reference,
    from_residue,
    generate_keypair,
    matvec_t,
    mul_plain,
    neg,
    sum_ciphertexts,
    to_residue,
)
from fedcredit.protocols.paillier.ops import _choose_window
from helpers import dec_signed, paillier_with_phe

PROPERTY = settings(max_examples=40, deadline=None)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def small():
    """A 512-bit (insecure, test-only) key pair, its phe twin and an Encryptor."""
    pk, sk, phe_sk = paillier_with_phe(512, 20240512)
    return pk, sk, Encryptor(pk, random.Random(1)), phe_sk


@pytest.fixture(scope="module")
def big():
    """A 2048-bit key pair (the production size) for a few checks."""
    pk, sk, phe_sk = paillier_with_phe(2048, 2048)
    return pk, sk, Encryptor(pk, random.Random(2)), phe_sk


def signed_ints(pk: PaillierPublicKey):
    return st.integers(min_value=-int(pk.max_int), max_value=int(pk.max_int))


def enc_signed(enc: Encryptor, x: int):
    return enc.encrypt_raw(to_residue(enc.public_key, x))


# --------------------------------------------------------------------------- keys


@pytest.mark.parametrize(
    "bits, flag", [(512, True), (768, True), (1024, False), (2048, False)]
)
def test_keygen_bit_length_exact(bits, flag):
    pk, sk = generate_keypair(bits, random.Random(bits), insecure_allow_small=flag)
    assert pk.bits == bits == pk.n.bit_length()
    assert sk.p * sk.q == pk.n
    assert sk.p != sk.q
    assert sk.p.bit_length() == sk.q.bit_length() == bits // 2
    assert gmpy2.is_prime(sk.p, 40) and gmpy2.is_prime(sk.q, 40)
    assert gmpy2.gcd(pk.n, (sk.p - 1) * (sk.q - 1)) == 1
    assert sk.public_key is pk


def test_keygen_deterministic_with_seeded_rng():
    a = generate_keypair(1024, random.Random(99))
    b = generate_keypair(1024, random.Random(99))
    c = generate_keypair(1024, random.Random(100))
    assert a[0] == b[0] and a[1] == b[1]
    assert (a[1].p, a[1].q) == (b[1].p, b[1].q)
    assert a[0] != c[0]


def test_keygen_refuses_small_and_odd_sizes():
    rng = random.Random(0)
    with pytest.raises(ValueError, match="insecure"):
        generate_keypair(512, rng)
    with pytest.raises(ValueError):
        generate_keypair(4096, rng)
    with pytest.raises(ValueError):
        generate_keypair(1500, rng)
    with pytest.raises(ValueError):
        generate_keypair(511, rng, insecure_allow_small=True)
    with pytest.raises(ValueError):
        generate_keypair(128, rng, insecure_allow_small=True)
    with pytest.raises(TypeError):
        generate_keypair(1024)


def test_public_key_attributes(small):
    pk, sk, _, _ = small
    assert pk.nsquare == pk.n * pk.n
    assert pk.g == pk.n + 1
    assert pk.max_int == pk.n // 3
    assert pk.ciphertext_bytes == (2 * pk.bits + 7) // 8 == 128
    assert int(pk.nsquare).bit_length() <= 8 * pk.ciphertext_bytes
    fp = pk.fingerprint()
    assert len(fp) == 32
    assert fp == hashlib.sha256(int(pk.n).to_bytes(64, "big")).digest()
    same = PaillierPublicKey(int(pk.n))
    assert same == pk and hash(same) == hash(pk) and len({same, pk}) == 1
    assert PaillierPublicKey.from_phe(pk.to_phe()) == pk
    assert PaillierPrivateKey.from_phe(sk.to_phe()) == sk
    with pytest.raises(ValueError):
        PaillierPublicKey(pk.n + 1)  # even
    with pytest.raises(ValueError):
        PaillierPrivateKey(pk, sk.p, sk.q + 2)
    with pytest.raises(ValueError):
        PaillierPrivateKey(pk, sk.p, sk.p)


def test_private_key_repr_hides_factors(small):
    _, sk, _, _ = small
    text = repr(sk) + str(sk)
    assert str(sk.p) not in text and str(sk.q) not in text


def test_decrypt_rejects_malformed_ciphertexts(small):
    pk, sk, _, _ = small
    for bad in (0, -1, pk.nsquare, pk.nsquare + 5, sk.p * 12345, sk.q):
        with pytest.raises(CryptoError):
            sk.decrypt_raw(bad)
    with pytest.raises(CryptoError):
        sk.decrypt_raw(3.0)
    with pytest.raises(CryptoError):
        check_ciphertext(pk, pk.n)
    assert check_ciphertext(pk, 1) == 1
    assert sk.decrypt_raw(1) == 0


# --------------------------------------------------------------------------- phe oracle, both ways


def test_our_ciphertexts_decrypt_in_phe(small):
    pk, sk, enc, phe_sk = small
    rng = random.Random(3)
    ms = [0, 1, 2, int(pk.n) - 1, int(pk.max_int)] + [rng.randrange(pk.n) for _ in range(20)]
    cs = enc.encrypt_raw_many(ms)
    assert [phe_sk.raw_decrypt(int(c)) for c in cs] == ms
    assert sk.decrypt_raw_many(cs) == ms


def test_phe_ciphertexts_decrypt_with_ours(small):
    pk, sk, _, phe_sk = small
    phe_pk = pk.to_phe()
    rng = random.Random(4)
    ms = [0, 1, int(pk.n) - 1, int(pk.n) - int(pk.max_int)] + [rng.randrange(pk.n) for _ in range(20)]
    assert [sk.decrypt_raw(phe_pk.raw_encrypt(m)) for m in ms] == ms


def test_reference_encryption_agrees(small):
    pk, sk, _, phe_sk = small
    rng = random.Random(5)
    for m in (0, 7, int(pk.n) - 1, -3):
        c = encrypt_raw_reference(pk, m, rng)
        assert sk.decrypt_raw(c) == m % pk.n == phe_sk.raw_decrypt(int(c))


def test_phe_generated_keys_work_here():
    phe_pk, phe_sk = phe_paillier.generate_paillier_keypair(n_length=1024)
    pk = PaillierPublicKey.from_phe(phe_pk)
    sk = PaillierPrivateKey.from_phe(phe_sk)
    assert pk.bits == 1024 and sk.public_key == pk
    enc = Encryptor(pk, random.Random(6))
    rng = random.Random(7)
    ms = [0, 1, int(pk.n) - 1] + [rng.randrange(pk.n) for _ in range(10)]
    cs = enc.encrypt_raw_many(ms)
    assert sk.decrypt_raw_many(cs) == ms
    assert [phe_sk.raw_decrypt(int(c)) for c in cs] == ms
    assert [sk.decrypt_raw(phe_pk.raw_encrypt(m)) for m in ms] == ms


@pytest.mark.parametrize("value", [3.5, -2.25, 0.0, 123456.789, -1e-3])
def test_our_keys_work_in_phe_float_api(small, value):
    pk, sk, _, _ = small
    phe_pk, phe_sk = pk.to_phe(), sk.to_phe()
    e = phe_pk.encrypt(value)
    expected = EncodedNumber.encode(phe_pk, value).encoding
    assert sk.decrypt_raw(e.ciphertext(be_secure=False)) == expected
    assert sk.decrypt_raw(e.ciphertext()) == expected  # after phe's obfuscation too
    assert phe_sk.decrypt(e) == pytest.approx(value)
    # and phe's float API on ciphertexts we made
    ours = phe_paillier.EncryptedNumber(phe_pk, int(small[2].encrypt_raw(expected)), e.exponent)
    assert phe_sk.decrypt(ours) == pytest.approx(value)


def test_production_size_cross_check(big):
    pk, sk, enc, phe_sk = big
    assert pk.bits == 2048 and pk.ciphertext_bytes == 512
    rng = random.Random(8)
    ms = [0, int(pk.n) - 1] + [rng.randrange(pk.n) for _ in range(3)]
    cs = enc.encrypt_raw_many(ms)
    assert [phe_sk.raw_decrypt(int(c)) for c in cs] == ms
    assert sk.decrypt_raw_many(cs) == ms
    assert sk.decrypt_raw(pk.to_phe().raw_encrypt(12345)) == 12345


def test_production_size_dot_matches_phe(big):
    pk, sk, enc, phe_sk = big
    rng = random.Random(9)
    values = [rng.randrange(-(2**40), 2**40) for _ in range(40)]
    xs = [rng.randrange(-(2**20), 2**20) for _ in range(40)]
    xs[0] = 0
    cs = [enc_signed(enc, v) for v in values]
    got = dot(pk, cs, xs)
    expected = sum(v * x for v, x in zip(values, xs))
    assert dec_signed(sk, got) == expected
    phe_pk = pk.to_phe()
    phe_sum = sum(phe_paillier.EncryptedNumber(phe_pk, int(c)) * x for c, x in zip(cs, xs))
    assert phe_sk.decrypt(phe_sum) == expected


# --------------------------------------------------------------------------- homomorphic ops


@PROPERTY
@given(data=st.data())
def test_add_and_add_plain(small, data):
    pk, sk, enc, phe_sk = small
    bound = int(pk.max_int) // 2
    a = data.draw(st.integers(-bound, bound))
    b = data.draw(st.integers(-bound, bound))
    ca, cb = enc_signed(enc, a), enc_signed(enc, b)
    assert dec_signed(sk, add(pk, ca, cb)) == a + b
    assert dec_signed(sk, add_plain(pk, ca, b)) == a + b
    # add_plain is c·(1 + x·n) mod n²: identical ciphertext to the textbook form
    assert add_plain(pk, ca, b) == ca * (1 + (b % pk.n) * pk.n) % pk.nsquare
    # phe agrees on the sum of the same ciphertexts
    phe_pk = pk.to_phe()
    s = phe_paillier.EncryptedNumber(phe_pk, int(ca)) + phe_paillier.EncryptedNumber(phe_pk, int(cb))
    assert from_residue(pk, phe_sk.raw_decrypt(s.ciphertext(False))) == a + b
    assert sk.decrypt_raw(s.ciphertext(False)) == sk.decrypt_raw(add(pk, ca, cb))


@PROPERTY
@given(data=st.data())
def test_neg_and_mul_plain(small, data):
    pk, sk, enc, phe_sk = small
    a = data.draw(st.integers(-(2**200), 2**200))
    k = data.draw(st.one_of(st.integers(-(2**64), 2**64), st.sampled_from([0, 1, -1])))
    ca = enc_signed(enc, a)
    assert dec_signed(sk, neg(pk, ca)) == -a
    prod = mul_plain(pk, ca, k)
    assert dec_signed(sk, prod) == a * k
    # phe (EncryptedNumber * int, exponent 0) computes the same plaintext
    phe_prod = phe_paillier.EncryptedNumber(pk.to_phe(), int(ca)) * k
    assert phe_sk.raw_decrypt(phe_prod.ciphertext(False)) == sk.decrypt_raw(prod)
    assert phe_sk.raw_decrypt(int(prod)) == (a * k) % pk.n


def test_mul_plain_negative_uses_inverse_not_big_exponent(small):
    pk, sk, enc, _ = small
    c = enc_signed(enc, 11)
    # k = -3 and k = n - 3 are the same scalar mod n; both give the inverse form
    expected = gmpy2.invert(gmpy2.powmod(c, 3, pk.nsquare), pk.nsquare)
    assert mul_plain(pk, c, -3) == expected
    assert mul_plain(pk, c, int(pk.n) - 3) == expected
    assert dec_signed(sk, mul_plain(pk, c, -3)) == -33
    assert mul_plain(pk, c, 0) == 1


def test_sum_ciphertexts(small):
    pk, sk, enc, _ = small
    assert sum_ciphertexts(pk, []) == 1
    assert sk.decrypt_raw(sum_ciphertexts(pk, [])) == 0
    values = [5, -7, 2**100, -(2**99), 0]
    assert dec_signed(sk, sum_ciphertexts(pk, [enc_signed(enc, v) for v in values])) == sum(values)


def test_elementwise_helpers(small):
    pk, sk, enc, _ = small
    a = [1, -2, 3]
    b = [10, 20, -30]
    ca = [enc_signed(enc, v) for v in a]
    cb = [enc_signed(enc, v) for v in b]
    assert [dec_signed(sk, c) for c in add_many(pk, ca, cb)] == [11, 18, -27]
    assert [dec_signed(sk, c) for c in add_plain_many(pk, ca, b)] == [11, 18, -27]
    with pytest.raises(ValueError):
        add_many(pk, ca, cb[:2])
    with pytest.raises(ValueError):
        add_plain_many(pk, ca, b[:2])


scalars = st.one_of(
    st.just(0),
    st.integers(-(2**20), 2**20),
    st.integers(-(2**64), 2**64),
    st.integers(-(2**150), 2**150),
)


@PROPERTY
@given(data=st.data())
def test_dot_property(small, data):
    pk, sk, enc, phe_sk = small
    size = data.draw(st.integers(0, 30))
    values = data.draw(st.lists(st.integers(-(2**100), 2**100), min_size=size, max_size=size))
    xs = data.draw(st.lists(scalars, min_size=size, max_size=size))
    cs = [enc_signed(enc, v) for v in values]
    got = dot(pk, cs, xs)
    expected = sum(v * x for v, x in zip(values, xs))
    assert dec_signed(sk, got) == expected
    # naive product of phe-style powers gives the same plaintext
    phe_pk = pk.to_phe()
    naive = sum(
        (phe_paillier.EncryptedNumber(phe_pk, int(c)) * x for c, x in zip(cs, xs)),
        phe_paillier.EncryptedNumber(phe_pk, 1),
    )
    assert phe_sk.raw_decrypt(naive.ciphertext(False)) == sk.decrypt_raw(got)


def test_dot_many_elements_multi_window(small):
    """Large enough that the bucket path uses several windows with full buckets."""
    pk, sk, enc, _ = small
    rng = random.Random(10)
    size = 600
    values = [rng.randrange(-(2**60), 2**60) for _ in range(size)]
    xs = [rng.choice([0, rng.randrange(-(2**20), 2**20), rng.randrange(-(2**33), 2**33)]) for _ in range(size)]
    cs = [enc_signed(enc, v) for v in values]
    expected = sum(v * x for v, x in zip(values, xs))
    assert dec_signed(sk, dot(pk, cs, xs)) == expected
    # the result equals the exact product Π c^x (not just the same plaintext)
    naive = mpz(1)
    for c, x in zip(cs, xs):
        naive = naive * mul_plain(pk, c, x) % pk.nsquare
    assert dot(pk, cs, xs) == naive


def test_dot_edge_cases(small):
    pk, sk, enc, _ = small
    c = [enc_signed(enc, v) for v in (3, -4)]
    assert dot(pk, [], []) == 1
    assert dot(pk, c, [0, 0]) == 1
    assert dec_signed(sk, dot(pk, c, [int(pk.n) - 1, 2])) == -3 - 8  # n-1 ≡ -1
    assert dec_signed(sk, dot(pk, c, np.array([5, -6], dtype=np.int64))) == 15 + 24
    with pytest.raises(ValueError):
        dot(pk, c, [1])
    with pytest.raises(TypeError):
        dot(pk, c, [1.5, 2.0])


def test_choose_window_is_sane():
    assert _choose_window(1, 1) == 1
    assert 5 <= _choose_window(1000, 20) <= 8
    assert _choose_window(100000, 64) >= _choose_window(100, 64)


def test_matvec_t(small):
    pk, sk, enc, _ = small
    rng = np.random.default_rng(11)
    rows, cols = 25, 4
    values = rng.integers(-(2**30), 2**30, size=rows).tolist()
    X = rng.integers(-(2**20), 2**20, size=(rows, cols), dtype=np.int64)
    X[3, :] = 0
    X[:, 2] = 0
    cs = [enc_signed(enc, v) for v in values]
    got = [dec_signed(sk, c) for c in matvec_t(pk, cs, X)]
    expected = [sum(int(X[i, j]) * values[i] for i in range(rows)) for j in range(cols)]
    assert got == expected
    big_obj = X.astype(object) * (2**70)
    got_obj = [dec_signed(sk, c) for c in matvec_t(pk, cs, big_obj)]
    assert got_obj == [e * 2**70 for e in expected]
    with pytest.raises(TypeError):
        matvec_t(pk, cs, X.astype(np.float64))
    with pytest.raises(ValueError):
        matvec_t(pk, cs[:-1], X)
    with pytest.raises(ValueError):
        matvec_t(pk, cs, X[:, 0])


def test_check_same_key(small, big):
    check_same_key(small[0], PaillierPublicKey(small[0].n))
    with pytest.raises(KeyMismatchError):
        check_same_key(small[0], big[0])
    assert issubclass(KeyMismatchError, CryptoError)


# --------------------------------------------------------------------------- encoding


def test_signed_edge_values_round_trip(small):
    pk, sk, enc, _ = small
    for x in (0, 1, -1, int(pk.max_int), -int(pk.max_int)):
        m = to_residue(pk, x)
        assert 0 <= m < pk.n
        assert from_residue(pk, m) == x
        assert dec_signed(sk, enc.encrypt_raw(m)) == x


def test_overflow_raises_budget_error(small):
    pk, sk, enc, _ = small
    over = int(pk.max_int) + 1
    with pytest.raises(BudgetError):
        to_residue(pk, over)
    with pytest.raises(BudgetError):
        to_residue(pk, -over)
    with pytest.raises(BudgetError, match="overflow"):
        from_residue(pk, over)
    with pytest.raises(BudgetError):
        from_residue(pk, int(pk.n) - over)
    # a homomorphic sum that wraps past max_int is caught on decode
    c = enc_signed(enc, int(pk.max_int))
    with pytest.raises(BudgetError):
        dec_signed(sk, add(pk, c, c))
    with pytest.raises(BudgetError):
        dec_signed(sk, mul_plain(pk, c, -2))
    with pytest.raises(ValueError):
        from_residue(pk, int(pk.n))
    with pytest.raises(ValueError):
        from_residue(pk, -1)


@settings(max_examples=200, deadline=None)
@given(
    v=st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    f=st.integers(0, 30),
)
def test_fixed_point_round_trip(v, f):
    fp = FixedPoint(f)
    (x,) = fp.encode([v])
    assert isinstance(x, int)
    back = fp.decode([x])[0]
    assert abs(back - v) <= 2.0 ** -(f + 1)


@settings(max_examples=100, deadline=None)
@given(
    a=st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    b=st.floats(min_value=-1e3, max_value=1e3, allow_nan=False),
)
def test_fixed_point_product_decodes_at_double_scale(small, a, b):
    pk, sk, enc, _ = small
    f = 24
    fp = FixedPoint(f)
    (xa,), (xb,) = fp.encode([a]), fp.encode([b])
    bound = (abs(a) + abs(b)) * 2.0**-f + 2.0 ** (-2 * f) + 1e-9 * abs(a * b)
    assert abs(fp.decode([xa * xb], scale_bits=2 * f)[0] - a * b) <= bound
    # through the cryptosystem: E(xa)^xb decrypts to xa·xb at scale 2f
    prod = mul_plain(pk, enc_signed(enc, xa), xb)
    assert abs(fp.decode([dec_signed(sk, prod)], 2 * f)[0] - a * b) <= bound


def test_fixed_point_encode_details():
    fp = FixedPoint(24)
    assert fp.encode([]) == []
    assert fp.encode(np.array([1.0, -0.5, 0.0])) == [2**24, -(2**23), 0]
    assert fp.encode([1e300]) == [int(1e300) * 2**24]  # beyond int64: exact Python ints
    arr = fp.encode_array(np.array([[1.0, 2.0], [3.0, -4.0]]))
    assert arr.shape == (2, 2) and arr.dtype == object
    assert arr.tolist() == [[2**24, 2**25], [3 * 2**24, -(2**26)]]
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(BudgetError):
            fp.encode([1.0, bad])
    with pytest.raises(BudgetError):
        fp.encode([1e308])  # finite, but its scaled value is not
    with pytest.raises(BudgetError):
        fp.encode([10**400])  # not even a float64
    with pytest.raises(ValueError):
        FixedPoint(-1)


def test_fixed_point_decode_big_ints():
    fp = FixedPoint(24)
    assert fp.decode([2**200], scale_bits=100)[0] == 2.0**100
    assert fp.decode([mpz(3) * 2**24, np.int64(-(2**23))]).tolist() == [3.0, -0.5]
    odd = 2**80 + 1  # not representable: must round correctly
    assert fp.decode([odd], scale_bits=0)[0] == float(2**80)
    with pytest.raises(BudgetError):
        fp.decode([2**2000], scale_bits=0)


# --------------------------------------------------------------------------- encryptor


def test_encryptor_randomness_and_determinism(small):
    pk, sk, _, _ = small
    enc = Encryptor(pk, random.Random(42))
    c1, c2 = enc.encrypt_raw(5), enc.encrypt_raw(5)
    assert c1 != c2
    assert sk.decrypt_raw(c1) == sk.decrypt_raw(c2) == 5
    again = Encryptor(pk, random.Random(42))
    assert [again.encrypt_raw(5), again.encrypt_raw(5)] == [c1, c2]
    other = Encryptor(pk, random.Random(43))
    assert other.encrypt_raw(5) != c1


def test_encryptor_rerandomize_and_random_factor(small):
    pk, sk, enc, _ = small
    c = enc.encrypt_raw(77)
    r = enc.rerandomize(c)
    assert r != c and sk.decrypt_raw(r) == 77
    assert sk.decrypt_raw(enc.random_factor()) == 0
    assert sk.decrypt_raw(enc.hs) == 0
    assert sk.decrypt_raw(enc.encrypt_raw(-1)) == int(pk.n) - 1  # reduced mod n
    with pytest.raises(TypeError):
        enc.encrypt_raw(1.0)


@pytest.mark.parametrize("window_bits, exponent_bits", [(1, 128), (5, 130), (8, None), (11, 200)])
def test_encryptor_table_is_exact(small, window_bits, exponent_bits):
    pk, sk, _, _ = small
    enc = Encryptor(pk, random.Random(window_bits), window_bits=window_bits, exponent_bits=exponent_bits)
    eb = enc.exponent_bits
    rng = random.Random(12)
    for alpha in (0, 1, (1 << eb) - 1, 1 << (eb - 1)) + tuple(rng.getrandbits(eb) for _ in range(5)):
        assert enc._hs_pow(alpha) == gmpy2.powmod(enc.hs, alpha, pk.nsquare)
    assert sk.decrypt_raw(enc.encrypt_raw(123)) == 123


def test_encryptor_rejects_bad_parameters(small):
    pk = small[0]
    with pytest.raises(ValueError):
        Encryptor(pk, random.Random(0), window_bits=0)
    with pytest.raises(ValueError):
        Encryptor(pk, random.Random(0), window_bits=13)
    with pytest.raises(ValueError):
        Encryptor(pk, random.Random(0), exponent_bits=64)
