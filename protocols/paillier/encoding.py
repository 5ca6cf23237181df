"""Signed and fixed-point encodings of plaintexts.

Two steps, kept apart on purpose:

1. :class:`FixedPoint` turns floats into *signed* Python ints,
   ``round(v · 2^f)``, with one ``frac_bits = f`` per job (python-paillier's
   ``EncodedNumber`` lets every number pick its own exponent; fixing it per job
   keeps sums and products aligned and makes overflow budgets plannable).
   A product of two encodings carries scale ``2f``; decode it with
   ``scale_bits = 2·f``.
2. :func:`to_residue` / :func:`from_residue` map signed ints to the raw
   plaintext space ``[0, n)`` and back. Values whose magnitude exceeds
   ``pk.max_int = n // 3`` are refused on the way in and reported as overflow
   on the way out, so a wrapped-around sum is detected instead of silently
   decoded as a wrong number.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import BudgetError
from .keys import PaillierPublicKey

__all__ = ["FixedPoint", "to_residue", "from_residue"]

_INT64_SAFE = float(2**62)


@dataclass(frozen=True)
class FixedPoint:
    """Fixed-point encoding with one binary exponent per job.

    Args:
        frac_bits: number of fractional bits ``f`` (e.g. 24); values are stored
            as ``round(v · 2^f)``.

    Raises:
        ValueError: if ``frac_bits`` is negative.
    """

    frac_bits: int

    def __post_init__(self) -> None:
        if operator.index(self.frac_bits) < 0:
            raise ValueError("frac_bits must be >= 0")

    @property
    def resolution(self) -> float:
        """The encoding step ``2^-f``; a round trip is exact to within half of it."""
        return 2.0**-self.frac_bits

    def _scaled(self, values: Any) -> np.ndarray:
        try:
            arr = np.asarray(values, dtype=np.float64)
        except OverflowError:
            raise BudgetError("value too large to encode as a float64") from None
        if not np.all(np.isfinite(arr)):
            raise BudgetError("cannot encode a non-finite value (nan or inf)")
        with np.errstate(over="ignore"):
            scaled = np.rint(np.ldexp(arr, self.frac_bits))
        if not np.all(np.isfinite(scaled)):
            raise BudgetError(f"value too large to encode with {self.frac_bits} fractional bits")
        return scaled

    @staticmethod
    def _to_ints(scaled: np.ndarray) -> list[int]:
        flat = scaled.ravel()
        if flat.size == 0:
            return []
        if float(np.max(np.abs(flat))) < _INT64_SAFE:
            return flat.astype(np.int64).tolist()
        return [int(v) for v in flat.tolist()]  # float -> int is exact

    def encode(self, values: np.ndarray | Sequence[float]) -> list[int]:
        """Encode floats as signed ints ``round(v · 2^f)`` (round half to even).

        Args:
            values: a 1-D sequence or array of real numbers (a multi-dimensional
                array is flattened in C order; see :meth:`encode_array`).

        Returns:
            A list of Python ints, one per value.

        Raises:
            BudgetError: if any value is nan or infinite, or too large to scale.
        """
        return self._to_ints(self._scaled(values))

    def encode_array(self, values: np.ndarray | Sequence[Any]) -> np.ndarray:
        """Like :meth:`encode` but keep the input's shape (object array of Python ints).

        Useful for a feature matrix passed to :func:`fedcredit.protocols.paillier.ops.matvec_t`.

        Raises:
            BudgetError: if any value is nan or infinite, or too large to scale.
        """
        scaled = self._scaled(values)
        out = np.empty(scaled.shape, dtype=object)
        out.reshape(-1)[:] = self._to_ints(scaled) if scaled.size else []
        return out

    def decode(self, ints: Iterable[Any], scale_bits: int | None = None) -> np.ndarray:
        """Decode signed ints as ``x / 2^scale_bits`` in float64.

        The division is done on Python ints, which is correctly rounded even
        when ``x`` is far wider than 53 bits.

        Args:
            ints: signed integers (int, mpz or numpy integers).
            scale_bits: the scale the ints carry; default ``frac_bits``. Use
                ``2·frac_bits`` for a product of two encodings.

        Returns:
            A float64 array of the same length.

        Raises:
            BudgetError: if a decoded value does not fit a float64.
        """
        s = self.frac_bits if scale_bits is None else operator.index(scale_bits)
        if s < 0:
            raise ValueError("scale_bits must be >= 0")
        denominator = 1 << s
        try:
            out = [operator.index(x) / denominator for x in ints]
        except OverflowError:
            raise BudgetError("decoded value does not fit a float64") from None
        return np.asarray(out, dtype=np.float64)


def to_residue(public_key: PaillierPublicKey, x: int) -> int:
    """Map a signed int to the raw plaintext space: ``x mod n``.

    Args:
        public_key: the key whose ``n`` defines the plaintext space.
        x: a signed integer with ``|x| <= public_key.max_int``.

    Returns:
        The residue in ``[0, n)`` as a Python int.

    Raises:
        BudgetError: if ``|x| > public_key.max_int``.
        TypeError: if ``x`` is not an integer.
    """
    x = operator.index(x)
    if abs(x) > public_key.max_int:
        raise BudgetError("overflow: value exceeds the encodable range (|x| > n // 3)")
    return int(x % public_key.n)


def from_residue(public_key: PaillierPublicKey, m: int) -> int:
    """Map a decrypted residue back to a signed int.

    Residues in ``[0, n//2]`` are non-negative; above that they stand for
    ``m - n``. A result whose magnitude exceeds ``max_int`` means a sum or
    product wrapped around ``n``.

    Args:
        public_key: the key the value was decrypted with.
        m: the raw plaintext in ``[0, n)``.

    Returns:
        The signed value as a Python int.

    Raises:
        BudgetError: if the signed value's magnitude exceeds ``public_key.max_int``.
        ValueError: if ``m`` is outside ``[0, n)``.
    """
    m = operator.index(m)
    n = public_key.n
    if not 0 <= m < n:
        raise ValueError("a raw plaintext must lie in [0, n)")
    x = int(m if m <= n // 2 else m - n)
    if abs(x) > public_key.max_int:
        raise BudgetError("overflow: decrypted value exceeds the encodable range")
    return x
