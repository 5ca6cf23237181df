"""Tests for protocols.psi: id preparation, X25519 primitives, the streamed PSI and its resume.

Modes, the unbalanced mode, parallel blinding and de-duplication are in test_psi_modes.py.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.core import (
    Checkpoint,
    Classification,
    Masked,
    Progress,
    Public,
    Recv,
    Role,
    RoleProgram,
    Send,
    check_recv,
    check_send,
    run_local,
    tap,
)
from protocols.errors import CryptoError, DataError, ProtocolError
from protocols.psi.ecdh import blind, hash_to_point, is_on_curve, random_scalar
from protocols.psi.ids import (
    USCC_CHARSET,
    is_valid_uscc,
    normalize_id,
    prepare_ids,
    uscc_check_digit,
)
from protocols.psi.protocol import (
    BlindedPoints,
    IntersectionCount,
    MatchedPositions,
    PsiCheckpoint,
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


# --------------------------------------------------------------------------- ids.py


def test_normalize_full_width_and_spaces() -> None:
    assert normalize_id("９１３５") == "9135"
    assert normalize_id("  ９１ ３５\u3000ａｂ\t\n") == "9135AB"
    assert normalize_id("91350100m000100y43") == "91350100M000100Y43"
    assert normalize_id("\ufeff9135\u200b0100") == "91350100"
    assert normalize_id("\u3000 \t") == ""
    with pytest.raises(TypeError):
        normalize_id(9135)  # type: ignore[arg-type]


# Published codes: the GB 32100 example, Huawei Technologies, Alibaba (China).
KNOWN_USCC = ["91350100M000100Y43", "914403001922038216", "91330100716105852F"]


@pytest.mark.parametrize("code", KNOWN_USCC)
def test_known_uscc_valid(code: str) -> None:
    assert is_valid_uscc(code)
    assert uscc_check_digit(code[:17]) == code[17]


def test_uscc_synthetic_prefix_and_flip() -> None:
    prefix = "9144030012345678X"
    check = uscc_check_digit(prefix)
    # By hand: Σ value·weight = 1745 (X has value 29), 1745 mod 31 = 9, 31 - 9 = 22 -> "N".
    assert check == "N"
    code = prefix + check
    assert is_valid_uscc(code)
    for pos in range(18):
        for other in ("0", "A"):
            if code[pos] == other:
                continue
            flipped = code[:pos] + other + code[pos + 1 :]
            assert not is_valid_uscc(flipped), flipped


def test_uscc_rejects_malformed() -> None:
    code = KNOWN_USCC[0]
    assert not is_valid_uscc(code[:17])
    assert not is_valid_uscc(code + "0")
    assert not is_valid_uscc(code.lower())
    assert not is_valid_uscc(code.replace("M", "I"))  # I is not in the charset
    with pytest.raises(DataError):
        uscc_check_digit("123")
    with pytest.raises(DataError):
        uscc_check_digit("9135010OM000100Y4")  # letter O


def _reference_check(code17: str) -> str:
    """Independent formulation: weights are 3**i mod 31."""
    s = sum(USCC_CHARSET.index(c) * pow(3, i, 31) for i, c in enumerate(code17))
    return USCC_CHARSET[-s % 31]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=USCC_CHARSET, min_size=17, max_size=17))
def test_uscc_check_digit_matches_reference(code17: str) -> None:
    assert uscc_check_digit(code17) == _reference_check(code17)
    assert is_valid_uscc(code17 + _reference_check(code17))


def test_prepare_ids_normalizes() -> None:
    assert prepare_ids([" ab 1", "９１３５"], source="x.csv") == ["AB1", "9135"]
    assert prepare_ids([], source="x.csv") == []


_ID_PARTS = st.sampled_from(["a", "Z", "9", " ", "\u3000", "\u200b", "\ufeff", "Ａ", "９", "-", "Ä", "ß", "\t", "ﬁ"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_ID_PARTS, max_size=6).map("".join), max_size=12), st.booleans())
def test_prepare_ids_fast_path_equals_row_by_row(raw: list[str], dedupe: bool) -> None:
    """The all-clean fast path and the checking loop agree: same ids, or the same error."""
    norm = [normalize_id(r) for r in raw]
    clean = all(norm) and len(set(norm)) == len(norm)
    if clean:
        got = prepare_ids(raw, source="p.csv", dedupe=dedupe)
        assert (got.ids if dedupe else got) == norm
        if dedupe:
            assert got.removed == 0 and got.kept == tuple(range(len(raw)))
    else:
        if dedupe and all(norm):  # duplicates only: dropped, first occurrence kept
            got = prepare_ids(raw, source="p.csv", dedupe=True)
            assert got.ids == list(dict.fromkeys(norm)) and got.removed == len(norm) - len(set(norm))
        else:
            with pytest.raises(DataError, match="^p.csv: "):
                prepare_ids(raw, source="p.csv", dedupe=dedupe)


def test_prepare_ids_non_text_cells_are_named() -> None:
    for cell, what in ((b"A1", "id is bytes, not text"), (7, "id is int, not text"), (float("nan"), "empty id")):
        with pytest.raises(DataError, match=f"line 3: {what}"):
            prepare_ids(["B2", cell], source="n.csv")  # type: ignore[list-item]


def test_prepare_ids_duplicates_and_empties() -> None:
    raw = ["A1", "b 2", "", "a1", "B2", "   ", None, "C3"]
    with pytest.raises(DataError) as err:
        prepare_ids(raw, source="guest.csv")
    msg = str(err.value)
    assert msg.startswith("guest.csv:")
    assert "5 unusable ids" in msg  # lines 4 to 8
    assert "line 4: empty id" in msg
    assert "line 5: duplicate of line 2" in msg
    assert "line 6: duplicate of line 3" in msg
    assert "line 7: empty id" in msg
    assert "line 8: empty id" in msg  # None, as pandas gives for an empty cell
    assert "line 9" not in msg
    assert "A1" not in msg and "B2" not in msg  # ids are not echoed
    assert err.value.code == "DATA"


def test_prepare_ids_lists_first_five_and_first_line() -> None:
    raw = [""] * 8
    with pytest.raises(DataError) as err:
        prepare_ids(raw, source="host.csv", first_line=10)
    msg = str(err.value)
    assert "8 unusable ids" in msg and "first 5" in msg
    for line in range(10, 15):
        assert f"line {line}: empty id" in msg
    assert "line 15" not in msg


def test_prepare_ids_invalid_uscc() -> None:
    good = KNOWN_USCC[0]
    bad = good[:17] + ("0" if good[17] != "0" else "1")
    raw = [good, KNOWN_USCC[1], bad, "123", KNOWN_USCC[1].lower()]
    assert prepare_ids(raw[:2], source="c.csv", validate_uscc=True) == raw[:2]
    with pytest.raises(DataError) as err:
        prepare_ids(raw, source="c.csv", validate_uscc=True)
    msg = str(err.value)
    assert msg.startswith("c.csv:")
    assert "line 4: invalid USCC (check digit mismatch)" in msg
    assert "line 5: invalid USCC (length 3, expected 18)" in msg
    assert "line 6: duplicate of line 3" in msg  # lower-case variant normalizes equal
    # Without validation the malformed codes are accepted.
    assert len(prepare_ids(raw[:4], source="c.csv")) == 4


# --------------------------------------------------------------------------- ecdh.py


def test_blinding_commutes_and_rejects_low_order() -> None:
    rng = random.Random(7)
    a, b = random_scalar(rng), random_scalar(rng)
    pts = [hash_to_point(SALT, f"ID{i}") for i in range(50)]
    assert all(len(p) == 32 for p in pts)
    assert blind(a, blind(b, pts)) == blind(b, blind(a, pts))
    assert blind(a, []) == []
    with pytest.raises(CryptoError):
        blind(a, [bytes(32)])  # u = 0, low order
    with pytest.raises(CryptoError):
        blind(a, [(1).to_bytes(32, "little")])  # u = 1, low order
    with pytest.raises(CryptoError):
        blind(a, [b"\x09" * 31])
    with pytest.raises(CryptoError):
        blind(b"short", pts[:1])


def test_hash_to_point_salt_is_length_prefixed() -> None:
    assert hash_to_point(b"ab", "C") != hash_to_point(b"a", "BC")
    assert hash_to_point(SALT, "X") == hash_to_point(SALT, "X")


P25519 = 2**255 - 19


def _euler_on_curve(u: int) -> bool:
    """Independent curve test: v = u^3 + A u^2 + u is a nonzero square (Euler's criterion)."""
    v = (pow(u, 3, P25519) + 486662 * u * u + u) % P25519
    return v != 0 and pow(v, (P25519 - 1) // 2, P25519) == 1


def _old_hash(salt: bytes, x: str) -> bytes:
    """The previous hash_to_point: raw SHA-512 bytes, about half on the twist."""
    return hashlib.sha512(len(salt).to_bytes(8, "big") + salt + x.encode()).digest()[:32]


def _reference_hash_to_point(salt: bytes, x: str) -> tuple[bytes, int]:
    """The documented try-and-increment, written out independently; returns (point, counter)."""
    for counter in range(64):
        data = b"fedcredit/v1/psi-h2c" + len(salt).to_bytes(8, "big") + salt
        data += counter.to_bytes(4, "big") + x.encode("utf-8")
        u = int.from_bytes(hashlib.sha512(data).digest()[:32], "little") % 2**255 % P25519
        if _euler_on_curve(u):
            return u.to_bytes(32, "little"), counter
    raise AssertionError("no curve point in 64 tries")


def test_hash_to_point_lands_on_curve_only() -> None:
    # Fails on a plain hash: about half of all 32-byte strings are twist points,
    # and that bit is public and survives blinding.
    ids = [f"91350100M{i:09d}" for i in range(1000)]
    assert sum(is_on_curve(hash_to_point(SALT, x)) for x in ids) / len(ids) == 1.0
    old = sum(is_on_curve(_old_hash(SALT, x)) for x in ids) / len(ids)
    assert 0.4 < old < 0.6


def test_hash_to_point_matches_reference() -> None:
    counters = []
    for salt in (SALT, b"another-salt-16b", b"ab"):
        for i in range(100):
            x = f"ID{i}-９Ａ" if i % 7 == 0 else f"ID{i}"  # some non-ASCII ids too
            expected, counter = _reference_hash_to_point(salt, x)
            got = hash_to_point(salt, x)
            assert got == expected
            assert int.from_bytes(got, "little") < P25519  # canonical encoding
            counters.append(counter)
    # Try-and-increment really is exercised: roughly half need a second try.
    assert 0 in counters and max(counters) >= 2
    assert 0.35 < sum(c > 0 for c in counters) / len(counters) < 0.65


def test_is_on_curve() -> None:
    assert is_on_curve((9).to_bytes(32, "little"))  # the X25519 base point
    assert is_on_curve((1).to_bytes(32, "little"))  # order 4: on the curve, but low order
    assert not is_on_curve((P25519 - 1).to_bytes(32, "little"))  # order 4 on the twist
    assert not is_on_curve(bytes(32))  # u = 0: v = 0, shared by curve and twist
    assert not is_on_curve(b"\x09" * 31)
    assert not is_on_curve("9" * 32)  # type: ignore[arg-type]
    # Bit 255 is masked and u is reduced mod p, as X25519 does.
    nine_high = (9 + 2**255).to_bytes(32, "little")
    assert is_on_curve(nine_high)
    assert is_on_curve((9 + P25519).to_bytes(32, "little"))
    for i in range(200):
        u = _old_hash(SALT, f"X{i}")
        assert is_on_curve(u) == _euler_on_curve(int.from_bytes(u, "little") % 2**255 % P25519)


def test_curve_twist_bit_survives_blinding() -> None:
    """Why the hash must avoid the twist: blinding keeps a point's curve/twist side."""
    rng = random.Random(13)
    a = random_scalar(rng)
    raw = [_old_hash(SALT, f"T{i}") for i in range(100)]
    assert [is_on_curve(p) for p in blind(a, raw)] == [is_on_curve(p) for p in raw]
    assert not all(is_on_curve(p) for p in raw)


def test_blinded_hashes_stay_on_curve() -> None:
    rng = random.Random(17)
    a, b = random_scalar(rng), random_scalar(rng)
    pts = [hash_to_point(SALT, f"91440300{i:010d}") for i in range(500)]
    once = blind(a, pts)
    twice = blind(b, once)
    for group in (pts, once, twice):
        assert all(is_on_curve(p) for p in group)
    assert twice == blind(a, blind(b, pts))
    assert len(set(pts)) == len(set(once)) == len(set(twice)) == 500


def test_low_order_curve_points_rejected_by_blind() -> None:
    """The three low-order curve points hash_to_point skips really are low order."""
    from protocols.psi.ecdh import _LOW_ORDER_ON_CURVE

    a = random_scalar(random.Random(19))
    for u in _LOW_ORDER_ON_CURVE:
        point = u.to_bytes(32, "little")
        assert is_on_curve(point)
        with pytest.raises(CryptoError):
            blind(a, [point])


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


# --------------------------------------------------------------------------- validation


def test_params_and_payload_validation() -> None:
    with pytest.raises(ProtocolError):
        PsiParams(salt=b"short")
    with pytest.raises(ProtocolError):
        PsiParams(salt="0123456789abcdef")  # type: ignore[arg-type]
    with pytest.raises(ProtocolError):
        PsiParams(salt=SALT, reveal="nobody")  # type: ignore[arg-type]
    with pytest.raises(ProtocolError):
        PsiParams(salt=SALT, batch_size=0)
    assert PsiParams(salt=SALT, reveal="guest").reveal is Reveal.GUEST  # type: ignore[arg-type]
    with pytest.raises(ProtocolError):
        BlindedPoints((b"\x00" * 31,))
    with pytest.raises(ProtocolError):
        BlindedPoints([b"\x00" * 32])  # type: ignore[arg-type]
    with pytest.raises(ProtocolError):
        MatchedPositions((1, -1))
    with pytest.raises(ProtocolError):
        MatchedPositions((True,))
    for bad in (-1, True, 2**32 + 1, 1.0):
        with pytest.raises(ProtocolError):
            SetSize(bad)  # type: ignore[arg-type]
    assert SetSize(5).disclosed() == {"set_size": 5}
    # mode and reveal are one setting
    assert PsiParams(salt=SALT, mode="cardinality").reveal is Reveal.CARDINALITY
    assert PsiParams(salt=SALT, reveal="guest").mode is Reveal.GUEST
    assert PsiParams(salt=SALT).mode is Reveal.BOTH
    with pytest.raises(ProtocolError):
        PsiParams(salt=SALT, reveal="guest", mode="cardinality")
    with pytest.raises(ProtocolError):
        PsiParams(salt=SALT, mode="everyone")  # type: ignore[arg-type]


def test_duplicate_ids_rejected() -> None:
    params = PsiParams(salt=SALT)
    with pytest.raises(DataError):
        run_local({Role.GUEST: guest_program(["A", "A"], params, random.Random(1)),
                   Role.HOST: host_program(["A"], params, random.Random(2))})
    with pytest.raises(DataError):
        run_local({Role.GUEST: guest_program(["A"], params, random.Random(1)),
                   Role.HOST: host_program(["B", "B"], params, random.Random(2))})


def test_check_send_rejects_wrong_role_and_type() -> None:
    pts = BlindedPoints((b"\x09" + bytes(31),))
    assert check_send(Role.GUEST, Send(PsiStep.GUEST_BLINDED, pts)) is Role.HOST
    with pytest.raises(ProtocolError):
        check_send(Role.HOST, Send(PsiStep.GUEST_BLINDED, pts))  # wrong sender
    with pytest.raises(ProtocolError):
        check_send(Role.GUEST, Send(PsiStep.GUEST_BLINDED, MatchedPositions((0,))))  # wrong type
    with pytest.raises(ProtocolError):
        check_send(Role.HOST, Send(PsiStep.HOST_BLINDED, pts, to=Role.COORDINATOR))
    with pytest.raises(ProtocolError):
        check_recv(Role.HOST, Recv(PsiStep.HOST_BLINDED))  # host does not receive it


def _run_against_host(bogus_guest: RoleProgram, host_ids: list[str], reveal: Reveal = Reveal.BOTH) -> dict:
    params = PsiParams(salt=SALT, reveal=reveal)
    return run_local({Role.GUEST: bogus_guest, Role.HOST: host_program(host_ids, params, random.Random(2))})


def test_wrong_payload_type_rejected() -> None:
    class Other(Public):
        pass

    def bogus_guest() -> RoleProgram:
        yield Send(PsiStep.GUEST_BLINDED, Other())  # type: ignore[arg-type]

    with pytest.raises(ProtocolError, match="carries BlindedPoints"):
        _run_against_host(bogus_guest(), ["A"])


def test_out_of_order_step_rejected() -> None:
    def matches_first() -> RoleProgram:
        yield Send(PsiStep.GUEST_MATCHES, MatchedPositions((0,)))
        yield Recv(PsiStep.HOST_DOUBLE_BLINDED)

    with pytest.raises(ProtocolError, match="deadlock"):
        _run_against_host(matches_first(), ["A"])

    def sends_host_step() -> RoleProgram:
        yield Send(PsiStep.HOST_BLINDED, BlindedPoints(()))

    with pytest.raises(ProtocolError, match="may not send"):
        _run_against_host(sends_host_step(), ["A"])


def test_bad_matches_rejected_by_host() -> None:
    for positions in [(5,), (0, 0), (0, 1, 2)]:

        def bogus_guest(positions=positions) -> RoleProgram:
            pts = blind(random_scalar(random.Random(4)), [hash_to_point(SALT, "A")])
            yield Send(PsiStep.GUEST_SIZE, SetSize(1))
            yield Send(PsiStep.GUEST_BLINDED, BlindedPoints(tuple(pts)))
            yield Recv(PsiStep.HOST_SIZE)
            yield Recv(PsiStep.HOST_BLINDED)
            yield Recv(PsiStep.HOST_DOUBLE_BLINDED)
            yield Send(PsiStep.GUEST_MATCHES, MatchedPositions(positions))

        with pytest.raises(ProtocolError, match="psi.guest_matches"):
            _run_against_host(bogus_guest(), ["A", "B"])


def test_short_reply_rejected_by_guest() -> None:
    params = PsiParams(salt=SALT)

    def short_host() -> RoleProgram:
        yield Send(PsiStep.HOST_SIZE, SetSize(0))
        yield Recv(PsiStep.GUEST_SIZE)
        got = yield Recv(PsiStep.GUEST_BLINDED)
        yield Send(PsiStep.HOST_DOUBLE_BLINDED, BlindedPoints(got.points[:-1]))

    with pytest.raises(ProtocolError, match="expected 3"):
        run_local({Role.GUEST: guest_program(["A", "B", "C"], params, random.Random(1)), Role.HOST: short_host()})

    def short_batch_host() -> RoleProgram:
        yield Send(PsiStep.HOST_SIZE, SetSize(2))  # announces 2, sends 1
        p = blind(random_scalar(random.Random(8)), [hash_to_point(SALT, "Z")])[0]
        yield Send(PsiStep.HOST_BLINDED, BlindedPoints((p,)))

    with pytest.raises(ProtocolError, match="batch 0 carries 1 points, expected 2"):
        run_local({Role.GUEST: guest_program(["A"], params, random.Random(1)), Role.HOST: short_batch_host()})

    def repeating_host() -> RoleProgram:
        p = blind(random_scalar(random.Random(8)), [hash_to_point(SALT, "Z")])[0]
        yield Send(PsiStep.HOST_SIZE, SetSize(2))
        yield Send(PsiStep.HOST_BLINDED, BlindedPoints((p, p)))
        yield Recv(PsiStep.GUEST_SIZE)
        got = yield Recv(PsiStep.GUEST_BLINDED)
        yield Send(PsiStep.HOST_DOUBLE_BLINDED, BlindedPoints(got.points))

    with pytest.raises(ProtocolError, match="repeats a point"):
        run_local({Role.GUEST: guest_program(["A"], params, random.Random(1)), Role.HOST: repeating_host()})

    def low_order_host() -> RoleProgram:
        yield Send(PsiStep.HOST_SIZE, SetSize(1))
        yield Send(PsiStep.HOST_BLINDED, BlindedPoints((bytes(32),)))
        yield Recv(PsiStep.GUEST_SIZE)
        got = yield Recv(PsiStep.GUEST_BLINDED)
        yield Send(PsiStep.HOST_DOUBLE_BLINDED, BlindedPoints(got.points))

    with pytest.raises(CryptoError):
        run_local({Role.GUEST: guest_program(["A"], params, random.Random(1)), Role.HOST: low_order_host()})


# --------------------------------------------------------------------------- resume


def run_resumable(
    make: dict[Role, Callable[[PsiCheckpoint | None], RoleProgram]],
    kills: dict[Role, list[int]] | None = None,
) -> tuple[dict[Role, Any], dict[str, int]]:
    """Drive role programs as the runtime must when a party process dies and restarts.

    Like run_local, but: every message ever sent stays available per (step, sender)
    -- the relay plus the receiver's local spool; each role has its own next
    send/receive sequence number per step; and after the role's n-th action
    (for each n in ``kills[role]``, counted over the role's whole life) the
    action is dropped and the generator closed, as if the process died right
    there. The role is then re-created from the last checkpoint it reported:
    receive counters restart at ``recv_from``, send counters at ``sent``, and a
    send whose sequence number was already delivered must repeat the delivered
    payload exactly and is skipped.
    """
    kills = kills or {}
    logs: dict[tuple[str, Role], list[Any]] = defaultdict(list)
    gens = {r: f(None) for r, f in make.items()}
    started: set[Role] = set()
    pending: dict[Role, Recv | None] = {r: None for r in make}
    inbox: dict[Role, Any] = {r: None for r in make}
    send_seq: dict[Role, dict[str, int]] = {r: defaultdict(int) for r in make}
    recv_seq: dict[Role, dict[str, int]] = {r: defaultdict(int) for r in make}
    last_cp: dict[Role, dict | None] = {r: None for r in make}
    actions = {r: 0 for r in make}
    results: dict[Role, Any] = {}
    stats = {"restarts": 0, "resent": 0}

    def restart(role: Role) -> None:
        gens[role].close()
        cp = last_cp[role]
        resume = PsiCheckpoint.from_dict(json.loads(json.dumps(cp))) if cp is not None else None
        gens[role] = make[role](resume)
        started.discard(role)
        pending[role], inbox[role] = None, None
        send_seq[role] = defaultdict(int, resume.sent if resume else {})
        recv_seq[role] = defaultdict(int, resume.recv_from if resume else {})
        stats["restarts"] += 1

    def advance(role: Role) -> bool:
        moved = False
        while role not in results:
            want = pending[role]
            if want is not None:
                frm = check_recv(role, want)
                queue = logs[(want.step.wire, frm)]
                seq = recv_seq[role][want.step.wire]
                if seq >= len(queue):
                    return moved
                inbox[role] = queue[seq]
                recv_seq[role][want.step.wire] = seq + 1
                pending[role] = None
            try:
                if role in started:
                    action = gens[role].send(inbox[role])
                else:
                    started.add(role)
                    action = next(gens[role])
                inbox[role] = None
            except StopIteration as stop:
                results[role] = stop.value
                return True
            moved = True
            actions[role] += 1
            if actions[role] in kills.get(role, ()):
                restart(role)
                continue
            if isinstance(action, Send):
                check_send(role, action)
                wire = action.step.wire
                seq = send_seq[role][wire]
                send_seq[role][wire] = seq + 1
                queue = logs[(wire, role)]
                if seq < len(queue):
                    assert queue[seq] == action.payload, f"{role} re-sent {wire}#{seq} with a different payload"
                    stats["resent"] += 1
                else:
                    assert seq == len(queue), f"{role} skipped {wire}#{len(queue)}"
                    queue.append(action.payload)
            elif isinstance(action, Recv):
                pending[role] = action
            elif isinstance(action, Checkpoint):
                cp = dict(action.state)
                assert json.loads(json.dumps(cp)) == cp  # plain JSON
                last_cp[role] = cp
            elif isinstance(action, Progress):
                assert "checkpoint" not in action.detail and "secret" not in json.dumps(dict(action.detail))
        return moved

    for _ in range(100_000):
        if len(results) == len(make):
            return results, stats
        if not any([advance(r) for r in make if r not in results]):
            raise AssertionError(f"deadlock; waiting: {[(r, p.step.wire) for r, p in pending.items() if p]}")
    raise AssertionError("did not finish")


RESUME_CASE = {
    "guest": make_ids(random.Random(41), 30, "C") + make_ids(random.Random(42), 17, "G"),
    "host": make_ids(random.Random(43), 21, "H") + make_ids(random.Random(41), 30, "C")[5:],
}


def _resume_programs(mode: Reveal, map_fn: Any = None) -> dict[Role, Callable[[PsiCheckpoint | None], RoleProgram]]:
    params = PsiParams(salt=SALT, mode=mode, batch_size=6)
    return {
        Role.GUEST: lambda cp: guest_program(RESUME_CASE["guest"], params, random.Random(51), resume=cp, checkpoint=True),
        Role.HOST: lambda cp: host_program(RESUME_CASE["host"], params, random.Random(52), resume=cp, checkpoint=True),
    }


@pytest.mark.parametrize("mode", list(Reveal))
def test_resume_after_kill_gives_the_same_result(mode: Reveal) -> None:
    baseline, stats = run_resumable(_resume_programs(mode))
    assert stats == {"restarts": 0, "resent": 0}
    assert baseline[Role.GUEST].size == 25
    # The role's whole life, action by action, to pick kill points in every phase.
    counts = {}
    for role in (Role.GUEST, Role.HOST):
        log: list = []
        progs = _resume_programs(mode)
        wrapped = {r: (lambda cp, r=r, f=f: recording(f(cp), r, log)) for r, f in progs.items()}
        run_resumable(wrapped)
        counts[role] = sum(1 for r, _ in log if r is role)
    for role in (Role.GUEST, Role.HOST):
        n = counts[role]
        for at in sorted({1, 2, 3, 4, n // 5, n // 3, n // 2, 2 * n // 3, 4 * n // 5, n - 2, n - 1, n}):
            out, stats = run_resumable(_resume_programs(mode), kills={role: [at]})
            assert out == baseline, (role, at)
            assert stats["restarts"] == 1
            # Only what was sent after the last checkpoint goes again: at most one
            # batch (plus the size message, which shares the first batch's checkpoint).
            assert stats["resent"] <= 2
    # Both roles die, the guest twice, at different phases.
    out, stats = run_resumable(
        _resume_programs(mode), kills={Role.GUEST: [counts[Role.GUEST] // 3, counts[Role.GUEST]], Role.HOST: [counts[Role.HOST] // 2]}
    )
    assert out == baseline and stats["restarts"] == 3


def test_resumed_role_continues_after_its_last_batch() -> None:
    """A guest killed after sending 5 of its 8 batches does not blind or send them again."""
    params = PsiParams(salt=SALT, batch_size=6)
    log: list = []

    def guest(cp: PsiCheckpoint | None) -> RoleProgram:
        return recording(guest_program(RESUME_CASE["guest"], params, random.Random(51), resume=cp, checkpoint=True), Role.GUEST, log)

    def host(cp: PsiCheckpoint | None) -> RoleProgram:
        return host_program(RESUME_CASE["host"], params, random.Random(52), resume=cp, checkpoint=True)

    # Actions: start checkpoint and progress, size, then (send, checkpoint, progress) per
    # batch. Action 19 is the send of batch 5: the process dies before it leaves,
    # after the checkpoint that recorded 5 batches sent.
    out, stats = run_resumable({Role.GUEST: guest, Role.HOST: host}, kills={Role.GUEST: [19]})
    assert stats == {"restarts": 1, "resent": 0}
    blinded = [a.payload for r, a in log if isinstance(a, Send) and a.step is PsiStep.GUEST_BLINDED]
    assert len(blinded) == 6 + 3  # batches 0-5 (5 lost), then only 5, 6, 7 after the restart
    assert blinded[6] == blinded[5]  # batch 5 recomputed identically from the checkpoint
    assert out[Role.GUEST].size == 25


def test_checkpoint_format_and_checks() -> None:
    params = PsiParams(salt=SALT, batch_size=6)
    gen = guest_program(RESUME_CASE["guest"], params, random.Random(51), checkpoint=True)
    first, second = next(gen), next(gen)
    # the secrets come first, in their own action; the progress report that follows carries none
    assert isinstance(first, Checkpoint) and first.stage == "psi"
    assert isinstance(second, Progress) and second.detail == {"phase": "start"}
    cp = dict(first.state)
    assert cp["secret"]["scalar"] not in repr(first)  # not even in a log line of the action
    assert set(cp) == {"version", "protocol", "role", "job", "secret", "peer_size", "sent", "recv_from"}
    assert cp["secret"]["scalar"] == random_scalar(random.Random(51)).hex()  # the secret is in there ...
    parsed = PsiCheckpoint.from_dict(cp)
    assert "secret" not in parsed.public_view()  # ... and can be stripped for logs
    assert cp["secret"]["scalar"] not in json.dumps(parsed.public_view())
    assert parsed.to_dict() == cp
    gen.close()

    with pytest.raises(ProtocolError, match="other ids"):
        next(guest_program(RESUME_CASE["guest"][:-1], params, random.Random(1), resume=parsed))
    with pytest.raises(ProtocolError, match="other ids"):
        next(guest_program(RESUME_CASE["guest"], PsiParams(salt=SALT, batch_size=7), random.Random(1), resume=parsed))
    with pytest.raises(ProtocolError, match="not the host"):
        next(host_program(RESUME_CASE["guest"], params, random.Random(1), resume=parsed))
    for broken in ({**cp, "version": 99}, {**cp, "sent": {"psi.guest_blinded": -1}}, {**cp, "job": "zz"}, {"role": "guest"}):
        with pytest.raises(ProtocolError):
            PsiCheckpoint.from_dict(broken)


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
