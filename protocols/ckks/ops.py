"""CKKS operations of the coordinated LR: packing, block sums, masking, masked decryption.

Layout. A batch of ``rows`` rows is padded to a block of ``P = 2^ceil(log2 rows)``
slots and the block is repeated across all ``N/2`` slots, so one ciphertext holds
``N/2 / P`` copies of the batch. A party multiplies it by a plaintext whose
block ``k`` holds feature column ``k`` (``P``-padded), then rotates and adds with
steps ``P/2, ..., 1``: slot ``k * P`` then holds the block's sum, that is
``sum_i d_i x_ik``. One product and ``log2 P`` rotations give ``N/2 / P``
gradient components at once. A batch never spans several ciphertexts (the
budget refuses ``P > N/2``), so there is never a sum across ciphertext blocks to
do before the rotations.

Masking (:meth:`CkksSession.mask`). Before a ciphertext leaves for the key
holder, the party adds (1) a fresh public-key encryption of zero, so the
ciphertext's randomness is new (as the Paillier mode rerandomizes), and (2) a
plaintext polynomial ``M`` with every coefficient uniform in ``[-2^b, 2^b)``
(from ``rng``). The key holder decrypts ``m + M``: every slot -- the requested
ones, partial sums in the others, the padding -- and the CKKS noise in real
and imaginary parts are flooded, within statistical distance
``2^-mask_security_bits`` (see :mod:`.params`). The party keeps the exact
fixed-point value of ``M`` at the requested slots and subtracts it.

Masked decryption (:meth:`CkksKeyHolder.decrypt_slots`). The key holder
decrypts to exact integers and releases only the requested slots, which the
caller derives from public sizes, so a party never sees partial sums or the
noise polynomial (which would let it solve for the secret key, the
Li--Micciancio attack on CKKS).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import tenseal as ts
import tenseal.sealapi as sealapi

from ..errors import CryptoError, ProtocolError
from .context import check_context_params
from .params import CkksParams, block_size
from .rns import NttTables, RawCiphertext, check_conventions, crt_centered, eval_slots_fixed, read_ciphertext, read_plaintext, uniform_poly

__all__ = [
    "FRAC_BITS",
    "replicate_blocks",
    "block_targets",
    "CkksSession",
    "CkksKeyHolder",
    "unmask_values",
]

FRAC_BITS = 48  # fixed-point bits of decrypted (masked) values


def replicate_blocks(values: Sequence[float], block: int, slots: int) -> list[float]:
    """``values`` padded with zeros to ``block`` and repeated to fill ``slots``."""
    v = np.zeros(block)
    v[: len(values)] = np.asarray(values, dtype=float)
    return np.tile(v, slots // block).tolist()


def block_targets(n_values: int, block: int, slots: int) -> list[list[int]]:
    """Slots holding the results: ``k * block`` in ciphertext ``g``, for value ``g * (slots/block) + k``."""
    per = slots // block
    return [[k * block for k in range(min(per, n_values - g))] for g in range(0, n_values, per)]


class CkksSession:
    """A party's (or the key holder's) handle on a CKKS context: encoder, evaluator, keys, tables."""

    def __init__(self, ctx: ts.Context, params: CkksParams) -> None:
        check_context_params(ctx, params)
        self.ctx = ctx
        self.params = params
        self.seal = ctx.seal_context().data
        self.degree = params.poly_modulus_degree
        self.slots = params.slots
        self.evaluator = sealapi.Evaluator(self.seal)
        self.encoder = sealapi.CKKSEncoder(self.seal)
        self.encryptor = sealapi.Encryptor(self.seal, ctx.public_key().data)
        self.galois_keys = ctx.galois_keys().data
        self.data_primes = tuple(int(m.value()) for m in self.seal.first_context_data().parms().coeff_modulus())
        self.decrypt_primes = self.data_primes[:-1]  # the level after the one rescale
        self.tables = NttTables(self.degree, self.data_primes)
        check_conventions(self.seal, self.tables)

    # ------------------------------------------------------------------ encryption

    def encrypt(self, values: Sequence[float]) -> ts.CKKSVector:
        """Fresh encryption (SEAL randomness) of a full-slot vector at the global scale."""
        if len(values) != self.slots:
            raise ProtocolError(f"expected {self.slots} slot values, got {len(values)}")
        return ts.ckks_vector(self.ctx, list(values))

    def encrypt_scalar(self, value: float) -> ts.CKKSVector:
        """Fresh encryption of one value (TenSEAL repeats it in every slot)."""
        return ts.ckks_vector(self.ctx, [float(value)])

    # ------------------------------------------------------------------ homomorphic steps

    def multiply_plain(self, ct: Any, values: Sequence[float]) -> Any:
        """``ct * encode(values)`` at the global scale, then one rescale. ``values`` fill all slots."""
        if len(values) != self.slots:
            raise ProtocolError(f"expected {self.slots} plaintext slots, got {len(values)}")
        pt = sealapi.Plaintext()
        self.encoder.encode([float(v) for v in values], ct.parms_id(), float(2**self.params.global_scale_bits), pt)
        out = sealapi.Ciphertext(self.seal)
        self.evaluator.multiply_plain(ct, pt, out)
        self.evaluator.rescale_to_next_inplace(out)
        return out

    def rotate_and_sum(self, ct: Any, width: int) -> Any:
        """In place: slot ``i`` gets ``sum(slot i .. i + width - 1)`` (``width`` a power of two)."""
        step = width // 2
        while step >= 1:
            tmp = sealapi.Ciphertext(self.seal)
            self.evaluator.rotate_vector(ct, step, self.galois_keys, tmp)
            self.evaluator.add_inplace(ct, tmp)
            step //= 2
        return ct

    def add(self, a: Any, b: Any) -> Any:
        if a.parms_id() != b.parms_id() or a.scale != b.scale:
            raise ProtocolError("cannot add CKKS ciphertexts at different levels or scales")
        out = sealapi.Ciphertext(self.seal)
        self.evaluator.add(a, b, out)
        return out

    def block_sums(self, vec: ts.CKKSVector, columns: np.ndarray, rows: int) -> list[Any]:
        """``[[sum_i v_i * columns[i, k]]]`` at slot ``k * P``, ``P = block_size(rows)``; one ciphertext per group.

        ``vec`` must hold the batch in the block layout of :func:`replicate_blocks`.
        """
        columns = np.asarray(columns, dtype=float)
        if columns.shape[0] != rows:
            raise ProtocolError("feature columns do not match the batch")
        block = block_size(rows)
        if block > self.slots:
            raise ProtocolError(f"a batch of {rows} rows does not fit {self.slots} slots")
        per = self.slots // block
        base = vec.ciphertext()
        if len(base) != 1:
            raise ProtocolError("a batch must be one ciphertext")
        out = []
        for g in range(0, columns.shape[1], per):
            plain = np.zeros((per, block))
            chunk = columns[:, g : g + per]
            plain[: chunk.shape[1], :rows] = chunk.T
            out.append(self.rotate_and_sum(self.multiply_plain(base[0], plain.ravel()), block))
        return out

    # ------------------------------------------------------------------ masking

    def mask(self, ct: Any, targets: Sequence[int], mask_coeff_bits: int, rng: Any, frac_bits: int = FRAC_BITS) -> tuple[RawCiphertext, list[int]]:
        """Rerandomize and flood ``ct`` for the key holder; return it and the mask's value at ``targets``.

        The mask is a polynomial with coefficients uniform in ``[-2^b, 2^b)``
        drawn from ``rng``; its slot values are computed exactly in fixed point
        with ``frac_bits`` fractional bits (the key holder uses the same table).
        """
        raw = read_ciphertext(self.seal, ct)
        if raw.primes != self.decrypt_primes:
            raise CryptoError("only ciphertexts at the decryption level (after one rescale) are masked")
        zero = sealapi.Ciphertext(self.seal)
        self.encryptor.encrypt_zero(ct.parms_id(), zero)
        fresh = read_ciphertext(self.seal, zero)
        mask = uniform_poly(self.degree, mask_coeff_bits, rng)
        c0 = np.empty_like(raw.c0)
        c1 = np.empty_like(raw.c1)
        for j, q in enumerate(raw.primes):
            qq = np.uint64(q)
            m_ntt = self.tables.forward([int(m) % q for m in mask], q)
            c0[j] = ((raw.c0[j] + fresh.c0[j]) % qq + m_ntt) % qq
            c1[j] = (raw.c1[j] + fresh.c1[j]) % qq
        masked = RawCiphertext(raw.degree, raw.primes, raw.scale, c0, c1)
        return masked, eval_slots_fixed(mask, self.degree, targets, raw.scale, frac_bits)


class CkksKeyHolder:
    """The key holder's side: the secret context, and decryption of masked ciphertexts only."""

    def __init__(self, ctx: ts.Context, params: CkksParams) -> None:
        if not ctx.is_private():
            raise CryptoError("the key holder needs the secret CKKS context")
        self.session = CkksSession(ctx, params)
        s = self.session
        key = ctx.secret_key().data.data()
        self._sk = read_plaintext(key, s.degree, len(s.decrypt_primes))
        # the secret key is ternary: a cheap end-to-end check of the NTT convention
        q0 = s.decrypt_primes[0]
        coeffs = s.tables.inverse(self._sk[0], q0)
        if not np.all((coeffs == 0) | (coeffs == 1) | (coeffs == np.uint64(q0 - 1))):
            raise CryptoError("secret key is not ternary under SEAL's inverse NTT; conventions changed")

    @property
    def params(self) -> CkksParams:
        return self.session.params

    def decrypt_slots(self, raw: RawCiphertext, targets: Sequence[int], frac_bits: int = FRAC_BITS) -> list[int]:
        """Decrypt ``raw`` exactly and return only ``targets``' real parts as ``round(v * 2^frac_bits)``."""
        s = self.session
        if raw.degree != s.degree or raw.primes != s.decrypt_primes:
            raise ProtocolError("masked ciphertext is not at this context's decryption level")
        if any(not 0 <= t < s.slots for t in targets):
            raise ProtocolError("requested slot out of range")
        coeffs = []
        for j, q in enumerate(raw.primes):
            m = (raw.c0[j].astype(object) + raw.c1[j].astype(object) * self._sk[j].astype(object)) % q
            coeffs.append(s.tables.inverse(np.asarray(m, dtype=np.uint64), q))
        poly = crt_centered(coeffs, raw.primes)
        return eval_slots_fixed(poly, s.degree, targets, raw.scale, frac_bits)


def unmask_values(values: Sequence[int], masks: Sequence[int], frac_bits: int = FRAC_BITS) -> np.ndarray:
    """``(v - r) / 2^frac_bits`` per value, the mask removed exactly in integers."""
    if len(values) != len(masks):
        raise ProtocolError("decrypted values do not match the masks")
    return np.array([float(int(v) - int(r)) for v, r in zip(values, masks)]) / float(2**frac_bits)
