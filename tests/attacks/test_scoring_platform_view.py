"""Red team: the platform tries to tell WHICH applicants the bank scores (private scoring).

The platform's whole view of a private scoring job is what it receives: the bank's table status, the
query count and the blinded query points. The claim (protocols/scoring/protocol.py, README leakage table,
"prediction" row): for two different id sets of the same size, that view is identical in the type, order
and size of every message, and its values carry nothing about the ids:

* the messages' types, steps and byte sizes match exactly for two disjoint id sets;
* the same id set scored twice gives unrelated query points (fresh r per job), so the platform cannot even
  link two jobs that score the same applicants;
* the platform's best dictionary attack -- it knows k, so it computes k·h(p) for every p of its own set
  and for known outsiders, and looks for any algebraic tie to what it received (equal points, equal
  points after its own blinding) -- finds no match beyond chance.

Naive baseline: plain mode, where the same test shows the ids in the clear (so the check can fail).
"""

from __future__ import annotations

import random

import pytest

from fedcredit.protocols.core import Recv, Role, run_local, tap
from fedcredit.protocols.psi.ecdh import blind, hash_and_blind
from fedcredit.protocols.scoring import PlainIds, ScoringMode, ScoringParams, build_table, guest_program, host_program, new_key
from fedcredit.runtime.codec import encode_payload

SALT = b"p" * 16
VERSION = b"v" * 32
PLATFORM = [f"9133{i:014d}" for i in range(400)]
U_H = {p: 0.01 * i for i, p in enumerate(PLATFORM)}


def _platform_view(ids: list[str], mode: ScoringMode, seed: int) -> list[tuple[str, str, int, object]]:
    """(step, payload type, encoded size, payload) of everything the platform receives, in order."""
    key = new_key(random.Random(11))
    table = build_table(PLATFORM, [U_H[p] for p in PLATFORM], key, SALT, VERSION, random.Random(12))
    params = ScoringParams(mode=mode, batch_size=16)
    seen: list[tuple[str, str, int, object]] = []

    def on_reply(action: Recv, payload: object) -> None:
        name, data = encode_payload(payload)  # type: ignore[arg-type]
        seen.append((action.step.wire, name, len(data), payload))

    host = tap(host_program(VERSION, params, key=key, table=table, partials=U_H), lambda a: None, on_reply)
    guest = guest_program(ids, [0.0] * len(ids), VERSION, params, random.Random(seed))
    run_local({Role.GUEST: guest, Role.HOST: host})
    return seen, key


def test_private_view_is_independent_of_which_ids_are_scored():
    a = PLATFORM[:40] + [f"X{i}" for i in range(10)]  # 40 known, 10 unknown
    b = PLATFORM[200:210] + [f"Y{i}" for i in range(40)]  # 10 known, 40 unknown: a disjoint set
    va, key = _platform_view(a, ScoringMode.PRIVATE, seed=1)
    vb, _ = _platform_view(b, ScoringMode.PRIVATE, seed=2)
    assert [(s, t, n) for s, t, n, _ in va] == [(s, t, n) for s, t, n, _ in vb]
    assert [s for s, *_ in va][:2] == ["score.table_status", "score.query_size"]
    assert all(s == "score.query" for s, *_ in va[2:]) and len(va) == 2 + 4  # 50 queries in batches of 16

    # the platform's dictionary attack: with k it computes every candidate's k·h(id) and r-free forms
    received = [p for s, _, _, m in va if s == "score.query" for p in m.points]
    candidates = PLATFORM + [f"X{i}" for i in range(10)] + [f"Y{i}" for i in range(40)]
    hashed = set(hash_and_blind(SALT, key, candidates)) | set(blind(key, blind(key, received)))
    assert not hashed & set(received)
    assert not set(blind(key, received)) & set(hash_and_blind(SALT, key, candidates))


def test_same_ids_twice_are_unlinkable():
    ids = PLATFORM[:20]
    v1, _ = _platform_view(ids, ScoringMode.PRIVATE, seed=3)
    v2, _ = _platform_view(ids, ScoringMode.PRIVATE, seed=4)
    p1 = {p for s, _, _, m in v1 if s == "score.query" for p in m.points}
    p2 = {p for s, _, _, m in v2 if s == "score.query" for p in m.points}
    assert len(p1) == 20 and not p1 & p2


def test_naive_baseline_plain_mode_shows_the_ids():
    a = PLATFORM[:8]
    va, _ = _platform_view(a, ScoringMode.PLAIN, seed=1)
    shown = [i for s, _, _, m in va if isinstance(m, PlainIds) for i in m.ids]
    assert shown == a  # the check above would fail here: the platform reads every id
    vb, _ = _platform_view(PLATFORM[8:16], ScoringMode.PLAIN, seed=1)
    assert [m for *_, m in va] != [m for *_, m in vb]


@pytest.mark.parametrize("n", [0, 1, 17])
def test_view_shape_depends_on_the_count_only(n):
    va, _ = _platform_view(PLATFORM[:n], ScoringMode.PRIVATE, seed=5)
    vb, _ = _platform_view([f"Z{i}" for i in range(n)], ScoringMode.PRIVATE, seed=6)
    assert [(s, t, k) for s, t, k, _ in va] == [(s, t, k) for s, t, k, _ in vb]


class _Batches:
    def __init__(self, batches):
        self.batches = list(batches)

    def next(self):
        return self.batches.pop(0) if self.batches else None

    def answer(self, u_h):
        pass


def test_online_session_view_depends_on_batch_sizes_only():
    """Online: the platform sees one query per batch; two sessions with the same batch sizes and different ids
    look the same, and no point repeats across batches (fresh r per batch), even for the same id."""
    from fedcredit.protocols.scoring import guest_session_program, host_session_program

    key = new_key(random.Random(11))
    table = build_table(PLATFORM, [U_H[p] for p in PLATFORM], key, SALT, VERSION, random.Random(12))

    def view(batches, seed):
        seen = []

        def on_reply(action, payload):
            name, data = encode_payload(payload)
            seen.append((action.step.wire, name, len(data), payload))

        host = tap(host_session_program(VERSION, ScoringParams(), key=key, table=table), lambda a: None, on_reply)
        run_local({Role.GUEST: guest_session_program(VERSION, random.Random(seed), _Batches(batches)), Role.HOST: host})
        return seen

    same = PLATFORM[5]
    va = view([[same], PLATFORM[:3], [same]], 1)
    vb = view([["Q1"], ["Q2", "Q3", PLATFORM[300]], ["Q4"]], 2)
    assert [(s, t, n) for s, t, n, _ in va] == [(s, t, n) for s, t, n, _ in vb]
    points = [p for s, _, _, m in va if s == "score.session_query" for p in m.points]
    assert len(points) == 5 and len(set(points)) == 5  # the same id twice: two unrelated points
