"""Base OTs: Chou–Orlandi "simplest OT" over an RFC 3526 MODP group (group 15 by default in the PSI).

Why this group: CO needs a group operation (B = A·g^b), which the X25519 API
of ``cryptography`` does not expose (it offers scalar multiplication only), so
the base OTs run in the quadratic-residue subgroup of a safe prime with gmpy2
modular arithmetic. Exponents are 256 bits (short exponents of twice the
security level, as is standard for DH in safe-prime groups). Group 14
(2048-bit, the default ``modulus`` of these classes) is rated at 112-bit
security by NIST SP 800-57 -- below the 128 bits of the OT extension that
follows -- so the PSI uses :data:`GROUP15_P` (3072-bit, 128-bit security) by
default. The receiver's exponentiations all have a fixed base (g, or the
sender's A), so it uses window tables (:class:`~fedcredit.protocols.fixed_base.FixedBase`, ~8x faster than
``powmod``); the sender's B_i^a have 448 different bases and stay ``powmod``.

The random-OT variant, with the sender and receiver roles of the OT itself
(in KKRT the *guest* is the base-OT sender, the host the receiver)::

    sender:   a ← [1, 2^256),  A = g^a                              → A
    receiver: b_i ← [1, 2^256), B_i = g^b_i · A^{c_i}                → B_i
              k_i = H(i, A, B_i, A^{b_i})
    sender:   k_i^0 = H(i, A, B_i, B_i^a),  k_i^1 = H(i, A, B_i, (B_i / A)^a)

so k_i = k_i^{c_i}, and k_i^{1-c_i} = H(..., g^{a b_i} · A^{∓a}) needs the CDH
of (A, B_i/A or B_i·A). With b_i uniform over the subgroup's order, B_i would
be uniform whatever c_i is (perfect hiding); with the 256-bit b_i used here,
g^b_i is only computationally indistinguishable from uniform (the
short-exponent discrete-log assumption), so B_i hides c_i computationally. H
is SHA-256 truncated to 16 bytes, modelled as a random oracle; semi-honest
security.

:func:`ot_encrypt` / :func:`ot_decrypt` turn these random OTs into chosen-message
OTs (m_0, m_1 masked by PRG(k^0), PRG(k^1)); the PSI itself uses the keys as
PRG seeds directly.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Sequence

import gmpy2

from ...core import RandomSource
from ...errors import CryptoError, ProtocolError
from ...fixed_base import FixedBase
from .bits import SEED_BYTES

__all__ = [
    "GROUP14_P",
    "GROUP15_P",
    "GENERATOR",
    "EXPONENT_BITS",
    "element_bytes",
    "FixedBase",
    "BaseOtSender",
    "BaseOtReceiver",
    "ot_encrypt",
    "ot_decrypt",
]

# RFC 3526 §3, 2048-bit MODP group (id 14): p = 2^2048 - 2^1984 - 1 + 2^64 * ([2^1918 pi] + 124476).
GROUP14_P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510"
    "15728E5A8AACAA68FFFFFFFFFFFFFFFF",
    16,
)
# RFC 3526 §4, 3072-bit MODP group (id 15).
GROUP15_P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510"
    "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200C"
    "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
    16,
)
#: 2 generates the subgroup of quadratic residues (order (p-1)/2) for both primes (p ≡ 7 mod 8).
GENERATOR = 2
#: Secret exponents are drawn from [1, 2^EXPONENT_BITS).
EXPONENT_BITS = 256
_TAG = b"fedcredit/v1/psi-ot/base-ot"


def element_bytes(modulus: int) -> int:
    """Bytes of one group element on the wire (256 for group 14)."""
    return (modulus.bit_length() + 7) // 8


def _exponent(rng: RandomSource) -> gmpy2.mpz:
    while True:
        e = rng.getrandbits(EXPONENT_BITS)
        if e:
            return gmpy2.mpz(e)


@lru_cache(maxsize=4)
def _generator_table(modulus: int) -> FixedBase:
    return FixedBase(GENERATOR, modulus, exponent_bits=EXPONENT_BITS)


def _check_element(x: int, modulus: int, what: str) -> None:
    if not 1 < x < modulus - 1:
        raise CryptoError(f"base OT: {what} is not a valid group element")


def _kdf(i: int, a_bytes: bytes, b_bytes: bytes, shared: int, size: int) -> bytes:
    h = hashlib.sha256(_TAG)
    h.update(i.to_bytes(4, "big"))
    h.update(a_bytes)
    h.update(b_bytes)
    h.update(int(shared).to_bytes(size, "big"))
    return h.digest()[:SEED_BYTES]


class BaseOtSender:
    """The base-OT sender (the guest in KKRT). Holds the secret ``a``.

    Usage: ``s = BaseOtSender(rng)``; send ``s.setup``; on the receiver's
    ``B_i`` list call ``s.keys(bs)`` for the pairs ``(k_i^0, k_i^1)``.
    """

    def __init__(self, rng: RandomSource, modulus: int = GROUP14_P) -> None:
        self.modulus = gmpy2.mpz(modulus)
        self.size = element_bytes(modulus)
        self._a = _exponent(rng)
        self._A = _generator_table(int(self.modulus)).pow(self._a)
        self.setup: bytes = int(self._A).to_bytes(self.size, "big")

    def keys(self, bs: Sequence[bytes]) -> list[tuple[bytes, bytes]]:
        """The two keys of each OT, from the receiver's elements ``B_i``.

        Raises:
            CryptoError: if some B_i is not in [2, p-2].
            ProtocolError: if some B_i has the wrong length.
        """
        p, size = self.modulus, self.size
        a_inv = gmpy2.invert(gmpy2.powmod(self._A, self._a, p), p)  # A^-a
        out = []
        for i, b_bytes in enumerate(bs):
            if len(b_bytes) != size:
                raise ProtocolError(f"base OT element {i} is not {size} bytes")
            b = gmpy2.mpz(int.from_bytes(b_bytes, "big"))
            _check_element(b, p, f"B_{i}")
            s0 = gmpy2.powmod(b, self._a, p)
            s1 = s0 * a_inv % p
            out.append((_kdf(i, self.setup, b_bytes, s0, size), _kdf(i, self.setup, b_bytes, s1, size)))
        return out


class BaseOtReceiver:
    """The base-OT receiver (the host in KKRT), with choice bits ``choices``.

    ``r = BaseOtReceiver(choices, setup, rng)``; send ``r.elements`` (the B_i);
    ``r.keys[i]`` is ``k_i^{choices[i]}``.

    Raises:
        CryptoError: if the sender's A is not in [2, p-2].
    """

    def __init__(self, choices: Sequence[int], setup: bytes, rng: RandomSource, modulus: int = GROUP14_P) -> None:
        p = gmpy2.mpz(modulus)
        size = element_bytes(modulus)
        if len(setup) != size:
            raise ProtocolError(f"base OT setup is not {size} bytes")
        big_a = gmpy2.mpz(int.from_bytes(setup, "big"))
        _check_element(big_a, p, "A")
        self.elements: list[bytes] = []
        self.keys: list[bytes] = []
        g_pow = _generator_table(int(p)).pow
        a_pow = FixedBase(big_a, p, exponent_bits=EXPONENT_BITS).pow if len(choices) >= 32 else (lambda e: gmpy2.powmod(big_a, e, p))
        for i, c in enumerate(choices):
            b = _exponent(rng)
            big_b = g_pow(b)
            if c:
                big_b = big_b * big_a % p
            b_bytes = int(big_b).to_bytes(size, "big")
            self.elements.append(b_bytes)
            self.keys.append(_kdf(i, setup, b_bytes, a_pow(b), size))


def _pad(key: bytes, n: int) -> bytes:
    from .bits import prg_columns  # noqa: PLC0415 (tiny helper; keeps the import graph flat)

    return prg_columns([key], 0, ((n + 15) // 16) * 128)[0].tobytes()[:n]


def ot_encrypt(keys: tuple[bytes, bytes], m0: bytes, m1: bytes) -> tuple[bytes, bytes]:
    """Chosen-message OT on top of a random OT: mask m_0, m_1 by PRG(k^0), PRG(k^1)."""
    if len(m0) != len(m1):
        raise ValueError("OT messages must have equal lengths")
    return (
        bytes(x ^ y for x, y in zip(m0, _pad(keys[0], len(m0)))),
        bytes(x ^ y for x, y in zip(m1, _pad(keys[1], len(m1)))),
    )


def ot_decrypt(key: bytes, choice: int, masked: tuple[bytes, bytes]) -> bytes:
    """The receiver's side of :func:`ot_encrypt`: unmask the chosen message."""
    e = masked[1 if choice else 0]
    return bytes(x ^ y for x, y in zip(e, _pad(key, len(e))))
