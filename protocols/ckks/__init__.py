"""CKKS (TenSEAL) building blocks for the coordinated LR's CKKS mode.

Layers, from safe to raw:

* :mod:`.params` -- :class:`CkksParams` and the pre-run budget check
  (:meth:`CkksParams.validate`), pure arithmetic;
* :mod:`.context` -- the secret context (key holder only), the public context
  that may leave it, and vector (de)serialization;
* :mod:`.ops` -- block packing, block sums, masking for the key holder and
  masked decryption (:class:`CkksSession`, :class:`CkksKeyHolder`);
* :mod:`.rns` -- exact RNS arithmetic on SEAL residues (the hazmat layer).

Randomness: every value fedcredit chooses (masks) is drawn from the ``rng``
passed in. TenSEAL's encryption and key generation randomness comes from SEAL's
internal CSPRNG, which cannot be replaced -- the one exception to
"randomness is a parameter", and harmless to reproducibility of results because
it only changes ciphertexts, never decrypted values beyond CKKS noise.
"""

from .context import (
    check_context_params,
    context_fingerprint,
    load_public_context,
    make_secret_context,
    public_context_bytes,
    vector_from_bytes,
    vector_to_bytes,
)
from .ops import FRAC_BITS, CkksKeyHolder, CkksSession, block_targets, replicate_blocks, unmask_values
from .params import HE_STANDARD_128, CkksBudget, CkksParams, block_size
from .rns import RawCiphertext

__all__ = [
    "CkksParams",
    "CkksBudget",
    "HE_STANDARD_128",
    "block_size",
    "make_secret_context",
    "public_context_bytes",
    "load_public_context",
    "context_fingerprint",
    "check_context_params",
    "vector_to_bytes",
    "vector_from_bytes",
    "CkksSession",
    "CkksKeyHolder",
    "RawCiphertext",
    "FRAC_BITS",
    "replicate_blocks",
    "block_targets",
    "unmask_values",
]
