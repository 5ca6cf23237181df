"""OT-extension PSI (KKRT16 batched OPRF, semi-honest), both roles in one module.

The guest (OPRF receiver) learns the intersection as rows of its own list;
the host (OPRF sender) learns only |X| (and, with ``mode=Reveal.BOTH``, the
intersection as its own rows, aligned -- the training case).

The exchange
------------
==========================  ===========  ==============  ======================================
step (wire ``psi_ot.*``)    direction    payload         content
==========================  ===========  ==============  ======================================
``HOST_SETUP``              host→guest   OtHostSetup     |Y|, the per-job code key K, whether
                                                         the host needs count-first (Public);
                                                         the host's first message
``GUEST_SETUP``             guest→host   OtGuestSetup    |X|, table size m, cuckoo seed, base-OT
                                                         A = g^a, whether the guest needs
                                                         count-first (Public); the guest's first
``BASE_OT``                 host→guest   BaseOtElements  w elements B_i = g^{b_i}·A^{s_i}
                                                         (Masked: uniform whatever s_i is)
``CORRECTIONS``             guest→host   CorrectionRows  per chunk of ``chunk_bins`` bins: rows of
                                                         U = T0 ⊕ T1 ⊕ C (Masked by PRG(k^{1-s}))
``OPRF_VALUES``             host→guest   OprfValues      per batch of ``batch_size``: the 3|Y|
                                                         values F_{h_f(y)}(y, f), ℓ bytes each, in
                                                         the order of a permutation π the host
                                                         draws (Masked: pseudorandom off the
                                                         intersection)
``GUEST_MATCHES``           guest→host   MatchedPositions  BOTH only: for each intersection
                                                         element, in increasing guest row order,
                                                         its position in the OPRF_VALUES stream
``ECDH_*``                  both ways    (ECDH's)        the count-first fallback below: the
                                                         steps of :class:`~protocols.psi.protocol.
                                                         PsiStep` under ``psi_ot.ecdh_*`` names
==========================  ===========  ==============  ======================================

Both roles send their setup before receiving anything. The host sends its
base-OT reply once it has A; the guest then streams U chunk by chunk, and the
host turns each chunk into Q rows (q_j = t_j ⊕ (C_j ∧ s)) and evaluates the
OPRF on its entries whose bin falls in the chunk (simple hashing: each y in
all 3 of its bins, tagged with the hash index f). It sends the 3|Y| values
only once all are computed, shuffled by π: any value sent before the last
chunk would tell the guest which bins (a function of Y) it came from.

Minimum intersection: the count-first fallback
----------------------------------------------
A party whose ``min_intersection`` is positive must see |X ∩ Y| and may refuse
before anything locates the intersection. This protocol cannot show the count
alone: the guest, as the OPRF receiver, holds F(x) for each of its own rows, so
any host value it can count as a match it can also place on the row that
matched (the naive cardinality variant leaks the rows). A cardinality-only OT
variant would need an oblivious shuffle of the OPRF outputs (circuit-PSI
machinery), which this module does not have.

So each setup says whether its sender needs the check (``count_first``: its
minimum is positive; a policy bit, not data), and if either does, both roles
leave OT right after the setups and run the count-first ECDH-PSI of
:mod:`protocols.psi.protocol` (``PsiParams(count_first=True)``), under the
``psi_ot.ecdh_*`` copies of its steps (the relay admits a job's own table
only). Running ECDH's count first and then OT would do ECDH's exponentiations
*and* OT's work, when one extra round trip after the count turns ECDH's run
into the full PSI. Cost: ECDH's instead of OT's -- 2·(|X| + |Y|) scalar
multiplications, about ten times OT's time at 2^20 (README, PSI benchmark) --
plus the setups already sent and the guest's cuckoo hashing. With both
minimums at 0 nothing changes: OT runs, and reveals what it always did.

Parameters (:class:`OtPsiParams`, checked by :func:`plan`)
-----------------------------------------------------------
* computational security κ = 128: base-OT seeds, AES keys, code distance.
* code width w (default 448; a multiple of 64): the host evaluates 3|Y|
  inputs, each against one guest code word; all their distances are ≥ κ
  except with probability 3|Y|·P[Bin(w,½) < κ], required ≤ 2^-σ. w = 448
  gives 2^-66.5 per pair, enough up to |Y| ≈ 2^24.9; w = 512 gives 2^-102.
  The base OTs are w Chou–Orlandi OTs (:mod:`.base_ot`, RFC 3526 group 15,
  3072-bit, for 128-bit security; group 14 on request).
* statistical security σ = 40: cuckoo failure (:mod:`.cuckoo`: ≤ 2^-40 by a
  union bound up to 2^14 ids, by the KKRT16/PSWW18 1.27n estimate above) and
  false positives: the guest compares |X| values with 3|Y| values, each pair
  of distinct inputs colliding with probability 2^-8ℓ, so the output length
  is ℓ = ⌈(σ + log2(|X|·3|Y|)) / 8⌉ bytes (11 bytes at 2^20 × 2^20), and the
  intersection is exact except with probability ≤ 2^-σ (plus 2^-128 per id
  pair for a 128-bit digest collision).

What each side learns (semi-honest)
-----------------------------------
* host: |X| and m (a function of |X|), the cuckoo seed (uniform up to 2^-40,
  see :mod:`.cuckoo`), U (pseudorandom: every column is masked by a PRG
  output on the seed it did not choose). With BOTH, the intersection as its
  rows in guest order, as in the ECDH mode.
* guest: |Y|, K, the B_i (uniform), and 3|Y| OPRF values in a random order:
  for y ∉ X they are pseudorandom (code distance ≥ κ, H a random oracle), so
  the view is simulatable from the intersection and |Y|.

Memory (per role, at n = 2^20): guest: digests (16 B/id), cuckoo table
(9 B/bin), own values and 3|Y| host values (ℓ B each); host: digests, bin
positions and sort order (~48 B/id), its 3|Y| values (ℓ B each, kept until
shuffled and sent). One chunk of bit matrices at a time (w/8·chunk_bins·~6 B).
Far below 1 GB at 2^20.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ...core import MapFn, Masked, Progress, ProtocolStep, Public, RandomSource, Recv, Role, RoleProgram, Send, StepSpec, check_unique_ids
from ...errors import BudgetError, ProtocolError
from ..protocol import EcdhSteps, MatchedPositions, PsiParams, PsiResult, PsiStep, Reveal, ecdh_step_copy
from ..protocol import guest_program as ecdh_guest_program
from ..protocol import host_program as ecdh_host_program
from .base_ot import GROUP14_P, GROUP15_P, BaseOtReceiver, BaseOtSender, element_bytes
from .cuckoo import UNION_BOUND_MAX, CuckooError, bin_positions, cuckoo_insert, failure_bound_log2, id_digests, table_size
from .kkrt import OprfReceiver, OprfSender, code_failure_log2, codewords, hash_rows

__all__ = [
    "OtGuestSetup",
    "OtHostSetup",
    "BaseOtElements",
    "CorrectionRows",
    "OprfValues",
    "OtPsiStep",
    "OtPsiParams",
    "OtPsiPlan",
    "plan",
    "FALLBACK_STEPS",
    "ot_guest_program",
    "ot_host_program",
]

MAX_SET_SIZE = 1 << 32
CUCKOO_ATTEMPTS = 8
_ECDH_PREFIX = "psi_ot.ecdh_"
_KEY_BYTES = 16
_GROUPS = {14: GROUP14_P, 15: GROUP15_P}


def _check_count(value: object, what: str) -> None:
    if type(value) is not int or not 0 <= value <= MAX_SET_SIZE:
        raise ProtocolError(f"{what} must be an int in [0, 2^32], got {value!r}")


def _check_bytes(value: object, what: str, length: int | None = None) -> None:
    if not isinstance(value, bytes):
        raise ProtocolError(f"{what} must be bytes, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise ProtocolError(f"{what} must be {length} bytes, got {len(value)}")


# --------------------------------------------------------------------------- payloads


def _check_flag(value: object, what: str) -> None:
    if type(value) is not bool:
        raise ProtocolError(f"{what} must be a bool, got {value!r}")


@dataclass(frozen=True)
class OtHostSetup(Public):
    """|Y|, the per-job pseudo-random-code key K (public parameters), and whether the
    host's ``min_intersection`` calls for the count-first fallback (a policy bit)."""

    count: int
    code_key: bytes
    count_first: bool = False

    def __post_init__(self) -> None:
        _check_count(self.count, "OtHostSetup.count")
        _check_bytes(self.code_key, "OtHostSetup.code_key", _KEY_BYTES)
        _check_flag(self.count_first, "OtHostSetup.count_first")

    def disclosed(self) -> dict[str, Any]:
        return {"set_size": self.count, "count_first": self.count_first}


@dataclass(frozen=True)
class OtGuestSetup(Public):
    """|X|, the cuckoo table size and seed, and the base-OT sender's A = g^a.

    Public: the size and the table size (a function of it) are disclosed;
    the seed is uniform up to 2^-40 (see :mod:`.cuckoo`); A is an ephemeral
    public key; ``count_first`` says whether the guest's ``min_intersection``
    calls for the count-first fallback (a policy bit).
    """

    count: int
    bins: int
    cuckoo_seed: bytes
    base_ot_setup: bytes
    count_first: bool = False

    def __post_init__(self) -> None:
        _check_count(self.count, "OtGuestSetup.count")
        _check_count(self.bins, "OtGuestSetup.bins")
        _check_bytes(self.cuckoo_seed, "OtGuestSetup.cuckoo_seed", 16)
        _check_bytes(self.base_ot_setup, "OtGuestSetup.base_ot_setup")
        _check_flag(self.count_first, "OtGuestSetup.count_first")

    def disclosed(self) -> dict[str, Any]:
        return {"set_size": self.count, "bins": self.bins, "count_first": self.count_first}


@dataclass(frozen=True)
class BaseOtElements(Masked):
    """The host's w base-OT elements B_i, concatenated (each uniform in the group whatever s_i)."""

    elements: bytes

    def __post_init__(self) -> None:
        _check_bytes(self.elements, "BaseOtElements.elements")


@dataclass(frozen=True)
class CorrectionRows(Masked):
    """One chunk of the correction matrix U, row-major (``w/8`` bytes per bin).

    Masked: column i is masked by PRG(k_i^{1-s_i}), a seed the host never saw.
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
        "|Y| and the code key; the host's first message",
    )
    GUEST_SETUP = StepSpec(
        "psi_ot.guest_setup", (Role.GUEST,), (Role.HOST,), OtGuestSetup,
        "|X|, cuckoo table size and seed, base-OT A; the guest's first message",
    )
    BASE_OT = StepSpec(
        "psi_ot.base_ot", (Role.HOST,), (Role.GUEST,), BaseOtElements,
        "the w base-OT elements B_i (host = base-OT receiver, choices s)",
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


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class OtPsiParams:
    """Job parameters both roles must agree on.

    Attributes:
        salt: per-job salt (≥ 16 bytes), hashed into every id digest.
        mode: ``Reveal.GUEST`` (default: only the guest learns the
            intersection) or ``Reveal.BOTH`` (aligned rows on both sides).
            CARDINALITY is not offered by this mode (use ECDH).
        code_width: w, bits of the pseudo-random code = number of base OTs;
            a multiple of 64, checked against |Y| by :func:`plan`.
        statistical_security: σ, bits (cuckoo failure, false positives, code).
        computational_security: κ; only 128 is supported (AES-128 seeds).
        chunk_bins: bins per CORRECTIONS message (a multiple of 128).
        batch_size: values per OPRF_VALUES message.
        base_ot_group: RFC 3526 group of the base OTs: 15 (3072-bit, 128-bit
            security, the default) or 14 (2048-bit, 112-bit security per NIST
            SP 800-57; ~0.45 s faster per job).

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
        if not isinstance(self.salt, bytes) or len(self.salt) < 16:
            raise ProtocolError("PSI salt must be at least 16 bytes")
        try:
            mode = Reveal(self.mode)
        except ValueError:
            raise ProtocolError(f"unknown PSI mode {self.mode!r}") from None
        if mode is Reveal.CARDINALITY:
            raise ProtocolError("the OT-PSI mode offers reveal GUEST or BOTH; use ECDH for CARDINALITY")
        object.__setattr__(self, "mode", mode)
        for name in ("code_width", "statistical_security", "computational_security", "chunk_bins", "batch_size"):
            v = getattr(self, name)
            if type(v) is not int or v < 1:
                raise ProtocolError(f"OtPsiParams.{name} must be a positive int, got {v!r}")
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
        bytes_guest_to_host=bins * w // 8 + group + 40,
        bytes_host_to_guest=3 * n_host * ell + w * group + 24,
    )


# --------------------------------------------------------------------------- helpers


def _permutation(n: int, seed: bytes) -> np.ndarray:
    """Uniform permutation of range(n) (int64), drawn from a 32-byte secret ``seed``.

    Sorts n 64-bit AES-CTR keys; if two keys tie (probability ≤ n²·2^-65),
    all keys are redrawn, so the result is exactly uniform given the PRG.
    """
    for attempt in range(64):
        nonce = attempt.to_bytes(16, "big")
        stream = Cipher(algorithms.AES(seed), modes.CTR(nonce)).encryptor().update(bytes(8 * n))
        keys = np.frombuffer(stream, dtype="<u8")
        order = np.argsort(keys).astype(np.int64)
        if n < 2 or not np.any(keys[order[1:]] == keys[order[:-1]]):
            return order
    raise ProtocolError("could not draw a permutation")  # probability < 2^-1000


def _recv(step: OtPsiStep):  # type: ignore[no-untyped-def]
    payload = yield Recv(step)
    if not isinstance(payload, step.spec.payload):
        raise ProtocolError(f"step {step.wire} expects {step.spec.payload.__name__}, got {type(payload).__name__}")
    return payload


def _n_batches(n: int, size: int) -> int:
    return -(-n // size)


def _bits(rng: RandomSource, n: int) -> list[int]:
    v = rng.getrandbits(n)
    return [(v >> i) & 1 for i in range(n)]


def _check_minimum(minimum: object) -> None:
    if type(minimum) is not int or minimum < 0:
        raise ProtocolError(f"min_intersection must be a non-negative int, got {minimum!r}")


def _fallback_params(params: OtPsiParams) -> PsiParams:
    """The count-first ECDH-PSI both roles run when either needs its minimum checked first."""
    return PsiParams(salt=params.salt, reveal=params.mode, count_first=True)


# --------------------------------------------------------------------------- roles


def ot_guest_program(
    ids: Sequence[str], params: OtPsiParams, rng: RandomSource, *, map_fn: MapFn | None = None,
    min_intersection: int = 0,
) -> RoleProgram:
    """The guest's side of the OT-PSI (OPRF receiver; learns the intersection).

    Args:
        ids: normalized, duplicate-free ids; row i is ``ids[i]``.
        params: the job's parameters (same as the host's).
        rng: source of the cuckoo seed and the base-OT secret (``getrandbits``).
        map_fn: optional pool ``map`` for hashing rows; the result never depends on it.
        min_intersection: the guest's own minimum. If it or the host's is
            positive, both run the count-first ECDH fallback (module docstring).

    Returns (as the generator's return value):
        :class:`~protocols.psi.protocol.PsiResult` with the guest's rows in the
        intersection, increasing.

    Raises:
        DataError: on duplicate ids.
        IntersectionTooSmall: in the fallback, when the count is below either
            party's minimum (the guest then holds no row of the intersection).
        CuckooError: if cuckoo insertion fails for :data:`CUCKOO_ATTEMPTS` seeds.
        BudgetError: if the parameters cannot reach σ for these sizes.
        ProtocolError / CryptoError: on a malformed host message.
    """
    check_unique_ids(ids, Role.GUEST)
    _check_minimum(min_intersection)
    n, w, w8 = len(ids), params.code_width, params.code_width // 8
    yield Progress("psi_ot", 0, 1, {"phase": "hash"})
    digests = id_digests(params.salt, ids)
    bins = table_size(n, params.statistical_security)
    for _ in range(CUCKOO_ATTEMPTS):
        seed = rng.getrandbits(128).to_bytes(16, "big")
        try:
            table, func = cuckoo_insert(bin_positions(digests, seed, bins), bins)
            break
        except CuckooError:
            continue
    else:
        raise CuckooError(f"cuckoo insertion of {n} ids into {bins} bins failed for {CUCKOO_ATTEMPTS} seeds")
    base = BaseOtSender(rng, params.modulus)
    yield Send(OtPsiStep.GUEST_SETUP, OtGuestSetup(n, bins, seed, base.setup, count_first=min_intersection > 0))

    host = yield from _recv(OtPsiStep.HOST_SETUP)
    if min_intersection > 0 or host.count_first:
        result: PsiResult = yield from ecdh_guest_program(
            ids, _fallback_params(params), rng, map_fn=map_fn, min_intersection=min_intersection, steps=FALLBACK_STEPS)
        return result
    n_host = host.count
    ell = plan(params, n, n_host).value_bytes
    reply = yield from _recv(OtPsiStep.BASE_OT)
    size = element_bytes(params.modulus)
    if len(reply.elements) != w * size:
        raise ProtocolError(f"{OtPsiStep.BASE_OT.wire} carries {len(reply.elements)} bytes, expected {w * size}")
    receiver = OprfReceiver(base.keys([reply.elements[i * size : (i + 1) * size] for i in range(w)]))

    # Stream U chunk by chunk; keep H(j, t_j) for the occupied bins, by guest row.
    own = np.zeros((n, ell), dtype=np.uint8)
    occupied = np.flatnonzero(table >= 0)
    chunk = params.chunk_bins
    for lo in range(0, bins, chunk):
        hi = min(bins, lo + chunk)
        a, b = np.searchsorted(occupied, [lo, hi])
        sel = occupied[a:b]
        items = table[sel]
        code = np.zeros((hi - lo, w8), dtype=np.uint8)
        code[sel - lo] = codewords(host.code_key, digests[items], func[sel], w)
        u, t0 = receiver.chunk(lo, code)
        yield Send(OtPsiStep.CORRECTIONS, CorrectionRows(u.tobytes()))
        own[items] = hash_rows(sel, t0[sel - lo], ell, map_fn)
        yield Progress("psi_ot", hi, bins, {"phase": "guest_corrections"})

    total = 3 * n_host
    theirs = np.empty((total, ell), dtype=np.uint8)
    for k in range(_n_batches(total, params.batch_size)):
        lo, hi = k * params.batch_size, min(total, (k + 1) * params.batch_size)
        msg = yield from _recv(OtPsiStep.OPRF_VALUES)
        if len(msg.values) != (hi - lo) * ell:
            raise ProtocolError(f"{OtPsiStep.OPRF_VALUES.wire} batch {k} has {len(msg.values)} bytes, expected {(hi - lo) * ell}")
        theirs[lo:hi] = np.frombuffer(msg.values, dtype=np.uint8).reshape(hi - lo, ell)

    rows, positions = _match(own, theirs)
    if params.mode is Reveal.BOTH:
        yield Send(OtPsiStep.GUEST_MATCHES, MatchedPositions(tuple(int(p) for p in positions)))
    yield Progress("psi_ot", bins, bins, {"phase": "done"})
    return PsiResult(rows=tuple(int(r) for r in rows), size=len(rows))


def _prefix(values: np.ndarray) -> np.ndarray:
    """First 8 bytes of each value (zero-padded) as uint64."""
    k, ell = values.shape
    pad = np.zeros((k, 8), dtype=np.uint8)
    m = min(8, ell)
    pad[:, :m] = values[:, :m]
    return pad.view("<u8").reshape(k)


def _match(own: np.ndarray, theirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Guest rows whose value is among ``theirs`` (increasing), and each one's position there.

    Sort the host values by a uint64 prefix, binary-search each guest prefix,
    then compare the full ℓ bytes of every candidate (vectorized); a prefix
    shared by several host values (probability ~ 3|Y|²·2^-65) falls back to
    scanning that run.
    """
    empty = np.zeros(0, dtype=np.int64)
    if len(own) == 0 or len(theirs) == 0:
        return empty, empty
    po, pt = _prefix(own), _prefix(theirs)
    order = np.argsort(pt)
    spt = np.append(pt[order], np.uint64(0))  # sentinel so left + 1 is always in range
    og = np.argsort(po)
    left = np.empty(len(po), dtype=np.int64)
    left[og] = np.searchsorted(spt[:-1], po[og], side="left")  # sorted queries: cache friendly
    found = spt[left] == po
    found &= left < len(pt)
    cand = np.flatnonzero(found)
    if not cand.size:
        return empty, empty
    pos = order[left[cand]]
    full = np.all(theirs[pos] == own[cand], axis=1)
    nxt = left[cand] + 1
    single = (nxt >= len(pt)) | (spt[nxt] != po[cand])
    rows, positions = list(cand[full].tolist()), list(pos[full].tolist())
    for i in cand[~full & ~single].tolist():  # rare: several host values share this prefix
        right = int(np.searchsorted(spt[:-1], po[i], side="right"))
        for j in order[left[i] : right].tolist():
            if theirs[j].tobytes() == own[i].tobytes():
                rows.append(i)
                positions.append(j)
                break
    if len(rows) == 0:
        return empty, empty
    r, p = np.asarray(rows, dtype=np.int64), np.asarray(positions, dtype=np.int64)
    k = np.argsort(r, kind="stable")
    return r[k], p[k]


def ot_host_program(
    ids: Sequence[str], params: OtPsiParams, rng: RandomSource, *, map_fn: MapFn | None = None,
    min_intersection: int = 0,
) -> RoleProgram:
    """The host's side of the OT-PSI (OPRF sender; learns |X| only, or its rows with BOTH).

    Args:
        ids: normalized, duplicate-free ids; row i is ``ids[i]``.
        params: the job's parameters (same as the guest's).
        rng: source of the code key, the base-OT choices s and secrets, and π.
        map_fn: optional pool ``map`` for hashing rows.
        min_intersection: the host's own minimum. If it or the guest's is
            positive, both run the count-first ECDH fallback (module docstring).

    Returns (as the generator's return value):
        ``PsiResult(rows=(), size=-1)`` in GUEST mode; with BOTH the host's
        rows aligned with the guest's.

    Raises:
        DataError: on duplicate ids.
        IntersectionTooSmall: in the fallback, when the count is below either
            party's minimum (nothing locating the intersection is then sent).
        BudgetError: if the parameters cannot reach σ for these sizes.
        ProtocolError / CryptoError: on a malformed guest message.
    """
    check_unique_ids(ids, Role.HOST)
    _check_minimum(min_intersection)
    n, w, w8 = len(ids), params.code_width, params.code_width // 8
    code_key = rng.getrandbits(128).to_bytes(16, "big")
    yield Send(OtPsiStep.HOST_SETUP, OtHostSetup(n, code_key, count_first=min_intersection > 0))
    yield Progress("psi_ot", 0, 1, {"phase": "hash"})
    digests = id_digests(params.salt, ids)

    guest = yield from _recv(OtPsiStep.GUEST_SETUP)
    if min_intersection > 0 or guest.count_first:
        del digests
        result: PsiResult = yield from ecdh_host_program(
            ids, _fallback_params(params), rng, map_fn=map_fn, min_intersection=min_intersection, steps=FALLBACK_STEPS)
        return result
    ell = plan(params, guest.count, n).value_bytes
    bins = guest.bins
    if bins != table_size(guest.count, params.statistical_security):
        raise ProtocolError(f"{OtPsiStep.GUEST_SETUP.wire}: {bins} bins is not the table size for {guest.count} ids")
    choices = _bits(rng, w)
    base = BaseOtReceiver(choices, guest.base_ot_setup, rng, params.modulus)
    yield Send(OtPsiStep.BASE_OT, BaseOtElements(b"".join(base.elements)))
    sender = OprfSender(choices, base.keys)

    # Simple hashing: entry e = 3·row + f sits in bin positions[row, f].
    flat = bin_positions(digests, guest.cuckoo_seed, bins).reshape(-1)
    # Group entries by chunk (order within a chunk does not matter): a radix sort on small keys.
    chunk = params.chunk_bins
    n_chunks = -(-bins // chunk)
    key_type = np.uint16 if n_chunks <= 1 << 16 else np.uint32
    order = np.argsort((flat // chunk).astype(key_type), kind="stable")
    chunk_start = np.searchsorted((flat // chunk)[order], np.arange(n_chunks + 1))
    total = 3 * n
    perm = _permutation(total, rng.getrandbits(256).to_bytes(32, "big"))  # stream position p holds entry perm[p]
    where = np.empty(total, dtype=np.int64)
    where[perm] = np.arange(total, dtype=np.int64)
    out = np.empty((total, ell), dtype=np.uint8)
    for c, lo in enumerate(range(0, bins, chunk)):
        hi = min(bins, lo + chunk)
        msg = yield from _recv(OtPsiStep.CORRECTIONS)
        if len(msg.rows) != (hi - lo) * w8:
            raise ProtocolError(f"{OtPsiStep.CORRECTIONS.wire} chunk at bin {lo} has {len(msg.rows)} bytes, expected {(hi - lo) * w8}")
        q = sender.chunk(lo, np.frombuffer(msg.rows, dtype=np.uint8).reshape(hi - lo, w8))
        es = order[chunk_start[c] : chunk_start[c + 1]]
        jb = flat[es]
        code = codewords(code_key, digests[es // 3], (es % 3).astype(np.int8), w)
        out[where[es]] = hash_rows(jb, sender.evaluate(q[jb - lo], code), ell, map_fn)
        yield Progress("psi_ot", hi, bins, {"phase": "host_oprf"})

    size = params.batch_size
    for k in range(_n_batches(total, size)):
        yield Send(OtPsiStep.OPRF_VALUES, OprfValues(out[k * size : (k + 1) * size].tobytes()))
    del out

    if params.mode is not Reveal.BOTH:
        yield Progress("psi_ot", bins, bins, {"phase": "done"})
        return PsiResult(rows=(), size=-1)
    matches = yield from _recv(OtPsiStep.GUEST_MATCHES)
    positions = matches.positions
    if len(positions) > min(guest.count, n):
        raise ProtocolError(f"{OtPsiStep.GUEST_MATCHES.wire} lists more matches than either set holds")
    if any(p >= total for p in positions):
        raise ProtocolError(f"{OtPsiStep.GUEST_MATCHES.wire} has a position beyond {total} values")
    rows = tuple(int(perm[p]) // 3 for p in positions)
    if len(set(rows)) != len(rows):
        raise ProtocolError(f"{OtPsiStep.GUEST_MATCHES.wire} names a host row twice")
    yield Progress("psi_ot", bins, bins, {"phase": "done"})
    return PsiResult(rows=rows, size=len(rows))
