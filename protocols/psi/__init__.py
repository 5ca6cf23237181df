"""Two-party ECDH-PSI over X25519.

* :mod:`fedcredit.protocols.psi.ids` -- id normalization, validation and de-duplication.
* :mod:`fedcredit.protocols.psi.ecdh` -- hazmat primitives: hashing ids onto Curve25519,
  blinding (optionally on a process pool), invertible scalars.
* :mod:`fedcredit.protocols.psi.protocol` -- the balanced, streamed PSI: the exchange,
  modes (both / guest / cardinality), the count-first check of each party's
  minimum, and both role programs. Its parts (it re-exports their public names):
  :mod:`.messages` (payloads, message table, parameters),
  :mod:`.checkpoint` (what a role persists to resume),
  :mod:`.count_first` (the count exchange, shared with the unbalanced mode),
  :mod:`.streams` (batches of points, the pool one batch ahead).
* :mod:`fedcredit.protocols.psi.unbalanced` -- a large host set cached under a
  long-lived key, small guest queries online; its payloads and parameters in
  :mod:`.unbalanced_messages`.
* :mod:`fedcredit.protocols.psi.ot` -- the OT-extension PSI (KKRT16), the fast balanced mode.
"""

from .ecdh import blind, hash_and_blind, hash_points, hash_to_point, invertible_scalar, is_on_curve
from .ids import DedupedIds, is_valid_uscc, normalize_id, prepare_ids
from .protocol import (
    BlindedPoints,
    IntersectionCount,
    IntersectionTooSmall,
    MatchedPositions,
    Mode,
    PsiCheckpoint,
    PsiParams,
    PsiResult,
    PsiStep,
    Reveal,
    SetSize,
    UnshuffleKey,
    guest_program,
    host_program,
)
from .unbalanced import (
    CacheDigest,
    CachedDigests,
    CacheStatus,
    UnbalancedCache,
    UnbalancedParams,
    UnbalancedResult,
    UnbalancedStep,
    unbalanced_build_cache,
    unbalanced_cache_digest,
    unbalanced_guest_program,
    unbalanced_host_program,
    unbalanced_key_id,
    unbalanced_new_key,
)

__all__ = [
    "normalize_id",
    "prepare_ids",
    "DedupedIds",
    "is_valid_uscc",
    "hash_to_point",
    "hash_points",
    "hash_and_blind",
    "is_on_curve",
    "blind",
    "invertible_scalar",
    "PsiStep",
    "PsiParams",
    "PsiResult",
    "PsiCheckpoint",
    "Reveal",
    "Mode",
    "SetSize",
    "BlindedPoints",
    "MatchedPositions",
    "IntersectionCount",
    "UnshuffleKey",
    "IntersectionTooSmall",
    "guest_program",
    "host_program",
    "UnbalancedStep",
    "UnbalancedParams",
    "UnbalancedCache",
    "UnbalancedResult",
    "CacheDigest",
    "CacheStatus",
    "CachedDigests",
    "unbalanced_new_key",
    "unbalanced_key_id",
    "unbalanced_build_cache",
    "unbalanced_cache_digest",
    "unbalanced_host_program",
    "unbalanced_guest_program",
]
