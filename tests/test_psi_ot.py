"""OT-extension PSI (fedcredit.protocols.psi.ot): base OTs, the KKRT correlation, cuckoo hashing, the PSI."""

from __future__ import annotations

import random
from typing import Any

import gmpy2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedcredit.protocols.core import Classification, Masked, Public, Role, RoleProgram, Send, run_local
from fedcredit.protocols.errors import BudgetError, CryptoError, DataError, ProtocolError
from fedcredit.protocols.psi.ot import OtPsiParams, OtPsiStep, ot_guest_program, ot_host_program, plan
from fedcredit.protocols.psi.ot.base_ot import GROUP14_P, GROUP15_P, BaseOtReceiver, BaseOtSender, FixedBase, ot_decrypt, ot_encrypt
from fedcredit.protocols.psi.ot.bits import PrgStream, prg_columns, transpose_bits, transpose_bits_reference
from fedcredit.protocols.psi.ot.cuckoo import (
    CuckooError,
    bin_positions,
    cuckoo_insert,
    failure_bound_log2,
    id_digests,
    table_size,
)
from fedcredit.protocols.psi.ot.kkrt import OprfReceiver, OprfSender, code_failure_log2, codewords, hash_rows, row_hash_key
from fedcredit.protocols.psi.protocol import PsiStep, Reveal

SALT = b"test-salt-0123456789"


# --------------------------------------------------------------------------- base OTs


def _base_ots(n: int, seed: int, modulus: int = GROUP14_P) -> tuple[list[int], list[tuple[bytes, bytes]], list[bytes]]:
    rng = random.Random(seed)
    choices = [rng.getrandbits(1) for _ in range(n)]
    sender = BaseOtSender(rng, modulus)
    receiver = BaseOtReceiver(choices, sender.setup, rng, modulus)
    return choices, sender.keys(receiver.elements), receiver.keys


@pytest.mark.parametrize("modulus", [GROUP14_P, GROUP15_P])
def test_base_ot_receiver_gets_exactly_its_choice(modulus: int) -> None:
    choices, pairs, keys = _base_ots(64, 1, modulus)
    assert sum(choices) not in (0, 64)
    for c, (k0, k1), k in zip(choices, pairs, keys):
        assert k0 != k1
        assert k == (k1 if c else k0)
        assert k != (k0 if c else k1)
    assert len({k for pair in pairs for k in pair}) == 128  # all keys distinct


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=2, max_value=GROUP15_P - 2), st.integers(min_value=0, max_value=(1 << 256) - 1),
       st.sampled_from([1, 5, 8]))
def test_fixed_base_table_equals_powmod(base: int, e: int, window: int) -> None:
    table = FixedBase(base, GROUP15_P, window_bits=window)
    assert table.pow(e) == gmpy2.powmod(base, e, GROUP15_P)


def test_fixed_base_refuses_wide_exponents() -> None:
    with pytest.raises(ValueError):
        FixedBase(3, GROUP14_P).pow(1 << 256)


@pytest.mark.parametrize("width", [128, 448, 1024])
def test_iknp_extends_128_base_ots_to_w_random_ots(width: int) -> None:
    from fedcredit.protocols.psi.ot.iknp import BASE_OTS, extension_receiver, extension_sender

    rng = random.Random(width)
    delta = [rng.getrandbits(1) for _ in range(BASE_OTS)]
    sender = BaseOtSender(rng)  # the host: base-OT sender
    receiver = BaseOtReceiver(delta, sender.setup, rng)  # the guest: base-OT receiver, choices Δ
    s = [rng.getrandbits(1) for _ in range(width)]
    u, host_keys = extension_receiver(sender.keys(receiver.elements), s)
    assert len(u) == width * 16
    pairs = extension_sender(receiver.keys, delta, u, width)
    assert [p[c] for p, c in zip(pairs, s)] == host_keys  # the host holds exactly k_j^{s_j}
    assert all(p[0] != p[1] for p in pairs)
    assert len({k for p in pairs for k in p}) == 2 * width
    # a different Δ (the guest's secret) gives keys that match nothing the host holds
    wrong = extension_sender(receiver.keys, [1 - d for d in delta], u, width)
    assert not {k for p in wrong for k in p} & set(host_keys)
    with pytest.raises(ProtocolError):
        extension_sender(receiver.keys, delta, u[:-1], width)


def test_base_ot_chosen_messages() -> None:
    choices, pairs, keys = _base_ots(32, 2)
    rng = random.Random(3)
    for c, pair, k in zip(choices, pairs, keys):
        m0, m1 = rng.randbytes(40), rng.randbytes(40)
        masked = ot_encrypt(pair, m0, m1)
        assert masked[0] != masked[1]
        assert ot_decrypt(k, c, masked) == (m1 if c else m0)
        assert ot_decrypt(k, 1 - c, masked) not in (m0, m1)  # the other message stays hidden


def test_base_ot_rejects_bad_elements() -> None:
    rng = random.Random(4)
    sender = BaseOtSender(rng)
    with pytest.raises(CryptoError):
        sender.keys([(1).to_bytes(256, "big")])
    with pytest.raises(CryptoError):
        BaseOtReceiver([0], (GROUP14_P - 1).to_bytes(256, "big"), rng)
    with pytest.raises(ProtocolError):
        sender.keys([b"\x05" * 10])


# --------------------------------------------------------------------------- bit matrices


@pytest.mark.parametrize("w,mb", [(8, 1), (64, 16), (448, 40), (512, 128)])
def test_transpose_matches_reference(w: int, mb: int) -> None:
    a = np.frombuffer(random.Random(w).randbytes(w * mb), dtype=np.uint8).reshape(w, mb)
    t = transpose_bits(a)
    assert t.shape == (8 * mb, w // 8)
    assert np.array_equal(t, transpose_bits_reference(a))
    assert np.array_equal(transpose_bits(t), a)
    bits = np.unpackbits(a, axis=1)
    assert all(np.unpackbits(t[j])[i] == bits[i, j] for i, j in [(0, 0), (w - 1, 8 * mb - 1), (w // 2, 3)])


def test_prg_stream_equals_random_access_columns() -> None:
    seeds = [bytes([i]) * 16 for i in range(16)]
    stream = PrgStream(seeds)
    parts = [stream.next(0, 256), stream.next(256, 384), stream.next(640, 128)]
    assert np.array_equal(np.concatenate(parts, axis=1), prg_columns(seeds, 0, 768))
    assert np.array_equal(parts[1], prg_columns(seeds, 256, 384))
    with pytest.raises(ValueError):
        stream.next(0, 128)


# --------------------------------------------------------------------------- OT extension


@pytest.mark.parametrize("width", [128, 448])
def test_kkrt_correlation_holds_for_every_extended_ot(width: int) -> None:
    choices, pairs, keys = _base_ots(width, 5)
    receiver, sender = OprfReceiver(pairs), OprfSender(choices, keys)
    s = np.packbits(np.asarray(choices, dtype=np.uint8))
    rng = random.Random(6)
    lo = 0
    for nb in (256, 128, 1024):  # several chunks, streamed
        code = np.frombuffer(rng.randbytes(nb * width // 8), dtype=np.uint8).reshape(nb, width // 8)
        u, t0 = receiver.chunk(lo, code)
        q = sender.chunk(lo, u)
        assert np.array_equal(q, t0 ^ (code & s))  # q_j = t_j ⊕ (C_j ∧ s), for every j
        # column view: q^i = t0^i ⊕ s_i·(t0^i ⊕ t1^i)-free form: q^i = PRG(k^{s_i}) ⊕ s_i·u^i
        t1 = transpose_bits(prg_columns([b for _, b in pairs], lo, nb))
        assert np.array_equal(u, t0 ^ t1 ^ code)
        lo += nb


def test_oprf_values_agree_only_on_equal_inputs() -> None:
    width = 448
    choices, pairs, keys = _base_ots(width, 7)
    receiver, sender = OprfReceiver(pairs), OprfSender(choices, keys)
    key = b"k" * 16
    d = id_digests(SALT, [f"x{i}" for i in range(128)])
    funcs = np.zeros(128, dtype=np.int8)
    code = codewords(key, d, funcs, width)
    u, t0 = receiver.chunk(0, code)
    q = sender.chunk(0, u)
    bins = np.arange(128)
    hk = row_hash_key(key)
    mine = hash_rows(hk, bins, t0, 16)
    same = hash_rows(hk, bins, sender.evaluate(q, code), 16)
    assert np.array_equal(mine, same)
    other = codewords(key, np.roll(d, 1, axis=0), funcs, width)  # a different id in every bin
    assert not np.any(np.all(hash_rows(hk, bins, sender.evaluate(q, other), 16) == mine, axis=1))
    shifted = codewords(key, d, np.ones(128, dtype=np.int8), width)  # same id, other hash index
    assert not np.any(np.all(hash_rows(hk, bins, sender.evaluate(q, shifted), 16) == mine, axis=1))


def test_code_words_are_far_apart() -> None:
    d = id_digests(SALT, [str(i) for i in range(2000)])
    c = codewords(b"c" * 16, d, np.zeros(2000, dtype=np.int8), 448)
    dist = np.unpackbits(c[:-1] ^ c[1:], axis=1).sum(axis=1)
    assert dist.min() >= 128
    assert code_failure_log2(448) < -66 and code_failure_log2(512) < -100


# --------------------------------------------------------------------------- hashing


@pytest.mark.parametrize("n", [0, 1, 2, 3, 100, 1000, 5000, 1 << 14, (1 << 14) + 1, 50_000])
def test_cuckoo_places_every_id_in_one_of_its_bins(n: int) -> None:
    bins = table_size(n)
    assert bins % 128 == 0 and bins >= n
    pos = bin_positions(id_digests(SALT, [f"id{i}" for i in range(n)]), b"\x01" * 16, bins)
    table, func = cuckoo_insert(pos, bins)
    occupied = np.flatnonzero(table >= 0)
    assert sorted(table[occupied].tolist()) == list(range(n))
    assert np.array_equal(pos[table[occupied], func[occupied]], occupied)
    if n <= 1 << 14:
        assert failure_bound_log2(n, bins) <= -40


def test_cuckoo_table_sizes() -> None:
    assert table_size(1 << 20) == 1331712  # 1.27n, rounded to 128
    assert table_size(1 << 14) == 1 << 15  # the union bound needs 2n here
    assert table_size(0) == table_size(1) == 1024


def test_cuckoo_failure_is_a_named_error() -> None:
    impossible = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 1]])  # 3 items, 2 bins
    with pytest.raises(CuckooError) as info:
        cuckoo_insert(impossible, 128)
    assert info.value.code == "CUCKOO"
    with pytest.raises(CuckooError):
        cuckoo_insert(np.zeros((5, 3), dtype=np.int64), 4)


# --------------------------------------------------------------------------- parameters


def test_plan_states_and_checks_parameters() -> None:
    params = OtPsiParams(salt=SALT)
    p = plan(params, 1 << 20, 1 << 20)
    assert p.value_bytes == 11 and p.false_positive_log2 <= -40
    assert p.code_log2 <= -40 and p.cuckoo_log2 is None and p.bins == 1331712
    small = plan(params, 1000, 1000)
    assert small.cuckoo_log2 is not None and small.cuckoo_log2 <= -40
    with pytest.raises(BudgetError):
        plan(OtPsiParams(salt=SALT, code_width=256), 10, 10)
    with pytest.raises(BudgetError):
        plan(params, 10, 1 << 26)  # 448 bits is not enough beyond ~2^24.9 host ids
    plan(OtPsiParams(salt=SALT, code_width=512), 10, 1 << 26)


def test_params_validation() -> None:
    with pytest.raises(ProtocolError):
        OtPsiParams(salt=b"short")
    with pytest.raises(ProtocolError):
        OtPsiParams(salt=SALT, mode=Reveal.CARDINALITY)
    with pytest.raises(ProtocolError):
        OtPsiParams(salt=SALT, code_width=450)
    with pytest.raises(ProtocolError):
        OtPsiParams(salt=SALT, chunk_bins=100)
    with pytest.raises(ProtocolError):
        OtPsiParams(salt=SALT, computational_security=80)
    assert OtPsiParams(salt=SALT, mode="both").mode is Reveal.BOTH


def test_step_table() -> None:
    assert all(s.wire.startswith("psi_ot.") for s in OtPsiStep)
    assert len({s.wire for s in OtPsiStep}) == len(OtPsiStep)
    kinds = {s.name: s.spec.payload.classification for s in OtPsiStep}
    assert kinds["HOST_SETUP"] is kinds["GUEST_SETUP"] is Classification.PUBLIC
    assert kinds["BASE_OT"] is kinds["OT_EXTENSION"] is kinds["CORRECTIONS"] is kinds["OPRF_VALUES"] is Classification.MASKED
    assert OtPsiStep.BASE_OT.spec.senders == (Role.GUEST,) and OtPsiStep.OT_EXTENSION.spec.senders == (Role.HOST,)
    for s in OtPsiStep:
        if s is not OtPsiStep.GUEST_MATCHES and not s.name.startswith("ECDH_"):
            assert issubclass(s.spec.payload, (Masked, Public))
    # the count-first fallback: ECDH-PSI's own steps under psi_ot.ecdh_* (tests/test_psi_count_first.py)
    fallback = [s for s in OtPsiStep if s.name.startswith("ECDH_")]
    assert {s.wire for s in fallback} == {"psi_ot.ecdh_" + s.wire.removeprefix("psi.") for s in PsiStep}


# --------------------------------------------------------------------------- the PSI


def _tally(gen: RoleProgram, log: list[tuple[str, int]]) -> RoleProgram:
    value: Any = None
    try:
        while True:
            action = gen.send(value)
            if isinstance(action, Send):
                p = action.payload
                size = sum(len(v) for v in vars(p).values() if isinstance(v, bytes))
                log.append((action.step.wire, size))
            value = yield action
    except StopIteration as stop:
        return stop.value


def run_psi(guest: list[str], host: list[str], mode: Reveal = Reveal.BOTH, seed: int = 0, **kw: Any):  # type: ignore[no-untyped-def]
    kw.setdefault("base_ot_group", 14)  # 2048-bit base OTs keep the suite fast; group 15 is tested below
    params = OtPsiParams(salt=SALT, mode=mode, **kw)
    log: list[tuple[str, int]] = []
    out = run_local({
        Role.GUEST: _tally(ot_guest_program(guest, params, random.Random(seed)), log),
        Role.HOST: _tally(ot_host_program(host, params, random.Random(seed + 1)), log),
    })
    return out[Role.GUEST], out[Role.HOST], log


def make_sets(n_guest: int, n_host: int, overlap: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    pool = [f"{rng.getrandbits(64):016x}" for _ in range(n_guest + n_host)]
    pool = list(dict.fromkeys(pool))
    common = pool[:overlap]
    guest = common + pool[overlap : n_guest]
    host = common + pool[n_guest : n_guest + n_host - overlap]
    rng.shuffle(guest)
    rng.shuffle(host)
    return guest, host


def check(guest: list[str], host: list[str], mode: Reveal = Reveal.BOTH, **kw: Any) -> None:
    g, h, _ = run_psi(guest, host, mode, **kw)
    expected = sorted(i for i, x in enumerate(guest) if x in set(host))
    assert list(g.rows) == expected and g.size == len(expected)
    if mode is Reveal.BOTH:
        assert [host[j] for j in h.rows] == [guest[i] for i in g.rows]
    else:
        assert h.rows == () and h.size == -1


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_psi_overlaps(fraction: float) -> None:
    guest, host = make_sets(3000, 2000, int(2000 * fraction), seed=int(fraction * 10))
    check(guest, host)


@pytest.mark.parametrize("n_guest,n_host", [(0, 0), (0, 10), (10, 0), (1, 1), (2, 2), (1, 1000), (1000, 1), (7, 5000)])
def test_psi_small_and_lopsided(n_guest: int, n_host: int) -> None:
    guest, host = make_sets(n_guest, n_host, min(n_guest, n_host) // 2 + (1 if min(n_guest, n_host) == 1 else 0), seed=n_guest + n_host)
    check(guest, host)
    check(guest, host, Reveal.GUEST)


def test_psi_identical_sets_guest_mode() -> None:
    ids = [f"u{i}" for i in range(1000)]
    check(ids, list(reversed(ids)), Reveal.GUEST)


@pytest.mark.parametrize("n", [1 << 14, (1 << 14) + 1])
def test_psi_at_cuckoo_regime_boundary(n: int) -> None:
    guest, host = make_sets(n, n, n // 3, seed=n)
    check(guest, host, chunk_bins=4096, batch_size=10_000)


def test_psi_wire_messages_are_chunked_bytes() -> None:
    guest, host = make_sets(5000, 4000, 1000, seed=9)
    g, _, log = run_psi(guest, host, Reveal.GUEST, chunk_bins=1024, batch_size=5000)
    p = plan(OtPsiParams(salt=SALT), 5000, 4000)
    wires = [w for w, _ in log]
    assert wires.count("psi_ot.corrections") == -(-p.bins // 1024)
    assert wires.count("psi_ot.oprf_values") == -(-3 * 4000 // 5000)
    assert "psi_ot.guest_matches" not in wires
    sizes: dict[str, int] = {}
    for w, n in log:
        sizes[w] = sizes.get(w, 0) + n
    assert sizes["psi_ot.corrections"] == p.bins * 448 // 8
    assert sizes["psi_ot.oprf_values"] == 3 * 4000 * p.value_bytes
    assert sizes["psi_ot.base_ot"] == 128 * 256  # κ base OTs whatever w, IKNP-extended to w
    assert sizes["psi_ot.ot_extension"] == 448 * 16
    assert sizes["psi_ot.host_setup"] == 16 + 256 and sizes["psi_ot.guest_setup"] == 16
    assert g.size == 1000


def test_psi_default_params_use_group_15() -> None:
    assert OtPsiParams(salt=SALT).base_ot_group == 15
    guest, host = make_sets(300, 300, 100, seed=14)
    g, h, log = run_psi(guest, host, base_ot_group=15)
    assert dict(log)["psi_ot.base_ot"] == 128 * 384
    assert sorted(guest[i] for i in g.rows) == sorted(set(guest) & set(host))


def test_psi_rejects_duplicates_and_bad_setup() -> None:
    with pytest.raises(DataError):
        run_psi(["a", "a"], ["a"])
    params = OtPsiParams(salt=SALT)
    for role_program in (ot_host_program, ot_guest_program):  # duplicates are refused before anything is sent
        prog = role_program(["b", "a", "c", "a"], params, random.Random(1))
        with pytest.raises(DataError):
            while not isinstance(next(prog), Send):
                pass
    host = ot_host_program(["a", "b"], params, random.Random(1))
    next(host)  # progress
    first = next(host)
    assert first.step is OtPsiStep.HOST_SETUP
    from fedcredit.protocols.psi.ot import OtGuestSetup

    assert next(host).step is OtPsiStep.GUEST_SETUP  # Recv
    with pytest.raises(ProtocolError):
        host.send(OtGuestSetup(count=10, bins=128, cuckoo_seed=b"\0" * 16))


def test_psi_is_deterministic_given_rng() -> None:
    guest, host = make_sets(500, 500, 100, seed=11)
    a = run_psi(guest, host, seed=3)
    b = run_psi(guest, host, seed=3)
    assert a[0] == b[0] and a[1] == b[1]


def test_match_handles_shared_prefixes() -> None:
    from fedcredit.protocols.psi.ot.protocol import _match

    base = np.zeros((6, 11), dtype=np.uint8)
    theirs = base.copy()
    theirs[:, 10] = [1, 2, 3, 4, 5, 6]  # all six share the 8-byte prefix
    own = np.zeros((4, 11), dtype=np.uint8)
    own[:, 10] = [6, 9, 1, 4]
    rows, pos = _match(own, theirs)
    assert rows.tolist() == [0, 2, 3] and pos.tolist() == [5, 0, 3]


def test_psi_with_map_fn() -> None:
    guest, host = make_sets(2000, 2000, 700, seed=13)
    params = OtPsiParams(salt=SALT, mode=Reveal.GUEST, base_ot_group=14)
    out = run_local({
        Role.GUEST: ot_guest_program(guest, params, random.Random(1), map_fn=map),
        Role.HOST: ot_host_program(host, params, random.Random(2), map_fn=map),
    })
    assert sorted(guest[i] for i in out[Role.GUEST].rows) == sorted(set(guest) & set(host))


def test_duplicate_check_compares_whole_digests() -> None:
    from fedcredit.protocols.psi.ot.protocol import _check_unique

    d = np.zeros((4, 16), dtype=np.uint8)
    d[:, 15] = [1, 2, 3, 4]  # one shared first word, four distinct digests
    _check_unique(d, Role.GUEST)
    d[3, 15] = 2
    with pytest.raises(DataError):
        _check_unique(d, Role.HOST)
    _check_unique(d[:1], Role.GUEST)
