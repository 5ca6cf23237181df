"""Key-holder encryption: the DJN obfuscator computed modulo ``p²`` and ``q²`` (CRT).

A party that encrypts under **its own** key knows ``p`` and ``q``, so it can
compute the obfuscator ``hs^α mod n²`` of :class:`~.encrypt.Encryptor` as
``hs^α mod p²`` and ``hs^α mod q²`` and recombine them. The ciphertexts are
*the same values* as :class:`~.encrypt.Encryptor` computes from the same
``rng`` and base: only the arithmetic changes, from one product mod ``n²``
(4096 bits for a 2048-bit key) per window to two products mod ``p²`` and
``q²`` (2048 bits each, about three times cheaper each). Measured on a 2048-bit
key: about 0.44 ms per obfuscator against 0.60 ms.

``hs = h^n`` is an ``n``-th residue, so modulo ``p²`` it lies in the subgroup of
order ``p − 1`` (raising to ``n = p·q`` removes the order-``p`` part of the
cyclic group ``Z*_{p²}``). The exponent can therefore be reduced modulo
``p − 1``, which keeps each prime's table at ``|p|`` bits even for a long
exponent.

Run the workers (:func:`crt_factors_task`) only in the key holder's own
processes: their tasks carry ``p`` and ``q``.
"""

from __future__ import annotations

import operator
from typing import Any, Sequence

import gmpy2
from gmpy2 import mpz

from ..fixed_base import build_table as _build_table, table_pow as _table_pow
from .encrypt import (DEFAULT_FACTOR_CHUNK, cached_table_mod, check_window, draw_exponents, encrypt_with_factors,
                      encryptor_arguments, remember_table)
from .keys import PaillierPrivateKey, RandomSource
from .parallel import MapFn, chunked, run_tasks

__all__ = ["SecretEncryptor", "crt_factors", "crt_factors_task"]


def _side(prime: int, hs: int) -> tuple[mpz, mpz, mpz, int]:
    """``(prime², hs mod prime², prime − 1, table exponent bits)`` for one CRT side."""
    p = mpz(prime)
    p2 = p * p
    order = p - 1
    return p2, mpz(hs) % p2, order, int(order.bit_length())


def _crt_pow(p_side: tuple[mpz, mpz, list[list[mpz]]], q_side: tuple[mpz, mpz, list[list[mpz]]], window_bits: int,
             p2_inv: mpz, alpha: int) -> mpz:
    """``hs^α mod n²`` from one table per side ``(prime², its order p − 1, table)``, recombined by CRT."""
    (p2, op, tp), (q2, oq, tq) = p_side, q_side
    xp = _table_pow(tp, window_bits, alpha % op, p2)
    xq = _table_pow(tq, window_bits, alpha % oq, q2)
    return xp + p2 * ((xq - xp) * p2_inv % q2)


def crt_factors(p: int, q: int, hs: int, alphas: Sequence[int], window_bits: int = 8) -> list[int]:
    """Obfuscators ``hs^αᵢ mod n²`` computed mod ``p²`` and ``q²``: plain ints in and out.

    Equal to :func:`~.encrypt.compute_factors` on ``n = p·q`` for the same
    exponents. The two tables are memoized per process
    (:func:`~.encrypt.clear_table_cache` drops them). **Holds the private
    factors**: call it only inside the key holder's trust boundary.

    Raises:
        ValueError: if ``window_bits`` is out of range or an exponent is negative.
    """
    window_bits = check_window(window_bits)
    p2, hp, op, bp = _side(p, hs)
    q2, hq, oq, bq = _side(q, hs)
    p_side = (p2, op, cached_table_mod(p2, hp, window_bits, bp))
    q_side = (q2, oq, cached_table_mod(q2, hq, window_bits, bq))
    p2_inv = gmpy2.invert(p2, q2)
    out: list[int] = []
    for alpha in alphas:
        alpha = operator.index(alpha)
        if alpha < 0:
            raise ValueError("exponent must be non-negative")
        out.append(int(_crt_pow(p_side, q_side, window_bits, p2_inv, alpha)))
    return out


def crt_factors_task(task: tuple[int, int, int, int, Sequence[int]]) -> list[int]:
    """:func:`crt_factors` on one task tuple ``(p, q, hs, window_bits, alphas)``, for a ``map_fn``.

    The task carries the private factors: run it only in the key holder's own processes.
    """
    p, q, hs, window_bits, alphas = task
    return crt_factors(p, q, hs, alphas, window_bits)


class SecretEncryptor:
    """The key holder's :class:`~.encrypt.Encryptor`: the same ciphertexts, computed by CRT.

    Built from the private key, with the same arguments as
    :class:`~.encrypt.Encryptor`. For the same ``rng`` state and ``base`` the
    two produce identical ciphertexts (the exponents are drawn the same way),
    so nothing about a ciphertext tells which one made it.

    Args:
        private_key: the key pair's private half.
        rng: randomness source for ``h`` (when ``base`` is None) and every ``α``.
        window_bits: table window width, 1..12.
        exponent_bits: bit length of ``α``; default ``|n|/2``, at most ``|n| + 256``.
        base: ``h``; pass :func:`~.encrypt.canonical_base` when ciphertexts from
            several parties mix, as :class:`~.encrypt.Encryptor` documents.

    Raises:
        ValueError: if ``window_bits`` or ``exponent_bits`` is out of range, or
            ``base`` is not a unit other than 1.
    """

    __slots__ = ("private_key", "window_bits", "exponent_bits", "_rng", "_hs", "_sides", "_p2_inv")

    def __init__(self, private_key: PaillierPrivateKey, rng: RandomSource, window_bits: int = 8,
                 exponent_bits: int | None = None, base: Any = None) -> None:
        pk = private_key.public_key
        window_bits, exponent_bits, h = encryptor_arguments(pk, rng, window_bits, exponent_bits, base)
        n = pk.n
        p2, q2 = private_key.psquare, private_key.qsquare
        p2_inv = gmpy2.invert(p2, q2)
        hs_p, hs_q = gmpy2.powmod(h, n, p2), gmpy2.powmod(h, n, q2)
        self.private_key = private_key
        self.window_bits = window_bits
        self.exponent_bits = exponent_bits
        self._rng = rng
        self._hs = hs_p + p2 * ((hs_q - hs_p) * p2_inv % q2)  # h^n mod n², as Encryptor.hs
        self._p2_inv = p2_inv
        # each table is built here and shared with the process-wide memo only when a map_fn runs in this process;
        # per side: (modulus, order of hs there, hs there, table)
        self._sides = [(m2, order, base_m, _build_table(base_m, m2, window_bits, int(order.bit_length())))
                       for m2, order, base_m in ((p2, private_key.p - 1, hs_p), (q2, private_key.q - 1, hs_q))]

    @property
    def hs(self) -> mpz:
        """The fixed base ``h^n mod n²`` (public: it is an encryption of 0)."""
        return self._hs

    def draw_exponents(self, count: int) -> list[int]:
        """``count`` fresh exponents of :attr:`exponent_bits` bits, drawn as :class:`~.encrypt.Encryptor` draws them."""
        return draw_exponents(self._rng, self.exponent_bits, count)

    def _factor(self, alpha: int) -> mpz:
        (p2, op, _, tp), (q2, oq, _, tq) = self._sides
        return _crt_pow((p2, op, tp), (q2, oq, tq), self.window_bits, self._p2_inv, alpha)

    def random_factors(self, count: int, *, map_fn: MapFn | None = None,
                       chunk_size: int = DEFAULT_FACTOR_CHUNK) -> list[mpz]:
        """``count`` fresh obfuscators ``hs^α mod n²``; through ``map_fn`` (the key holder's own pool) if given."""
        alphas = self.draw_exponents(count)
        if map_fn is None:
            return [self._factor(a) for a in alphas]
        sk = self.private_key
        p, q, hs, w = int(sk.p), int(sk.q), int(self._hs), self.window_bits
        for m2, order, base_m, table in self._sides:  # in-process workers (builtin map, forks after this) reuse the tables
            remember_table((int(m2), int(base_m), w, int(order.bit_length())), table)
        tasks = [(p, q, hs, w, tuple(chunk)) for chunk in chunked(alphas, chunk_size)]
        return [mpz(f) for part in run_tasks(map_fn, crt_factors_task, tasks) for f in part]

    def encrypt_raw_many(self, ms: Sequence[Any], *, map_fn: MapFn | None = None,
                         chunk_size: int = DEFAULT_FACTOR_CHUNK) -> list[mpz]:
        """Encrypt each raw plaintext (ints, taken mod ``n``), in order; see :meth:`~.encrypt.Encryptor.encrypt_raw_many`.

        Raises:
            TypeError: if an element is not an integer.
        """
        pk = self.private_key.public_key
        residues = [operator.index(m) % pk.n for m in ms]
        return encrypt_with_factors(pk, residues, self.random_factors(len(residues), map_fn=map_fn, chunk_size=chunk_size))

    def __repr__(self) -> str:
        return f"SecretEncryptor({self.private_key.public_key!r}, window_bits={self.window_bits}, exponent_bits={self.exponent_bits})"
