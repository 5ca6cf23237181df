"""KKRT16 batched OPRF: the OT-extension layer (hazmat: raw matrices, no protocol flow).

Notation (one OPRF instance per cuckoo bin j, code width w, seeds from w base OTs)::

    guest (base-OT sender) holds seed pairs (k_i^0, k_i^1), i < w
    host  (base-OT receiver) holds s ∈ {0,1}^w and k_i^{s_i}

    guest: T0 = columns PRG(k_i^0), T1 = columns PRG(k_i^1)
           U  = T0 ⊕ T1 ⊕ C          (row j: C_j = code word of the guest's input in bin j)
           sends U (row-major), keeps t_j = row j of T0
    host:  Q  = columns PRG(k_i^{s_i}), transposed, ⊕ (U ∧ s)    row-wise
           so q_j = t_j ⊕ (C_j ∧ s)                               (the KKRT correlation)

    OPRF:  F_j(y) = H(j, q_j ⊕ (C(y) ∧ s));  F_j(x_j) = H(j, t_j)   (guest's own value)

C is a pseudo-random code: C(d, f) = AES_K(d ⊕ τ_{f,0}) ‖ … ‖ AES_K(d ⊕ τ_{f,3}),
truncated to w bits, for an id digest d, the hash-function index f and a
public key K the host draws per job. H is the correlation-robust hash: a
chained fixed-key-AES MMO over the row with a per-bin IV (:mod:`.aes_hash`,
where its argument in the random-permutation model is written out), truncated.
For y ≠ x_j, C(y) ⊕ C(x_j) has weight ≥ κ = 128 except with probability
P[Bin(w, ½) < κ] (:func:`code_failure_log2`), and then F_j(y) needs κ unknown
bits of s: pseudorandom to the guest.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ...core import MapFn
from .aes_hash import derive_key, mmo_rows
from .bits import SEED_BYTES, PrgStream, Scratch, transpose_bits

__all__ = [
    "MapFn",
    "code_failure_log2",
    "codewords",
    "hash_rows",
    "row_hash_key",
    "OprfReceiver",
    "OprfSender",
]

_BLOCK = 16
_ROW_TAG = b"fedcredit/v1/psi-ot/row-hash"


@lru_cache(maxsize=64)
def code_failure_log2(width: int, distance: int = 128) -> float:
    """log2 P[Bin(width, ½) < distance]: two random code words closer than ``distance``."""
    tail = sum(math.comb(width, d) for d in range(distance))
    return math.log2(tail) - width


def codewords(key: bytes, digests: np.ndarray, funcs: np.ndarray, width: int) -> np.ndarray:
    """``(k, width // 8)`` uint8 code words C(d, f) for digests ``(k, 16)`` and hash indices ``(k,)``."""
    k = len(digests)
    nblocks = -(-width // 128)
    if k == 0:
        return np.zeros((0, width // 8), dtype=np.uint8)
    blocks = np.repeat(digests[:, None, :], nblocks, axis=1)  # (k, nblocks, 16)
    tweak = (funcs.astype(np.uint8)[:, None] << np.uint8(4)) | np.arange(nblocks, dtype=np.uint8)[None, :]
    blocks[:, :, 15] ^= tweak
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    out = np.frombuffer(enc.update(blocks.tobytes()), dtype=np.uint8).reshape(k, nblocks * _BLOCK)
    return out[:, : width // 8]


def row_hash_key(code_key: bytes) -> bytes:
    """The per-job AES key of the row hash H, derived from the host's public code key K."""
    return derive_key(_ROW_TAG, code_key)


def hash_rows(key: bytes, bins: np.ndarray, rows: np.ndarray, out_len: int) -> np.ndarray:
    """``(k, out_len)`` uint8: H(j, row), the chained fixed-key-AES MMO hash (:func:`~.aes_hash.mmo_rows`).

    ``key`` is :func:`row_hash_key` of the job's code key; ``bins`` the j of each row.
    """
    return mmo_rows(key, bins, rows, out_len)


class OprfReceiver:
    """The guest's OT-extension state: w seed pairs from the base OTs."""

    def __init__(self, pairs: Sequence[tuple[bytes, bytes]]) -> None:
        if len(pairs) % 8 or any(len(a) != SEED_BYTES or len(b) != SEED_BYTES for a, b in pairs):
            raise ValueError("OprfReceiver needs a multiple of 8 pairs of 16-byte seeds")
        self.width = len(pairs)
        self._t0 = PrgStream([a for a, _ in pairs])
        self._t1 = PrgStream([b for _, b in pairs])
        self._scratch = Scratch()

    def chunk(self, lo: int, code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bins ``[lo, lo + len(code))``: the correction rows U and the guest's rows T0.

        Args:
            lo: first bin; chunks must come in order from bin 0.
            code: ``(nb, w // 8)`` code words of the guest's inputs (zero rows for empty bins).

        Returns:
            ``(u, t0)``, both ``(nb, w // 8)`` uint8 row matrices.
        """
        nb = len(code)
        t0c = self._t0.next(lo, nb)
        d = self._t1.next(lo, nb)
        d ^= t0c
        both = transpose_bits(np.concatenate([t0c, d], axis=0), self._scratch)  # (nb, 2w/8): [t0 | t0⊕t1]
        w8 = self.width // 8
        u = both[:, w8:]
        u ^= code
        return u, both[:, :w8]


class OprfSender:
    """The host's OT-extension state: the choice bits s and the chosen seeds k_i^{s_i}."""

    def __init__(self, choices: Sequence[int], seeds: Sequence[bytes]) -> None:
        if len(choices) != len(seeds) or len(seeds) % 8:
            raise ValueError("OprfSender needs one seed per choice bit, a multiple of 8")
        self.width = len(seeds)
        self._prg = PrgStream(seeds)
        self._scratch = Scratch()
        self.s_row = np.packbits(np.asarray(choices, dtype=np.uint8))  # (w // 8,)

    def chunk(self, lo: int, u: np.ndarray) -> np.ndarray:
        """Q rows for bins ``[lo, lo + len(u))``: q_j = t_j ⊕ (C_j ∧ s)."""
        q = transpose_bits(self._prg.next(lo, len(u)), self._scratch)
        q ^= u & self.s_row
        return q

    def evaluate(self, q_rows: np.ndarray, code: np.ndarray) -> np.ndarray:
        """q ⊕ (C(y) ∧ s), the rows to hash for the host's inputs (one per row of ``code``)."""
        return q_rows ^ (code & self.s_row)
