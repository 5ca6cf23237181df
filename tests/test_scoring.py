"""Scoring with a two-party model (fedcredit.protocols.scoring): private and plain batch scoring in memory."""

from __future__ import annotations

import random

import numpy as np
import pytest

from fedcredit.protocols.core import Role, run_local
from fedcredit.protocols.errors import ProtocolError
from fedcredit.protocols.scoring import (
    ScoringMode,
    ScoringParams,
    build_table,
    guest_program,
    host_program,
    key_id,
    new_key,
    partial_scores,
    sigmoid,
)

SALT = b"s" * 16
VERSION = bytes(range(32))


def _world(seed: int = 1, n_platform: int = 300, n_bank: int = 120, unknown: int = 30):
    rng = np.random.default_rng(seed)
    platform_ids = [f"91{i:016d}" for i in range(n_platform)]
    bank_ids = list(rng.choice(platform_ids, n_bank - unknown, replace=False)) + [f"X{i}" for i in range(unknown)]
    u_h = {p: float(v) for p, v in zip(platform_ids, rng.normal(size=n_platform))}
    u_g = rng.normal(size=n_bank)
    return platform_ids, bank_ids, u_h, u_g


def _run(mode: ScoringMode, *, key=None, table=None, cache=None, params=None, version=VERSION, seed=7):
    platform_ids, bank_ids, u_h, u_g = _world()
    rng = random.Random(seed)
    key = key or new_key(random.Random(0))
    params = params or ScoringParams(mode=mode, batch_size=32, table_batch_size=50)
    if mode is ScoringMode.PRIVATE and table is None:
        table = build_table(platform_ids, [u_h[p] for p in platform_ids], key, SALT, VERSION, rng)
    host = host_program(VERSION, params, key=key, table=table, partials=u_h)
    guest = guest_program(bank_ids, list(u_g), version, params, random.Random(seed + 1), table=cache)
    out = run_local({Role.GUEST: guest, Role.HOST: host})
    return out, bank_ids, u_h, u_g, table


@pytest.mark.parametrize("mode", list(ScoringMode))
def test_scores_match_central_and_unknown_ids_are_not_found(mode):
    out, bank_ids, u_h, u_g, _ = _run(mode)
    res = out[Role.GUEST]
    assert out[Role.HOST].queries == len(bank_ids)
    for i, q in enumerate(bank_ids):
        if q in u_h:
            assert res.found[i]
            assert res.z[i] == pytest.approx(u_g[i] + u_h[q], abs=1e-12)
            assert res.probability[i] == pytest.approx(sigmoid(u_g[i] + u_h[q]), abs=1e-12)
        else:
            assert not res.found[i] and res.z[i] is None and res.probability[i] is None
    assert res.n_found == 90


def test_cached_table_is_not_sent_again_and_still_opens():
    out, *_ , table = _run(ScoringMode.PRIVATE)
    first = out[Role.GUEST]
    assert first.table_updated and out[Role.HOST].table_sent
    again, *_ = _run(ScoringMode.PRIVATE, key=new_key(random.Random(0)), table=table, cache=first.table, seed=9)
    assert not again[Role.GUEST].table_updated and not again[Role.HOST].table_sent
    assert again[Role.GUEST].z == first.z


def test_a_stale_table_is_replaced():
    out, *_ , table = _run(ScoringMode.PRIVATE)
    platform_ids, _, u_h, _ = _world()
    key = new_key(random.Random(3))
    rebuilt = build_table(platform_ids, [u_h[p] for p in platform_ids], key, SALT, VERSION, random.Random(4))
    # the platform rotated its key: the bank's copy no longer matches, the new table is sent and opens
    out2, *_ = _run(ScoringMode.PRIVATE, key=key, table=rebuilt, cache=out[Role.GUEST].table)
    assert out2[Role.GUEST].table_updated and out2[Role.GUEST].z == out[Role.GUEST].z


def test_another_model_version_is_refused():
    with pytest.raises(ProtocolError, match="another version"):
        _run(ScoringMode.PRIVATE, version=bytes(32))


def test_query_cap_is_enforced_before_any_answer():
    with pytest.raises(ProtocolError, match="cap"):
        _run(ScoringMode.PRIVATE, params=ScoringParams(batch_size=32, max_queries=10))


@pytest.mark.parametrize("mode", list(ScoringMode))
def test_the_platform_counts_answers_as_they_go(mode):
    platform_ids, bank_ids, u_h, u_g = _world()
    key = new_key(random.Random(0))
    table = build_table(platform_ids, [u_h[p] for p in platform_ids], key, SALT, VERSION, random.Random(1))
    answered: list[int] = []
    params = ScoringParams(mode=mode, batch_size=50)
    run_local({Role.GUEST: guest_program(bank_ids, list(u_g), VERSION, params, random.Random(2)),
               Role.HOST: host_program(VERSION, params, key=key, table=table, partials=u_h, on_answered=answered.append)})
    assert answered == [50, 50, 20]


def test_table_entries_do_not_open_without_a_query():
    """The sealed table alone: no entry opens under a key the bank can derive without the platform's k."""
    platform_ids, _, u_h, _ = _world()
    rng = random.Random(5)
    key = new_key(rng)
    table = build_table(platform_ids, [u_h[p] for p in platform_ids], key, SALT, VERSION, rng)
    assert table.digest.key_id == key_id(key) and table.digest.count == len(platform_ids)
    from fedcredit.protocols.psi.ecdh import hash_and_blind
    from fedcredit.protocols.scoring import open_entry

    # a guessed key (any key but k) finds no entry for any real id
    other = new_key(random.Random(6))
    ys = hash_and_blind(SALT, other, platform_ids)
    assert all(open_entry(table.index(), table.digest.table_id, VERSION, y) is None for y in ys)
    # with k the entries open (the platform's own check)
    ys = hash_and_blind(SALT, key, platform_ids[:5])
    assert [open_entry(table.index(), table.digest.table_id, VERSION, y) for y in ys] == [u_h[p] for p in platform_ids[:5]]


def test_partial_scores_standardize_and_clip_as_training():
    x = np.array([[1.0, np.nan], [10.0, 2.0]])
    p = partial_scores(x, np.array([1.0, 2.0]), np.array([2.0, 1.0]), 3.0, np.array([1.0, -1.0]), intercept=0.5)
    assert p == pytest.approx([0.5, 3.0 + 0.0 + 0.5])  # (10-1)/2 = 4.5 clipped to 3


class _Batches:
    def __init__(self, batches):
        self.batches, self.answers = list(batches), []

    def next(self):
        return self.batches.pop(0) if self.batches else None

    def answer(self, u_h):
        self.answers.append(u_h)


def test_online_session_answers_each_batch_and_counts_queries():
    from fedcredit.protocols.scoring import guest_session_program, host_session_program

    platform_ids, bank_ids, u_h, _ = _world()
    key = new_key(random.Random(0))
    table = build_table(platform_ids, [u_h[p] for p in platform_ids], key, SALT, VERSION, random.Random(1))
    reqs = _Batches([bank_ids[:1], bank_ids[1:33], bank_ids[90:]])  # the last batch: known and unknown ids
    out = run_local({Role.GUEST: guest_session_program(VERSION, random.Random(2), reqs),
                     Role.HOST: host_session_program(VERSION, ScoringParams(), key=key, table=table)})
    assert out[Role.HOST].queries == out[Role.GUEST][0] == 1 + 32 + 30
    flat = [u for a in reqs.answers for u in a]
    assert flat == [u_h.get(q) for q in bank_ids[:33] + bank_ids[90:]]
    answered: list[int] = []
    with pytest.raises(ProtocolError, match="cap of 20"):
        run_local({Role.GUEST: guest_session_program(VERSION, random.Random(2), _Batches([bank_ids[:15], bank_ids[15:30]])),
                   Role.HOST: host_session_program(VERSION, ScoringParams(max_queries=20), key=key, table=table,
                                                   on_answered=answered.append)})
    assert answered == [15]  # the session failed, but what was answered is counted (the platform's daily limit)
