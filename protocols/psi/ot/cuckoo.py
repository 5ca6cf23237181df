"""Cuckoo hashing (guest) and simple hashing (host) for the OT-PSI, vectorized in numpy.

Every id is first hashed to a 16-byte digest (AES CBC-MAC under a key
derived from the salt, :func:`id_digests`). Its three candidate bins are a seeded mix of that
digest, modulo the table size (:func:`bin_positions`); the guest places each
of its ids in one of its three bins (:func:`cuckoo_insert`, no stash), the
host puts each of its ids in all three (simple hashing: it just evaluates
:func:`bin_positions`).

Table size and failure probability (no stash)
---------------------------------------------
Insertion fails iff some k ids have all their 3k bins inside k-1 bins
(Hall's theorem), so the failure probability is at most the union bound

    Σ_{k≥2} C(n,k) · C(m,k-1) · ((k-1)/m)^{3k}

(:func:`failure_bound_log2`). For n ≤ :data:`UNION_BOUND_MAX` the table size
m is the smallest from the ladder ``max(1024, e·n)``, e ∈ :data:`EXPANSIONS`,
for which this bound is ≤ 2^-40 -- a proof. It needs e = 2 from about
n = 1000 on. Above, m = 1.27·n, the stash-less 3-hash parameter of
KKRT16/PSWW18 for λ = 40; PSWW18 derive it from an empirical fit, so that
range rests on their estimate, not on a proof.

If insertion does fail, the guest draws a fresh seed and tries again (up to
``attempts`` times, then :class:`CuckooError`). The seed it finally sends is
then conditioned on its set, but only on an event of probability ≤ 2^-40 per
seed: the seed's distribution is within statistical distance 2^-40 of
uniform, so this leaks nothing beyond the statistical security bound.
"""

from __future__ import annotations

import functools
import hashlib
import math
from typing import Sequence

import numpy as np

from ...errors import FedCreditError
from .aes_hash import cbc_mac_ids, derive_key

__all__ = [
    "CuckooError",
    "NUM_HASHES",
    "EXPANSIONS",
    "UNION_BOUND_MAX",
    "DIGEST_BYTES",
    "id_digests",
    "table_size",
    "failure_bound_log2",
    "bin_positions",
    "cuckoo_insert",
]

NUM_HASHES = 3
DIGEST_BYTES = 16
EXPANSIONS = (1.27, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 32.0, 64.0)
UNION_BOUND_MAX = 1 << 14
MIN_BINS = 1024
_ID_TAG = b"fedcredit/v1/psi-ot/id"


class CuckooError(FedCreditError):
    """Cuckoo insertion failed for every seed tried (probability ≤ 2^-40 per seed)."""

    code = "CUCKOO"


def id_digests(salt: bytes, ids: Sequence[str]) -> np.ndarray:
    """``(n, 16)`` uint8: the 128-bit AES CBC-MAC of each id under a key derived from the salt, one row per id.

    :func:`~.aes_hash.cbc_mac_ids` (the argument is there): a prefix-free
    CBC-MAC, computed in bulk. Two distinct ids share a digest with
    probability ~2^-128 per pair (below 2^-88 over all pairs at 2^20 × 2^20):
    the digests stand for the ids.
    """
    return cbc_mac_ids(derive_key(_ID_TAG, salt), ids)


def _log_comb(a: int, b: int) -> float:
    return math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1)


@functools.lru_cache(maxsize=256)
def failure_bound_log2(n: int, bins: int) -> float:
    """log2 of the union bound on stash-less 3-way cuckoo failure (see module doc)."""
    if n < 2:
        return -math.inf
    terms = [
        _log_comb(n, k) + _log_comb(bins, k - 1) + NUM_HASHES * k * math.log((k - 1) / bins)
        for k in range(2, min(n, bins + 1) + 1)
    ]
    top = max(terms)
    return (top + math.log(sum(math.exp(t - top) for t in terms))) / math.log(2)


def _round_up(x: int, k: int) -> int:
    return -(-x // k) * k


@functools.lru_cache(maxsize=256)
def table_size(n: int, statistical: int = 40, align: int = 128) -> int:
    """Number of bins for ``n`` guest ids (a multiple of ``align``).

    Raises:
        ValueError: if no expansion on the ladder reaches ``statistical`` bits
            (cannot happen for statistical ≤ 40).
    """
    if n > UNION_BOUND_MAX:
        return _round_up(math.ceil(EXPANSIONS[0] * n), align)
    for e in EXPANSIONS:
        m = _round_up(max(MIN_BINS, math.ceil(e * n)), align)
        if failure_bound_log2(n, m) <= -statistical:
            return m
    raise ValueError(f"no cuckoo table size reaches 2^-{statistical} for n={n}")


_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer (a bijection on uint64), vectorized."""
    x = (x ^ (x >> np.uint64(30))) * _C1
    x = (x ^ (x >> np.uint64(27))) * _C2
    return x ^ (x >> np.uint64(31))


def bin_positions(digests: np.ndarray, seed: bytes, bins: int) -> np.ndarray:
    """``(n, 3)`` int64: the three candidate bins of each digest under ``seed`` (16 bytes).

    The digests are uniform (random-oracle outputs), so any fixed mixing of
    them is uniform too; the seed only re-randomizes the bins for a retry.
    Bias of the final ``mod bins``: bins / 2^64, negligible.
    """
    if len(seed) != 16:
        raise ValueError("cuckoo seed must be 16 bytes")
    d = digests.view("<u8").reshape(-1, 2) if len(digests) else np.zeros((0, 2), np.uint64)
    s = np.frombuffer(hashlib.sha256(b"fedcredit/v1/psi-ot/cuckoo" + seed).digest(), "<u8")
    with np.errstate(over="ignore"):
        out = np.empty((len(d), NUM_HASHES), dtype=np.int64)
        base = _mix(d[:, 0] ^ s[0]) ^ _mix(d[:, 1] ^ s[1])
        for i in range(NUM_HASHES):
            h = _mix(base + np.uint64(i) * s[2] + s[3])
            out[:, i] = (h % np.uint64(bins)).astype(np.int64)
    return out


def cuckoo_insert(positions: np.ndarray, bins: int, max_rounds: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Place every item in one of its candidate bins, in parallel rounds (no stash).

    Each round, every unplaced item claims its current candidate bin; one
    claimant per bin wins (numpy's last write), evicting the previous
    occupant; losers and evicted items move on to their next candidate.

    Args:
        positions: ``(n, 3)`` candidate bins (:func:`bin_positions`).
        bins: table size.
        max_rounds: give up after this many rounds (default 100 + 10·log2 n).

    Returns:
        ``(table, func)``: ``table[b]`` is the item in bin b or -1;
        ``func[b]`` is which of the item's hash functions put it there (-1 if empty).

    Raises:
        CuckooError: if some item is still unplaced after ``max_rounds``.
    """
    n = len(positions)
    table = np.full(bins, -1, dtype=np.int64)
    func = np.full(bins, -1, dtype=np.int8)
    if n > bins:
        raise CuckooError(f"{n} items cannot fit {bins} bins")
    choice = np.zeros(n, dtype=np.int8)
    pending = np.arange(n, dtype=np.int64)
    rounds = max_rounds if max_rounds is not None else 100 + 10 * max(1, n).bit_length()
    for _ in range(rounds):
        if not pending.size:
            return table, func
        target = positions[pending, choice[pending]]
        old = table[target]
        table[target] = pending
        won = table[target] == pending
        func[target[won]] = choice[pending[won]]
        evicted = old[won]  # one winner per claimed bin, so each old occupant appears once
        evicted = evicted[evicted >= 0]
        losers = pending[~won]
        pending = np.concatenate([losers, evicted])
        choice[pending] = (choice[pending] + 1) % NUM_HASHES
    if pending.size:
        raise CuckooError(f"cuckoo insertion left {pending.size} of {n} items unplaced after {rounds} rounds")
    return table, func
