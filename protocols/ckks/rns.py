"""Low layer: exact RNS arithmetic on SEAL ciphertexts and plaintexts.

This is the ``hazmat`` of the CKKS mode. Nothing here is safe to call on its
own; :mod:`.ops` composes it into masking (parties) and masked decryption (key
holder). Why it exists: TenSEAL only decodes to IEEE doubles, which keep 53
bits. A mask that hides a value with 40 bits of statistical security, plus
flooding of the whole ring element, is 60-70 bits wider than the value, so a
double-precision decode would leave almost no bits of the gradient. Here the key
holder decrypts to exact integers (SEAL's own inverse NTT, then CRT) and
evaluates only the requested slots in exact fixed point; the party evaluates its
own mask with the *same* integer table, so the mask cancels exactly.

Conventions (checked at run time by :func:`check_conventions`, not assumed):

* ciphertexts and secret keys are in NTT form, one block of ``N`` residues per
  prime; SEAL's ``inverse_ntt_negacyclic_harvey`` maps them to coefficients;
* slot ``j`` of a CKKS plaintext ``p`` at scale ``D`` is ``p(zeta^(3^j mod 2N)) / D``
  with ``zeta = exp(i pi / N)``.

Everything is deterministic integer arithmetic: two machines with different
numpy or libm produce bit-identical tables and results.
"""

from __future__ import annotations

import functools
import math
import struct
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import tenseal.sealapi as sealapi
import tenseal.sealapi.util as sealutil

from ..errors import CryptoError, ProtocolError

__all__ = [
    "RawCiphertext",
    "COS_FRAC_BITS",
    "read_ciphertext",
    "read_plaintext",
    "NttTables",
    "crt_centered",
    "cos_table",
    "slot_exponent",
    "eval_slots_fixed",
    "round_div",
    "uniform_poly",
    "check_conventions",
]

COS_FRAC_BITS = 96  # fixed-point bits of the cosine table (exactness comes from determinism)
_MAGIC = b"FCKR"  # fedcredit CKKS raw ciphertext
_VERSION = 1


@dataclass(frozen=True)
class RawCiphertext:
    """A size-2 CKKS ciphertext as exact residues: ``c0 + c1 * s = m (mod Q)`` per prime, NTT form.

    Attributes:
        degree: ring degree ``N``.
        primes: the RNS primes of the ciphertext's level, in SEAL's order.
        scale: the CKKS scale of the message.
        c0, c1: ``uint64`` arrays of shape ``(len(primes), N)``.
    """

    degree: int
    primes: tuple[int, ...]
    scale: float
    c0: np.ndarray
    c1: np.ndarray

    def to_bytes(self) -> bytes:
        """``FCKR | version u8 | N u32 | L u16 | scale f64 | primes u64[L] | c0 u64[L*N] | c1 u64[L*N]`` (little endian)."""
        head = _MAGIC + struct.pack("<BIHd", _VERSION, self.degree, len(self.primes), self.scale)
        primes = np.asarray(self.primes, dtype="<u8").tobytes()
        return head + primes + np.ascontiguousarray(self.c0, dtype="<u8").tobytes() + np.ascontiguousarray(self.c1, dtype="<u8").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> "RawCiphertext":
        data = bytes(data)
        hsize = len(_MAGIC) + struct.calcsize("<BIHd")
        if len(data) < hsize or data[: len(_MAGIC)] != _MAGIC:
            raise ProtocolError("not a fedcredit raw CKKS ciphertext")
        version, n, nprimes, scale = struct.unpack("<BIHd", data[len(_MAGIC) : hsize])
        if version != _VERSION:
            raise ProtocolError(f"raw CKKS ciphertext version {version} is not supported")
        if n < 2 or n & (n - 1) or nprimes < 1 or not (math.isfinite(scale) and scale > 0):
            raise ProtocolError("raw CKKS ciphertext header is malformed")
        expect = hsize + 8 * nprimes + 2 * 8 * nprimes * n
        if len(data) != expect:
            raise ProtocolError(f"raw CKKS ciphertext has {len(data)} bytes, expected {expect}")
        off = hsize
        primes = tuple(int(p) for p in np.frombuffer(data, dtype="<u8", count=nprimes, offset=off))
        off += 8 * nprimes
        c0 = np.frombuffer(data, dtype="<u8", count=nprimes * n, offset=off).reshape(nprimes, n).astype(np.uint64)
        off += 8 * nprimes * n
        c1 = np.frombuffer(data, dtype="<u8", count=nprimes * n, offset=off).reshape(nprimes, n).astype(np.uint64)
        q = np.asarray(primes, dtype=np.uint64)[:, None]
        if np.any(c0 >= q) or np.any(c1 >= q):
            raise ProtocolError("raw CKKS ciphertext has residues outside their primes")
        return cls(n, primes, float(scale), c0, c1)


def _level_primes(seal_context: Any, parms_id: Any) -> tuple[int, ...]:
    data = seal_context.get_context_data(parms_id)
    if data is None:
        raise CryptoError("ciphertext level is not part of this context")
    return tuple(int(m.value()) for m in data.parms().coeff_modulus())


def read_ciphertext(seal_context: Any, ct: Any) -> RawCiphertext:
    """Copy a SEAL (or TenSEAL) ciphertext's residues out of the library."""
    if ct.size() != 2:
        raise CryptoError(f"expected a size-2 ciphertext, got size {ct.size()}")
    if not ct.is_ntt_form():
        raise CryptoError("expected a CKKS ciphertext in NTT form")
    primes = _level_primes(seal_context, ct.parms_id())
    n = ct.poly_modulus_degree()
    count = 2 * len(primes) * n
    flat = np.fromiter((ct[i] for i in range(count)), dtype=np.uint64, count=count)
    flat = flat.reshape(2, len(primes), n)
    return RawCiphertext(n, primes, float(ct.scale), flat[0].copy(), flat[1].copy())


def read_plaintext(pt: Any, n: int, n_primes: int) -> np.ndarray:
    """Copy the first ``n_primes`` NTT-form residue blocks of a SEAL plaintext (or secret key)."""
    count = n_primes * n
    return np.fromiter((pt[i] for i in range(count)), dtype=np.uint64, count=count).reshape(n_primes, n)


class NttTables:
    """SEAL's negacyclic NTT tables for a list of primes (so the conventions are SEAL's own)."""

    def __init__(self, degree: int, primes: Sequence[int]) -> None:
        self.degree = degree
        self.log_n = degree.bit_length() - 1
        self.primes = tuple(int(q) for q in primes)
        self._tables = {q: sealutil.NTTTables(self.log_n, sealapi.Modulus(q)) for q in self.primes}

    def forward(self, coeffs_mod_q: Sequence[int], q: int) -> np.ndarray:
        out = sealutil.ntt_negacyclic_harvey([int(c) for c in coeffs_mod_q], self._tables[q])
        return np.asarray(out, dtype=np.uint64) % np.uint64(q)

    def inverse(self, ntt_values: np.ndarray, q: int) -> np.ndarray:
        # the binding calls SEAL's lazy inverse: outputs lie in [0, 2q)
        out = sealutil.inverse_ntt_negacyclic_harvey([int(v) for v in ntt_values], self._tables[q])
        return np.asarray(out, dtype=np.uint64) % np.uint64(q)

    def extend(self, primes: Sequence[int]) -> "NttTables":
        return self if set(primes) <= set(self.primes) else NttTables(self.degree, tuple(self.primes) + tuple(primes))


def crt_centered(residues: Sequence[np.ndarray], primes: Sequence[int]) -> np.ndarray:
    """Garner CRT of coefficient residues, lifted to ``(-Q/2, Q/2]``. Returns Python ints (object array)."""
    x = residues[0].astype(object)
    modulus = int(primes[0])
    for r, q in zip(residues[1:], primes[1:]):
        q = int(q)
        inv = pow(modulus % q, -1, q)
        t = ((r.astype(object) - x) * inv) % q
        x = x + modulus * t
        modulus *= q
    half = modulus // 2
    return np.where(x > half, x - modulus, x)


def _pi_fixed(bits: int) -> int:
    """floor-ish(pi * 2^bits) by Machin's formula, in integers."""
    guard = 32
    p = bits + guard

    def arctan_inv(x: int) -> int:
        total = term = (1 << p) // x
        x2, k, sign = x * x, 1, -1
        while term:
            term //= x2
            total += sign * (term // (2 * k + 1))
            sign, k = -sign, k + 1
        return total

    return (4 * (4 * arctan_inv(5) - arctan_inv(239))) >> guard


@functools.lru_cache(maxsize=4)
def cos_table(degree: int) -> np.ndarray:
    """``round(cos(pi k / N) * 2^COS_FRAC_BITS)`` for ``k`` in ``[0, 2N)``, as an object array of ints.

    Computed with integers only (Machin's pi, Taylor series, exact rotation
    recurrence with 40 guard bits), so it is the same on every machine.
    """
    p = COS_FRAC_BITS + 40
    theta = _pi_fixed(p) // degree
    one = 1 << p
    c1 = s1 = 0
    term, k = one, 0
    while term:
        r = k % 4
        if r == 0:
            c1 += term
        elif r == 1:
            s1 += term
        elif r == 2:
            c1 -= term
        else:
            s1 -= term
        k += 1
        term = ((term * theta) >> p) // k
    out = np.empty(2 * degree, dtype=object)
    c, s = one, 0
    shift, half = p - COS_FRAC_BITS, 1 << (p - COS_FRAC_BITS - 1)
    for i in range(2 * degree):
        out[i] = (c + half) >> shift
        c, s = (c * c1 - s * s1) >> p, (s * c1 + c * s1) >> p
    return out


def slot_exponent(slot: int, degree: int) -> int:
    """The root exponent of ``slot``: slot ``j`` evaluates at ``zeta^(3^j mod 2N)``."""
    return pow(3, int(slot), 2 * degree)


def round_div(a: int, b: int) -> int:
    """``a / b`` rounded to nearest (ties up), ``b > 0``, exact for Python ints."""
    return (2 * a + b) // (2 * b)


def eval_slots_fixed(coeffs: np.ndarray, degree: int, slots: Sequence[int], scale: float, frac_bits: int) -> list[int]:
    """Real parts of the given slots of an integer polynomial, as ``round(value * 2^frac_bits)``.

    ``coeffs`` are exact (object-array) integers; the result is exact up to the
    final rounding and the table's fixed point. Linear in ``coeffs`` before
    rounding, so ``eval(m + M) - eval(M)`` differs from ``eval(m)`` by at most 1.
    """
    table = cos_table(degree)
    t = np.arange(degree, dtype=np.int64)
    num, den = float(scale).as_integer_ratio()
    divisor = num << COS_FRAC_BITS
    out = []
    for j in slots:
        idx = (slot_exponent(j, degree) * t) % (2 * degree)
        acc = int(np.dot(coeffs, table[idx]))
        out.append(round_div((acc * den) << frac_bits, divisor))
    return out


def uniform_poly(degree: int, bits: int, rng: Any) -> np.ndarray:
    """``degree`` integers uniform in ``[-2^bits, 2^bits)`` from ``rng.getrandbits`` (object array)."""
    offset = 1 << bits
    return np.array([int(rng.getrandbits(bits + 1)) - offset for _ in range(degree)], dtype=object)


def check_conventions(seal_context: Any, tables: NttTables) -> None:
    """Verify the NTT and slot-order conventions against SEAL's own encoder.

    Encodes known values, decodes them with this module's exact path and
    compares. Raises :class:`CryptoError` if TenSEAL/SEAL changed conventions,
    which would otherwise corrupt every gradient silently.
    """
    encoder = sealapi.CKKSEncoder(seal_context)
    first = seal_context.first_context_data()
    q = int(first.parms().coeff_modulus()[0].value())
    n = first.parms().poly_modulus_degree()
    values = [((7 * j) % 13 - 6) / 8.0 for j in range(encoder.slot_count())]
    scale = float(2**20)
    pt = sealapi.Plaintext()
    encoder.encode(values, scale, pt)
    tab = tables.extend([q])
    coeffs = crt_centered([tab.inverse(read_plaintext(pt, n, 1)[0], q)], [q])
    probe = [0, 1, 2, 5, encoder.slot_count() - 1]
    got = eval_slots_fixed(coeffs, n, probe, scale, 30)
    if any(abs(g / 2**30 - values[j]) > 1e-4 for g, j in zip(got, probe)):
        raise CryptoError("SEAL's CKKS slot/NTT conventions differ from what fedcredit decodes; refusing to run")
