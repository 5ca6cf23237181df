"""TenSEAL contexts: the key holder's secret context and the public context that leaves it.

Only :func:`public_context_bytes` output may ever leave the key holder, and
:func:`load_public_context` refuses anything that carries a secret key, so a
mistaken ``serialize()`` cannot hand a party the means to decrypt.

TenSEAL draws its encryption and key-generation randomness from SEAL's own
CSPRNG. That is the one source of randomness fedcredit does not pass in (SEAL
does not accept an external generator); every value fedcredit chooses -- masks
-- comes from the ``rng`` the caller passes.
"""

from __future__ import annotations

import hashlib
import tenseal as ts

from ..errors import KeyMismatchError, ProtocolError
from .params import CkksParams

__all__ = [
    "make_secret_context",
    "public_context_bytes",
    "load_public_context",
    "context_fingerprint",
    "check_context_params",
    "vector_to_bytes",
    "vector_from_bytes",
]

# TenSEAL builds a C++ thread pool per context. With one worker, TenSEAL runs every
# job inline on the calling thread (its worker stays idle), so results and timing do
# not depend on the machine's core count. fedcredit's own code starts no threads.
_N_THREADS = 1


def make_secret_context(params: CkksParams) -> ts.Context:
    """The key holder's context: secret key, public key and Galois (rotation) keys.

    No relinearization keys are kept: the protocol never multiplies two ciphertexts.

    Raises:
        BudgetError: the parameters are insecure, too shallow or too imprecise.
    """
    params.check()
    ctx = ts.context(
        ts.SCHEME_TYPE.CKKS,
        poly_modulus_degree=params.poly_modulus_degree,
        coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes),
        n_threads=_N_THREADS,
    )
    ctx.global_scale = float(2**params.global_scale_bits)
    ctx.generate_galois_keys()
    return ctx


def public_context_bytes(ctx: ts.Context) -> bytes:
    """Serialize ``ctx`` *without* its secret key: public key and Galois keys only."""
    if not ctx.has_galois_keys():
        raise ProtocolError("the CKKS context has no Galois keys; parties cannot rotate")
    data = ctx.serialize(save_public_key=True, save_secret_key=False, save_galois_keys=True, save_relin_keys=False)
    return bytes(data)


def load_public_context(data: bytes) -> ts.Context:
    """Load a context received from the key holder; refuse one that carries a secret key.

    Raises:
        ProtocolError: the bytes are not a TenSEAL context, carry a secret key,
            or lack the public or Galois keys the parties need.
    """
    try:
        ctx = ts.context_from(bytes(data), n_threads=_N_THREADS)
    except Exception as exc:  # TenSEAL raises bare ValueError/RuntimeError on bad bytes
        raise ProtocolError(f"not a TenSEAL context: {exc}") from None
    if ctx.is_private() or ctx.has_secret_key():
        raise ProtocolError("refusing a CKKS context that carries a secret key: only the key holder may hold it")
    if not ctx.has_public_key() or not ctx.has_galois_keys():
        raise ProtocolError("the CKKS public context lacks its public key or Galois keys")
    return ctx


def context_fingerprint(public_context: bytes) -> bytes:
    """16 bytes naming a public context; every ciphertext payload carries it."""
    return hashlib.sha256(b"fedcredit/v1/ckks-context|" + bytes(public_context)).digest()[:16]


def check_context_params(ctx: ts.Context, params: CkksParams) -> None:
    """Refuse a context whose ring, primes or scale differ from the job's :class:`CkksParams`."""
    seal = ctx.seal_context().data
    key_parms = seal.key_context_data().parms()
    degree = key_parms.poly_modulus_degree()
    bits = tuple(m.bit_count() for m in key_parms.coeff_modulus())
    scale = ctx.global_scale
    if degree != params.poly_modulus_degree or bits != params.coeff_mod_bit_sizes or scale != float(2**params.global_scale_bits):
        raise ProtocolError(
            f"the CKKS context (degree {degree}, primes {list(bits)}, scale {scale:g}) does not match the job "
            f"(degree {params.poly_modulus_degree}, primes {list(params.coeff_mod_bit_sizes)}, "
            f"scale 2^{params.global_scale_bits})"
        )


def vector_to_bytes(vec: ts.CKKSVector) -> bytes:
    """Serialize a CKKS vector (ciphertext only; the context travels separately)."""
    return bytes(vec.serialize())


def vector_from_bytes(ctx: ts.Context, data: bytes, *, size: int | None = None) -> ts.CKKSVector:
    """Load a CKKS vector under ``ctx``; check its logical size when ``size`` is given.

    Raises:
        KeyMismatchError: the vector was made under other encryption parameters.
        ProtocolError: the bytes are not a CKKS vector, or the size differs.
    """
    try:
        vec = ts.ckks_vector_from(ctx, bytes(data))
    except Exception as exc:
        msg = str(exc)
        if "parms" in msg or "valid" in msg:
            raise KeyMismatchError(f"CKKS vector does not belong to this context: {msg}") from None
        raise ProtocolError(f"not a CKKS vector: {msg}") from None
    if size is not None and vec.size() != size:
        raise ProtocolError(f"CKKS vector has {vec.size()} slots, expected {size}")
    return vec

