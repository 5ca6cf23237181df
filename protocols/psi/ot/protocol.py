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
                                                         the host needs count-first (Public),
                                                         base-OT A = g^a; the host's first message
``GUEST_SETUP``             guest→host   OtGuestSetup    |X|, table size m, cuckoo seed, whether
                                                         the guest needs count-first (Public);
                                                         the guest's first message
``BASE_OT``                 guest→host   BaseOtElements  128 elements B_i = g^{b_i}·A^{Δ_i}
                                                         (Masked: uniform whatever Δ_i is)
``OT_EXTENSION``            host→guest   CorrectionRows  IKNP's U, w rows of 16 bytes: the 128
                                                         base OTs extended to the w random OTs
                                                         of KKRT (Masked, :mod:`.iknp`)
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
                                                         steps of :class:`~fedcredit.protocols.psi.protocol.
                                                         PsiStep` under ``psi_ot.ecdh_*`` names
==========================  ===========  ==============  ======================================

Both roles send their setup before receiving anything. The guest answers
the host's A with its 128 base-OT elements; the host extends the base OTs by
IKNP (:mod:`.iknp`) to the w OTs KKRT needs, in which the guest holds both
seeds, and sends IKNP's U; the guest then streams U chunk by chunk, and the
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
:mod:`fedcredit.protocols.psi.protocol` (``PsiParams(count_first=True)``), under the
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
  The w random OTs come from κ = 128 Chou–Orlandi base OTs (:mod:`.base_ot`,
  RFC 3526 group 15, 3072-bit, for 128-bit security; group 14 on request),
  host = base-OT sender, extended once by IKNP (:mod:`.iknp`, the argument
  is there).
* hashing: id digests are an AES CBC-MAC under a salt-derived key and H is
  a chained fixed-key-AES MMO hash, both in bulk (:mod:`.aes_hash`, where
  the arguments are written out).
* statistical security σ = 40: cuckoo failure (:mod:`.cuckoo`: ≤ 2^-40 by a
  union bound up to 2^14 ids, by the KKRT16/PSWW18 1.27n estimate above) and
  false positives: the guest compares |X| values with 3|Y| values, each pair
  of distinct inputs colliding with probability 2^-8ℓ, so the output length
  is ℓ = ⌈(σ + log2(|X|·3|Y|)) / 8⌉ bytes (11 bytes at 2^20 × 2^20), and the
  intersection is exact except with probability ≤ 2^-σ (plus 2^-128 per id
  pair for a 128-bit digest collision).

What each side learns (semi-honest)
-----------------------------------
* host: |X| and m (a function of |X|), the B_i (computationally uniform),
  the cuckoo seed (uniform up to 2^-40,
  see :mod:`.cuckoo`), U (pseudorandom: every column is masked by a PRG
  output on the seed it did not choose). With BOTH, the intersection as its
  rows in guest order, as in the ECDH mode.
* guest: |Y|, K, A (an ephemeral public key), IKNP's U (pseudorandom: each
  column masked by the PRG of the base-OT seed it did not choose), and 3|Y|
  OPRF values in a random order: for y ∉ X they are pseudorandom (code
  distance ≥ κ, H correlation robust), so the view is simulatable from the
  intersection and |Y|.

Memory (per role, at n = 2^20): guest: digests (16 B/id), cuckoo table
(9 B/bin), own values and 3|Y| host values (ℓ B each); host: digests, bin
positions and sort order (~48 B/id), its 3|Y| values (ℓ B each, kept until
shuffled and sent). One chunk of bit matrices at a time (w/8·chunk_bins·~6 B).
Far below 1 GB at 2^20.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ...core import MapFn, Progress, RandomSource, Role, RoleProgram, Send, batches, check_unique_ids, n_batches, prg_permutation, recv_typed
from ...errors import ProtocolError
from ..count_first import check_minimum
from ..messages import MatchedPositions, PsiParams, PsiResult, Reveal
from ..protocol import guest_program as ecdh_guest_program
from ..protocol import host_program as ecdh_host_program
from .base_ot import BaseOtReceiver, BaseOtSender, element_bytes
from .cuckoo import CuckooError, bin_positions, cuckoo_insert, id_digests, table_size
from .iknp import BASE_OTS, extension_receiver, extension_sender
from .kkrt import OprfReceiver, OprfSender, codewords, hash_rows, row_hash_key
from .messages import FALLBACK_STEPS, BaseOtElements, CorrectionRows, OprfValues, OtGuestSetup, OtHostSetup, OtPsiStep
from .params import OtPsiParams, OtPsiPlan, plan

# The payloads and the step table live in .messages, the parameters and the plan in .params; they are
# listed here too, so this module stays the protocol's one entry.
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

CUCKOO_ATTEMPTS = 8


# --------------------------------------------------------------------------- helpers


def _bits(rng: RandomSource, n: int) -> list[int]:
    v = rng.getrandbits(n)
    return [(v >> i) & 1 for i in range(n)]


def _check_unique(digests: np.ndarray, role: Role) -> None:
    """Refuse repeated ids, found as repeated 128-bit digests (one sort of a uint64 per id, instead of a set of strings).

    Equal ids have equal digests; distinct ids share one with probability ~2^-128 per pair (:mod:`.aes_hash`).

    Raises:
        DataError: as :func:`~fedcredit.protocols.core.check_unique_ids`.
    """
    if len(digests) < 2:
        return
    words = digests.view("<u8").reshape(-1, 2)
    first = np.sort(words[:, 0])
    same = first[1:] == first[:-1]
    if not same.any():
        return
    suspects = np.flatnonzero(np.isin(words[:, 0], first[1:][same]))
    if len({bytes(digests[i]) for i in suspects.tolist()}) != len(suspects):
        check_unique_ids(["same"] * 2, role)  # raises the one DataError of every PSI mode


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
        rng: source of the cuckoo seed, the base-OT choices Δ and secrets (``getrandbits``).
        map_fn: pool ``map``; used only by the count-first ECDH fallback (OT hashing runs in bulk AES in-process).
        min_intersection: the guest's own minimum. If it or the host's is
            positive, both run the count-first ECDH fallback (module docstring).

    Returns (as the generator's return value):
        :class:`~fedcredit.protocols.psi.protocol.PsiResult` with the guest's rows in the
        intersection, increasing.

    Raises:
        DataError: on duplicate ids.
        IntersectionTooSmall: in the fallback, when the count is below either
            party's minimum (the guest then holds no row of the intersection).
        CuckooError: if cuckoo insertion fails for :data:`CUCKOO_ATTEMPTS` seeds.
        BudgetError: if the parameters cannot reach σ for these sizes.
        ProtocolError / CryptoError: on a malformed host message.
    """
    check_minimum(min_intersection, True)  # a positive minimum runs the count-first fallback
    n, w, w8 = len(ids), params.code_width, params.code_width // 8
    yield Progress("psi_ot", 0, 1, {"phase": "hash"})
    digests = id_digests(params.salt, ids)
    _check_unique(digests, Role.GUEST)
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
    yield Send(OtPsiStep.GUEST_SETUP, OtGuestSetup(n, bins, seed, count_first=min_intersection > 0))

    host = yield from recv_typed(OtPsiStep.HOST_SETUP, OtHostSetup)
    if min_intersection > 0 or host.count_first:
        result: PsiResult = yield from ecdh_guest_program(
            ids, _fallback_params(params), rng, map_fn=map_fn, min_intersection=min_intersection, steps=FALLBACK_STEPS)
        return result
    n_host = host.count
    ell = plan(params, n, n_host).value_bytes
    size = element_bytes(params.modulus)
    if len(host.base_ot_setup) != size:
        raise ProtocolError(f"{OtPsiStep.HOST_SETUP.wire}: the base-OT setup is {len(host.base_ot_setup)} bytes, expected {size}")
    delta = _bits(rng, BASE_OTS)  # the guest is the base-OT receiver, with choices Δ (IKNP's secret)
    base = BaseOtReceiver(delta, host.base_ot_setup, rng, params.modulus)
    yield Send(OtPsiStep.BASE_OT, BaseOtElements(b"".join(base.elements)))
    ext = yield from recv_typed(OtPsiStep.OT_EXTENSION, CorrectionRows)
    hkey = row_hash_key(host.code_key)
    receiver = OprfReceiver(extension_sender(base.keys, delta, ext.rows, w))

    # Stream U chunk by chunk; keep H(j, t_j) for the occupied bins, by guest row.
    own = np.zeros((n, ell), dtype=np.uint8)
    occupied = np.flatnonzero(table >= 0)
    chunk = params.chunk_bins
    for _, lo, hi in batches(bins, chunk):
        a, b = np.searchsorted(occupied, [lo, hi])
        sel = occupied[a:b]
        items = table[sel]
        code = np.zeros((hi - lo, w8), dtype=np.uint8)
        code[sel - lo] = codewords(host.code_key, digests[items], func[sel], w)
        u, t0 = receiver.chunk(lo, code)
        yield Send(OtPsiStep.CORRECTIONS, CorrectionRows(u.tobytes()))
        own[items] = hash_rows(hkey, sel, t0[sel - lo], ell)
        yield Progress("psi_ot", hi, bins, {"phase": "guest_corrections"})

    total = 3 * n_host
    theirs = np.empty((total, ell), dtype=np.uint8)
    for k, lo, hi in batches(total, params.batch_size):
        msg = yield from recv_typed(OtPsiStep.OPRF_VALUES, OprfValues)
        if len(msg.values) != (hi - lo) * ell:
            raise ProtocolError(f"{OtPsiStep.OPRF_VALUES.wire} batch {k} has {len(msg.values)} bytes, expected {(hi - lo) * ell}")
        theirs[lo:hi] = np.frombuffer(msg.values, dtype=np.uint8).reshape(hi - lo, ell)

    rows, positions = _match(own, theirs)
    if params.mode is Reveal.BOTH:
        yield Send(OtPsiStep.GUEST_MATCHES, MatchedPositions(tuple(positions.tolist())))
    yield Progress("psi_ot", bins, bins, {"phase": "done"})
    return PsiResult(rows=tuple(rows.tolist()), size=len(rows))


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
        rng: source of the code key, the base-OT secret, the extended choices s, and π.
        map_fn: pool ``map``; used only by the count-first ECDH fallback.
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
    check_minimum(min_intersection, True)  # a positive minimum runs the count-first fallback
    n, w, w8 = len(ids), params.code_width, params.code_width // 8
    yield Progress("psi_ot", 0, 1, {"phase": "hash"})
    digests = id_digests(params.salt, ids)
    _check_unique(digests, Role.HOST)  # before anything is sent
    code_key = rng.getrandbits(128).to_bytes(16, "big")
    base = BaseOtSender(rng, params.modulus)  # the host is the base-OT sender: A goes out in its first message
    yield Send(OtPsiStep.HOST_SETUP, OtHostSetup(n, code_key, count_first=min_intersection > 0, base_ot_setup=base.setup))

    guest = yield from recv_typed(OtPsiStep.GUEST_SETUP, OtGuestSetup)
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
    hkey = row_hash_key(code_key)

    # Simple hashing: entry e = 3·row + f sits in bin positions[row, f].
    flat = bin_positions(digests, guest.cuckoo_seed, bins).reshape(-1)
    # Group entries by chunk (order within a chunk does not matter): a radix sort on small keys.
    chunk = params.chunk_bins
    n_chunks = n_batches(bins, chunk)
    key_type = np.uint16 if n_chunks <= 1 << 16 else np.uint32
    order = np.argsort((flat // chunk).astype(key_type), kind="stable")
    chunk_start = np.searchsorted((flat // chunk)[order], np.arange(n_chunks + 1))
    total = 3 * n
    perm = prg_permutation(total, rng.getrandbits(256).to_bytes(32, "big"))  # stream position p holds entry perm[p]
    where = np.empty(total, dtype=np.int64)
    where[perm] = np.arange(total, dtype=np.int64)
    out = np.empty((total, ell), dtype=np.uint8)

    # The base OTs (κ of them) and their IKNP extension to the w random OTs of KKRT (.iknp).
    reply = yield from recv_typed(OtPsiStep.BASE_OT, BaseOtElements)
    size = element_bytes(params.modulus)
    if len(reply.elements) != BASE_OTS * size:
        raise ProtocolError(f"{OtPsiStep.BASE_OT.wire} carries {len(reply.elements)} bytes, expected {BASE_OTS * size}")
    u, keys = extension_receiver(base.keys([reply.elements[i * size : (i + 1) * size] for i in range(BASE_OTS)]), choices)
    yield Send(OtPsiStep.OT_EXTENSION, CorrectionRows(u))
    sender = OprfSender(choices, keys)
    for c, lo, hi in batches(bins, chunk):
        msg = yield from recv_typed(OtPsiStep.CORRECTIONS, CorrectionRows)
        if len(msg.rows) != (hi - lo) * w8:
            raise ProtocolError(f"{OtPsiStep.CORRECTIONS.wire} chunk at bin {lo} has {len(msg.rows)} bytes, expected {(hi - lo) * w8}")
        q = sender.chunk(lo, np.frombuffer(msg.rows, dtype=np.uint8).reshape(hi - lo, w8))
        es = order[chunk_start[c] : chunk_start[c + 1]]
        jb = flat[es]
        code = codewords(code_key, digests[es // 3], (es % 3).astype(np.int8), w)
        out[where[es]] = hash_rows(hkey, jb, sender.evaluate(q[jb - lo], code), ell)
        yield Progress("psi_ot", hi, bins, {"phase": "host_oprf"})

    size = params.batch_size
    for _, lo, hi in batches(total, size):
        yield Send(OtPsiStep.OPRF_VALUES, OprfValues(out[lo:hi].tobytes()))
    del out

    if params.mode is not Reveal.BOTH:
        yield Progress("psi_ot", bins, bins, {"phase": "done"})
        return PsiResult(rows=(), size=-1)
    matches = yield from recv_typed(OtPsiStep.GUEST_MATCHES, MatchedPositions)
    positions = np.asarray(matches.positions, dtype=np.int64)
    if len(positions) > min(guest.count, n):
        raise ProtocolError(f"{OtPsiStep.GUEST_MATCHES.wire} lists more matches than either set holds")
    if len(positions) and (int(positions.max()) >= total or int(positions.min()) < 0):
        raise ProtocolError(f"{OtPsiStep.GUEST_MATCHES.wire} has a position beyond {total} values")
    rows = tuple((perm[positions] // 3).tolist())
    if len(set(rows)) != len(rows):
        raise ProtocolError(f"{OtPsiStep.GUEST_MATCHES.wire} names a host row twice")
    yield Progress("psi_ot", bins, bins, {"phase": "done"})
    return PsiResult(rows=rows, size=len(rows))
