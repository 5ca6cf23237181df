"""Red team: the key holder reads the *randomness* of what it decrypts.

In the two-party mode a party sends back ciphertexts computed from the other
party's own ciphertexts (``lr2.conversion``, ``lr2.gradient``). The key holder
knows ``p`` and ``q``, so from a ciphertext ``c = (1 + m n) r^n`` it recovers
``r`` itself, and it knows the randomness ``R_j`` of its own ciphertexts. With
``c = Π [[b_j]]^{x_j} · Enc(mask)``, ``r = Π R_j^{x_j} · r_mask``: any character
``χ`` of ``Z_n*`` (a Legendre symbol mod ``p``, a cubic character, ...) with
``χ(r_mask)`` predictable gives the key holder ``Π χ(R_j)^{x_j}``, a function of
the sender's scalars ``x`` (the features of a row).

* Naive: the sender blinds with DJN randomness ``h_S^α`` on a base of its own
  choosing. When ``h_S`` is a square mod ``p`` (half of all bases), the Legendre
  symbol of ``r`` equals ``Π (R_j/p)^{x_j}``: the parity of a subset of the
  features the key holder knows, one bit per ciphertext.
* Shipped: every party encrypts under a key with that key's canonical base
  (``fedcredit.protocols.paillier.canonical_base``), and blinds with an exponent
  ``|n| + 80`` bits long, so ``r_mask`` is within ``2^-80`` of uniform on the
  one subgroup all the randomness lives in. Every character the key holder can
  evaluate is then either constant or at chance.
"""

from __future__ import annotations

import random

import gmpy2
import pytest

from fedcredit.protocols.hetero_lr.he import PaillierPublic, PaillierSecret
from fedcredit.protocols.paillier import Encryptor
from fedcredit.protocols.paillier import ops
from helpers import paillier_keypair

M = 6  # weights in one dot product (a row of features times the shares)
TRIALS = 240


@pytest.fixture(scope="module")
def key():
    return paillier_keypair(1024, 31)


def _randomness(sk, c):
    """What the key holder computes: ``r`` with ``c = (1 + m n) r^n mod n²``."""
    pk = sk.public_key
    n, nsq = pk.n, pk.nsquare
    m = sk.decrypt_raw(c)
    rn = c * (1 - m * n) % nsq
    return gmpy2.powmod(rn % n, gmpy2.invert(n, (sk.p - 1) * (sk.q - 1)), n)


def _character(v, p, ell):
    """``v^((p-1)/ell) mod p``: a character of order ``ell`` (ell | p - 1)."""
    return int(gmpy2.powmod(v, (p - 1) // ell, p))


def _run(key, holder_encrypt, sender_dot, sender_blind, rng):
    """(R_j of the key holder's ciphertexts, [(x, r of the blinded dot product)])."""
    pk, sk = key
    shares = [rng.getrandbits(160) for _ in range(M)]
    cts = holder_encrypt(shares)
    rs = [_randomness(sk, c) for c in cts]  # the key holder knows these anyway
    out = []
    for _ in range(TRIALS):
        x = [rng.randrange(-2**17, 2**17) for _ in range(M)]
        c = ops.add(pk, sender_dot(cts, x), sender_blind(rng.getrandbits(300)))
        out.append((x, _randomness(sk, c)))
    return rs, out


def _agreement(rs, out, p, ell):
    pred: list[int] = []
    obs: list[int] = []
    for x, r in out:
        prod = 1
        for rj, xj in zip(rs, x):
            prod = prod * gmpy2.powmod(rj, xj, p) % p if xj >= 0 else prod * gmpy2.powmod(gmpy2.invert(rj, p), -xj, p) % p
        pred.append(_character(prod, p, ell))
        obs.append(_character(r, p, ell))
    return pred, obs


def test_naive_sender_base_leaks_feature_parities_to_the_key_holder(key):
    pk, sk = key
    holder = Encryptor(pk, random.Random(1))  # the key holder's own encryptor, its own random base
    # a sender whose own base happens to be a square mod p: half of all bases are
    seed = next(s for s in range(100) if gmpy2.legendre(Encryptor(pk, random.Random(1000 + s)).hs % sk.p, sk.p) == 1)
    sender = Encryptor(pk, random.Random(1000 + seed))
    rs, out = _run(key, holder.encrypt_raw_many, lambda cs, x: ops.dot(pk, cs, x),
                   lambda m: sender.encrypt_raw_many([m])[0], random.Random(2))
    pred, obs = _agreement(rs, out, sk.p, 2)
    assert 0.25 < pred.count(1) / len(pred) < 0.75  # the target bit really varies with the features
    assert sum(a == b for a, b in zip(pred, obs)) == len(pred)  # and the key holder reads it every time


def test_shipped_blinding_leaves_every_small_character_constant_or_at_chance(key):
    pk, sk = key
    holder = PaillierSecret(sk, random.Random(1))  # encrypts with the key's canonical base, as in the protocol
    sender = PaillierPublic(pk, random.Random(3))
    rs, out = _run(key, holder.public.encrypt_many, sender.dot, lambda m: sender.encrypt_blinding_many([m])[0],
                   random.Random(2))
    checked = 0
    for prime in (sk.p, sk.q):
        for ell in (2, 3, 5, 7, 11, 13):
            if (prime - 1) % ell:
                continue
            pred, obs = _agreement(rs, out, prime, ell)
            if len(set(pred)) == 1:
                assert len(set(obs)) == 1, (ell, "the character varies although nothing predicts it")
                continue
            checked += 1
            hits = sum(a == b for a, b in zip(pred, obs))
            # chance is 1/ell; the naive construction gets TRIALS / TRIALS. 4.5 sigma above chance fails.
            mean, sd = TRIALS / ell, (TRIALS * (1 / ell) * (1 - 1 / ell)) ** 0.5
            assert hits < mean + 4.5 * sd, (prime == sk.p, ell, hits, TRIALS)
    # all randomness is in <h> with h a square: the Legendre symbols are constant, so nothing to read there
    assert all(gmpy2.legendre(r, sk.p) == 1 and gmpy2.legendre(r, sk.q) == 1 for _, r in out)
    assert checked >= 1  # at least one character the key holder *can* predict was put to the test
