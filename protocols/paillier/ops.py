"""Homomorphic operations on raw Paillier ciphertexts.

Ciphertexts are :class:`gmpy2.mpz` values in ``[1, n²)``; plaintext scalars are
signed Python ints (or numpy integers) and are interpreted mod ``n``. Every
function takes the public key explicitly: a bare ciphertext does not know its
key, so callers that hold values from several sources check keys with
:func:`check_same_key` first.

This is the raw layer. Results are **not** rerandomized: a sum or dot product
is a deterministic function of its inputs, so anything that leaves the process
must first go through :meth:`fedcredit.protocols.paillier.Encryptor.rerandomize`.

Costs (2048-bit n): a multiplication mod n² is the unit. Negative scalars never
use an exponent ``n - |k|``; they use one modular inverse instead. Column sums
``Σ xᵢ·mᵢ`` are done by :func:`dot` as a bucketed multi-exponentiation, about
``N·⌈b/w⌉ + 2^(w+1)·⌈b/w⌉`` multiplications for N b-bit scalars.
:func:`matvec_t` takes an optional ``map_fn`` (see :mod:`.parallel`) and
hands one column per task to :func:`dot_task`.
"""

from __future__ import annotations

import operator
from typing import Any, Sequence

import gmpy2
import numpy as np
from gmpy2 import mpz

from ..errors import CryptoError, KeyMismatchError
from .keys import PaillierPublicKey
from .parallel import MapFn, run_tasks

__all__ = [
    "check_same_key",
    "add",
    "add_many",
    "add_plain",
    "add_plain_many",
    "neg",
    "mul_plain",
    "sum_ciphertexts",
    "dot",
    "dot_many",
    "matvec_t",
    "dot_task",
]

_MAX_DOT_WINDOW = 16


def check_same_key(a_pk: PaillierPublicKey, b_pk: PaillierPublicKey) -> None:
    """Raise if two values are under different public keys.

    Args:
        a_pk: the key of the first operand.
        b_pk: the key of the second operand.

    Raises:
        KeyMismatchError: if the keys' moduli differ.
    """
    if a_pk.n != b_pk.n:
        raise KeyMismatchError(
            "values encrypted under different public keys were combined "
            f"({a_pk.fingerprint().hex()[:16]} vs {b_pk.fingerprint().hex()[:16]})"
        )


def _mpz(c: Any) -> mpz:
    return c if type(c) is mpz else mpz(c)


def _signed_scalar(public_key: PaillierPublicKey, k: Any) -> int:
    """``k`` as an int, reduced mod n to the representative of least magnitude."""
    k = operator.index(k)
    n = public_key.n
    half = n >> 1
    if -half <= k <= half:
        return k
    k = int(k % n)
    return k - int(n) if k > half else k


def _invert(public_key: PaillierPublicKey, c: Any) -> mpz:
    try:
        return gmpy2.invert(c, public_key.nsquare)
    except ZeroDivisionError:
        raise CryptoError("ciphertext is not invertible mod n^2") from None


def add(public_key: PaillierPublicKey, a: Any, b: Any) -> mpz:
    """Encrypted sum: ``E(x)·E(y) = E(x + y)``.

    Args:
        public_key: the key both ciphertexts are under.
        a: ``E(x)``.
        b: ``E(y)``.

    Returns:
        ``E(x + y)``.
    """
    return _mpz(a) * b % public_key.nsquare


def add_many(public_key: PaillierPublicKey, a_list: Sequence[Any], b_list: Sequence[Any]) -> list[mpz]:
    """Elementwise :func:`add`.

    Raises:
        ValueError: if the lengths differ.
    """
    if len(a_list) != len(b_list):
        raise ValueError(f"length mismatch: {len(a_list)} vs {len(b_list)}")
    nsq = public_key.nsquare
    return [_mpz(a) * b % nsq for a, b in zip(a_list, b_list)]


def add_plain(public_key: PaillierPublicKey, c: Any, x: Any) -> mpz:
    """Add a plaintext: ``E(m)·(1 + x·n) = E(m + x)``, with no exponentiation.

    Computed as ``c + n·(x·c mod n) mod n²``, which equals ``c·(1 + x·n) mod n²``
    and avoids a full-width product.

    Args:
        public_key: the key ``c`` is under.
        c: ``E(m)``.
        x: a signed integer, taken mod ``n``.

    Returns:
        ``E(m + x)`` (with the same obfuscator as ``c``).
    """
    n = public_key.n
    c = _mpz(c)
    x = operator.index(x) % n
    return (c + n * (x * c % n)) % public_key.nsquare


def add_plain_many(public_key: PaillierPublicKey, cs: Sequence[Any], xs: Sequence[Any]) -> list[mpz]:
    """Elementwise :func:`add_plain`.

    Raises:
        ValueError: if the lengths differ.
    """
    if len(cs) != len(xs):
        raise ValueError(f"length mismatch: {len(cs)} vs {len(xs)}")
    return [add_plain(public_key, c, x) for c, x in zip(cs, xs)]


def neg(public_key: PaillierPublicKey, c: Any) -> mpz:
    """Encrypted negation: ``E(m)^-1 = E(-m)`` (a modular inverse mod n²).

    Raises:
        CryptoError: if ``c`` is not invertible (not a valid ciphertext).
    """
    return _invert(public_key, c)


def mul_plain(public_key: PaillierPublicKey, c: Any, k: Any) -> mpz:
    """Multiply by a plaintext scalar: ``E(m)^k = E(k·m)``.

    A negative ``k`` costs ``powmod(c, |k|)`` plus one inverse, never a
    ``|n|``-bit exponent ``n - |k|``. ``k`` is reduced mod ``n`` to its
    representative of least magnitude first.

    Args:
        public_key: the key ``c`` is under.
        c: ``E(m)``.
        k: a signed integer.

    Returns:
        ``E(k·m)``; for ``k = 0`` that is the trivial encryption ``1`` of 0.

    Raises:
        CryptoError: if ``k < 0`` and ``c`` is not invertible.
    """
    k = _signed_scalar(public_key, k)
    nsq = public_key.nsquare
    if k == 0:
        return mpz(1)
    if k > 0:
        return gmpy2.powmod(c, k, nsq)
    return _invert(public_key, gmpy2.powmod(c, -k, nsq))


def sum_ciphertexts(public_key: PaillierPublicKey, cs: Sequence[Any]) -> mpz:
    """Encrypted sum of all of ``cs``: their product mod n².

    Returns:
        ``E(Σ mᵢ)``; ``1`` (the trivial encryption of 0) when ``cs`` is empty.
    """
    nsq = public_key.nsquare
    acc = mpz(1)
    for c in cs:
        acc = acc * c % nsq
    return acc


def _choose_window(count: int, bits: int) -> int:
    """Window width minimising ``Σ_windows (count + 2·2^width)`` multiplications."""
    best_w, best_cost = 1, None
    for w in range(1, min(bits, _MAX_DOT_WINDOW) + 1):
        cost = 0
        shift = 0
        while shift < bits:
            width = min(w, bits - shift)
            cost += count + 2 * (1 << width)
            shift += w
        if best_cost is None or cost < best_cost:
            best_w, best_cost = w, cost
    return best_w


def _multiexp(cs: list[mpz], xs: list[int], nsq: mpz) -> mpz | None:
    """``Π cᵢ^{xᵢ} mod nsq`` for positive ``xᵢ``, by Pippenger's bucket method.

    For each ``w``-bit window, from the top: square the accumulator ``w`` times,
    multiply every ``cᵢ`` into the bucket of its digit, then fold the buckets
    as ``Π_d B_d^d`` with the running-product trick (two multiplications per
    bucket) and multiply that into the accumulator.

    Returns ``None`` for an empty input (the caller treats it as 1).
    """
    if not cs:
        return None
    if len(cs) == 1:
        return gmpy2.powmod(cs[0], xs[0], nsq)
    bits = max(x.bit_length() for x in xs)
    w = _choose_window(len(cs), bits)
    mask = (1 << w) - 1
    n_windows = -(-bits // w)
    acc: mpz | None = None
    for i in range(n_windows - 1, -1, -1):
        shift = i * w
        if acc is not None:
            acc = gmpy2.powmod(acc, 1 << w, nsq)
        buckets: list[mpz | None] = [None] * (1 << min(w, bits - shift))
        for c, x in zip(cs, xs):
            d = (x >> shift) & mask
            if d:
                bucket = buckets[d]
                buckets[d] = c if bucket is None else bucket * c % nsq
        running: mpz | None = None
        window_sum: mpz | None = None
        for d in range(len(buckets) - 1, 0, -1):
            bucket = buckets[d]
            if bucket is not None:
                running = bucket if running is None else running * bucket % nsq
            if running is not None:
                window_sum = running if window_sum is None else window_sum * running % nsq
        if window_sum is not None:
            acc = window_sum if acc is None else acc * window_sum % nsq
    return acc


def _signed_scalar_n(n: mpz, half: mpz, k: Any) -> int:
    k = operator.index(k)
    if -half <= k <= half:
        return k
    k = int(k % n)
    return k - int(n) if k > half else k


def _dot_raw(n: mpz, nsq: mpz, cs: Sequence[Any], xs: Sequence[Any]) -> mpz:
    """:func:`dot` on a bare modulus (shared by the serial path and the worker)."""
    half = n >> 1
    pos_c: list[mpz] = []
    pos_x: list[int] = []
    neg_c: list[mpz] = []
    neg_x: list[int] = []
    for c, x in zip(cs, xs):
        x = _signed_scalar_n(n, half, x)
        if x > 0:
            pos_c.append(_mpz(c))
            pos_x.append(x)
        elif x < 0:
            neg_c.append(_mpz(c))
            neg_x.append(-x)
    result = _multiexp(pos_c, pos_x, nsq)
    negative = _multiexp(neg_c, neg_x, nsq)
    if negative is not None:
        try:
            negative = gmpy2.invert(negative, nsq)
        except ZeroDivisionError:
            raise CryptoError("ciphertext is not invertible mod n^2") from None
        result = negative if result is None else result * negative % nsq
    return mpz(1) if result is None else result


def dot(public_key: PaillierPublicKey, cs: Sequence[Any], xs: Sequence[Any]) -> mpz:
    """Encrypted dot product ``Π cᵢ^{xᵢ} mod n² = E(Σ xᵢ·mᵢ)``.

    Zero scalars are skipped. Positive and negative scalars form two
    multi-exponentiations (see :func:`_multiexp`); the negative part is inverted
    once at the end, so no ``|n|``-bit exponent ever appears.

    Args:
        public_key: the key the ``cs`` are under.
        cs: ciphertexts ``E(mᵢ)``.
        xs: signed integer scalars (ints, mpz or numpy integers; not floats),
            each taken mod ``n``.

    Returns:
        ``E(Σ xᵢ·mᵢ)``; ``1`` if every scalar is zero or the inputs are empty.

    Raises:
        ValueError: if the lengths differ.
        TypeError: if a scalar is not an integer.
        CryptoError: if the negative part is not invertible.
    """
    if len(cs) != len(xs):
        raise ValueError(f"length mismatch: {len(cs)} ciphertexts vs {len(xs)} scalars")
    return _dot_raw(public_key.n, public_key.nsquare, cs, xs)


def _straus_window(k: int, n_rows: int, bits: int) -> int:
    """The window minimizing ``k·2^w`` (tables) plus ``n_rows·(k + w)·⌈bits/w⌉`` (rows), up to 8 bits."""
    def cost(w: int) -> int:
        windows = -(-bits // w)
        return k * (1 << w) + n_rows * (k * windows + w * (windows - 1))
    return min(range(1, min(8, bits) + 1), key=cost)


def dot_many(public_key: PaillierPublicKey, cs: Sequence[Any], rows: Sequence[Sequence[int]],
             window_bits: int | None = None) -> list[mpz]:
    """``[dot(cs, row) for row in rows]`` for many scalar rows over the *same* ciphertexts (Straus).

    Each ciphertext gets one table of its powers ``c^1 .. c^(2^w - 1)``, built once
    and shared by every row; a row then costs one multiplication per ciphertext
    per ``w``-bit window plus ``w`` shared squarings per window. Signed scalars
    are shifted by an offset ``2^b`` so every digit is non-negative, and the
    result is divided by ``(Π cᵢ)^(2^b)`` once (one inverse for all rows).
    Worth it when there are many rows: the tables cost ``len(cs) · 2^w``
    multiplications once. ``window_bits`` None picks the ``w`` that minimizes
    that count for the given rows (6 for 74 rows of 91 22-bit scalars).

    Returns:
        ``E(Σ rowᵢ·mᵢ)`` per row, equal to :func:`dot` of that row.

    Raises:
        ValueError: if a row's length differs from ``len(cs)``.
        CryptoError: if the product of the ciphertexts is not invertible.
    """
    nsq = public_key.nsquare
    if not rows:
        return []
    k = len(cs)
    if any(len(r) != k for r in rows):
        raise ValueError(f"every row needs {k} scalars")
    ints = [[int(x) for x in r] for r in rows]
    bound = max((abs(x) for r in ints for x in r), default=0)
    if k == 0 or bound == 0:
        return [mpz(1)] * len(rows)
    shift = bound.bit_length()  # offset 2^shift > |x|: shifted scalars lie in (0, 2^(shift + 1))
    offset = 1 << shift
    bits = shift + 1
    w = _straus_window(k, len(ints), bits) if window_bits is None else max(1, min(window_bits, bits))
    mask = (1 << w) - 1
    n_windows = -(-bits // w)
    bases = [_mpz(c) for c in cs]
    tables = []
    for c in bases:
        row = [mpz(1), c]
        for _ in range(2, 1 << w):
            row.append(row[-1] * c % nsq)
        tables.append(row)
    total = mpz(1)
    for c in bases:
        total = total * c % nsq
    try:
        correction = gmpy2.invert(gmpy2.powmod(total, offset, nsq), nsq)
    except ZeroDivisionError:
        raise CryptoError("ciphertext is not invertible mod n^2") from None
    shifted = np.asarray(ints, dtype=object) + offset
    if bits < 63:  # the digits of every row and window at once, in numpy
        shifted = shifted.astype(np.int64)
    digits = [((shifted >> (wi * w)) & mask).tolist() for wi in range(n_windows)]
    out = []
    for ri in range(len(ints)):
        acc = mpz(1)
        for wi in range(n_windows - 1, -1, -1):
            if wi != n_windows - 1:
                for _ in range(w):
                    acc = acc * acc % nsq
            for t, d in zip(tables, digits[wi][ri]):
                if d:
                    acc = acc * t[d] % nsq
        out.append(acc * correction % nsq)
    return out


def dot_task(task: tuple[int, Sequence[int], Sequence[int]]) -> int:
    """Worker for :func:`matvec_t`: ``(n, cs, xs) -> Π cᵢ^{xᵢ} mod n²`` on plain ints.

    Module-level and free of key objects so that it pickles for any ``map_fn``.
    """
    n, cs, xs = task
    n_ = mpz(n)
    if len(cs) != len(xs):
        raise ValueError(f"length mismatch: {len(cs)} ciphertexts vs {len(xs)} scalars")
    return int(_dot_raw(n_, n_ * n_, cs, xs))


def _column_ints(X: np.ndarray, j: int) -> list[int]:
    col = X[:, j]
    if col.dtype == object:
        return [operator.index(v) for v in col.tolist()]
    return col.tolist()


def matvec_t(
    public_key: PaillierPublicKey,
    cs: Sequence[Any],
    X: np.ndarray,
    map_fn: MapFn | None = None,
) -> list[mpz]:
    """Encrypted ``Xᵀ·m``: one :func:`dot` per column of ``X``.

    With ``map_fn`` (see :mod:`.parallel`) each column is one task
    ``(n, cs, column)`` of plain ints for :func:`dot_task`, so ``k`` worker
    processes work on ``k`` columns at once; the result is identical to the
    serial one.

    Args:
        public_key: the key the ``cs`` are under.
        cs: ciphertexts ``E(mᵢ)``, one per row of ``X``.
        X: an integer (e.g. int64) or object array of ints, shape
            ``(len(cs), m)``; fixed-point encode real features first.
        map_fn: ``map``-like callable; ``None`` = serial in this process.

    Returns:
        ``[E(Σᵢ X[i, j]·mᵢ) for j in range(m)]``.

    Raises:
        ValueError: if ``X`` is not 2-D or its row count differs from ``len(cs)``.
        TypeError: if ``X`` holds floats (encode them first).
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {X.shape}")
    if X.shape[0] != len(cs):
        raise ValueError(f"X has {X.shape[0]} rows but there are {len(cs)} ciphertexts")
    if not (np.issubdtype(X.dtype, np.integer) or X.dtype == object or X.dtype == bool):
        raise TypeError(f"X must hold integers (fixed-point encoded), got dtype {X.dtype}")
    if map_fn is None:
        mcs = [_mpz(c) for c in cs]
        return [dot(public_key, mcs, X[:, j].tolist()) for j in range(X.shape[1])]
    n = int(public_key.n)
    ics = [int(c) for c in cs]
    tasks = [(n, ics, _column_ints(X, j)) for j in range(X.shape[1])]
    return [mpz(v) for v in run_tasks(map_fn, dot_task, tasks)]
