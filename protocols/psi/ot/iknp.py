"""IKNP OT extension of κ = 128 base OTs into the w random OTs KKRT needs (hazmat: raw matrices).

KKRT16 needs w (448 by default) random OTs in which the *guest* holds both
seeds (k_j^0, k_j^1) and the host a random choice s_j and k_j^{s_j}. Running
w public-key base OTs costs w 3072-bit exponentiations on each side; instead
the roles run κ = 128 Chou–Orlandi base OTs in the *opposite* direction (host =
base-OT sender with pairs K_i^0, K_i^1; guest = base-OT receiver with random
choices Δ ∈ {0,1}^128) and extend them once, by IKNP (Ishai, Kilian, Nissim,
Petrank, CRYPTO 2003), to w random OTs in the direction KKRT needs::

    host (extension receiver, choices s ∈ {0,1}^w):
        T_i = PRG(K_i^0)[0:w],  U_i = T_i ⊕ PRG(K_i^1)[0:w] ⊕ s      (columns, i < 128)
        sends U (w rows of 16 bytes); keeps k_j = H(j, t_j)          (t_j = row j of T)
    guest (extension sender, Δ):
        Q_i = PRG(K_i^{Δ_i}) ⊕ Δ_i·U_i,  so  q_j = t_j ⊕ s_j·Δ       (rows)
        k_j^0 = H(j, q_j),  k_j^1 = H(j, q_j ⊕ Δ)                   → k_j^{s_j} = k_j

Security (semi-honest, κ = 128). The host's view is the base-OT messages and
nothing after them: its k_j^{1-s_j} = H(j, t_j ⊕ Δ) needs Δ, which the base OTs
hide (the B_i are computationally uniform whatever Δ_i, :mod:`.base_ot`), and
with H a correlation-robust hash (here SHA-256(tag ‖ j ‖ row) truncated to
128 bits, modelled as a random oracle) the values H(j, t_j ⊕ Δ) are
pseudorandom for a uniform 128-bit Δ. The guest's view is U: column i is
masked by PRG(K_i^{1-Δ_i}), a seed it never received, so U is pseudorandom
and hides s. This is IKNP's standard semi-honest random-OT argument with the
PRG as AES-128-CTR (:func:`~.bits.prg_columns`); it needs κ base OTs for κ-bit
security, hence 128, each run once per job.

Cost: 128 instead of w = 448 exponentiations per side, plus w·16 bytes of U
(7 KiB at w = 448) and one extra one-way message.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from ...errors import ProtocolError
from .bits import SEED_BYTES, prg_columns, transpose_bits

__all__ = ["BASE_OTS", "extension_receiver", "extension_sender"]

#: κ: the number of public-key base OTs, whatever the code width w.
BASE_OTS = 128
_TAG = b"fedcredit/v1/psi-ot/iknp"


def _bits_column(bits: Sequence[int]) -> np.ndarray:
    return np.packbits(np.asarray(bits, dtype=np.uint8))


def _h(rows: np.ndarray) -> list[bytes]:
    sha = hashlib.sha256
    return [sha(_TAG + j.to_bytes(4, "big") + rows[j].tobytes()).digest()[:SEED_BYTES] for j in range(len(rows))]


def extension_receiver(pairs: Sequence[tuple[bytes, bytes]], choices: Sequence[int]) -> tuple[bytes, list[bytes]]:
    """The host's side: from its 128 base-OT seed pairs and its w choice bits s, the message U and its w keys.

    Returns:
        ``(u, keys)``: U as w rows of 16 bytes (row-major), and ``keys[j] = k_j^{s_j}``.
    """
    w = len(choices)
    if len(pairs) != BASE_OTS or w % 8:
        raise ValueError(f"IKNP needs {BASE_OTS} base-OT pairs and a multiple of 8 choices")
    t = prg_columns([a for a, _ in pairs], 0, w)  # (128, w/8) columns
    u = prg_columns([b for _, b in pairs], 0, w)
    u ^= t
    u ^= _bits_column(choices)[None, :]
    return transpose_bits(u).tobytes(), _h(transpose_bits(t))


def extension_sender(keys: Sequence[bytes], delta: Sequence[int], u: bytes, width: int) -> list[tuple[bytes, bytes]]:
    """The guest's side: from its 128 base-OT keys K_i^{Δ_i}, Δ and the host's U, the w seed pairs.

    Raises:
        ProtocolError: if U is not ``width`` rows of 16 bytes.
    """
    if len(keys) != BASE_OTS or len(delta) != BASE_OTS or width % 8:
        raise ValueError(f"IKNP needs {BASE_OTS} base-OT keys and choice bits")
    if len(u) != width * BASE_OTS // 8:
        raise ProtocolError(f"IKNP: U has {len(u)} bytes, expected {width * BASE_OTS // 8}")
    u_rows = np.frombuffer(u, dtype=np.uint8).reshape(width, BASE_OTS // 8)
    d_row = _bits_column(delta)
    q = transpose_bits(prg_columns(keys, 0, width))  # (w, 16) rows
    q ^= u_rows & d_row[None, :]
    return list(zip(_h(q), _h(q ^ d_row[None, :])))
