"""PSI modes against plaintext set intersection, cardinality leakage, unbalanced mode, parallel blinding, dedupe."""

from __future__ import annotations

import random
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Iterator

import pytest

from fedcredit.protocols.core import Classification, Progress, Recv, Role, RoleProgram, Send, run_local, tap
from fedcredit.protocols.errors import CryptoError, DataError, ProtocolError
from fedcredit.protocols.psi.ecdh import (
    SUBGROUP_ORDER,
    blind,
    clamp_scalar,
    hash_and_blind,
    hash_points,
    hash_to_point,
    invertible_scalar,
    random_scalar,
)
from fedcredit.protocols.psi.ids import DedupedIds, prepare_ids
from fedcredit.protocols.psi.protocol import (
    BlindedPoints,
    PsiParams,
    PsiResult,
    PsiStep,
    Reveal,
    SetSize,
    guest_program,
    host_program,
)
from fedcredit.protocols.psi.unbalanced import (
    CacheDigest,
    CachedDigests,
    CacheStatus,
    UnbalancedCache,
    UnbalancedParams,
    UnbalancedStep,
    unbalanced_build_cache,
    unbalanced_cache_digest,
    unbalanced_guest_program,
    unbalanced_host_program,
    unbalanced_key_id,
    unbalanced_new_key,
)

SALT = bytes(range(16))
UB_SALT = b"unbalanced-salt-0001"


def make_ids(rng: random.Random, n: int, prefix: str) -> list[str]:
    return [f"{prefix}{rng.getrandbits(64):016X}{i:06d}" for i in range(n)]


def recording(gen: RoleProgram, role: Role, log: list[tuple[Role, Any]]) -> RoleProgram:
    """Forward ``gen`` unchanged; log what it yields and, after each Recv, what it received."""
    return tap(gen, lambda action: log.append((role, action)),
               lambda recv, reply: log.append((role, ("received", recv.step, reply))))


def received(log: list[tuple[Role, Any]], role: Role) -> list[tuple[Any, Any]]:
    """(step, payload) of every message ``role`` received, in order."""
    return [(a[1], a[2]) for r, a in log if r is role and isinstance(a, tuple) and a[0] == "received"]


def sent(log: list[tuple[Role, Any]], role: Role, step: Any) -> list[bytes]:
    return [p for r, a in log if r is role and isinstance(a, Send) and a.step is step for p in a.payload.points]


def run_psi(guest_ids, host_ids, params, seeds=(1, 2), map_fn=None):
    log: list[tuple[Role, Any]] = []
    out = run_local({
        Role.GUEST: recording(guest_program(guest_ids, params, random.Random(seeds[0]), map_fn=map_fn), Role.GUEST, log),
        Role.HOST: recording(host_program(host_ids, params, random.Random(seeds[1]), map_fn=map_fn), Role.HOST, log),
    })
    return out[Role.GUEST], out[Role.HOST], log


def sets_with_overlap(seed: int, n_guest: int, n_host: int, overlap: float) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    n_common = int(round(overlap * min(n_guest, n_host)))
    common = make_ids(rng, n_common, "C")
    guest = common + make_ids(rng, n_guest - n_common, "G")
    host = common + make_ids(rng, n_host - n_common, "H")
    rng.shuffle(guest)
    rng.shuffle(host)
    return guest, host


CASES = [(f"overlap{int(f * 100)}", 37, 52, f) for f in (0.0, 0.25, 0.5, 0.75, 1.0)] + [
    ("empty-guest", 0, 20, 0.0), ("empty-host", 20, 0, 0.0), ("both-empty", 0, 0, 0.0),
    ("identical", 29, 29, 1.0), ("one-each", 1, 1, 1.0), ("guest-larger", 61, 13, 0.5),
]


def check_against_plaintext(mode: Reveal, guest_ids, host_ids, g: PsiResult, h: PsiResult) -> None:
    expected_rows = [i for i, x in enumerate(guest_ids) if x in set(host_ids)]
    assert g.size == len(set(guest_ids) & set(host_ids)) == len(expected_rows)
    if mode is Reveal.CARDINALITY:
        assert g.rows == ()
        assert h == PsiResult(rows=(), size=-1)
    elif mode is Reveal.GUEST:
        assert list(g.rows) == expected_rows
        assert h == PsiResult(rows=(), size=-1)
    else:
        assert list(g.rows) == expected_rows
        assert h.size == g.size
        assert [guest_ids[i] for i in g.rows] == [host_ids[j] for j in h.rows]


@pytest.mark.parametrize("mode", list(Reveal), ids=str)
@pytest.mark.parametrize("name,n_guest,n_host,overlap", CASES, ids=[c[0] for c in CASES])
def test_every_mode_matches_plaintext_intersection(mode: Reveal, name: str, n_guest: int, n_host: int, overlap: float) -> None:
    guest_ids, host_ids = sets_with_overlap(sum(map(ord, name)), n_guest, n_host, overlap)
    g, h, _ = run_psi(guest_ids, host_ids, PsiParams(salt=SALT, mode=mode, batch_size=7))
    check_against_plaintext(mode, guest_ids, host_ids, g, h)


@pytest.mark.parametrize("mode", list(Reveal), ids=str)
def test_batch_size_does_not_change_the_result(mode: Reveal) -> None:
    guest_ids, host_ids = sets_with_overlap(5, 40, 33, 0.6)
    results = {run_psi(guest_ids, host_ids, PsiParams(salt=SALT, mode=mode, batch_size=b))[:2] for b in (1, 3, 8, 40, 1000)}
    assert len(results) == 1


# --------------------------------------------------------------------------- cardinality leakage


def test_cardinality_mode_never_reveals_ids() -> None:
    guest_ids, host_ids = sets_with_overlap(17, 45, 38, 0.5)
    params = PsiParams(salt=SALT, mode=Reveal.CARDINALITY, batch_size=8)
    g, h, log = run_psi(guest_ids, host_ids, params, seeds=(101, 202))
    assert g == PsiResult(rows=(), size=19) and h == PsiResult(rows=(), size=-1)
    a, b = random_scalar(random.Random(101)), random_scalar(random.Random(202))  # each role's first draw

    id_bytes = [x.encode() for x in guest_ids + host_ids]
    hashes = {hash_to_point(SALT, x) for x in guest_ids + host_ids}
    guest_sent = set(sent(log, Role.GUEST, PsiStep.GUEST_BLINDED))
    host_sent = set(sent(log, Role.HOST, PsiStep.HOST_BLINDED))
    assert guest_sent == set(blind(a, [hash_to_point(SALT, x) for x in guest_ids]))
    for role, own in ((Role.GUEST, guest_sent), (Role.HOST, host_sent)):
        got = received(log, role)
        assert got
        for step, payload in got:
            assert payload.classification in (Classification.PUBLIC, Classification.MASKED)
            blob = repr(payload).encode()
            assert not any(x in blob for x in id_bytes), f"{role} received an id in {step.wire}"
            if isinstance(payload, SetSize):
                continue
            assert isinstance(payload, BlindedPoints)
            for p in payload.points:
                assert p not in hashes  # never an unblinded h(id)
                assert p not in own  # never one of the receiver's own blinded values
                assert not any(x in p for x in id_bytes)
    # The guest sends nothing after its blinded points: no matches, nothing row-wise.
    guest_steps = {a.step for r, a in log if r is Role.GUEST and isinstance(a, Send)}
    assert guest_steps == {PsiStep.GUEST_SIZE, PsiStep.GUEST_BLINDED}

    # The double-blinded reply is the guest's set, shuffled across the whole list.
    reply = [p for step, m in received(log, Role.GUEST) if step is PsiStep.HOST_DOUBLE_BLINDED for p in m.points]
    in_row_order = blind(b, blind(a, [hash_to_point(SALT, x) for x in guest_ids]))
    in_sent_order = blind(b, sent(log, Role.GUEST, PsiStep.GUEST_BLINDED))
    assert sorted(reply) == sorted(in_row_order) == sorted(in_sent_order)
    assert reply != in_row_order and reply != in_sent_order
    assert sum(p == q for p, q in zip(reply, in_sent_order)) <= 5
    assert sum(p == q for p, q in zip(reply, in_row_order)) <= 5
    # Not a per-batch shuffle: values cross batch boundaries.
    first_batch = set(in_sent_order[:8])
    assert any(p in first_batch for p in reply[8:])


def test_cardinality_reply_is_sent_only_after_every_guest_batch() -> None:
    guest_ids, host_ids = sets_with_overlap(19, 30, 30, 0.5)
    _, _, log = run_psi(guest_ids, host_ids, PsiParams(salt=SALT, mode="cardinality", batch_size=4))
    host = [a for r, a in log if r is Role.HOST and not isinstance(a, (Progress, tuple))]
    last_recv = max(i for i, a in enumerate(host) if isinstance(a, Recv) and a.step is PsiStep.GUEST_BLINDED)
    first_reply = min(i for i, a in enumerate(host) if isinstance(a, Send) and a.step is PsiStep.HOST_DOUBLE_BLINDED)
    assert last_recv < first_reply


def test_cardinality_view_does_not_depend_on_which_rows_match() -> None:
    """Same sizes and count, different matching rows: the guest's received sizes and batch lengths are the same."""
    rng = random.Random(23)
    common = make_ids(rng, 10, "C")
    host_ids = common + make_ids(rng, 20, "H")
    g1 = common + make_ids(rng, 15, "G")
    g2 = make_ids(rng, 15, "G") + common
    params = PsiParams(salt=SALT, mode=Reveal.CARDINALITY, batch_size=6)
    views = []
    for guest_ids in (g1, g2):
        g, _, log = run_psi(guest_ids, host_ids, params)
        assert g.size == 10
        views.append([(s.wire, len(p.points) if isinstance(p, BlindedPoints) else p) for s, p in received(log, Role.GUEST)])
    assert views[0] == views[1]


# --------------------------------------------------------------------------- unbalanced


@pytest.fixture(scope="module")
def platform() -> dict[str, Any]:
    rng = random.Random(61)
    ids = make_ids(rng, 3000, "P")
    key = unbalanced_new_key(rng)
    return {"ids": ids, "key": key, "cache": unbalanced_build_cache(ids, key, UB_SALT),
            "digest": unbalanced_cache_digest(ids, key, UB_SALT)}


def run_unbalanced(platform, queries, params, guest_cache=None, seeds=(71, 72)):
    log: list[tuple[Role, Any]] = []
    out = run_local({
        Role.GUEST: recording(unbalanced_guest_program(queries, params, random.Random(seeds[0]), cache=guest_cache), Role.GUEST, log),
        Role.HOST: recording(unbalanced_host_program(platform["key"], platform["cache"], platform["digest"], params,
                                                     random.Random(seeds[1])), Role.HOST, log),
    })
    return out[Role.GUEST], out[Role.HOST], log


@pytest.mark.parametrize("mode", [Reveal.GUEST, Reveal.CARDINALITY], ids=str)
@pytest.mark.parametrize("n_in,n_out", [(0, 0), (0, 40), (25, 0), (60, 90), (200, 1)])
def test_unbalanced_matches_plaintext(platform, mode: Reveal, n_in: int, n_out: int) -> None:
    rng = random.Random(n_in * 1000 + n_out)
    queries = rng.sample(platform["ids"], n_in) + make_ids(rng, n_out, "Q")
    rng.shuffle(queries)
    params = UnbalancedParams(mode=mode, batch_size=16, cache_batch_size=500)
    res, host, log = run_unbalanced(platform, queries, params)
    expected = [i for i, q in enumerate(queries) if q in set(platform["ids"])]
    assert res.result.size == len(expected) == n_in
    assert res.result.rows == (tuple(expected) if mode is Reveal.GUEST else ())
    assert host == PsiResult(rows=(), size=-1)
    assert res.cache_updated and res.cache.digest == platform["digest"]
    assert res.cache.values == frozenset(platform["cache"])
    # Cached: the same job again ships no cache, and gives the same answer.
    res2, _, log2 = run_unbalanced(platform, queries, params, guest_cache=res.cache)
    assert res2.result == res.result and not res2.cache_updated and res2.cache is res.cache
    assert not [a for r, a in log2 if isinstance(a, Send) and a.step is UnbalancedStep.CACHE]
    assert len([a for r, a in log if isinstance(a, Send) and a.step is UnbalancedStep.CACHE]) == 6  # 3000 / 500


def test_unbalanced_stale_cache_is_replaced(platform) -> None:
    rng = random.Random(5)
    queries = rng.sample(platform["ids"], 20) + make_ids(rng, 20, "Q")
    params = UnbalancedParams(batch_size=16, cache_batch_size=1000)
    other_ids = platform["ids"][:-1] + make_ids(rng, 1, "N")
    stale = UnbalancedCache.from_values(
        unbalanced_cache_digest(other_ids, platform["key"], UB_SALT), unbalanced_build_cache(other_ids, platform["key"], UB_SALT))
    res, _, log = run_unbalanced(platform, queries, params, guest_cache=stale)
    assert res.cache_updated and res.cache.digest == platform["digest"]
    assert res.result.size == 20
    status = [a.payload for r, a in log if isinstance(a, Send) and a.step is UnbalancedStep.CACHE_STATUS]
    assert status == [CacheStatus(False)]


def test_unbalanced_cache_and_digest(platform) -> None:
    ids, key = platform["ids"], platform["key"]
    cache, digest = platform["cache"], platform["digest"]
    assert cache == sorted(cache) and len(set(cache)) == len(ids) and all(len(v) == 16 for v in cache)
    assert cache[:5] == sorted(p[:16] for p in blind(key, hash_points(UB_SALT, ids)))[:5]
    assert digest.count == len(ids) and digest.salt == UB_SALT and digest.key_id == unbalanced_key_id(key)
    rng = random.Random(9)
    shuffled = list(ids)
    rng.shuffle(shuffled)
    assert unbalanced_cache_digest(shuffled, key, UB_SALT) == digest  # a set: order does not matter
    assert unbalanced_build_cache(shuffled[:50], key, UB_SALT) == unbalanced_build_cache(sorted(shuffled[:50]), key, UB_SALT)
    changed = {
        "id added": unbalanced_cache_digest(ids + ["NEW1"], key, UB_SALT),
        "id removed": unbalanced_cache_digest(ids[1:], key, UB_SALT),
        "id replaced": unbalanced_cache_digest(ids[1:] + ["NEW1"], key, UB_SALT),
        "key rotated": unbalanced_cache_digest(ids, unbalanced_new_key(rng), UB_SALT),
        "salt changed": unbalanced_cache_digest(ids, key, b"another-salt-00001"),
    }
    digests = {d.digest for d in changed.values()} | {digest.digest}
    assert len(digests) == len(changed) + 1
    assert changed["id replaced"].count == digest.count and changed["id replaced"].key_id == digest.key_id
    assert changed["key rotated"].set_digest != digest.set_digest  # keyed: a new key changes everything
    # The set digest is keyed: it is not a plain hash a guest could test guessed sets against.
    assert digest.set_digest != unbalanced_cache_digest(ids, bytes(32), UB_SALT).set_digest
    assert digest.disclosed() == {"cache_size": len(ids), "cache_digest": digest.digest.hex()}


def test_unbalanced_checks(platform) -> None:
    params = UnbalancedParams()
    with pytest.raises(ProtocolError, match="another key"):
        next(unbalanced_host_program(unbalanced_new_key(random.Random(1)), platform["cache"], platform["digest"], params, random.Random(1)))
    with pytest.raises(ProtocolError, match="entries"):
        next(unbalanced_host_program(platform["key"], platform["cache"][:-1], platform["digest"], params, random.Random(1)))
    with pytest.raises(ProtocolError, match="cap"):
        run_unbalanced(platform, make_ids(random.Random(2), 30, "Q"), UnbalancedParams(max_queries=29))
    assert run_unbalanced(platform, make_ids(random.Random(2), 30, "Q"), UnbalancedParams(max_queries=30))[0].result.size == 0
    with pytest.raises(ProtocolError):
        UnbalancedParams(mode=Reveal.BOTH)
    with pytest.raises(ProtocolError):
        UnbalancedCache.from_values(platform["digest"], platform["cache"][:-1])
    with pytest.raises(DataError):
        unbalanced_build_cache(["A", "A"], platform["key"], UB_SALT)
    with pytest.raises(ProtocolError):
        unbalanced_build_cache(["A"], platform["key"], b"short")
    with pytest.raises(ProtocolError):
        CachedDigests((b"x" * 32,))
    with pytest.raises(ProtocolError):
        CacheDigest(b"x" * 31, b"y" * 32, 1, UB_SALT)
    with pytest.raises(ProtocolError):
        CacheStatus(1)  # type: ignore[arg-type]


def test_unbalanced_wire_and_cardinality_shuffle(platform) -> None:
    rng = random.Random(33)
    queries = rng.sample(platform["ids"], 30) + make_ids(rng, 30, "Q")
    res, _, log = run_unbalanced(platform, queries, UnbalancedParams(mode=Reveal.CARDINALITY, batch_size=8, cache_batch_size=1000))
    assert res.result == PsiResult(rows=(), size=30)
    id_bytes = [q.encode() for q in queries] + [p.encode() for p in platform["ids"][:100]]
    hashes = {hash_to_point(UB_SALT, q) for q in queries}
    for role in (Role.GUEST, Role.HOST):
        for step, payload in received(log, role):
            blob = repr(payload).encode()
            assert not any(x in blob for x in id_bytes)
            if isinstance(payload, BlindedPoints):
                assert not set(payload.points) & hashes
    # The host shuffled its answers: in query order they would unblind to k·h(q) row by row.
    r, r_inv = invertible_scalar(random.Random(71))  # the guest's draw
    queries_sent = sent(log, Role.GUEST, UnbalancedStep.QUERY)
    assert queries_sent == blind(r, hash_points(UB_SALT, queries))
    replies = sent(log, Role.HOST, UnbalancedStep.REPLY)
    in_order = blind(platform["key"], queries_sent)
    assert sorted(replies) == sorted(in_order) and replies != in_order
    # GUEST mode answers in query order.
    _, _, log2 = run_unbalanced(platform, queries, UnbalancedParams(batch_size=8, cache_batch_size=1000))
    assert sent(log2, Role.HOST, UnbalancedStep.REPLY) == in_order


def test_invertible_scalar_unblinds() -> None:
    rng = random.Random(3)
    pts = hash_points(SALT, [f"ID{i}" for i in range(20)])  # hashed points carry torsion; blinding clears it
    k = random_scalar(rng)
    draws = 0
    for _ in range(30):
        r, r_inv = invertible_scalar(rng)
        assert clamp_scalar(r) * clamp_scalar(r_inv) % SUBGROUP_ORDER == 1
        assert clamp_scalar(r_inv) == int.from_bytes(r_inv, "little")  # already in clamped form
        assert blind(r_inv, blind(k, blind(r, pts))) == blind(k, pts)
        draws += 1
    assert draws == 30


# --------------------------------------------------------------------------- parallel


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    with ProcessPoolExecutor(2) as ex:
        yield ex


def test_parallel_blind_equals_serial(pool: ProcessPoolExecutor) -> None:
    ids = [f"91350100M{i:09d}" for i in range(2500)]
    a = random_scalar(random.Random(1))
    serial_h = hash_points(SALT, ids)
    assert hash_points(SALT, ids, pool.map, chunk_size=300) == serial_h
    serial = blind(a, serial_h)
    assert blind(a, serial_h, pool.map) == serial
    assert blind(a, serial_h, pool.map, chunk_size=7) == serial
    assert hash_and_blind(SALT, a, ids, pool.map, chunk_size=512) == serial == hash_and_blind(SALT, a, ids)
    assert blind(a, [], pool.map) == [] and hash_points(SALT, [], pool.map) == []
    with pytest.raises(CryptoError, match="point 1500 "):
        blind(a, serial_h[:1500] + [bytes(32)] + serial_h[:10], pool.map, chunk_size=256)  # raised in a worker
    with pytest.raises(CryptoError):
        blind(a, serial_h[:3] + [b"\x09" * 31], pool.map)
    with pytest.raises(ValueError):
        blind(a, serial_h, pool.map, chunk_size=0)


@pytest.mark.parametrize("mode", list(Reveal), ids=str)
def test_parallel_psi_equals_serial(pool: ProcessPoolExecutor, mode: Reveal) -> None:
    guest_ids, host_ids = sets_with_overlap(77, 700, 900, 0.4)
    params = PsiParams(salt=SALT, mode=mode, batch_size=256)
    g, h, log = run_psi(guest_ids, host_ids, params, map_fn=pool.map)
    g0, h0, log0 = run_psi(guest_ids, host_ids, params)
    assert (g, h) == (g0, h0)
    check_against_plaintext(mode, guest_ids, host_ids, g, h)
    assert [a for _, a in log if isinstance(a, Send)] == [a for _, a in log0 if isinstance(a, Send)]


def test_parallel_unbalanced_equals_serial(pool: ProcessPoolExecutor) -> None:
    rng = random.Random(8)
    ids = make_ids(rng, 1500, "P")
    key = unbalanced_new_key(rng)
    cache = unbalanced_build_cache(ids, key, UB_SALT, pool.map)
    assert cache == unbalanced_build_cache(ids, key, UB_SALT)
    queries = ids[:40] + make_ids(rng, 40, "Q")
    plat = {"ids": ids, "key": key, "cache": cache, "digest": unbalanced_cache_digest(ids, key, UB_SALT)}
    params = UnbalancedParams(batch_size=16)
    out = run_local({
        Role.GUEST: unbalanced_guest_program(queries, params, random.Random(1), map_fn=pool.map),
        Role.HOST: unbalanced_host_program(key, cache, plat["digest"], params, random.Random(2), map_fn=pool.map),
    })
    assert out[Role.GUEST].result == PsiResult(rows=tuple(range(40)), size=40)


# --------------------------------------------------------------------------- ids


def test_dedupe_counts_and_keeps_first() -> None:
    raw = ["a1", "B2", " A1", "c3", "ｂ２", "a 1", "D4"]
    out = prepare_ids(raw, source="bank.csv", dedupe=True)
    assert isinstance(out, DedupedIds)
    assert out == DedupedIds(ids=["A1", "B2", "C3", "D4"], removed=3, kept=(0, 1, 3, 6))
    ids, removed, kept = out
    assert [prepare_ids([raw[i]], source="x")[0] for i in kept] == ids
    assert prepare_ids(["X", "Y"], source="x", dedupe=True) == DedupedIds(["X", "Y"], 0, (0, 1))
    assert prepare_ids([], source="x", dedupe=True) == DedupedIds([], 0, ())
    # Default still rejects duplicates, with line numbers and no ids in the message.
    with pytest.raises(DataError, match=r"line 4: duplicate of line 2") as err:
        prepare_ids(raw, source="bank.csv")
    assert "A1" not in str(err.value)
    # Dedupe does not excuse empty or invalid ids.
    with pytest.raises(DataError, match="line 4: empty id") as err:  # row 2 after a header line
        prepare_ids(["A", "a", "", "A"], source="bank.csv", dedupe=True)
    assert "duplicate" not in str(err.value)
    good = "91350100M000100Y43"
    with pytest.raises(DataError, match="invalid USCC"):
        prepare_ids([good, good.lower(), "123"], source="c.csv", validate_uscc=True, dedupe=True)
    assert prepare_ids([good, " " + good.lower()], source="c.csv", validate_uscc=True, dedupe=True).removed == 1


def test_deduped_ids_run_through_psi() -> None:
    bank = prepare_ids(["x1", "X1", "y2", "z3", "Z3"], source="bank.csv", dedupe=True)
    platform = prepare_ids(["y2", "z3", "w4"], source="platform.csv")
    g, h, _ = run_psi(bank.ids, platform, PsiParams(salt=SALT))
    assert [bank.ids[i] for i in g.rows] == ["Y2", "Z3"]
    assert [bank.kept[i] for i in g.rows] == [2, 3]  # back to rows of the raw column
    assert [platform[j] for j in h.rows] == ["Y2", "Z3"]
