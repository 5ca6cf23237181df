"""The OT-PSI's parameters and the plan that checks them against the set sizes before any work.

What each bound means and why the defaults: the ``Parameters`` section of
:mod:`fedcredit.protocols.psi.ot.protocol`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...errors import BudgetError, ProtocolError
from ..messages import Reveal, check_positive_ints, check_salt, offered_mode
from .base_ot import GROUP14_P, GROUP15_P, element_bytes
from .cuckoo import UNION_BOUND_MAX, failure_bound_log2, table_size
from .iknp import BASE_OTS
from .kkrt import code_failure_log2

__all__ = ["OtPsiParams", "OtPsiPlan", "plan"]

_GROUPS = {14: GROUP14_P, 15: GROUP15_P}


@dataclass(frozen=True)
class OtPsiParams:
    """Job parameters both roles must agree on.

    Attributes:
        salt: per-job salt (≥ 16 bytes), hashed into every id digest.
        mode: ``Reveal.GUEST`` (default: only the guest learns the
            intersection) or ``Reveal.BOTH`` (aligned rows on both sides).
            CARDINALITY is not offered by this mode (use ECDH).
        code_width: w, bits of the pseudo-random code = number of random OTs
            (IKNP-extended from 128 base OTs); a multiple of 64, checked
            against |Y| by :func:`plan`.
        statistical_security: σ, bits (cuckoo failure, false positives, code).
        computational_security: κ; only 128 is supported (AES-128 seeds).
        chunk_bins: bins per CORRECTIONS message (a multiple of 128).
        batch_size: values per OPRF_VALUES message.
        base_ot_group: RFC 3526 group of the base OTs: 15 (3072-bit, 128-bit
            security, the default) or 14 (2048-bit, 112-bit security per NIST
            SP 800-57; ~0.15 s faster per job).

    Raises:
        ProtocolError: on any value outside those ranges.
    """

    salt: bytes
    mode: Reveal = Reveal.GUEST
    code_width: int = 448
    statistical_security: int = 40
    computational_security: int = 128
    chunk_bins: int = 1 << 15
    batch_size: int = 1 << 16
    base_ot_group: int = 15

    def __post_init__(self) -> None:
        check_salt(self.salt)
        mode = offered_mode(self.mode, Reveal.CARDINALITY, "the OT-PSI mode offers reveal GUEST or BOTH; use ECDH for CARDINALITY")
        object.__setattr__(self, "mode", mode)
        check_positive_ints(self, ("code_width", "statistical_security", "computational_security", "chunk_bins", "batch_size"),
                            "OtPsiParams.")
        if self.computational_security != 128:
            raise ProtocolError("OtPsiParams.computational_security: only 128 is supported")
        if self.code_width % 64 or not 128 <= self.code_width <= 1024:
            raise ProtocolError(f"OtPsiParams.code_width must be a multiple of 64 in [128, 1024], got {self.code_width}")
        if not 1 <= self.statistical_security <= 80:
            raise ProtocolError("OtPsiParams.statistical_security must be in [1, 80]")
        if self.chunk_bins % 128:
            raise ProtocolError("OtPsiParams.chunk_bins must be a multiple of 128")
        if self.base_ot_group not in _GROUPS:
            raise ProtocolError(f"OtPsiParams.base_ot_group must be one of {sorted(_GROUPS)}")

    @property
    def modulus(self) -> int:
        return _GROUPS[self.base_ot_group]


@dataclass(frozen=True)
class OtPsiPlan:
    """Sizes derived from the two set sizes, with the failure bounds they achieve.

    Attributes:
        bins: cuckoo table size m.
        value_bytes: ℓ, bytes per OPRF value.
        cuckoo_log2: log2 of the proven cuckoo failure bound, or None where
            the 1.27n estimate (KKRT16/PSWW18) is used instead.
        false_positive_log2: log2 of |X|·3|Y|·2^-8ℓ.
        code_log2: log2 of 3|Y|·P[Bin(w,½) < κ].
        bytes_guest_to_host / bytes_host_to_guest: payload bytes each way.
    """

    bins: int
    value_bytes: int
    cuckoo_log2: float | None
    false_positive_log2: float
    code_log2: float
    bytes_guest_to_host: int
    bytes_host_to_guest: int


def plan(params: OtPsiParams, n_guest: int, n_host: int) -> OtPsiPlan:
    """Derive and check the job's sizes before any work.

    Raises:
        BudgetError: if the code width cannot reach σ for |Y|, or ℓ would
            exceed the 32 bytes of SHA-256.
    """
    sigma, w = params.statistical_security, params.code_width
    bins = table_size(n_guest, sigma)
    pairs = max(1, n_guest) * 3 * max(1, n_host)
    ell = math.ceil((sigma + math.log2(pairs)) / 8)
    if ell > 32:
        raise BudgetError(f"OT-PSI needs {ell}-byte OPRF values for σ={sigma}; SHA-256 gives 32")
    code = math.log2(3 * max(1, n_host)) + code_failure_log2(w, params.computational_security)
    if code > -sigma:
        raise BudgetError(
            f"code width {w} gives 2^{code:.1f} > 2^-{sigma} at |Y|={n_host}; use a wider code (e.g. 512)"
        )
    cuckoo = failure_bound_log2(n_guest, bins) if n_guest <= UNION_BOUND_MAX else None
    group = element_bytes(params.modulus)
    return OtPsiPlan(
        bins=bins,
        value_bytes=ell,
        cuckoo_log2=cuckoo,
        false_positive_log2=math.log2(pairs) - 8 * ell,
        code_log2=code,
        bytes_guest_to_host=bins * w // 8 + BASE_OTS * group + 40,
        bytes_host_to_guest=3 * n_host * ell + w * BASE_OTS // 8 + group + 24,
    )
