"""CKKS parameters and the budget check that runs before any work.

Every limit of the CKKS mode is checked here, from the job's sizes alone, and a
plan that cannot fit raises :class:`~protocols.errors.BudgetError` with a
message that names the limit. Nothing here touches TenSEAL.

The bounds, for a ring of degree ``N`` (``N/2`` slots) and fresh scale ``2^s``:

* **Slots.** One mini-batch is one ciphertext: its block (the batch rounded up
  to a power of two) must fit in ``N/2`` slots.
* **Depth.** The circuit is one ciphertext-times-plaintext product, then
  rotations: one rescale. The chain needs a prime to rescale away, at least one
  prime left to decrypt under, and a special prime for key switching (at least
  as large as every data prime, or rotations add more noise than the product).
* **Precision.** After the rescale the scale is ``2^(2s - r)`` for a rescale
  prime of ``r`` bits; both it and ``2^s`` must be at least ``2^MIN_SCALE_BITS``
  or the CKKS noise (a few units to ``2^15`` units of the last bit) eats the value.
* **Masks.** The key holder decrypts ``m + M`` where ``m`` is the message and
  noise polynomial, ``||m||_inf <= scale * (max_abs_value + NOISE_ALLOWANCE)``
  (every coefficient of a polynomial is bounded by the largest of its slot
  values), and ``M`` is uniform over ``[-2^b, 2^b)^N``. Coefficient by
  coefficient, ``m + M`` is within statistical distance ``|m_t| / 2^(b+1)`` of
  ``M``; over ``N`` coefficients the whole decrypted polynomial -- every slot,
  real and imaginary part, value and noise -- is within
  ``N * ||m||_inf / 2^(b+1) <= 2^-mask_bits`` of a distribution that does not
  depend on ``m``. So ``b = mask_bits + log2(N) - 1 + log2 ||m||_inf``.
* **Modulus.** ``m + M`` must not wrap modulo the decryption modulus ``Q'``
  (the data primes left after the rescale), or the mask could not be removed
  exactly: ``2^b + ||m||_inf < Q' / 2``. ``Q'`` is bounded below by
  ``2^(sum(bits_i - 1))``.
* **Security.** ``log2 Q`` (all primes, special one included) must not exceed
  the HomomorphicEncryption.org standard's bound for 128-bit classical
  security with a ternary secret at degree ``N``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import BudgetError

__all__ = [
    "CkksParams",
    "CkksBudget",
    "HE_STANDARD_128",
    "MIN_SCALE_BITS",
    "MIN_MASK_BITS",
    "NOISE_ALLOWANCE",
    "block_size",
]

# HomomorphicEncryption.org security standard (2018), table 1, 128-bit classical
# security, ternary (or uniform) secret: the largest log2(q) for each degree.
# These are SEAL's CoeffModulus::MaxBitCount(N, sec_level_type::tc128) values.
HE_STANDARD_128: dict[int, int] = {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881}

MIN_SCALE_BITS = 30  # below this, CKKS noise leaves under ~15 bits of precision
MIN_MASK_BITS = 40  # statistical hiding of masks, in bits
NOISE_ALLOWANCE = 1.0  # bound on |CKKS noise| in any slot, in value units (measured ~1e-6)
_MIN_PRIME_BITS, _MAX_PRIME_BITS = 20, 60  # SEAL's limits on one RNS prime


def block_size(rows: int) -> int:
    """The power of two a batch of ``rows`` is padded to (one block of slots)."""
    if rows < 1:
        raise BudgetError("a batch needs at least one row")
    return 1 << (int(rows) - 1).bit_length()


@dataclass(frozen=True)
class CkksBudget:
    """What :meth:`CkksParams.validate` planned for one kind of masked ciphertext."""

    slots: int
    block: int  # the batch padded to a power of two
    values_per_ciphertext: int  # features packed into one ciphertext (one per block)
    ciphertexts_per_batch: int
    value_coeff_bits: int  # ||message + noise||_inf < 2^value_coeff_bits
    mask_coeff_bits: int  # mask coefficients are uniform in [-2^b, 2^b)
    decrypt_modulus_bits: int  # lower bound on log2 of the decryption modulus
    mask_security_bits: int  # statistical distance of the decrypted view <= 2^-this


@dataclass(frozen=True)
class CkksParams:
    """CKKS parameters of the coordinated LR job. The coordinator and both parties use the same values.

    Attributes:
        poly_modulus_degree: ring degree ``N``; a ciphertext has ``N/2`` slots.
        coeff_mod_bit_sizes: RNS prime sizes: data primes first, the special
            (key-switching) prime last. The default ``(60, 58, 40, 60)`` spends
            the whole 218-bit budget of ``N = 8192``: the 40-bit prime is rescaled
            away after the product, the 60- and 58-bit primes (118 bits) hold the
            masked gradient, whose mask needs ``40 + 12 + ~60`` bits.
        global_scale_bits: fresh encodings use scale ``2^global_scale_bits``.
        mask_security_bits: statistical hiding of every decrypted polynomial
            (value, partial sums and noise), at least 40. This is separate from
            ``HeteroLRParams.mask_security_bits``, which sizes Paillier masks: a
            CKKS mask floods a whole ring element, which costs ``log2(N)`` more
            bits of modulus, so 80 bits would need ``N = 16384``.
        max_abs_score: bound on one party's partial score ``|u|``; every slot
            bound (and so the mask width) derives from it. A larger score at run
            time raises :class:`BudgetError` (the model diverged).
    """

    poly_modulus_degree: int = 8192
    coeff_mod_bit_sizes: tuple[int, ...] = (60, 58, 40, 60)
    global_scale_bits: int = 40
    mask_security_bits: int = 40
    max_abs_score: float = 2.0**10

    def __post_init__(self) -> None:
        object.__setattr__(self, "coeff_mod_bit_sizes", tuple(int(b) for b in self.coeff_mod_bit_sizes))

    # ------------------------------------------------------------------ derived sizes

    @property
    def slots(self) -> int:
        return self.poly_modulus_degree // 2

    @property
    def total_modulus_bits(self) -> int:
        return sum(self.coeff_mod_bit_sizes)

    @property
    def data_bit_sizes(self) -> tuple[int, ...]:
        return self.coeff_mod_bit_sizes[:-1]

    @property
    def rescale_prime_bits(self) -> int:
        return self.coeff_mod_bit_sizes[-2]

    @property
    def decrypt_bit_sizes(self) -> tuple[int, ...]:
        """Primes left after the one rescale: the modulus the key holder decrypts under."""
        return self.coeff_mod_bit_sizes[:-2]

    @property
    def product_scale_bits(self) -> int:
        """Upper bound (bits) on the scale after the rescale, ``2^(2s) / q_r`` with ``q_r >= 2^(r-1)``."""
        return 2 * self.global_scale_bits - self.rescale_prime_bits + 1

    # ------------------------------------------------------------------ checks

    def check(self) -> None:
        """Check the parameters alone (security, depth, precision). Raise :class:`BudgetError`."""
        n = self.poly_modulus_degree
        if n not in HE_STANDARD_128:
            raise BudgetError(
                f"poly_modulus_degree {n} is not one of {sorted(HE_STANDARD_128)} (a power of two with a 128-bit bound)"
            )
        sizes = self.coeff_mod_bit_sizes
        if len(sizes) < 3:
            raise BudgetError(
                f"coeff_mod_bit_sizes {list(sizes)} has no room for depth 1: one ciphertext-times-plaintext "
                "product needs a prime to rescale away, a prime to decrypt under and a special prime"
            )
        if any(not _MIN_PRIME_BITS <= b <= _MAX_PRIME_BITS for b in sizes):
            raise BudgetError(f"every prime in coeff_mod_bit_sizes must have {_MIN_PRIME_BITS}..{_MAX_PRIME_BITS} bits")
        if sizes[-1] < max(sizes[:-1]):
            raise BudgetError(
                f"the special prime ({sizes[-1]} bits) must be at least as large as every data prime "
                f"({max(sizes[:-1])} bits), or key switching (rotations) adds more noise than the product"
            )
        limit = HE_STANDARD_128[n]
        if self.total_modulus_bits > limit:
            raise BudgetError(
                f"insecure CKKS parameters: log2(q) = {self.total_modulus_bits} bits exceeds {limit}, the "
                f"HomomorphicEncryption.org bound for 128-bit security at degree {n}; use fewer or smaller "
                "primes or a larger poly_modulus_degree"
            )
        s = self.global_scale_bits
        if s < MIN_SCALE_BITS or self.product_scale_bits - 1 < MIN_SCALE_BITS:
            raise BudgetError(
                f"CKKS scale too small: fresh scale 2^{s} and post-rescale scale 2^{self.product_scale_bits - 1} "
                f"must both be at least 2^{MIN_SCALE_BITS}, or noise swamps the values"
            )
        if s >= sum(self.data_bit_sizes) - 1:
            raise BudgetError(f"global_scale_bits {s} does not fit the data modulus")
        if self.mask_security_bits < MIN_MASK_BITS:
            raise BudgetError(f"mask_security_bits {self.mask_security_bits} is below {MIN_MASK_BITS}; CKKS masks would not hide")
        if not (self.max_abs_score > 0 and math.isfinite(self.max_abs_score)):
            raise BudgetError("max_abs_score must be a positive number")

    def validate(self, batch_size: int, n_features: int, max_abs_value: float, mask_bits: int) -> CkksBudget:
        """Plan one kind of masked ciphertext before the job starts.

        Args:
            batch_size: the largest number of rows in one batch (it must fit in
                one ciphertext: batches never span several).
            n_features: values revealed per batch (one per block of slots).
            max_abs_value: bound on *every* slot of the ciphertext the key holder
                decrypts, partial sums and padding included, in value units.
            mask_bits: the statistical hiding required, in bits (at least 40).

        Returns:
            The :class:`CkksBudget`, whose ``mask_coeff_bits`` sizes the mask.

        Raises:
            BudgetError: the parameters are insecure or too shallow, the batch
                does not fit the slots, or value plus mask would wrap the
                decryption modulus.
        """
        self.check()
        if mask_bits < MIN_MASK_BITS:
            raise BudgetError(f"masks need at least {MIN_MASK_BITS} bits of statistical hiding, not {mask_bits}")
        if n_features < 1:
            raise BudgetError("nothing to reveal: n_features must be >= 1")
        if not (max_abs_value >= 0 and math.isfinite(max_abs_value)):
            raise BudgetError("max_abs_value must be a finite number >= 0")
        block = block_size(batch_size)
        if block > self.slots:
            raise BudgetError(
                f"a batch of {batch_size} rows needs a block of {block} slots, but poly_modulus_degree "
                f"{self.poly_modulus_degree} gives {self.slots}; lower batch_size or raise poly_modulus_degree"
            )
        per_ct = self.slots // block
        value_bits = self.product_scale_bits + math.ceil(math.log2(max_abs_value + NOISE_ALLOWANCE))
        log_n = self.poly_modulus_degree.bit_length() - 1
        mask_coeff_bits = mask_bits + log_n - 1 + value_bits
        q_bits = sum(b - 1 for b in self.decrypt_bit_sizes)
        # 2^b + 2^v <= 2^(b+1) < Q'/2 holds when b + 2 <= log2(Q') (v <= b always).
        if mask_coeff_bits + 2 > q_bits:
            raise BudgetError(
                f"CKKS modulus too small for the mask: a value bounded by {max_abs_value:.3g} at scale "
                f"2^{self.product_scale_bits} plus a {mask_bits}-bit statistical mask over {self.poly_modulus_degree} "
                f"coefficients needs {mask_coeff_bits + 2} bits, the decryption modulus has {q_bits}; lower "
                "max_abs_score, raise the first primes or poly_modulus_degree"
            )
        return CkksBudget(
            slots=self.slots,
            block=block,
            values_per_ciphertext=per_ct,
            ciphertexts_per_batch=-(-n_features // per_ct),
            value_coeff_bits=value_bits,
            mask_coeff_bits=mask_coeff_bits,
            decrypt_modulus_bits=q_bits,
            mask_security_bits=mask_bits,
        )
