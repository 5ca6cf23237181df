"""Packing several non-negative values into one plaintext before decryption.

A decryption costs two ``|n|/2``-bit exponentiations whatever the plaintext's
size, and the values a key holder decrypts in vertical LR (masked gradients)
are far smaller than ``n``. Packing puts ``k`` of them side by side in one
plaintext, so decryption costs ``1/k`` of a decryption per value::

    pack:    C = Π cᵢ^(2^(s·i))  =  E(Σ vᵢ·2^(s·i))     (Horner: C = c_{k-1};
                                                         C = C^(2^s)·c_{i})
    decrypt: M = Σ vᵢ·2^(s·i)
    unpack:  vᵢ = (M >> s·i) mod 2^s

``s`` is ``slot_bits``. Packing costs the *sender* about ``s`` squarings mod
``n²`` per value (``powmod(C, 2^s)``, i.e. ``s`` squarings inside GMP; never an
exponent ``2^(s·i)``), a fraction of one decryption for ``s`` in the
low hundreds; the key holder saves ``(k-1)/k`` of its decryptions.

Slot layout and overflow. Slot ``i`` occupies bits ``[s·i, s·(i+1))`` and its
top bit is a guard that must decrypt as 0, so every value must satisfy
``0 <= v + offset < 2^(s-1)``. Values must be made non-negative **before**
packing: a negative value borrows from the slot above. ``pack(..., offset=o)``
adds ``o`` to every slot homomorphically (one :func:`~.ops.add_plain` per packed
ciphertext, not per value) and ``unpack(..., offset=o)`` subtracts it again.
:func:`unpack` raises :class:`~fedcredit.protocols.errors.BudgetError` when a guard bit is
set or the packed plaintext exceeds its slots, which catches every value in
``[-2^(s-1), 2^s)`` that is outside the allowed range; a value off by more than
a factor of two can carry past its guard bit, so plan the width up front with
:func:`plan_packing` (it raises before any work if the key cannot hold it).

Masked gradients in vertical LR are ``g + r`` with ``|g| < 2^G`` and the mask
``r`` uniform in ``[0, 2^M)``, ``M > G``: they lie in ``(-2^G, 2^M + 2^G)``,
so ``plan_packing(pk, M + 1, signed=True)`` (offset ``2^(M+1)``) fits them.

:func:`pack` does **not** rerandomize: rerandomize each packed ciphertext once
(:meth:`~.encrypt.Encryptor.rerandomize_many`) before it leaves the process.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import gmpy2
from gmpy2 import mpz

from ..errors import BudgetError
from .keys import PaillierPublicKey
from .parallel import MapFn, chunked, run_tasks

if TYPE_CHECKING:  # pragma: no cover
    from .keys import PaillierPrivateKey

__all__ = [
    "PackingPlan",
    "plan_packing",
    "slots_per_ciphertext",
    "packed_count",
    "pack",
    "pack_task",
    "unpack",
    "decrypt_packed",
]

#: Packed ciphertexts per task handed to a ``map_fn`` by :func:`pack`.
DEFAULT_PACK_CHUNK = 8


def _capacity_bits(public_key: PaillierPublicKey) -> int:
    """Largest ``B`` with ``2^B - 1 <= n // 3``: packed plaintexts stay below ``n/3``."""
    return int((public_key.max_int + 1).bit_length()) - 1


def slots_per_ciphertext(public_key: PaillierPublicKey, slot_bits: int) -> int:
    """How many ``slot_bits``-wide slots fit in one plaintext below ``n/3``.

    Raises:
        BudgetError: if not even one slot fits.
        ValueError: if ``slot_bits < 2`` (a slot is a guard bit plus at least one value bit).
    """
    slot_bits = operator.index(slot_bits)
    if slot_bits < 2:
        raise ValueError(f"slot_bits must be >= 2 (one guard bit), got {slot_bits}")
    k = _capacity_bits(public_key) // slot_bits
    if k < 1:
        raise BudgetError(
            f"a {slot_bits}-bit slot does not fit a {public_key.bits}-bit key's plaintext below n/3"
        )
    return k


def packed_count(public_key: PaillierPublicKey, slot_bits: int, count: int) -> int:
    """Number of packed ciphertexts :func:`pack` makes from ``count`` ciphertexts."""
    k = slots_per_ciphertext(public_key, slot_bits)
    return -(-operator.index(count) // k)


@dataclass(frozen=True)
class PackingPlan:
    """Slot width, offset and slots per ciphertext for values of a known bound.

    Attributes:
        value_bits: the bound the plan was made for (see :func:`plan_packing`).
        signed: whether values may be negative.
        slot_bits: width of one slot, guard bit included.
        offset: added to every value before packing (pass it to :func:`pack` and :func:`unpack`).
        slots: values per packed ciphertext.
    """

    value_bits: int
    signed: bool
    slot_bits: int
    offset: int
    slots: int


def plan_packing(public_key: PaillierPublicKey, value_bits: int, *, signed: bool = True) -> PackingPlan:
    """Plan packing for values with ``|v| < 2^value_bits`` (or ``0 <= v < 2^value_bits`` unsigned).

    Signed values get ``offset = 2^value_bits`` and ``slot_bits = value_bits + 2``;
    unsigned ones ``offset = 0`` and ``slot_bits = value_bits + 1`` (the extra
    bit is the guard).

    Raises:
        BudgetError: if one slot does not fit the key (raised before any work).
        ValueError: if ``value_bits < 1``.
    """
    value_bits = operator.index(value_bits)
    if value_bits < 1:
        raise ValueError("value_bits must be >= 1")
    if signed:
        slot_bits, offset = value_bits + 2, 1 << value_bits
    else:
        slot_bits, offset = value_bits + 1, 0
    return PackingPlan(value_bits, signed, slot_bits, offset, slots_per_ciphertext(public_key, slot_bits))


def _check_offset(slot_bits: int, offset: Any) -> int:
    offset = operator.index(offset)
    if not 0 <= offset < (1 << (slot_bits - 1)):
        raise BudgetError(f"offset must lie in [0, 2^{slot_bits - 1}) for {slot_bits}-bit slots")
    return offset


def _pack_groups(n: mpz, nsq: mpz, slot_bits: int, offset: int, groups: Sequence[Sequence[Any]]) -> list[mpz]:
    shift = mpz(1) << slot_bits
    out: list[mpz] = []
    for group in groups:
        acc = mpz(group[-1])
        for c in reversed(group[:-1]):
            acc = gmpy2.powmod(acc, shift, nsq) * c % nsq  # s squarings, then one product
        if offset:
            total = 0
            for i in range(len(group)):
                total |= offset << (slot_bits * i)
            acc = (acc + n * (total * acc % n)) % nsq  # add_plain: E(M)·(1 + total·n)
        out.append(acc)
    return out


def pack_task(task: tuple[int, int, int, Sequence[Sequence[int]]]) -> list[int]:
    """Worker for :func:`pack`: ``(n, slot_bits, offset, groups) -> packed`` on plain ints."""
    n, slot_bits, offset, groups = task
    n_ = mpz(n)
    return [int(c) for c in _pack_groups(n_, n_ * n_, slot_bits, offset, groups)]


def pack(
    public_key: PaillierPublicKey,
    cts: Sequence[Any],
    slot_bits: int,
    *,
    offset: int = 0,
    map_fn: MapFn | None = None,
    chunk_size: int = DEFAULT_PACK_CHUNK,
) -> list[mpz]:
    """Pack ciphertexts ``cᵢ = E(vᵢ)`` into ``⌈len/k⌉`` ciphertexts of ``Σ (vᵢ + offset)·2^(s·i)``.

    ``k = slots_per_ciphertext(public_key, slot_bits)``; ``cts[j·k + i]`` lands
    in slot ``i`` of packed ciphertext ``j``. The result is not rerandomized.

    Args:
        public_key: the key the ``cts`` are under.
        cts: ciphertexts of values with ``0 <= v + offset < 2^(slot_bits-1)``.
        slot_bits: slot width ``s``, guard bit included.
        offset: added to every value homomorphically (see :func:`plan_packing`).
        map_fn: ``map``-like callable (see :mod:`.parallel`); ``None`` = serial.
        chunk_size: packed ciphertexts per task when ``map_fn`` is given.

    Returns:
        The packed ciphertexts.

    Raises:
        BudgetError: if a slot does not fit the key or ``offset`` does not fit a slot.
    """
    slot_bits = operator.index(slot_bits)
    k = slots_per_ciphertext(public_key, slot_bits)
    offset = _check_offset(slot_bits, offset)
    groups = [list(g) for g in chunked(list(cts), k)]
    if map_fn is None:
        return _pack_groups(public_key.n, public_key.nsquare, slot_bits, offset, groups)
    n = int(public_key.n)
    tasks = [
        (n, slot_bits, offset, tuple(tuple(int(c) for c in g) for g in part))
        for part in chunked(groups, chunk_size)
    ]
    return [mpz(c) for part in run_tasks(map_fn, pack_task, tasks) for c in part]


def unpack(
    public_key: PaillierPublicKey,
    plaintexts: Sequence[Any],
    slot_bits: int,
    count: int,
    *,
    offset: int = 0,
) -> list[int]:
    """Split decrypted packed plaintexts back into ``count`` signed values.

    Args:
        public_key: the key the packed ciphertexts were under.
        plaintexts: raw decryptions (``[0, n)``) of :func:`pack`'s output, in order.
        slot_bits: the slot width used by :func:`pack`.
        count: the number of values packed (the ``len(cts)`` given to :func:`pack`).
        offset: the offset given to :func:`pack` (or added by the caller); it is subtracted.

    Returns:
        ``count`` Python ints, ``slot value - offset``.

    Raises:
        BudgetError: a slot overflowed (its guard bit is set, or the plaintext
            exceeds its slots, as a negative or too-large value makes it).
        ValueError: if the number of plaintexts does not match ``count``.
    """
    slot_bits = operator.index(slot_bits)
    k = slots_per_ciphertext(public_key, slot_bits)
    offset = _check_offset(slot_bits, offset)
    count = operator.index(count)
    if count < 0:
        raise ValueError("count must be >= 0")
    expected = -(-count // k)
    if len(plaintexts) != expected:
        raise ValueError(f"{count} values in {k}-slot plaintexts need {expected} plaintexts, got {len(plaintexts)}")
    mask = (1 << slot_bits) - 1
    guard = 1 << (slot_bits - 1)
    out: list[int] = []
    for j, m in enumerate(plaintexts):
        m = int(operator.index(m))
        width = min(k, count - j * k)
        if m < 0 or m >> (slot_bits * width):
            raise BudgetError(
                f"packed plaintext {j} exceeds its {width} slots of {slot_bits} bits: "
                "a value was negative or too large for the slot width"
            )
        for i in range(width):
            v = (m >> (slot_bits * i)) & mask
            if v & guard:
                raise BudgetError(
                    f"slot overflow in value {j * k + i}: it does not fit {slot_bits - 1} bits "
                    "after the offset (or was negative)"
                )
            out.append(v - offset)
    return out


def decrypt_packed(
    private_key: "PaillierPrivateKey",
    packed: Sequence[Any],
    slot_bits: int,
    count: int,
    *,
    offset: int = 0,
    map_fn: MapFn | None = None,
) -> list[int]:
    """Decrypt packed ciphertexts and :func:`unpack` them: ``count`` signed values.

    Raises:
        BudgetError: on slot overflow (see :func:`unpack`).
        CryptoError: if a ciphertext is malformed.
    """
    plaintexts = private_key.decrypt_raw_many(packed, map_fn=map_fn)
    return unpack(private_key.public_key, plaintexts, slot_bits, count, offset=offset)
