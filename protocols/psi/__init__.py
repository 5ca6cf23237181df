"""Two-party ECDH-PSI over X25519.

* :mod:`protocols.psi.ids` -- id normalization and validation.
* :mod:`protocols.psi.ecdh` -- hazmat primitives: hashing ids onto Curve25519
  and blinding.
* :mod:`protocols.psi.protocol` -- the message table and both role programs.
"""

from .ecdh import blind, hash_to_point, is_on_curve
from .ids import is_valid_uscc, normalize_id, prepare_ids
from .protocol import (
    BlindedPoints,
    MatchedPositions,
    PsiParams,
    PsiResult,
    PsiStep,
    Reveal,
    guest_program,
    host_program,
)

__all__ = [
    "normalize_id",
    "prepare_ids",
    "is_valid_uscc",
    "hash_to_point",
    "is_on_curve",
    "blind",
    "PsiStep",
    "PsiParams",
    "PsiResult",
    "Reveal",
    "BlindedPoints",
    "MatchedPositions",
    "guest_program",
    "host_program",
]
