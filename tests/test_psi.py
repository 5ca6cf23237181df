"""Tests for protocols.psi: id preparation, X25519 primitives and the PSI protocol."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.core import (
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
    MatchedPositions,
    PsiParams,
    PsiResult,
    PsiStep,
    Reveal,
    guest_program,
    host_program,
)

SALT = bytes(range(16))


# --------------------------------------------------------------------------- helpers


def make_ids(rng: random.Random, n: int, prefix: str) -> list[str]:
    """n distinct 18-character synthetic ids (long enough that a random 32-byte
    point cannot contain one by chance)."""
    return [f"{prefix}{rng.getrandbits(64):016X}{i:06d}" for i in range(n)]


def recording(gen: RoleProgram, role: Role, log: list[tuple[Role, Any]]) -> RoleProgram:
    """Forward every action of ``gen`` unchanged, recording what it yields."""
    reply: Any = None
    while True:
        try:
            action = gen.send(reply)
        except StopIteration as stop:
            return stop.value
        log.append((role, action))
        reply = yield action


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
    assert sorted(s.wire for s in steps) == sorted(
        [PsiStep.GUEST_BLINDED.wire, PsiStep.HOST_BLINDED.wire, PsiStep.HOST_DOUBLE_BLINDED.wire]
    )
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
        (s,) = [a for a in sends(log) if a.step is step]
        return s.payload.points

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
    _, _, log = run_psi(guest_ids, host_ids)
    all_ids = guest_ids + host_ids
    id_bytes = [x.encode() for x in all_ids]
    hashes = {hash_to_point(SALT, x) for x in all_ids}
    messages = sends(log)
    assert {m.step for m in messages} == set(PsiStep)
    for m in messages:
        assert m.payload.classification in (Classification.MASKED, Classification.AGGREGATE)
        if isinstance(m.payload, BlindedPoints):
            assert isinstance(m.payload, Masked)
            for p in m.payload.points:
                assert p not in hashes
                assert not any(x in p for x in id_bytes)
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

    (sent,) = [a.payload.points for a in sends(log) if a.step is PsiStep.GUEST_BLINDED]
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
    # guest: 25 own points in 3 batches, then 10 host points in 1 batch
    assert [(p.done, p.total) for p in guest] == [(10, 25), (20, 25), (25, 25), (35, 35)]
    # host: 10 own points in 1 batch, then 25 guest points in 3 batches
    assert [(p.done, p.total) for p in host] == [(10, 10), (20, 35), (30, 35), (35, 35)]


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
            yield Send(PsiStep.GUEST_BLINDED, BlindedPoints(tuple(pts)))
            yield Recv(PsiStep.HOST_BLINDED)
            yield Recv(PsiStep.HOST_DOUBLE_BLINDED)
            yield Send(PsiStep.GUEST_MATCHES, MatchedPositions(positions))

        with pytest.raises(ProtocolError, match="psi.guest_matches"):
            _run_against_host(bogus_guest(), ["A", "B"])


def test_short_reply_rejected_by_guest() -> None:
    params = PsiParams(salt=SALT)

    def short_host() -> RoleProgram:
        yield Send(PsiStep.HOST_BLINDED, BlindedPoints(()))
        got = yield Recv(PsiStep.GUEST_BLINDED)
        yield Send(PsiStep.HOST_DOUBLE_BLINDED, BlindedPoints(got.points[:-1]))

    with pytest.raises(ProtocolError, match="expected 3"):
        run_local({Role.GUEST: guest_program(["A", "B", "C"], params, random.Random(1)), Role.HOST: short_host()})

    def repeating_host() -> RoleProgram:
        p = blind(random_scalar(random.Random(8)), [hash_to_point(SALT, "Z")])[0]
        yield Send(PsiStep.HOST_BLINDED, BlindedPoints((p, p)))
        got = yield Recv(PsiStep.GUEST_BLINDED)
        yield Send(PsiStep.HOST_DOUBLE_BLINDED, BlindedPoints(got.points))

    with pytest.raises(ProtocolError, match="repeats a point"):
        run_local({Role.GUEST: guest_program(["A"], params, random.Random(1)), Role.HOST: repeating_host()})

    def low_order_host() -> RoleProgram:
        yield Send(PsiStep.HOST_BLINDED, BlindedPoints((bytes(32),)))
        got = yield Recv(PsiStep.GUEST_BLINDED)
        yield Send(PsiStep.HOST_DOUBLE_BLINDED, BlindedPoints(got.points))

    with pytest.raises(CryptoError):
        run_local({Role.GUEST: guest_program(["A"], params, random.Random(1)), Role.HOST: low_order_host()})
