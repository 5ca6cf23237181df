"""#12: PSI with a minimum intersection checks the count first, and reveals and writes nothing when a check fails.

Each claim is attacked: the guest's whole view of a refused run is searched for its shared rows (the same
search recovers every one of them from the plain, un-shuffled reply); the peer's view is checked for the
intersection; a refused job over real processes is checked for files. The passing case must give the
intersection the plain exchange gives, at the cost of two small messages and not one scalar multiplication.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pytest

from fedcredit.runtime.codec import decode_payload, encode_payload
from fedcredit.protocols.core import Checkpoint, Message, Role, RoleProgram, Send, run_local, tap
from fedcredit.protocols.errors import ProtocolError
from fedcredit.protocols.psi import ecdh
from fedcredit.protocols.psi import protocol as psi_mod
from fedcredit.protocols.psi import unbalanced as ub
from fedcredit.protocols.psi.ot.protocol import FALLBACK_STEPS, OtPsiParams, OtPsiStep, ot_guest_program, ot_host_program
from fedcredit.protocols.psi.protocol import (
    ECDH_STEPS,
    EcdhSteps,
    IntersectionCount,
    IntersectionTooSmall,
    MatchedPositions,
    PsiParams,
    PsiResult,
    PsiStep,
    Reveal,
    UnshuffleKey,
    ecdh_step_copy,
    guest_program,
    host_program,
    seeded_permutation,
)

SALT = bytes(range(16))
ROW_REVEALING = [Reveal.BOTH, Reveal.GUEST]


def make_sets(n_guest: int, n_host: int, overlap: int, seed: int) -> tuple[list[str], list[str], set[str]]:
    rng = random.Random(seed)
    pool = list(dict.fromkeys(f"{rng.getrandbits(64):016X}" for _ in range(n_guest + n_host)))
    common = pool[:overlap]
    guest = common + pool[overlap:n_guest]
    host = common + pool[n_guest : n_guest + n_host - overlap]
    rng.shuffle(guest)
    rng.shuffle(host)
    return guest, host, set(common)


def outcome(gen: RoleProgram) -> RoleProgram:
    """Run ``gen`` and return its result, or the IntersectionTooSmall it raised (so both roles finish)."""
    try:
        return (yield from gen)
    except IntersectionTooSmall as exc:
        return exc


class View:
    """Everything one role sent and received, in order, and its Checkpoint states (its own secrets)."""

    def __init__(self) -> None:
        self.sent: list[Send] = []
        self.received: list[tuple[Any, Message]] = []
        self.checkpoints: list[dict[str, Any]] = []

    def wrap(self, gen: RoleProgram) -> RoleProgram:
        def on_action(a: Any) -> None:
            if isinstance(a, Send):
                self.sent.append(a)
            elif isinstance(a, Checkpoint):
                self.checkpoints.append(dict(a.state))

        return tap(gen, on_action, lambda recv, reply: self.received.append((recv.step, reply)))

    def got(self, step: Any) -> list[Message]:
        return [m for s, m in self.received if s is step]

    def sent_steps(self) -> list[str]:
        return [a.step.wire for a in self.sent]


def run_ecdh(guest: list[str], host: list[str], params: PsiParams, g_min: int = 0, h_min: int = 0,
             seeds: tuple[int, int] = (1, 2), **kw: Any) -> tuple[Any, Any, View, View]:
    gv, hv = View(), View()
    out = run_local({
        Role.GUEST: outcome(gv.wrap(guest_program(guest, params, random.Random(seeds[0]), min_intersection=g_min, checkpoint=True, **kw))),
        Role.HOST: outcome(hv.wrap(host_program(host, params, random.Random(seeds[1]), min_intersection=h_min, **kw))),
    })
    return out[Role.GUEST], out[Role.HOST], gv, hv


def truth(guest: list[str], host: list[str]) -> list[int]:
    hs = set(host)
    return [i for i, x in enumerate(guest) if x in hs]


def locate_shared_rows(view: View, n: int) -> set[int]:
    """The guest's attack on its own view: match the reply against its table, and read off the rows.

    It uses everything the guest has: its scalar and shuffle seed (from its checkpoint), the host's
    blinded points, the double-blinded reply, and a reply key if one came. A reply in GUEST_BLINDED
    order gives the rows exactly; a shuffled one, without its key, gives chance.
    """
    secret = view.checkpoints[-1]["secret"]
    a, seed = bytes.fromhex(secret["scalar"]), bytes.fromhex(secret["shuffle_seed"])
    theirs = [p for m in view.got(PsiStep.HOST_BLINDED) for p in m.points]
    table = {p[:16] for p in ecdh.blind(a, theirs)}
    reply = [p for m in view.got(PsiStep.HOST_DOUBLE_BLINDED) for p in m.points]
    sigma = seeded_permutation(n, seed, b"guest-rows")
    keys = [m.key for m in view.got(PsiStep.HOST_UNSHUFFLE) if m.key]
    tau = psi_mod.reply_order(n, keys[0]) if keys else range(n)  # without a key: take the reply at face value
    return {sigma[tau[p]] for p, d in enumerate(reply) if d[:16] in table}


# --------------------------------------------------------------------------- the count


@pytest.mark.parametrize("mode", ROW_REVEALING)
@pytest.mark.parametrize("n_guest,n_host,overlap,batch", [
    (0, 0, 0, 8), (0, 9, 0, 8), (9, 0, 0, 8), (1, 1, 1, 8), (1, 1, 0, 8),
    (60, 45, 0, 8), (60, 45, 17, 8), (60, 45, 45, 7), (45, 60, 45, 64), (200, 150, 99, 32),
])
def test_the_count_is_the_exact_intersection_size(mode: Reveal, n_guest: int, n_host: int, overlap: int, batch: int) -> None:
    guest, host, common = make_sets(n_guest, n_host, overlap, seed=n_guest * 7 + overlap)
    g, h, gv, hv = run_ecdh(guest, host, PsiParams(salt=SALT, mode=mode, batch_size=batch, count_first=True))
    counts = [a.payload for a in gv.sent if a.step is PsiStep.GUEST_COUNT]
    assert counts == [IntersectionCount(len(common), True)]
    assert hv.got(PsiStep.GUEST_COUNT) == counts  # the host learns exactly that count
    assert list(g.rows) == truth(guest, host) and g.size == len(common)


@pytest.mark.parametrize("mode", ROW_REVEALING)
def test_a_passing_check_gives_the_plain_intersection_for_two_small_messages_and_no_extra_multiplication(
        mode: Reveal, monkeypatch: pytest.MonkeyPatch) -> None:
    guest, host, common = make_sets(300, 250, 120, seed=3)
    mults = {"n": 0}
    blind_async, hash_and_blind_async = psi_mod.blind_async, psi_mod.hash_and_blind_async

    def counting_blind(scalar: bytes, points: Any, map_fn: Any = None) -> Any:
        mults["n"] += len(points)
        return blind_async(scalar, points, map_fn)

    def counting_hash_blind(salt: bytes, scalar: bytes, ids: Any, map_fn: Any = None) -> Any:
        mults["n"] += len(ids)
        return hash_and_blind_async(salt, scalar, ids, map_fn)

    monkeypatch.setattr(psi_mod, "blind_async", counting_blind)
    monkeypatch.setattr(psi_mod, "hash_and_blind_async", counting_hash_blind)
    plain = run_ecdh(guest, host, PsiParams(salt=SALT, mode=mode, batch_size=64))
    plain_mults, mults["n"] = mults["n"], 0
    # the minimums exactly met on both sides: the boundary passes
    gated = run_ecdh(guest, host, PsiParams(salt=SALT, mode=mode, batch_size=64, count_first=True), g_min=120, h_min=120)
    assert gated[0] == plain[0] and gated[1] == plain[1]  # the same rows, aligned, for both roles
    assert list(gated[0].rows) == truth(guest, host)
    if mode is Reveal.BOTH:
        assert [host[j] for j in gated[1].rows] == [guest[i] for i in gated[0].rows]
    assert mults["n"] == plain_mults == 2 * (len(guest) + len(host))  # not a second PSI: not one more multiplication
    extra = {}
    for role in (2, 3):
        steps_plain, steps_gated = plain[role].sent_steps(), gated[role].sent_steps()
        for w in set(steps_plain) | set(steps_gated):
            if steps_gated.count(w) != steps_plain.count(w):
                extra[w] = steps_gated.count(w) - steps_plain.count(w)
    assert extra == {"psi.guest_count": 1, "psi.host_unshuffle": 1}
    sizes = [len(encode_payload(a.payload)[1]) for v in gated[2:] for a in v.sent if a.step in (PsiStep.GUEST_COUNT, PsiStep.HOST_UNSHUFFLE)]
    assert sorted(sizes) == [11, 36]


# --------------------------------------------------------------------------- a failed check


@pytest.mark.parametrize("mode", ROW_REVEALING)
@pytest.mark.parametrize("refuser", [Role.GUEST, Role.HOST])
def test_a_refused_count_leaves_the_guest_unable_to_locate_its_shared_rows(mode: Reveal, refuser: Role) -> None:
    guest, host, common = make_sets(400, 300, 40, seed=11)
    shared = set(truth(guest, host))
    # The attack works: on the plain exchange's view it recovers every shared row, and nothing else.
    _, _, naive, _ = run_ecdh(guest, host, PsiParams(salt=SALT, mode=mode, batch_size=50))
    assert locate_shared_rows(naive, len(guest)) == shared
    # ... and on a passing count-first run, once the key has come.
    _, _, passed, _ = run_ecdh(guest, host, PsiParams(salt=SALT, mode=mode, batch_size=50, count_first=True), g_min=40, h_min=40)
    assert locate_shared_rows(passed, len(guest)) == shared

    mins = {Role.GUEST: 41, Role.HOST: 0} if refuser is Role.GUEST else {Role.GUEST: 0, Role.HOST: 41}
    g, h, gv, hv = run_ecdh(guest, host, PsiParams(salt=SALT, mode=mode, batch_size=50, count_first=True),
                            g_min=mins[Role.GUEST], h_min=mins[Role.HOST])
    assert isinstance(g, IntersectionTooSmall) and isinstance(h, IntersectionTooSmall)
    assert f"{refuser}'s minimum" in g.public_message and f"{refuser}'s minimum" in h.public_message
    for exc in (g, h):
        assert exc.code == "MIN_INTERSECTION" and "40" not in exc.public_message  # the policy, not the count
    # The guest's whole view: sizes, the host's blinded points, the shuffled reply, and (host refusal) a verdict without a key.
    assert all(not m.meets_minimum and m.key == b"" for m in gv.got(PsiStep.HOST_UNSHUFFLE))
    assert len(gv.got(PsiStep.HOST_UNSHUFFLE)) == (1 if refuser is Role.HOST else 0)
    located = locate_shared_rows(gv, len(guest))
    assert len(located) == len(shared)  # it knows how many ...
    assert len(located & shared) <= 15  # ... but not which: chance is 40·40/400 = 4 (P[≥ 16] < 1e-6)
    # The host learns no id either: nothing it received names a shared row.
    assert hv.got(PsiStep.GUEST_MATCHES) == []
    assert [s.wire for s, _ in hv.received if s.wire not in ("psi.guest_size", "psi.guest_blinded")] == ["psi.guest_count"]


@pytest.mark.parametrize("small", [Role.GUEST, Role.HOST])
def test_a_peer_set_below_the_minimum_is_refused_before_any_count_exists(small: Role) -> None:
    """A tiny set would make the count a membership answer: the other side stops before the count exists."""
    guest, host, _ = make_sets(3, 50, 1, seed=2) if small is Role.GUEST else make_sets(50, 3, 1, seed=2)
    params = PsiParams(salt=SALT, batch_size=8, count_first=True)
    gv, hv = View(), View()
    g_min, h_min = (0, 10) if small is Role.GUEST else (10, 0)
    with pytest.raises(IntersectionTooSmall, match="set has 3 ids") as refused:
        run_local({Role.GUEST: gv.wrap(guest_program(guest, params, random.Random(1), min_intersection=g_min)),
                   Role.HOST: hv.wrap(host_program(host, params, random.Random(2), min_intersection=h_min))})
    assert f"the {small}'s set is smaller" in refused.value.public_message and "3" not in refused.value.public_message
    assert gv.got(PsiStep.HOST_DOUBLE_BLINDED) == []  # no reply, so no count: not at the guest ...
    assert hv.got(PsiStep.GUEST_COUNT) == []  # ... nor at the host


def test_the_shuffled_reply_is_uniform_over_rows_across_runs() -> None:
    """Across 20 refused runs (fresh host randomness), the rows the attack names are spread like chance."""
    guest, host, _ = make_sets(60, 60, 30, seed=5)
    shared = set(truth(guest, host))
    hits = 0
    for seed in range(20):
        _, _, gv, _ = run_ecdh(guest, host, PsiParams(salt=SALT, batch_size=16, count_first=True), g_min=31, seeds=(1, 100 + seed))
        hits += len(locate_shared_rows(gv, len(guest)) & shared)
    assert hits / 20 < 22  # chance: 30·30/60 = 15 per run; the un-shuffled reply gives 30 every time


def test_a_minimum_needs_count_first_and_count_first_needs_rows() -> None:
    ids = ["A", "B"]
    with pytest.raises(ProtocolError, match="count-first"):
        next(guest_program(ids, PsiParams(salt=SALT), random.Random(1), min_intersection=1))
    with pytest.raises(ProtocolError, match="count-first"):
        next(host_program(ids, PsiParams(salt=SALT), random.Random(1), min_intersection=1))
    with pytest.raises(ProtocolError, match="non-negative"):
        next(guest_program(ids, PsiParams(salt=SALT, count_first=True), random.Random(1), min_intersection=-1))
    with pytest.raises(ProtocolError, match="cardinality"):
        PsiParams(salt=SALT, mode=Reveal.CARDINALITY, count_first=True)
    with pytest.raises(ProtocolError):
        PsiParams(salt=SALT, count_first=1)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError):
        ub.UnbalancedParams(mode=Reveal.CARDINALITY, count_first=True)


def _tamper(gen: RoleProgram, step: Any, change: Callable[[Any], Any]) -> RoleProgram:
    reply: Any = None
    while True:
        try:
            action = gen.send(reply)
        except StopIteration as stop:
            return stop.value
        if isinstance(action, Send) and action.step is step:
            action = Send(step, change(action.payload), action.to)
        reply = yield action


@pytest.mark.parametrize("step,change,match", [
    (PsiStep.GUEST_COUNT, lambda m: IntersectionCount(31, True), "more than either set holds"),
    (PsiStep.GUEST_MATCHES, lambda m: MatchedPositions(m.positions[:-1]), "the guest counted"),
])
def test_the_host_checks_the_count_against_the_sets_and_the_matches(step: Any, change: Any, match: str) -> None:
    guest, host, _ = make_sets(30, 40, 20, seed=9)
    params = PsiParams(salt=SALT, batch_size=8, count_first=True)
    with pytest.raises(ProtocolError, match=match):
        run_local({Role.GUEST: _tamper(guest_program(guest, params, random.Random(1)), step, change),
                   Role.HOST: host_program(host, params, random.Random(2))})


def test_the_reply_key_reveals_tau_and_nothing_else_of_the_host_seed() -> None:
    seed = bytes(range(32))
    key = psi_mod.reply_key(seed)
    assert key != seed and len(key) == 32 and psi_mod.reply_key(seed) == key
    assert list(psi_mod.reply_order(50, key)) != list(seeded_permutation(50, seed, b"host-rows"))
    assert sorted(psi_mod.reply_order(50, key)) == list(range(50))


# --------------------------------------------------------------------------- resume


@pytest.mark.parametrize("mode", ROW_REVEALING)
def test_a_count_first_role_killed_anywhere_resumes_to_the_same_result(mode: Reveal) -> None:
    from test_psi_checkpoint import RESUME_CASE, run_resumable

    params = PsiParams(salt=SALT, mode=mode, batch_size=6, count_first=True)
    make = {
        Role.GUEST: lambda cp: guest_program(RESUME_CASE["guest"], params, random.Random(51), resume=cp, checkpoint=True, min_intersection=25),
        Role.HOST: lambda cp: host_program(RESUME_CASE["host"], params, random.Random(52), resume=cp, checkpoint=True, min_intersection=25),
    }
    baseline, stats = run_resumable(make)
    assert baseline[Role.GUEST].size == 25 and stats["restarts"] == 0
    lengths = {}
    for role in (Role.GUEST, Role.HOST):
        actions: list[Any] = []
        wrapped = {r: (lambda cp, r=r, f=f: tap(f(cp), actions.append) if r is role else f(cp)) for r, f in make.items()}
        run_resumable(wrapped)
        lengths[role] = len(actions)
    for role, n in lengths.items():
        for at in sorted({2, n // 3, n // 2, n - 6, n - 4, n - 3, n - 2, n - 1, n}):
            out, stats = run_resumable(make, kills={role: [at]})
            assert out == baseline, (role, at)
            assert stats["resent"] <= 2


# --------------------------------------------------------------------------- wire


def test_count_first_messages_have_fixed_sizes_and_round_trip() -> None:
    small, big = IntersectionCount(0, False), IntersectionCount(2**32, True)
    assert len(encode_payload(small)[1]) == len(encode_payload(big)[1]) == 11
    for m in (small, big, UnshuffleKey(True, bytes(range(32))), UnshuffleKey(False, b"")):
        name, data = encode_payload(m)
        assert decode_payload(name, data, expected=type(m)) == m
    with pytest.raises(ProtocolError):
        decode_payload("fedcredit.v1.IntersectionCount", b"")  # no verdict: refused, not read as "0, no"
    with pytest.raises(ProtocolError):
        UnshuffleKey(False, bytes(32))  # a refusal carries no key
    with pytest.raises(ProtocolError):
        UnshuffleKey(True, b"short")


def test_step_tables_carry_the_count_first_steps() -> None:
    assert PsiStep.GUEST_COUNT.spec.payload is IntersectionCount and PsiStep.HOST_UNSHUFFLE.spec.payload is UnshuffleKey
    fallback = [getattr(FALLBACK_STEPS, f) for f in FALLBACK_STEPS.__dataclass_fields__]
    assert all(s in list(OtPsiStep) and s.wire.startswith("psi_ot.ecdh_") for s in fallback)  # the relay admits them in OT jobs
    assert len({s.wire for s in OtPsiStep}) == len(OtPsiStep)
    with pytest.raises(ProtocolError, match="does not match"):
        EcdhSteps(*[getattr(ECDH_STEPS, f) for f in ECDH_STEPS.__dataclass_fields__][:-1], PsiStep.GUEST_COUNT)
    assert ecdh_step_copy(PsiStep.GUEST_BLINDED, "x.").wire == "x.guest_blinded"


# --------------------------------------------------------------------------- unbalanced


def run_ub(guest: list[str], host: list[str], params: ub.UnbalancedParams, g_min: int = 0, h_min: int = 0,
           seed: int = 1) -> tuple[Any, Any, View]:
    key, salt = ub.unbalanced_new_key(random.Random(7)), b"unbalanced-salt-0001"
    cache, digest = ub.unbalanced_build_cache(host, key, salt), ub.unbalanced_cache_digest(host, key, salt)
    gv = View()
    out = run_local({
        Role.GUEST: outcome(gv.wrap(ub.unbalanced_guest_program(guest, params, random.Random(seed), min_intersection=g_min))),
        Role.HOST: outcome(ub.unbalanced_host_program(key, cache, digest, params, random.Random(8), min_intersection=h_min)),
    })
    return out[Role.GUEST], out[Role.HOST], gv


def _ub_attack(view: View, n: int, seed: int) -> set[int]:
    """The unbalanced guest's attack: unblind every answer with its r⁻¹ and look it up in the cache F."""
    _, r_inv = ecdh.invertible_scalar(random.Random(seed))  # the guest's first draw
    table = {v for m in view.got(ub.UnbalancedStep.CACHE) for v in m.values}
    reply = [p for m in view.got(ub.UnbalancedStep.REPLY) for p in m.points]
    return {i for i, p in enumerate(ecdh.blind(r_inv, reply)) if p[:16] in table}


def test_unbalanced_count_first_passes_with_the_same_rows_and_refuses_without_locating_them() -> None:
    guest, host, _ = make_sets(120, 500, 30, seed=21)
    shared = set(truth(guest, host))
    plain, _, naive = run_ub(guest, host, ub.UnbalancedParams(batch_size=32))
    assert set(plain.result.rows) == shared and _ub_attack(naive, len(guest), 1) == shared  # the attack works
    gated, host_out, _ = run_ub(guest, host, ub.UnbalancedParams(batch_size=32, count_first=True), g_min=30, h_min=30)
    assert gated.result == plain.result and host_out.size == -1
    for g_min, h_min, who in ((31, 0, "guest"), (0, 31, "host")):
        g, h, gv = run_ub(guest, host, ub.UnbalancedParams(batch_size=32, count_first=True), g_min=g_min, h_min=h_min)
        assert isinstance(g, IntersectionTooSmall) and isinstance(h, IntersectionTooSmall) and f"{who}'s minimum" in g.public_message
        assert [m.count for s, m in [(a.step, a.payload) for a in gv.sent] if s is ub.UnbalancedStep.COUNT] == [30]
        assert all(not m.key for m in gv.got(ub.UnbalancedStep.UNSHUFFLE))
        located = _ub_attack(gv, len(guest), 1)
        assert len(located) == 30 and len(located & shared) <= 20  # chance: 30·30/120 = 7.5


# --------------------------------------------------------------------------- OT jobs


def run_ot(guest: list[str], host: list[str], mode: Reveal, g_min: int, h_min: int) -> tuple[Any, Any, View, View]:
    params = OtPsiParams(salt=SALT, mode=mode, base_ot_group=14)
    gv, hv = View(), View()
    out = run_local({
        Role.GUEST: outcome(gv.wrap(ot_guest_program(guest, params, random.Random(3), min_intersection=g_min))),
        Role.HOST: outcome(hv.wrap(ot_host_program(host, params, random.Random(4), min_intersection=h_min))),
    })
    return out[Role.GUEST], out[Role.HOST], gv, hv


@pytest.mark.parametrize("mode", ROW_REVEALING)
def test_ot_jobs_with_a_minimum_fall_back_to_count_first_ecdh(mode: Reveal) -> None:
    guest, host, common = make_sets(200, 150, 60, seed=13)
    plain_g, plain_h, gv, _ = run_ot(guest, host, mode, 0, 0)
    assert not any(w.startswith("psi_ot.ecdh_") for w in gv.sent_steps())  # no minimum: OT as before
    assert "psi_ot.corrections" in gv.sent_steps()
    for g_min, h_min in ((60, 0), (0, 60), (1, 1)):
        g, h, gv, hv = run_ot(guest, host, mode, g_min, h_min)
        assert isinstance(g, PsiResult) and g.rows == plain_g.rows
        if mode is Reveal.BOTH:
            assert h.rows == plain_h.rows
        steps = set(gv.sent_steps()) | set(hv.sent_steps())
        assert "psi_ot.ecdh_guest_count" in steps and "psi_ot.ecdh_host_unshuffle" in steps
        assert not steps & {"psi_ot.base_ot", "psi_ot.corrections", "psi_ot.oprf_values"}  # not OT and ECDH: ECDH only
    g, h, gv, hv = run_ot(guest, host, mode, 0, 61)
    assert isinstance(g, IntersectionTooSmall) and isinstance(h, IntersectionTooSmall)
    assert not any(s.wire in ("psi_ot.oprf_values", "psi_ot.ecdh_guest_matches") for s, _ in gv.received + hv.received)
    assert all(not m.key for m in gv.got(OtPsiStep.ECDH_HOST_UNSHUFFLE))


# --------------------------------------------------------------------------- real processes


@pytest.fixture(scope="module")
def split_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, set[str]]:
    data = Path(__file__).resolve().parent.parent / "examples" / "data"
    d = tmp_path_factory.mktemp("count_first")
    g = pd.read_csv(data / "breast_hetero_guest.csv", dtype={"id": str}).iloc[25:]
    h = pd.read_csv(data / "breast_hetero_host.csv", dtype={"id": str})
    h = h.drop(h.index[100:140]).sample(frac=1.0, random_state=3)
    gp, hp = d / "guest.csv", d / "host.csv"
    g.to_csv(gp, index=False)
    h.to_csv(hp, index=False)
    return gp, hp, set(g["id"]) & set(h["id"])


def _run_job(tmp_path: Path, files: tuple[Path, Path, set[str]], bank_min: int, platform_min: int, protocol: str) -> Any:
    from fedcredit.runtime.cli.client import OperatorClient
    from fedcredit.runtime.config import DatasetConfig, JobSpec, parse_config
    from fedcredit.runtime.cli.demo import Cluster
    from fedcredit.runtime.transcript import read_transcript

    gp, hp, _ = files
    policy = {"auto_approve": True, "allowed_purposes": ["financing.credit_risk_model"]}
    cluster = Cluster(tmp_path / "cluster", {"bank": {"ids": DatasetConfig(path=gp, id_column="id")},
                                             "platform": {"ids": DatasetConfig(path=hp, id_column="id")}},
                      policies={"bank": {**policy, "min_intersection": bank_min}, "platform": {**policy, "min_intersection": platform_min}})
    spec = parse_config(JobSpec, {"kind": "psi", "purpose": "financing.credit_risk_model", "guest": {"party": "bank", "dataset": "ids"},
                                  "host": {"party": "platform", "dataset": "ids"}, "psi": {"protocol": protocol}}, source="count-first test")
    with cluster:
        with OperatorClient(cluster.client_config()) as client:
            info = client.wait(client.submit(spec).job_id, timeout_s=180)
        views = {p: read_transcript(cluster.workdir / p / "transcripts" / f"{info.job_id}.{p}.jsonl") for p in ("bank", "platform")}
    return info, cluster, views


def _received(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r["body"] for r in records if r["kind"] == "message" and r["body"]["direction"] == "received"]


@pytest.mark.integration
@pytest.mark.parametrize("protocol", ["ecdh", "ot"])
def test_a_job_refused_at_the_count_writes_nothing_and_reveals_no_id(tmp_path: Path, split_files: Any, protocol: str) -> None:
    _, _, common = split_files
    info, cluster, views = _run_job(tmp_path, split_files, bank_min=10, platform_min=len(common) + 1, protocol=protocol)
    assert info.state == "failed", info.error
    # the policy, not the data: the whole public error is one of these, so it holds no count, id, path or value
    assert re.fullmatch(r"(guest \(bank\)|host \(platform\)) failed: \[MIN_INTERSECTION\] count-first PSI stopped: the "
                        rf"intersection is below the host's minimum \((min_intersection {len(common) + 1}|its min_intersection "
                        r"policy)\); no ids were revealed to either party", info.error), info.error
    for party in ("bank", "platform"):
        jobdir = cluster.workdir / party / "jobs" / info.job_id
        written = {p.name for p in jobdir.iterdir()} if jobdir.exists() else set()
        assert not written & {"intersection.csv", "psi.checkpoint.json", "result.json", "model.json"}, (party, written)
    prefix = "psi_ot.ecdh_" if protocol == "ot" else "psi."
    bank_steps = [m["envelope"]["step"] for m in _received(views["bank"])]
    assert prefix + "host_double_blinded" in bank_steps  # it got as far as the count ...
    unshuffle = [m for m in _received(views["bank"]) if m["envelope"]["step"] == prefix + "host_unshuffle"]
    assert all(m["disclosed"] == {"meets_minimum": False} for m in unshuffle)  # ... and no further
    assert prefix + "guest_matches" not in [m["envelope"]["step"] for m in _received(views["platform"])]
    counts = [m["disclosed"] for m in _received(views["platform"]) if m["envelope"]["step"] == prefix + "guest_count"]
    assert counts == [{"intersection_size": len(common), "meets_minimum": True}]  # declared: the size is disclosed


@pytest.mark.integration
def test_a_job_passing_the_count_writes_the_same_intersection(tmp_path: Path, split_files: Any) -> None:
    _, _, common = split_files
    info, cluster, views = _run_job(tmp_path, split_files, bank_min=len(common), platform_min=len(common), protocol="auto")
    assert info.state == "succeeded", info.error
    for party in ("bank", "platform"):
        got = set(pd.read_csv(cluster.workdir / party / "jobs" / info.job_id / "intersection.csv", dtype=str)["id"])
        assert got == common
    assert "psi_ot.ecdh_guest_count" in [m["envelope"]["step"] for m in _received(views["platform"])]  # auto: OT, fallen back
