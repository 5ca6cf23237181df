"""Bulk AES hashing in numpy: the OT-PSI's id PRF and its correlation-robust row hash.

Both run one AES-ECB call (``cryptography``, AES-NI where the CPU has it) per
128-bit block *position* over all rows at once, so the per-row Python cost of
``hashlib`` disappears; the rest is numpy XOR.

Id digests (:func:`cbc_mac_ids`)
--------------------------------
``D(id) = CBC-MAC_k(len(id) ‖ utf8(id) ‖ 0…)`` with ``k = SHA-256(tag ‖ salt)[:16]``:
the first block carries the byte length (8 bytes, little-endian), so the
encoding is prefix-free and CBC-MAC over prefix-free messages is a PRF
(Bellare–Kilian–Rogaway; Petrank–Rackoff). The parties both know the salt, so
k is not secret between them; what the PSI needs is that two distinct ids
of sets fixed before the job's salt was drawn share a digest only with
probability ~2^-128 per pair, and that digests look uniform (they place ids
in cuckoo bins and feed the pseudo-random code) -- both hold with AES under
a fresh key modelled as an ideal cipher. A party that picked ids *after*
seeing the salt could make two of its own ids collide, which gains it
nothing: a collision with a guest id needs that id, and knowing it a party
can simply include it.

Row hash (:func:`mmo_rows`): the KKRT correlation-robust hash
------------------------------------------------------------
``H(j, r) = MMO_π(IV_j; r_0, …, r_{b-1})[:ℓ]`` with ``h_0 = IV_j = (j ‖ tag)``,
``h_{i+1} = π(h_i ⊕ r_i) ⊕ h_i ⊕ r_i`` over the row ``r`` cut in 16-byte
blocks (w = 448 bits is 56 bytes, zero-padded to 4 blocks), where π is AES-128
under a per-job key ``SHA-256(tag ‖ code key)[:16]``, public to both parties
and modelled as a random permutation (the fixed-key-AES model of Guo, Katz,
Wang, Yu, S&P 2020, and of Bellare et al. 2013 for garbling). Each step is the
MMO function π(z) ⊕ z, which GKWY20 show is correlation robust for 128-bit
inputs in that model; here it is iterated over the row's blocks.

What KKRT16 needs (their d-Hamming correlation robustness, d = κ = 128): for
rows ``t ⊕ (a ∧ s)`` with known ``t`` and known ``a`` of weight ≥ κ and the
host's secret ``s`` uniform, the outputs must look random. The row then has
≥ κ unknown bits spread over its blocks. The output depends on every
block through the chain, and each chain step's input h_i ⊕ r_i is only known
to someone who knows all the unknown bits of blocks < i; the last step's input
is a function of all ≥ κ unknown bits. In the random-permutation model, an
adversary making q queries to π / π⁻¹ hits that last input with probability
≤ q·2^-κ per row (no shortcut through π⁻¹: the feed-forward z ↦ π(z) ⊕ z
cannot be inverted from its truncated output, ~2^{8ℓ} work per preimage of
which ~2^{128-8ℓ} exist), so over the 3|Y| rows the outputs are random
except with probability ≲ 3|Y|·q·2^-128 -- the same bound as a random oracle
H. Distinct bins get distinct IVs, so rows of different bins never share a
chain; two rows of one bin with equal unknown parts are equal rows, which is
the code-distance event bounded in :func:`~.kkrt.code_failure_log2`.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["derive_key", "aes_ecb", "cbc_mac_ids", "mmo_rows"]

_BLOCK = 16
_ID_CHUNK = 1 << 16
_IV_TAG = int.from_bytes(b"fc-rowh\x01", "little")


def derive_key(tag: bytes, secret: bytes) -> bytes:
    """A 16-byte AES key from a domain tag and a per-job value (salt or code key)."""
    return hashlib.sha256(tag + len(secret).to_bytes(4, "big") + secret).digest()[:_BLOCK]


def aes_ecb(key: bytes, blocks: np.ndarray) -> np.ndarray:
    """AES-128-ECB of every 16-byte row of ``blocks`` (``(k, 16)`` uint8), in one call."""
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    out = enc.update(np.ascontiguousarray(blocks).tobytes())
    return np.frombuffer(out, dtype=np.uint8).reshape(-1, _BLOCK).copy()


def cbc_mac_ids(key: bytes, ids: Sequence[str]) -> np.ndarray:
    """``(n, 16)`` uint8: CBC-MAC_key(len ‖ utf8(id) ‖ zero padding) of each id (module docstring)."""
    n = len(ids)
    out = np.zeros((n, _BLOCK), dtype=np.uint8)
    if n == 0:
        return out
    joined = "".join(ids).encode("utf-8")  # UTF-8 is concatenative: id r is joined[start[r]:start[r] + lengths[r]]
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=n)
    if len(joined) != int(lengths.sum()):  # some id is not ASCII: byte lengths differ from character lengths
        lengths = np.fromiter((len(s.encode("utf-8")) for s in ids), dtype=np.int64, count=n)
    nblocks = (lengths + 8 + _BLOCK - 1) // _BLOCK
    if n and int(lengths.min()) == int(lengths.max()):  # one length (national ids, USCCs): no gather needed
        size = int(lengths[0])
        b = int(nblocks[0])
        for lo in range(0, n, _ID_CHUNK):
            hi = min(n, lo + _ID_CHUNK)
            msg = np.zeros((hi - lo, b * _BLOCK), dtype=np.uint8)
            msg[:, :8] = np.frombuffer(size.to_bytes(8, "little"), dtype=np.uint8)
            msg[:, 8 : 8 + size] = np.frombuffer(joined, dtype=np.uint8, count=(hi - lo) * size, offset=lo * size).reshape(hi - lo, size)
            out[lo:hi] = _cbc_mac_blocks(key, msg.reshape(hi - lo, b, _BLOCK))
        return out
    start = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    src = np.frombuffer(joined + bytes(2 * _BLOCK), dtype=np.uint8)
    for b in np.unique(nblocks).tolist():
        for rows in np.array_split(np.flatnonzero(nblocks == b), -(-int(np.sum(nblocks == b)) // _ID_CHUNK)):
            out[rows] = _cbc_mac_group(key, src, start[rows], lengths[rows], b)
    return out


def _cbc_mac_group(key: bytes, src: np.ndarray, start: np.ndarray, lengths: np.ndarray, b: int) -> np.ndarray:
    """CBC-MAC of ids that all take ``b`` blocks (``start``/``lengths`` index ``src``)."""
    k = len(start)
    body = np.arange(b * _BLOCK - 8)
    idx = start[:, None] + body[None, :]
    msg = np.zeros((k, b * _BLOCK), dtype=np.uint8)
    msg[:, :8] = lengths.astype("<u8").view(np.uint8).reshape(-1, 8)
    msg[:, 8:] = np.where(body[None, :] < lengths[:, None], src[np.minimum(idx, len(src) - 1)], 0)
    return _cbc_mac_blocks(key, msg.reshape(k, b, _BLOCK))


def _cbc_mac_blocks(key: bytes, blocks: np.ndarray) -> np.ndarray:
    """CBC-MAC (zero IV) of each ``(b, 16)`` message of ``blocks`` (``(k, b, 16)`` uint8)."""
    b = blocks.shape[1]
    h = aes_ecb(key, blocks[:, 0])
    for i in range(1, b):
        h ^= blocks[:, i]
        h = aes_ecb(key, h)
    return h


def mmo_rows(key: bytes, bins: np.ndarray, rows: np.ndarray, out_len: int) -> np.ndarray:
    """``(k, out_len)`` uint8: the chained fixed-key MMO hash H(j, row) of the module docstring.

    ``out_len`` ≤ 32: beyond 16 bytes a second chain with IV tag + 1 gives the next 16.
    """
    k, width = rows.shape
    if not 0 < out_len <= 2 * _BLOCK:
        raise ValueError("mmo_rows gives 1 to 32 bytes")
    if k == 0:
        return np.zeros((0, out_len), dtype=np.uint8)
    nb = -(-width // _BLOCK)
    padded = np.zeros((k, nb * _BLOCK), dtype=np.uint8)
    padded[:, :width] = rows
    blocks = padded.reshape(k, nb, _BLOCK)
    outs = []
    for lane in range(1 if out_len <= _BLOCK else 2):
        h = np.empty((k, 2), dtype="<u8")
        h[:, 0] = bins.astype("<u8")
        h[:, 1] = np.uint64(_IV_TAG + lane)
        h8 = h.view(np.uint8).reshape(k, _BLOCK)
        for i in range(nb):
            z = h8 ^ blocks[:, i]
            h8 = aes_ecb(key, z)
            h8 ^= z
        outs.append(h8)
    full = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=1)
    return np.ascontiguousarray(full[:, :out_len])
