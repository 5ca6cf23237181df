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
* speed: :class:`RandomnessPool` (precomputed obfuscators, so online
  encryption is one product per value), :func:`pack` / :func:`unpack` (several
  values per decryption), and an optional ``map_fn`` on the bulk operations
  (:meth:`Encryptor.encrypt_raw_many`, :func:`matvec_t`, :func:`pack`,
  :meth:`PaillierPrivateKey.decrypt_raw_many`) to spread work over cores the
  runtime owns; see :mod:`.parallel` for that contract.

All randomness comes from an ``rng`` argument (``random.Random(seed)`` in tests,
``secrets.SystemRandom()`` in production). Nothing here reads a clock or a file,
or starts a thread or a process.
"""

from .encoding import FixedPoint, from_residue, to_residue
from .encrypt import (
    Encryptor,
    canonical_base,
    clear_table_cache,
    compute_factors,
    compute_factors_task,
    encrypt_raw_reference,
    encrypt_with_factors,
)
from .keys import (
    MIN_INSECURE_KEY_BITS,
    SUPPORTED_KEY_BITS,
    PaillierPrivateKey,
    PaillierPublicKey,
    RandomSource,
    check_ciphertext,
    decrypt_task,
    generate_keypair,
)
from .ops import (
    add,
    add_many,
    add_plain,
    add_plain_many,
    check_same_key,
    dot,
    dot_task,
    matvec_t,
    mul_plain,
    neg,
    sum_ciphertexts,
)
from .packing import (
    PackingPlan,
    decrypt_packed,
    pack,
    pack_task,
    packed_count,
    plan_packing,
    slots_per_ciphertext,
    unpack,
)
from .parallel import MapFn
from .pool import RandomnessPool

__all__ = [
    "RandomSource",
    "PaillierPublicKey",
    "PaillierPrivateKey",
    "generate_keypair",
    "check_ciphertext",
    "SUPPORTED_KEY_BITS",
    "MIN_INSECURE_KEY_BITS",
    "Encryptor",
    "canonical_base",
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
    "encrypt_with_factors",
    "compute_factors",
    "compute_factors_task",
    "clear_table_cache",
    "dot_task",
    "decrypt_task",
    "MapFn",
    "RandomnessPool",
    "PackingPlan",
    "plan_packing",
    "slots_per_ciphertext",
    "packed_count",
    "pack",
    "pack_task",
    "unpack",
    "decrypt_packed",
]
