"""OT-extension PSI (KKRT16 batched OPRF, semi-honest): the fast balanced PSI mode.

* :mod:`.bits` -- AES-CTR PRG columns and the blocked bit-matrix transpose.
* :mod:`.base_ot` -- Chou–Orlandi base OTs over RFC 3526 group 15 (gmpy2).
* :mod:`.iknp` -- IKNP extension of the 128 base OTs to the w OTs of KKRT.
* :mod:`.aes_hash` -- bulk AES: the id PRF and the correlation-robust row hash.
* :mod:`.kkrt` -- the OT-extension / OPRF layer (code words, U, Q, hashing).
* :mod:`.cuckoo` -- id digests, cuckoo hashing (guest) and simple hashing (host).
* :mod:`.protocol` -- message table ``psi_ot.*``, parameters and both role programs.
"""

from .base_ot import BaseOtReceiver, BaseOtSender, ot_decrypt, ot_encrypt
from .cuckoo import CuckooError, table_size
from .protocol import (
    BaseOtElements,
    CorrectionRows,
    OprfValues,
    OtGuestSetup,
    OtHostSetup,
    OtPsiParams,
    OtPsiPlan,
    OtPsiStep,
    ot_guest_program,
    ot_host_program,
    plan,
)

__all__ = [
    "BaseOtSender",
    "BaseOtReceiver",
    "ot_encrypt",
    "ot_decrypt",
    "CuckooError",
    "table_size",
    "OtPsiStep",
    "OtPsiParams",
    "OtPsiPlan",
    "plan",
    "OtHostSetup",
    "OtGuestSetup",
    "BaseOtElements",
    "CorrectionRows",
    "OprfValues",
    "ot_guest_program",
    "ot_host_program",
]
