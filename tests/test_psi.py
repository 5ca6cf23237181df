"""Tests for fedcredit.protocols.psi.protocol: the streamed ECDH-PSI, its modes' messages, shuffles, batches and progress.

By topic, elsewhere: ids (test_psi_ids.py), the X25519 primitives (test_psi_ecdh.py), refusals of bad input and
bad peers (test_psi_validation.py), checkpoints and resume (test_psi_checkpoint.py), the other modes, the unbalanced
mode, parallel blinding and de-duplication (test_psi_modes.py), count-first (test_psi_count_first.py), and the
OT-extension PSI (test_psi_ot.py).
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from fedcredit.protocols.core import (
    Checkpoint,
    Classification,
    Masked,
    Progress,
    Public,
    Recv,
    Role,
    RoleProgram,
    Send,
    run_local,
    tap,
)
from fedcredit.protocols.psi.ecdh import blind, hash_to_point, is_on_curve, random_scalar
from fedcredit.protocols.psi.protocol import (
    BlindedPoints,
    IntersectionCount,
    MatchedPositions,
    PsiParams,
    PsiResult,
    PsiStep,
    Reveal,
    SetSize,
    UnshuffleKey,
    guest_program,
    host_program,
    seeded_permutation,
)

SALT = bytes(range(16))


# --------------------------------------------------------------------------- helpers


def make_ids(rng: random.Random, n: int, prefix: str) -> list[str]:
    """n distinct 18-character synthetic ids (long enough that a random 32-byte
    point cannot contain one by chance)."""
    return [f"{prefix}{rng.getrandbits(64):016X}{i:06d}" for i in range(n)]


def recording(gen: RoleProgram, role: Role, log: list[tuple[Role, Any]]) -> RoleProgram:
    """Forward every action of ``gen`` unchanged, recording what it yields."""
    return tap(gen, lambda action: log.append((role, action)))


def run_psi(
    guest_ids: list[str],
    host_ids: list[str],
    params: PsiParams | None = None,
    seeds: tuple[int, int] = (1, 2),
) -> tuple[PsiResult, PsiResult, list[tuple[Role, Any]]]:
    params = params or PsiParams(salt=SALT)
    log: list[tuple[Role, Any]] = []
    out = run_local(
        {
            Role.GUEST: recording(guest_program(guest_ids, params, random.Random(seeds[0])), Role.GUEST, log),
            Role.HOST: recording(host_program(host_ids, params, random.Random(seeds[1])), Role.HOST, log),
        }
    )
    return out[Role.GUEST], out[Role.HOST], log


def sends(log: list[tuple[Role, Any]]) -> list[Send]:
    return [a for _, a in log if isinstance(a, Send)]


def stream(log: list[tuple[Role, Any]], step: PsiStep) -> tuple[bytes, ...]:
    """All points sent on ``step``, batches concatenated in order."""
    return tuple(p for a in sends(log) if a.step is step for p in a.payload.points)


def assert_aligned(guest_ids, host_ids, g: PsiResult, h: PsiResult) -> None:
    expected = sorted(i for i, x in enumerate(guest_ids) if x in set(host_ids))
    assert list(g.rows) == expected
    assert g.size == len(expected)
    assert h.size == g.size
    assert len(h.rows) == len(g.rows)
    for gi, hi in zip(g.rows, h.rows):
        assert guest_ids[gi] == host_ids[hi]
    assert len(set(h.rows)) == len(h.rows)


# --------------------------------------------------------------------------- protocol


@pytest.mark.parametrize("reveal", [Reveal.BOTH, Reveal.GUEST])
def test_partial_overlap(reveal: Reveal) -> None:
    rng = random.Random(11)
    common = make_ids(rng, 40, "C")
    guest_ids = common + make_ids(rng, 60, "G")
    host_ids = common[:30] + make_ids(rng, 90, "H")
    rng.shuffle(guest_ids)
    rng.shuffle(host_ids)
    params = PsiParams(salt=SALT, reveal=reveal, batch_size=16)
    g, h, log = run_psi(guest_ids, host_ids, params)
    expected = sorted(i for i, x in enumerate(guest_ids) if x in set(host_ids))
    assert len(expected) == 30
    assert list(g.rows) == expected
    if reveal is Reveal.BOTH:
        assert_aligned(guest_ids, host_ids, g, h)
        # The host's list was shuffled: the positions the guest saw are not host rows.
        (matches,) = [a.payload for a in sends(log) if a.step is PsiStep.GUEST_MATCHES]
        assert matches.positions != h.rows
        assert sorted(matches.positions) != sorted(h.rows)
    else:
        assert h == PsiResult(rows=(), size=-1)


@pytest.mark.parametrize(
    "n_guest,n_host,n_common",
    [(0, 10, 0), (10, 0, 0), (0, 0, 0), (25, 30, 0), (33, 33, 33)],
    ids=["empty-guest", "empty-host", "both-empty", "disjoint", "identical"],
)
def test_edge_sets(n_guest: int, n_host: int, n_common: int) -> None:
    rng = random.Random(n_guest * 100 + n_host)
    common = make_ids(rng, n_common, "C")
    guest_ids = common + make_ids(rng, n_guest - n_common, "G")
    host_ids = list(common) + make_ids(rng, n_host - n_common, "H")
    rng.shuffle(host_ids)
    g, h, _ = run_psi(guest_ids, host_ids, PsiParams(salt=SALT, batch_size=8))
    assert_aligned(guest_ids, host_ids, g, h)
    assert g.size == n_common
    if n_common == n_guest == n_host:
        assert g.rows == tuple(range(n_guest))


def test_reveal_guest_sends_no_matches() -> None:
    rng = random.Random(3)
    common = make_ids(rng, 5, "C")
    g, h, log = run_psi(common + make_ids(rng, 5, "G"), common, PsiParams(salt=SALT, reveal="guest"))
    steps = [s.step for s in sends(log)]
    assert PsiStep.GUEST_MATCHES not in steps
    assert set(steps) == set(PsiStep) - {PsiStep.GUEST_MATCHES, PsiStep.GUEST_COUNT, PsiStep.HOST_UNSHUFFLE}  # no count-first
    assert h.rows == () and h.size == -1
    assert g.size == 5

    _, _, log_both = run_psi(common, common, PsiParams(salt=SALT))
    matches = [s for s in sends(log_both) if s.step is PsiStep.GUEST_MATCHES]
    assert len(matches) == 1 and isinstance(matches[0].payload, MatchedPositions)


def test_deterministic_with_seeded_rng_and_salt_sensitive() -> None:
    rng = random.Random(5)
    guest_ids = make_ids(rng, 20, "G") + ["SHARED1", "SHARED2"]
    host_ids = ["SHARED2"] + make_ids(rng, 20, "H") + ["SHARED1"]
    run1 = run_psi(guest_ids, host_ids, seeds=(10, 20))
    run2 = run_psi(guest_ids, host_ids, seeds=(10, 20))
    assert run1[0] == run2[0] and run1[1] == run2[1]
    assert [a for _, a in run1[2]] == [a for _, a in run2[2]]

    other_salt = run_psi(guest_ids, host_ids, PsiParams(salt=b"another-salt-16b"), seeds=(10, 20))
    assert other_salt[0] == run1[0] and other_salt[1] == run1[1]

    def points(log, step):
        return stream(log, step)

    for step in (PsiStep.GUEST_BLINDED, PsiStep.HOST_BLINDED, PsiStep.HOST_DOUBLE_BLINDED):
        assert not set(points(run1[2], step)) & set(points(other_salt[2], step))

    # Fresh scalars per run: other seeds give unrelated blinded points, same result.
    run3 = run_psi(guest_ids, host_ids, seeds=(11, 21))
    assert run3[0] == run1[0] and run3[1] == run1[1]
    assert not set(points(run1[2], PsiStep.GUEST_BLINDED)) & set(points(run3[2], PsiStep.GUEST_BLINDED))


def test_wire_carries_no_plaintext_or_unblinded_hashes() -> None:
    rng = random.Random(9)
    common = make_ids(rng, 15, "C")
    guest_ids = common + make_ids(rng, 25, "G")
    host_ids = make_ids(rng, 35, "H") + common
    _, _, log = run_psi(guest_ids, host_ids, PsiParams(salt=SALT, count_first=True))  # count-first: every step is used
    all_ids = guest_ids + host_ids
    id_bytes = [x.encode() for x in all_ids]
    hashes = {hash_to_point(SALT, x) for x in all_ids}
    messages = sends(log)
    assert {m.step for m in messages} == set(PsiStep)
    for m in messages:
        assert m.payload.classification in (Classification.MASKED, Classification.AGGREGATE, Classification.PUBLIC)
        if isinstance(m.payload, SetSize):
            assert isinstance(m.payload, Public)
            assert m.payload.count in (len(guest_ids), len(host_ids))
        elif isinstance(m.payload, BlindedPoints):
            assert isinstance(m.payload, Masked)
            for p in m.payload.points:
                assert p not in hashes
                assert not any(x in p for x in id_bytes)
        elif isinstance(m.payload, IntersectionCount):
            assert m.payload.count == len(common) and m.payload.meets_minimum
        elif isinstance(m.payload, UnshuffleKey):
            assert m.payload.meets_minimum and len(m.payload.key) == 32 and m.payload.key not in hashes
        else:
            assert isinstance(m.payload, MatchedPositions)
            assert len(m.payload.positions) == len(common)
        blob = repr(m.payload).encode()
        assert not any(x in blob for x in id_bytes)


def test_guest_shuffles_its_blinded_points() -> None:
    rng = random.Random(23)
    common = make_ids(rng, 20, "C")
    guest_ids = make_ids(rng, 40, "G") + common
    host_ids = common + make_ids(rng, 30, "H")
    g, h, log = run_psi(guest_ids, host_ids, seeds=(1, 2))
    assert_aligned(guest_ids, host_ids, g, h)
    assert list(g.rows) == list(range(40, 60))

    sent = stream(log, PsiStep.GUEST_BLINDED)
    # The guest's scalar is the first draw of its rng (seed 1).
    in_row_order = blind(random_scalar(random.Random(1)), [hash_to_point(SALT, x) for x in guest_ids])
    assert sorted(sent) == sorted(in_row_order)  # the same points ...
    assert list(sent) != in_row_order  # ... in a different order
    moved = sum(p != q for p, q in zip(sent, in_row_order))
    assert moved > len(guest_ids) // 2

    # Every point on the wire is on the curve proper.
    for m in sends(log):
        if isinstance(m.payload, BlindedPoints):
            assert all(is_on_curve(p) for p in m.payload.points)


def test_guest_shuffle_keeps_result_across_seeds() -> None:
    rng = random.Random(29)
    common = make_ids(rng, 12, "C")
    guest_ids = common + make_ids(rng, 18, "G")
    host_ids = make_ids(rng, 25, "H") + common
    rng.shuffle(guest_ids)
    rng.shuffle(host_ids)
    results = {run_psi(guest_ids, host_ids, seeds=(s, s + 100))[:2] for s in range(5)}
    assert len(results) == 1
    ((g, h),) = results
    assert_aligned(guest_ids, host_ids, g, h)


def test_progress_reported_per_batch() -> None:
    ids = [f"ID{i:05d}" for i in range(25)]
    _, _, log = run_psi(ids, ids[:10], PsiParams(salt=SALT, batch_size=10))
    guest = [a for r, a in log if r is Role.GUEST and isinstance(a, Progress)]
    host = [a for r, a in log if r is Role.HOST and isinstance(a, Progress)]
    assert all(p.stage == "psi" for p in guest + host)
    # guest: 25 own points in 3 batches, then 10 host points in 1 batch, then done
    assert [(p.done, p.total) for p in guest] == [(10, 25), (20, 25), (25, 25), (35, 35), (35, 35)]
    assert [p.detail["phase"] for p in guest] == ["guest_blind"] * 3 + ["guest_reblind", "done"]
    # host: 10 own points in 1 batch, then 25 guest points in 3 batches
    assert [(p.done, p.total) for p in host] == [(10, 10), (20, 35), (30, 35), (35, 35)]
    # Without checkpoint=True there is no Checkpoint action at all, and a Progress never carries one.
    assert not any(isinstance(a, Checkpoint) for _, a in log)
    assert not any("checkpoint" in p.detail for p in guest + host)


def test_messages_are_batches_with_sizes_first() -> None:
    rng = random.Random(31)
    common = make_ids(rng, 7, "C")
    guest_ids = common + make_ids(rng, 16, "G")  # 23 = 5 + 5 + 5 + 5 + 3
    host_ids = make_ids(rng, 4, "H") + common  # 11 = 5 + 5 + 1
    g, h, log = run_psi(guest_ids, host_ids, PsiParams(salt=SALT, batch_size=5))
    assert_aligned(guest_ids, host_ids, g, h)
    for role, first, steps in (
        (Role.GUEST, PsiStep.GUEST_SIZE, {PsiStep.GUEST_BLINDED: [5, 5, 5, 5, 3]}),
        (Role.HOST, PsiStep.HOST_SIZE, {PsiStep.HOST_BLINDED: [5, 5, 1], PsiStep.HOST_DOUBLE_BLINDED: [5, 5, 5, 5, 3]}),
    ):
        mine = [a for r, a in log if r is role and isinstance(a, Send)]
        assert mine[0].step is first
        assert mine[0].payload == SetSize(len(guest_ids) if role is Role.GUEST else len(host_ids))
        for step, lengths in steps.items():
            assert [len(a.payload.points) for a in mine if a.step is step] == lengths
    # Both roles send their size and all their own batches before their first receive.
    for role, own in ((Role.GUEST, PsiStep.GUEST_BLINDED), (Role.HOST, PsiStep.HOST_BLINDED)):
        actions = [a for r, a in log if r is role and not isinstance(a, Progress)]
        first_recv = next(i for i, a in enumerate(actions) if isinstance(a, Recv))
        assert sum(1 for a in actions[:first_recv] if isinstance(a, Send) and a.step is own) == len(
            [a for a in actions if isinstance(a, Send) and a.step is own]
        )


def test_host_double_blinds_each_batch_as_it_arrives() -> None:
    """The host answers guest batch k right after receiving batch k+1 (one ahead), never all at the end."""
    rng = random.Random(37)
    ids = make_ids(rng, 40, "X")
    _, _, log = run_psi(ids, ids[:10], PsiParams(salt=SALT, batch_size=8))
    host = [a for r, a in log if r is Role.HOST and not isinstance(a, Progress)]
    order = [("recv" if isinstance(a, Recv) else "send", a.step) for a in host]
    received = [i for i, (kind, step) in enumerate(order) if kind == "recv" and step is PsiStep.GUEST_BLINDED]
    replied = [i for i, (kind, step) in enumerate(order) if kind == "send" and step is PsiStep.HOST_DOUBLE_BLINDED]
    assert len(received) == len(replied) == 5
    for k in range(3):
        assert received[k + 1] < replied[k] < received[k + 2]
    assert received[4] < replied[3] < replied[4]


def test_seeded_permutation() -> None:
    seed = bytes(range(32))
    p = seeded_permutation(1000, seed, b"a")
    assert sorted(p) == list(range(1000))
    assert list(p) == list(seeded_permutation(1000, seed, b"a"))  # deterministic
    assert list(p) != list(seeded_permutation(1000, seed, b"b"))  # labels separate
    assert list(p) != list(seeded_permutation(1000, bytes(32), b"a"))
    assert list(seeded_permutation(0, seed, b"a")) == [] and list(seeded_permutation(1, seed, b"a")) == [0]
    # Roughly uniform: each element lands in the first half about half of the time.
    firsts = [seeded_permutation(4, i.to_bytes(32, "little"), b"u")[0] for i in range(800)]
    assert all(150 < firsts.count(v) < 250 for v in range(4))



def test_tap_shows_every_action_and_reply_without_changing_the_run() -> None:
    """core.tap: the tapped run returns what the plain run returns; it sees sends, receives and replies."""
    ids_g, ids_h = make_ids(random.Random(4), 30, "G"), make_ids(random.Random(5), 30, "H")
    ids_h[:10] = ids_g[:10]
    params = PsiParams(salt=SALT)
    plain = run_local({Role.GUEST: guest_program(ids_g, params, random.Random(1)),
                       Role.HOST: host_program(ids_h, params, random.Random(2))})
    actions: list[Any] = []
    replies: list[tuple[Any, Any]] = []
    tapped = run_local({Role.GUEST: tap(guest_program(ids_g, params, random.Random(1)), actions.append,
                                        lambda recv, reply: replies.append((recv.step, reply))),
                        Role.HOST: host_program(ids_h, params, random.Random(2))})
    assert tapped[Role.GUEST] == plain[Role.GUEST] and tapped[Role.GUEST].size == 10
    recvs = [a for a in actions if isinstance(a, Recv)]
    assert any(isinstance(a, Send) for a in actions) and recvs
    assert [step for step, _ in replies] == [r.step for r in recvs]
    assert all(reply is not None for _, reply in replies)
