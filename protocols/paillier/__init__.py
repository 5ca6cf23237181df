"""A fast Paillier engine in pure Python + gmpy2, cross-checked against python-paillier.

API levels, lowest first (as in python-paillier):

* raw: :class:`PaillierPrivateKey.decrypt_raw`, :class:`Encryptor.encrypt_raw`
  and the homomorphic operations in :mod:`.ops` work on plaintexts in ``[0, n)``
  and ciphertexts that are :class:`gmpy2.mpz` in ``[1, n²)``. Results of
  homomorphic operations are *not* rerandomized; call
  :meth:`Encryptor.rerandomize` before a ciphertext leaves the process.
* signed / fixed point: :func:`to_residue`, :func:`from_residue` and
  :class:`FixedPoint` (one exponent per job) map signed ints and floats to raw
  plaintexts and detect overflow.

All randomness comes from an ``rng`` argument (``random.Random(seed)`` in tests,
``secrets.SystemRandom()`` in production). Nothing here reads a clock or a file.
"""

from .encoding import FixedPoint, from_residue, to_residue
from .encrypt import Encryptor, encrypt_raw_reference
from .keys import (
    MIN_INSECURE_KEY_BITS,
    SUPPORTED_KEY_BITS,
    PaillierPrivateKey,
    PaillierPublicKey,
    RandomSource,
    check_ciphertext,
    generate_keypair,
)
from .ops import (
    add,
    add_many,
    add_plain,
    add_plain_many,
    check_same_key,
    dot,
    matvec_t,
    mul_plain,
    neg,
    sum_ciphertexts,
)

__all__ = [
    "RandomSource",
    "PaillierPublicKey",
    "PaillierPrivateKey",
    "generate_keypair",
    "check_ciphertext",
    "SUPPORTED_KEY_BITS",
    "MIN_INSECURE_KEY_BITS",
    "Encryptor",
    "encrypt_raw_reference",
    "FixedPoint",
    "to_residue",
    "from_residue",
    "check_same_key",
    "add",
    "add_many",
    "add_plain",
    "add_plain_many",
    "neg",
    "mul_plain",
    "sum_ciphertexts",
    "dot",
    "matvec_t",
]
