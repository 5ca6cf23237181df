"""The OT-PSI's payloads and message table (``psi_ot.*``), with the count-first fallback's copies of ECDH's steps.

The flow and both role programs are in :mod:`fedcredit.protocols.psi.ot.protocol`; the
parameters and the size plan in :mod:`fedcredit.protocols.psi.ot.params`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...core import Masked, ProtocolStep, Public, Role, StepSpec
from ...errors import ProtocolError
from ..messages import MAX_SET_SIZE, EcdhSteps, MatchedPositions, PsiStep, ecdh_step_copy

__all__ = [
    "OtGuestSetup",
    "OtHostSetup",
    "BaseOtElements",
    "CorrectionRows",
    "OprfValues",
    "OtPsiStep",
    "FALLBACK_STEPS",
]

_ECDH_PREFIX = "psi_ot.ecdh_"
_KEY_BYTES = 16


# --------------------------------------------------------------------------- payloads


def _check_count(value: object, what: str) -> None:
    if type(value) is not int or not 0 <= value <= MAX_SET_SIZE:
        raise ProtocolError(f"{what} must be an int in [0, 2^32], got {value!r}")


def _check_bytes(value: object, what: str, length: int | None = None) -> None:
    if not isinstance(value, bytes):
        raise ProtocolError(f"{what} must be bytes, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise ProtocolError(f"{what} must be {length} bytes, got {len(value)}")


def _check_flag(value: object, what: str) -> None:
    if type(value) is not bool:
        raise ProtocolError(f"{what} must be a bool, got {value!r}")


@dataclass(frozen=True)
class OtHostSetup(Public):
    """|Y|, the per-job pseudo-random-code key K (public parameters), whether the host's
    ``min_intersection`` calls for the count-first fallback (a policy bit), and the
    base-OT sender's A = g^a (an ephemeral public key; the host sends the κ base OTs)."""

    count: int
    code_key: bytes
    count_first: bool = False
    base_ot_setup: bytes = b""

    def __post_init__(self) -> None:
        _check_count(self.count, "OtHostSetup.count")
        _check_bytes(self.code_key, "OtHostSetup.code_key", _KEY_BYTES)
        _check_flag(self.count_first, "OtHostSetup.count_first")
        _check_bytes(self.base_ot_setup, "OtHostSetup.base_ot_setup")

    def disclosed(self) -> dict[str, Any]:
        return {"set_size": self.count, "count_first": self.count_first}


@dataclass(frozen=True)
class OtGuestSetup(Public):
    """|X|, the cuckoo table size and seed, and whether the guest needs count-first.

    Public: the size and the table size (a function of it) are disclosed;
    the seed is uniform up to 2^-40 (see :mod:`.cuckoo`); ``count_first`` says
    whether the guest's ``min_intersection`` calls for the count-first
    fallback (a policy bit).
    """

    count: int
    bins: int
    cuckoo_seed: bytes
    count_first: bool = False

    def __post_init__(self) -> None:
        _check_count(self.count, "OtGuestSetup.count")
        _check_count(self.bins, "OtGuestSetup.bins")
        _check_bytes(self.cuckoo_seed, "OtGuestSetup.cuckoo_seed", 16)
        _check_flag(self.count_first, "OtGuestSetup.count_first")

    def disclosed(self) -> dict[str, Any]:
        return {"set_size": self.count, "bins": self.bins, "count_first": self.count_first}


@dataclass(frozen=True)
class BaseOtElements(Masked):
    """The guest's κ = 128 base-OT elements B_i, concatenated (each uniform in the group whatever Δ_i)."""

    elements: bytes

    def __post_init__(self) -> None:
        _check_bytes(self.elements, "BaseOtElements.elements")


@dataclass(frozen=True)
class CorrectionRows(Masked):
    """Rows of an OT-extension correction matrix U: one chunk of KKRT's (``w/8`` bytes per bin,
    guest → host), or IKNP's (w rows of 16 bytes, host → guest, :mod:`.iknp`).

    Masked: column i is masked by the PRG of the seed of base OT i that the
    receiver of the message never saw.
    """

    rows: bytes

    def __post_init__(self) -> None:
        _check_bytes(self.rows, "CorrectionRows.rows")


@dataclass(frozen=True)
class OprfValues(Masked):
    """One batch of the host's OPRF values, ``ℓ`` bytes each, concatenated.

    Masked: pseudorandom to the guest except for the host's ids that are also
    in the guest's set (which is the output).
    """

    values: bytes

    def __post_init__(self) -> None:
        _check_bytes(self.values, "OprfValues.values")


class OtPsiStep(ProtocolStep):
    """The OT-PSI message table (see the module docstring for the flow)."""

    HOST_SETUP = StepSpec(
        "psi_ot.host_setup", (Role.HOST,), (Role.GUEST,), OtHostSetup,
        "|Y|, the code key and base-OT A; the host's first message",
    )
    GUEST_SETUP = StepSpec(
        "psi_ot.guest_setup", (Role.GUEST,), (Role.HOST,), OtGuestSetup,
        "|X|, cuckoo table size and seed; the guest's first message",
    )
    BASE_OT = StepSpec(
        "psi_ot.base_ot", (Role.GUEST,), (Role.HOST,), BaseOtElements,
        "the 128 base-OT elements B_i (guest = base-OT receiver, choices Δ)",
    )
    OT_EXTENSION = StepSpec(
        "psi_ot.ot_extension", (Role.HOST,), (Role.GUEST,), CorrectionRows,
        "IKNP's U: the 128 base OTs extended to the w random OTs of KKRT (host's choices s)",
    )
    CORRECTIONS = StepSpec(
        "psi_ot.corrections", (Role.GUEST,), (Role.HOST,), CorrectionRows,
        "one message per chunk of bins: rows of U = T0 ⊕ T1 ⊕ C",
    )
    OPRF_VALUES = StepSpec(
        "psi_ot.oprf_values", (Role.HOST,), (Role.GUEST,), OprfValues,
        "one message per batch: the host's 3|Y| OPRF values, shuffled (π)",
    )
    GUEST_MATCHES = StepSpec(
        "psi_ot.guest_matches", (Role.GUEST,), (Role.HOST,), MatchedPositions,
        "positions of the intersection in the OPRF_VALUES stream (reveal BOTH only)",
    )
    # The count-first fallback: ECDH-PSI's own steps, under this table's prefix.
    ECDH_GUEST_SIZE = ecdh_step_copy(PsiStep.GUEST_SIZE, _ECDH_PREFIX)
    ECDH_HOST_SIZE = ecdh_step_copy(PsiStep.HOST_SIZE, _ECDH_PREFIX)
    ECDH_GUEST_BLINDED = ecdh_step_copy(PsiStep.GUEST_BLINDED, _ECDH_PREFIX)
    ECDH_HOST_BLINDED = ecdh_step_copy(PsiStep.HOST_BLINDED, _ECDH_PREFIX)
    ECDH_HOST_DOUBLE_BLINDED = ecdh_step_copy(PsiStep.HOST_DOUBLE_BLINDED, _ECDH_PREFIX)
    ECDH_GUEST_COUNT = ecdh_step_copy(PsiStep.GUEST_COUNT, _ECDH_PREFIX)
    ECDH_HOST_UNSHUFFLE = ecdh_step_copy(PsiStep.HOST_UNSHUFFLE, _ECDH_PREFIX)
    ECDH_GUEST_MATCHES = ecdh_step_copy(PsiStep.GUEST_MATCHES, _ECDH_PREFIX)


#: The steps the count-first fallback runs under.
FALLBACK_STEPS = EcdhSteps(
    OtPsiStep.ECDH_GUEST_SIZE, OtPsiStep.ECDH_HOST_SIZE, OtPsiStep.ECDH_GUEST_BLINDED, OtPsiStep.ECDH_HOST_BLINDED,
    OtPsiStep.ECDH_HOST_DOUBLE_BLINDED, OtPsiStep.ECDH_GUEST_COUNT, OtPsiStep.ECDH_HOST_UNSHUFFLE,
    OtPsiStep.ECDH_GUEST_MATCHES,
)
