"""Two-party ECDH-PSI over X25519, streamed in batches, both roles in one module.

The exchange
------------
Both parties hold normalized, duplicate-free ids (:func:`fedcredit.protocols.psi.ids.prepare_ids`)
and agree on :class:`PsiParams` (a per-job salt, the mode, the batch size).
Each draws a fresh scalar -- the guest ``a``, the host ``b`` -- and a shuffle
seed, and hashes its ids to X25519 u-coordinates h(·)
(:func:`fedcredit.protocols.psi.ecdh.hash_to_point`). Scalar multiplication here
commutes: a·(b·h) = b·(a·h).

Every list travels as one message per batch of ``params.batch_size`` points;
the k-th message of a step is batch k (the runtime numbers them), and every
batch but the last of a step is full, so each side knows every batch's length
from the announced set sizes.

==========================  ===========  ==========  =========================================
step                        direction    payload     content
==========================  ===========  ==========  =========================================
``GUEST_SIZE``              guest→host   SetSize     |X|; the guest's first message
``HOST_SIZE``               host→guest   SetSize     |Y|; the host's first message
``GUEST_BLINDED``           guest→host   Blinded…    per batch: a·h(x) in the order of a
                                                     permutation σ of the guest's rows
``HOST_BLINDED``            host→guest   Blinded…    per batch: b·h(y) in the order of a
                                                     permutation π of the host's rows
``HOST_DOUBLE_BLINDED``     host→guest   Blinded…    per batch: b·(a·h(x)); BOTH/GUEST: batch k
                                                     answers GUEST_BLINDED batch k, same order;
                                                     CARDINALITY and count-first: all of them,
                                                     shuffled by a permutation τ the host draws,
                                                     sent only once the host has them all
``GUEST_COUNT``             guest→host   Intersec…   count-first only: |X ∩ Y|, counted on the
                                                     shuffled reply, and whether it meets the
                                                     guest's minimum
``HOST_UNSHUFFLE``          host→guest   Unshuff…    count-first only: whether the count meets
                                                     the host's minimum and, if both minimums
                                                     are met, the 32-byte key τ was drawn from
``GUEST_MATCHES``           guest→host   Matched…    BOTH only: for each intersection element,
                                                     in increasing guest row order, its position
                                                     in the HOST_BLINDED stream
==========================  ===========  ==========  =========================================

Both roles first send their size and all their own blinded batches, before
receiving anything: the two first rounds run in parallel. The host then
double-blinds each GUEST_BLINDED batch as it arrives. The guest re-blinds each
HOST_BLINDED batch into a·b·h(y), keeps it in a lookup table, and then streams
HOST_DOUBLE_BLINDED through that table: guest row σ(k) is in the intersection
iff b·a·h(x) at stream position k is in the table. With reveal BOTH the guest
sends the matching table positions j in increasing guest row order and the
host maps them back through π to its own rows, so ``guest.rows[k]`` and
``host.rows[k]`` are the same entity (the aligned output used for training).

Modes (:class:`Reveal`, ``PsiParams.mode``)
-------------------------------------------
* ``BOTH``: both learn the intersection, aligned; required for training.
* ``GUEST``: only the guest learns it; the host's result is
  ``PsiResult(rows=(), size=-1)``.
* ``CARDINALITY``: only the guest learns |X ∩ Y|, as ``PsiResult(rows=(),
  size=n)``; the host's result is ``PsiResult(rows=(), size=-1)``. The host
  shuffles the whole double-blinded reply (τ) so the guest cannot link a
  reply value to the row it blinded, and the guest sends nothing back.

Count-first (``PsiParams.count_first``; BOTH and GUEST)
-------------------------------------------------------
Each party's policy may refuse an intersection below its own minimum
(``min_intersection``, passed to its role program; the peer never learns the
value). Checked on the revealed rows, it would come too late: the guest would
already know which of its ids are shared. With ``count_first`` the host
answers exactly as in CARDINALITY mode -- the whole double-blinded reply,
shuffled by τ -- so the guest can count its matches but not tell which of its
rows they are. Then:

0. each party stops at once if the other's announced set is smaller than
   its own minimum (the count could not reach it, and for a tiny set the
   count would say which few ids are shared): the host before it replies,
   the guest before it counts;
1. the guest sends GUEST_COUNT: the count c and whether c meets its own
   minimum; if not, it stops (:class:`IntersectionTooSmall`);
2. the host stops if the guest refused or if c is below its own minimum, and
   says which in HOST_UNSHUFFLE; otherwise HOST_UNSHUFFLE carries the 32-byte
   key τ was drawn from (:func:`reply_order`);
3. the guest re-creates τ, maps each match back to its stream position and
   row, and the exchange ends as in its mode (BOTH: GUEST_MATCHES, whose
   length the host checks against c).

Who learns what: both parties learn c before either checks it, and each
learns whether the other's minimum was met; in GUEST mode that gives the host
the count, which it would not learn otherwise. When a check fails, the guest
holds only the shuffled reply and the host only blinded points: neither learns
which ids are shared, and nothing locates them later (τ's key is never sent).
The count itself is disclosed even then: a party that pads a few real ids
with made-up ones can still learn how many of those few are shared. That is
a choice of input, which no PSI prevents; step 0 only keeps an honest small
set from turning the count into a membership answer.

Cost: one round trip of two small messages (GUEST_COUNT 11 bytes,
HOST_UNSHUFFLE 36 bytes before sealing) and not one extra scalar
multiplication: τ travels as a key, and re-creating it costs the guest one
:func:`seeded_permutation` (~0.3 s at 2^20). One message cannot do: the host
needs c before it may release τ, and the guest has c only after the whole
reply. As in CARDINALITY mode, the host holds all |X| double-blinded points
(32 bytes each) before it replies instead of answering batch by batch.

Memory (per role, beyond its id list)
-------------------------------------
Both roles hold O(batch) points in flight, a row permutation (8 bytes per own
row) and:

* guest: a lookup table of the host's a·b·h(y), truncated to 16 bytes
  (:func:`fedcredit.protocols.psi.ecdh.truncate`: a false match among |X|·|Y| pairs has
  probability at most |X|·|Y|·2^-128, below 2^-88 at 2^20 × 2^20). BOTH/GUEST
  map each value to its host position (about 150 bytes per host id in CPython,
  ~150 MB at 2^20); CARDINALITY keeps a set. Plus one 8-byte slot per own row
  for the matched position.
* host: nothing else in BOTH/GUEST. In CARDINALITY and count-first it must
  hold all |X| double-blinded points before shuffling them (32 bytes each,
  32 MB at 2^20):
  any reply sent before it has seen the last guest batch would tell the guest
  which batch -- hence which of its rows -- a value answers.

The receiving runtime may hold queued messages (e.g. HOST_DOUBLE_BLINDED while
the guest is still building its table); they are at the relay, not in the
role's memory.

Parallelism
-----------
``map_fn`` (e.g. ``ProcessPoolExecutor(cores).map``) runs the hashing and the
scalar multiplications of each batch on all cores: the role programs pass it
to :func:`~fedcredit.protocols.psi.ecdh.hash_and_blind` and
:func:`~fedcredit.protocols.psi.ecdh.blind`, which call module-level workers with plain
bytes. Without it everything runs in the calling process. The result never
depends on it. Overlapping network and compute (e.g. sending batch k while
batch k+1 is blinded) is the runtime's job.

Progress and resume
-------------------
Each role yields ``Progress(stage="psi", done, total, detail)`` after every
batch it blinds or re-blinds: ``done``/``total`` count ids through a scalar
multiplication (own set, then the peer's; ``total`` grows once the peer's size
is known) and ``detail["phase"]`` names the phase.

With ``checkpoint=True`` (implied by ``resume``) every Progress -- including a
first one yielded before any message is sent -- is preceded by a
:class:`~fedcredit.protocols.core.Checkpoint` action whose ``state`` is a
:class:`PsiCheckpoint` as a plain dict. **It holds the role's secret scalar and
shuffle seed**: it is a separate action so that it can never ride along with
a progress report; the runtime writes it only to the party's own checkpoint
file (0600), before the program continues. Passing it back as ``resume=`` (with the same ids
and params) continues the role after its last completed batch; see
:class:`PsiCheckpoint` for what the runtime must provide (skip re-sending what
was delivered, re-deliver received messages from ``recv_from`` on).

What each side learns (semi-honest)
-----------------------------------
* Guest: |Y|; in BOTH/GUEST the intersection as its own rows; in CARDINALITY
  only |X ∩ Y|. Never which host row a value came from (π). With count-first,
  |X ∩ Y| and the host's verdict first, and the rows only if both minimums
  are met.
* Host: |X|. With reveal BOTH, also the intersection as its own rows, listed
  in the agreed order -- which, being increasing guest row index, tells it the
  relative guest order of the shared entities, and nothing about guest rows
  outside the intersection. In GUEST and CARDINALITY modes nothing else --
  except that count-first tells it |X ∩ Y| and the guest's verdict.

Security argument: model h as a random oracle onto Curve25519 and assume DDH in
its prime-order subgroup (see :mod:`fedcredit.protocols.psi.ecdh`). The host sees a·h(x)
for a uniformly random a unknown to it, in an order fixed by σ: jointly
pseudorandom, so its view is simulatable from |X| (plus, with reveal BOTH, the
output). The guest sees b·h(y) (in π order) and b·a·h(x); for x in the
intersection the latter equals a·(b·h(y)) for the matching y, and every other
value is pseudorandom under DDH, so its view is simulatable from the
intersection and |Y|. In CARDINALITY mode the double-blinded values arrive as a
uniformly shuffled multiset, so the view is simulatable from |X ∩ Y|, |X| and
|Y| alone; so is a count-first guest's view until HOST_UNSHUFFLE carries τ's
key (an independent uniform seed: it reveals nothing about the host's other
secrets, see :func:`reply_key`), and a refused run never gets further. Every hashed id lies on the curve proper, never on the twist, so the
public curve/twist bit of a blinded point is the same for all ids and leaks
nothing. Malicious parties (a guest blinding guessed ids, a host answering with
other points) are out of scope; σ does mean a host tampering with one position
of its reply learns about a random guest row rather than a row of its choice.
"""

from __future__ import annotations

from array import array
from typing import Any, Generator, Sequence

from ..core import (
    Checkpoint,
    Progress,
    RandomSource,
    Role,
    RoleProgram,
    Send,
    batch_bounds,
    batches,
    check_unique_ids,
    n_batches,
    permuted_records,
    recv_typed,
    seeded_permutation,
)
from ..errors import ProtocolError
from .checkpoint import PsiCheckpoint, Tracker
from .count_first import (
    IntersectionTooSmall,
    check_minimum,
    guest_count_exchange,
    host_count_exchange,
    reply_key,
    reply_order,
    too_few,
)
from .ecdh import DIGEST_BYTES, POINT_BYTES, MapFn, Pending, blind_async, hash_and_blind_async
from .messages import (
    ECDH_STEPS,
    BlindedPoints,
    EcdhSteps,
    IntersectionCount,
    MatchedPositions,
    Mode,
    PsiParams,
    PsiResult,
    PsiStep,
    Reveal,
    SetSize,
    UnshuffleKey,
    ecdh_step_copy,
)
from .streams import one_ahead, recv_batch, recv_one_ahead

# The payloads, the step table and the parameters live in .messages, checkpoints in .checkpoint and the
# count-first helpers in .count_first; they are listed here too, so this module stays the protocol's one entry.
__all__ = [
    "SetSize",
    "BlindedPoints",
    "MatchedPositions",
    "IntersectionCount",
    "UnshuffleKey",
    "IntersectionTooSmall",
    "PsiStep",
    "EcdhSteps",
    "ECDH_STEPS",
    "ecdh_step_copy",
    "Reveal",
    "Mode",
    "PsiParams",
    "PsiResult",
    "PsiCheckpoint",
    "reply_key",
    "reply_order",
    "guest_program",
    "host_program",
]


def _round_one(
    role: Role, ids: Sequence[str], params: PsiParams, rng: RandomSource, map_fn: MapFn | None,
    resume: PsiCheckpoint | None, checkpoint: bool, min_intersection: int, steps: EcdhSteps,
) -> Generator[Any, Any, tuple[Tracker, array[int], int]]:
    """Round 1, the same for both roles: announce the set size, stream scalar·h(id) in a shuffled row order, read the peer's size.

    Checks the input, then draws the secrets (or takes them from ``resume``)
    and the role's row permutation (σ for the guest, π for the host): stream
    position j carries row ``perm[j]``, a batch a message, sent without waiting
    for the peer. A resumed role starts after the last batch it sent; the pool
    hashes and blinds batch k+1 while batch k is sent. Count-first, it stops
    once the peer's announced set is below this role's minimum: the count
    could not reach it, and would tell the peer how many of its few ids are
    shared (one id: whether it is).

    Returns the role's tracker, its permutation and the peer's set size.
    """
    guest = role is Role.GUEST
    peer = Role.HOST if guest else Role.GUEST
    size_step, blinded_step, peer_size_step = (
        (steps.guest_size, steps.guest_blinded, steps.host_size) if guest else (steps.host_size, steps.host_blinded, steps.guest_size)
    )
    check_unique_ids(ids, role)
    check_minimum(min_intersection, params.count_first)
    t = Tracker(role, ids, params, rng, resume, checkpoint)
    n, size = len(ids), params.batch_size
    perm = seeded_permutation(n, t.seed, b"guest-rows" if guest else b"host-rows")
    if t.enabled:
        yield from t.progress(0, n, "start")  # the secrets reach the checkpoint before any message leaves
    yield from t.send_once(size_step, SetSize(n))

    def blind_rows(k: int) -> Pending:
        lo, hi = batch_bounds(k, n, size)
        return hash_and_blind_async(params.salt, t.scalar, [ids[perm[i]] for i in range(lo, hi)], map_fn)

    for k, points in one_ahead(range(t.sent_count(blinded_step), n_batches(n, size)), blind_rows):
        yield Send(blinded_step, BlindedPoints(tuple(points)))
        t.count_sent(blinded_step)
        yield from t.progress(batch_bounds(k, n, size)[1], n, f"{role}_blind")

    n_peer = yield from t.recv_size(peer_size_step)
    if params.count_first and n_peer < min_intersection:
        raise too_few(peer, role, n_peer, min_intersection)
    return t, perm, n_peer


# --------------------------------------------------------------------------- roles


def guest_program(
    ids: Sequence[str],
    params: PsiParams,
    rng: RandomSource,
    *,
    map_fn: MapFn | None = None,
    resume: PsiCheckpoint | None = None,
    checkpoint: bool = False,
    min_intersection: int = 0,
    steps: EcdhSteps = ECDH_STEPS,
) -> RoleProgram:
    """The guest's side of the PSI.

    Args:
        ids: normalized, duplicate-free ids; row i is ``ids[i]``.
        params: the job's PSI parameters (same as the host's).
        rng: source of the guest's secret scalar and shuffle seed (unused when
            resuming).
        map_fn: runs the hashing and scalar multiplications, e.g.
            ``ProcessPoolExecutor(cores).map``; in this process when None.
        resume: the last checkpoint of an interrupted run of this role.
        checkpoint: yield a :class:`~fedcredit.protocols.core.Checkpoint` (a :class:`PsiCheckpoint`, with the
            secrets) before every ``Progress``; implied by ``resume``.
        min_intersection: the guest's own minimum, checked on the count before
            anything locates the intersection; needs ``params.count_first``.
        steps: the step names to use (:class:`EcdhSteps`; the OT mode's fallback passes its own).

    Returns (as the generator's return value):
        :class:`PsiResult`: the guest's intersecting rows in increasing order
        (BOTH, GUEST), or ``rows=()`` and the intersection size (CARDINALITY).

    Raises:
        DataError: on duplicate ids.
        IntersectionTooSmall: count-first, when the count is below either
            party's minimum (the guest then holds no row of the intersection).
        ProtocolError: if a batch has the wrong length, the host's points
            repeat, ``resume`` does not belong to these ids and params, or a
            minimum is given without ``count_first``.
        CryptoError: if the host sends a low-order point.
    """
    # Round 1: announce |X|, then stream a·h(x) in σ order (stream position k holds guest row perm[k]).
    t, perm, n_host = yield from _round_one(Role.GUEST, ids, params, rng, map_fn, resume, checkpoint, min_intersection, steps)
    a, size, mode, gated = t.scalar, params.batch_size, params.reveal, params.count_first
    n = len(ids)
    total = n + n_host

    # Round 2: the lookup table a·b·h(y) -> host stream position. It lives in
    # memory only, so a resumed guest reads both receive steps again from 0
    # (and, count-first, HOST_UNSHUFFLE, which it never marks as read).
    t.recv_from[steps.host_blinded.wire] = 0
    t.recv_from[steps.host_double_blinded.wire] = 0
    table: dict[bytes, int] = {}
    seen: set[bytes] = set()

    def absorb(k: int, lo: int, hi: int, again: list[bytes]) -> Generator[Checkpoint | Progress, Any, None]:
        if mode is Reveal.CARDINALITY:
            seen.update(p[:DIGEST_BYTES] for p in again)
            filled = len(seen)
        else:
            table.update((p[:DIGEST_BYTES], lo + i) for i, p in enumerate(again))
            filled = len(table)
        if filled != hi:
            raise ProtocolError(f"{steps.host_blinded.wire} repeats a point (host ids not unique)")
        yield from t.progress(n + hi, total, "guest_reblind")

    def reblind(points: tuple[bytes, ...]) -> Pending:
        return blind_async(a, points, map_fn)

    # One batch ahead: batch k is re-blinded by the pool while batch k+1 is awaited.
    yield from recv_one_ahead(steps.host_blinded, n_host, size, reblind, absorb)

    # Round 3: stream b·a·h(x) through the table. Count-first, the stream is
    # shuffled by τ: record each hit by its reply position p, which says
    # nothing about the row until τ is known.
    count = 0
    matched = array("q", [-1]) * n  # guest row -> host stream position, -1 if none
    hits = array("q", [-1]) * (n if gated else 0)  # count-first: reply position -> host stream position
    for k, lo, hi in batches(n, size):
        double = yield from recv_batch(steps.host_double_blinded, k, hi - lo)
        if mode is Reveal.CARDINALITY:
            count += sum(1 for d in double if d[:DIGEST_BYTES] in seen)
        elif gated:
            for i, d in enumerate(double):
                j = table.get(d[:DIGEST_BYTES])
                if j is not None:
                    hits[lo + i] = j
                    count += 1
        else:
            for i, d in enumerate(double):
                j = table.get(d[:DIGEST_BYTES])
                if j is not None:
                    matched[perm[lo + i]] = j
    table.clear()  # free the table before building the result
    seen.clear()

    if mode is Reveal.CARDINALITY:
        yield from t.progress(total, total, "done")
        return PsiResult(rows=(), size=count)
    if gated:
        key = yield from guest_count_exchange(steps.guest_count, steps.host_unshuffle, count, min_intersection, t)
        tau = reply_order(n, key)  # reply position p answers guest stream position tau[p]
        for p in range(n):
            if hits[p] >= 0:
                matched[perm[tau[p]]] = hits[p]
        del hits, tau
        yield from t.progress(total, total, "guest_unshuffle")
    rows = tuple(i for i in range(n) if matched[i] >= 0)
    if mode is Reveal.BOTH:
        yield from t.send_once(steps.guest_matches, MatchedPositions(tuple(matched[i] for i in rows)))
    yield from t.progress(total, total, "done")
    return PsiResult(rows=rows, size=len(rows))


def host_program(
    ids: Sequence[str],
    params: PsiParams,
    rng: RandomSource,
    *,
    map_fn: MapFn | None = None,
    resume: PsiCheckpoint | None = None,
    checkpoint: bool = False,
    min_intersection: int = 0,
    steps: EcdhSteps = ECDH_STEPS,
) -> RoleProgram:
    """The host's side of the PSI.

    Args:
        ids: normalized, duplicate-free ids; row i is ``ids[i]``.
        params: the job's PSI parameters (same as the guest's).
        rng: source of the host's secret scalar and shuffle seed (unused when
            resuming).
        map_fn, resume, checkpoint, steps: as for :func:`guest_program`.
        min_intersection: the host's own minimum, checked on the guest's count
            before τ's key is released; needs ``params.count_first``.

    Returns (as the generator's return value):
        :class:`PsiResult` with the host's rows aligned to the guest's order
        (BOTH), or ``PsiResult(rows=(), size=-1)`` (GUEST, CARDINALITY).

    Raises:
        DataError: on duplicate ids.
        IntersectionTooSmall: count-first, when the count is below either
            party's minimum (τ's key is then never sent).
        ProtocolError: if a batch has the wrong length, the guest's count or
            matches are out of range, repeated or disagree, ``resume`` does
            not fit, or a minimum is given without ``count_first``.
        CryptoError: if the guest sends a low-order point.
    """
    # Round 1: announce |Y|, then stream b·h(y) in π order (stream position j holds host row perm[j]).
    t, perm, n_guest = yield from _round_one(Role.HOST, ids, params, rng, map_fn, resume, checkpoint, min_intersection, steps)
    b, size, mode, gated = t.scalar, params.batch_size, params.reveal, params.count_first
    n = len(ids)
    total = n + n_guest
    guest_batches = n_batches(n_guest, size)
    start = t.sent_count(steps.host_double_blinded)
    key = reply_key(t.seed)

    def reblind(points: tuple[bytes, ...]) -> Pending:
        return blind_async(b, points, map_fn)

    if mode is not Reveal.CARDINALITY and not gated:
        # Round 2: double-blind each guest batch as it arrives; nothing is kept.
        # One batch ahead: reply k is computed by the pool while batch k+1 is
        # awaited, then sent (the guest sends all its batches before it
        # waits for any reply, so this cannot deadlock).
        def reply(k: int, lo: int, hi: int, points: list[bytes]) -> Generator[Any, Any, None]:
            yield Send(steps.host_double_blinded, BlindedPoints(tuple(points)))
            t.count_sent(steps.host_double_blinded)
            t.recv_from[steps.guest_blinded.wire] = k + 1
            yield from t.progress(n + hi, total, "host_reblind")

        t.recv_from[steps.guest_blinded.wire] = start
        yield from recv_one_ahead(steps.guest_blinded, n_guest, size, reblind, reply, start)
    elif start < guest_batches:
        # Round 2, cardinality and count-first: all of b·a·h(x) first, then one
        # shuffle τ over the whole list, so no reply can be traced to a guest
        # batch or row.
        double = bytearray()

        def collect(k: int, lo: int, hi: int, points: list[bytes]) -> Generator[Checkpoint | Progress, Any, None]:
            double.extend(b"".join(points))
            yield from t.progress(n + hi, total, "host_reblind")

        t.recv_from[steps.guest_blinded.wire] = 0
        yield from recv_one_ahead(steps.guest_blinded, n_guest, size, reblind, collect)
        tau = reply_order(n_guest, key)
        for k, lo, hi in batches(n_guest, size, start):
            yield Send(steps.host_double_blinded, BlindedPoints(permuted_records(double, POINT_BYTES, tau, lo, hi)))
            t.count_sent(steps.host_double_blinded)
            yield from t.progress(total, total, "host_reply")
        del double
    t.recv_from[steps.guest_blinded.wire] = guest_batches

    count = -1
    if gated:
        count = yield from host_count_exchange(steps.guest_count, steps.host_unshuffle, key, min_intersection,
                                                min(n_guest, n), t)
        yield from t.progress(total, total, "host_unshuffle")
    if mode is not Reveal.BOTH:
        yield from t.progress(total, total, "done")
        return PsiResult(rows=(), size=-1)

    matches = yield from recv_typed(steps.guest_matches, MatchedPositions)
    positions = matches.positions
    if len(positions) > min(n_guest, n):
        raise ProtocolError(f"{steps.guest_matches.wire} lists more matches than either set holds")
    if gated and len(positions) != count:
        raise ProtocolError(f"{steps.guest_matches.wire} lists {len(positions)} matches, but the guest counted {count}")
    if len(set(positions)) != len(positions):
        raise ProtocolError(f"{steps.guest_matches.wire} repeats a position")
    if any(j >= n for j in positions):
        raise ProtocolError(f"{steps.guest_matches.wire} has a position beyond {n} host points")
    rows = tuple(perm[j] for j in positions)
    return PsiResult(rows=rows, size=len(rows))
