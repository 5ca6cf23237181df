"""Two-party LR resume (protocols/hetero_lr/two_party_checkpoint.py): a role killed at any point and restarted
from its last checkpoint ends with bit-identical weights, losses and metrics, and re-sends byte-identical messages.

The in-memory network below keeps every message (as the relay keeps delivered ones), and a restarted role starts
its counters where its checkpoint says: what it sends again must equal, byte for byte, what it sent the first
time (the runtime would skip those sends), and what it receives again is the peer's original message.
"""

from __future__ import annotations

import json
import random
from typing import Any, Callable

import numpy as np
import pytest

from fedcredit.protocols.core import Checkpoint, Progress, Recv, Role, Send
from fedcredit.protocols.errors import ProtocolError
from fedcredit.protocols.hetero_lr import HeteroLRParams
from fedcredit.protocols.hetero_lr import two_party as tp
from fedcredit.protocols.hetero_lr.two_party_checkpoint import EpochPrg, TrainCheckpoint
from fedcredit.runtime.codec import encode_payload
from helpers import paillier_keypair

G, H = Role.GUEST, Role.HOST


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    n, mg, mh = 200, 2, 3
    xg, xh = rng.normal(size=(n, mg)), rng.normal(size=(n, mh))
    z = xg @ np.array([1.0, -0.5]) + xh @ np.array([0.8, -1.2, 0.4]) + 0.2
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return np.clip(xg, -3, 3), np.clip(xh, -3, 3), y, 160


@pytest.fixture(scope="module")
def keys():
    return paillier_keypair(1024, 1), paillier_keypair(1024, 2)


def _params(**kw: Any) -> HeteroLRParams:
    base: dict[str, Any] = dict(key_bits=1024, max_epochs=3, tol=0.0, batch_size=64)
    base.update(kw)
    return HeteroLRParams(**base)


Maker = Callable[[TrainCheckpoint | None], Any]


def _makers(data, keys, params: HeteroLRParams, every: int = 1) -> dict[Role, Maker]:
    xg, xh, y, cut = data
    gk, hk = keys if params.he_scheme == "paillier" else (None, None)
    return {
        G: lambda resume: tp.guest_program(xg[:cut], y[:cut], xg[cut:], y[cut:], params, random.Random(10), keypair=gk,
                                           checkpoint=True, resume=resume, checkpoint_every=every),
        H: lambda resume: tp.host_program(xh[:cut], xh[cut:], params, random.Random(11), keypair=hk,
                                          checkpoint=True, resume=resume, checkpoint_every=every),
    }


class _Party:
    def __init__(self, make: Maker) -> None:
        self.make = make
        self.gen = make(None)
        self.started = False
        self.pending: Recv | None = None
        self.value: Any = None
        self.sent: dict[str, int] = {}
        self.recv: dict[str, int] = {}
        self.checkpoints: list[dict[str, Any]] = []
        self.since = 0  # actions since the last checkpoint
        self.replayed = 0  # sends a restarted role made again (the runtime would skip them)

    def restart(self) -> None:
        """kill -9 and restart: everything in memory is lost but the last checkpoint, read back from 'disk'."""
        state = json.loads(json.dumps(self.checkpoints[-1]))
        cp = TrainCheckpoint.from_dict(state)
        self.gen, self.started, self.pending, self.value = self.make(cp), False, None, None
        self.sent, self.recv = dict(cp.sent), dict(cp.recv_from)
        self.since = 0


def _run(makers: dict[Role, Maker], kill: tuple[Role, int, int] | None = None) -> tuple[dict[Role, Any], dict[Role, _Party]]:
    """Run both roles; ``kill = (role, k, j)`` restarts ``role`` ``j`` actions after its checkpoint number ``k``."""
    log: dict[tuple[str, Role], list[Any]] = {}
    parties = {r: _Party(m) for r, m in makers.items()}
    results: dict[Role, Any] = {}
    plan = kill

    def advance(role: Role) -> bool:
        nonlocal plan
        p, peer = parties[role], (H if role is G else G)
        moved = False
        while role not in results:
            if p.pending is not None:
                wire = p.pending.step.wire
                queue = log.get((wire, peer), [])
                seq = p.recv.get(wire, 0)
                if seq >= len(queue):
                    return moved
                p.value, p.pending = queue[seq], None
                p.recv[wire] = seq + 1
            try:
                action = p.gen.send(p.value) if p.started else next(p.gen)
            except StopIteration as stop:
                results[role] = stop.value
                return True
            p.started, p.value, moved = True, None, True
            if isinstance(action, Send):
                wire = action.step.wire
                queue = log.setdefault((wire, role), [])
                seq = p.sent.get(wire, 0)
                p.sent[wire] = seq + 1
                if seq < len(queue):  # sent before the restart: it must be the same message, byte for byte
                    assert encode_payload(action.payload) == encode_payload(queue[seq]), f"{role} re-sent a different {wire}#{seq}"
                    p.replayed += 1
                else:
                    queue.append(action.payload)
            elif isinstance(action, Recv):
                p.pending = action
            elif isinstance(action, Checkpoint):
                assert action.stage == "lr2"
                p.checkpoints.append(action.state)
                p.since = -1
            else:
                assert isinstance(action, Progress)
                assert set(action.detail) <= {"epoch"}  # nothing secret rides in a progress report
            p.since += 1
            if plan is not None and plan[0] is role and len(p.checkpoints) == plan[1] + 1 and p.since == plan[2]:
                plan = None
                p.restart()
        return moved

    for _ in range(1_000_000):
        if len(results) == 2:
            return results, parties
        if not any([advance(G), advance(H)]):
            raise AssertionError("deadlock")
    raise AssertionError("did not finish")


def _same(a: dict[Role, Any], b: dict[Role, Any]) -> None:
    ga, gb, ha, hb = a[G], b[G], a[H], b[H]
    assert np.array_equal(ga.weights, gb.weights) and ga.intercept == gb.intercept
    assert np.array_equal(ha.weights, hb.weights)
    assert ga.losses == gb.losses and ha.losses == hb.losses and ga.epochs == gb.epochs
    assert ga.metrics == gb.metrics
    assert np.array_equal(ga.test_scores, gb.test_scores)


@pytest.fixture(scope="module")
def reference(data, keys):
    params = _params()
    results, parties = _run(_makers(data, keys, params))
    return params, results, {r: len(p.checkpoints) for r, p in parties.items()}


def test_checkpoints_at_every_boundary(reference) -> None:
    params, results, counts = reference
    # before the first message, after the setup, after each batch but an epoch's last (160 rows in batches of 64: 3),
    # and after each epoch
    assert counts == {G: 2 + 3 * params.max_epochs, H: 2 + 3 * params.max_epochs}
    assert results[G].epochs == params.max_epochs


def test_a_restart_fetches_again_at_most_one_batch(data, keys, reference) -> None:
    """The relay keeps delivered messages only within a byte budget: between two checkpoints a role receives at
    most one batch's four messages (and, for the epoch's last batch, the few small loss messages), so that is all
    a restart must fetch again."""
    params, _, _ = reference
    _, parties = _run(_makers(data, keys, params))
    for role in (G, H):
        cps = [TrainCheckpoint.from_dict(c) for c in parties[role].checkpoints]
        mid = [c for c in cps if c.batch]
        assert len(mid) == 2 * params.max_epochs and all(c.loss_acc is None for c in mid) == (role is G)
        for before, after in zip(cps[1:], cps[2:]):
            fetched = sum(after.recv_from.values()) - sum(before.recv_from.values())
            assert 4 <= fetched <= 4 + 2, (role, before.epoch, before.batch)


@pytest.mark.parametrize("role", [G, H])
def test_restart_at_every_boundary_is_bit_identical(data, keys, reference, role: Role) -> None:
    params, ref, counts = reference
    for k in range(counts[role]):
        got, parties = _run(_makers(data, keys, params), kill=(role, k, 0))
        _same(ref, got)


@pytest.mark.parametrize("role", [G, H])
def test_restart_mid_epoch_replays_identical_messages(data, keys, reference, role: Role) -> None:
    params, ref, counts = reference
    # before setup was received; mid-batch in epochs 1, 2 and 3; in the last epoch's loss exchange
    for k, j in ((0, 1), (1, 5), (3, 3), (7, 6), (counts[role] - 4, 7), (counts[role] - 2, 12)):
        got, parties = _run(_makers(data, keys, params), kill=(role, k, j))
        _same(ref, got)
        assert parties[role].replayed > 0  # it did go back, and re-created what it had sent


@pytest.mark.parametrize("role", [G, H])
def test_checkpoints_every_other_batch_resume_as_exactly(data, keys, reference, role: Role) -> None:
    """``checkpoint_every`` (fewer, larger CKKS checkpoints): a restart goes back up to that many batches."""
    params, ref, _ = reference
    _, parties = _run(_makers(data, keys, params, every=2))
    assert [TrainCheckpoint.from_dict(c).batch for c in parties[role].checkpoints] == [0, 0] + [2, 0] * params.max_epochs
    for k, j in ((2, 9), (3, 12), (4, 3)):  # two batches after a mid-epoch one; after an epoch's end
        got, parties = _run(_makers(data, keys, params, every=2), kill=(role, k, j))
        _same(ref, got)
        assert parties[role].replayed > 0
    with pytest.raises(ProtocolError, match="checkpoint_every"):
        next(_makers(data, keys, params, every=0)[role](None))


def test_nesterov_and_early_stop_resume(data, keys) -> None:
    params = _params(max_epochs=6, tol=0.05, optimizer="nesterov")
    ref, parties = _run(_makers(data, keys, params))
    assert ref[G].epochs < 6  # converged early: the last checkpoint says "done"
    assert TrainCheckpoint.from_dict(parties[H].checkpoints[-1]).done
    for role in (G, H):
        got, _ = _run(_makers(data, keys, params), kill=(role, len(parties[role].checkpoints) - 1, 1))
        _same(ref, got)


def test_checkpoint_keeps_secrets_apart_and_binds_the_data(data, keys, reference) -> None:
    params, _, _ = reference
    _, parties = _run(_makers(data, keys, params))
    cp = TrainCheckpoint.from_dict(parties[G].checkpoints[-1])
    public = cp.public_view()
    assert "secret" not in public and cp.seed.hex() not in json.dumps(public)
    assert all(str(v) not in json.dumps(public) for v in cp.a if v > 1000)
    xg, xh, y, cut = data
    other = tp.guest_program(xg[:cut] + 0.01, y[:cut], xg[cut:], y[cut:], params, random.Random(10), keypair=keys[0], resume=cp)
    with pytest.raises(ProtocolError, match="other data"):
        next(other)
    wrong_role = tp.host_program(xh[:cut], xh[cut:], params, random.Random(11), keypair=keys[1], resume=cp)
    with pytest.raises(ProtocolError, match="guest"):
        next(wrong_role)
    bad = dict(parties[G].checkpoints[-1], epoch=-1)
    with pytest.raises(ProtocolError):
        TrainCheckpoint.from_dict(bad)


def test_prg_is_labelled_and_deterministic() -> None:
    p, q = EpochPrg(b"\1" * 32), EpochPrg(b"\1" * 32)
    assert [p.getrandbits(k) for k in (1, 7, 64, 300)] == [q.getrandbits(k) for k in (1, 7, 64, 300)]
    p.reseed("epoch 0")
    q.reseed("epoch 1")
    assert p.getrandbits(128) != q.getrandbits(128)
    assert all(0 <= p.getrandbits(13) < 2**13 for _ in range(100))


@pytest.mark.parametrize("reveal", ["shared"])  # owner: as with Paillier (the engines differ before the output phase)
def test_ckks_restart_is_bit_identical(data, keys, reveal: str) -> None:
    """The RLWE engine: the key pair comes from the seed too, and the peer's RLWE public key is in the checkpoint."""
    params = _params(he_scheme="ckks", max_epochs=2, reveal_weights=reveal)
    ref, parties = _run(_makers(data, keys, params))
    cp = TrainCheckpoint.from_dict(parties[H].checkpoints[-1])
    assert cp.peer is not None and cp.peer["key"]["kind"] == "rlwe"
    # the host mid-batch, and just after a batch (its loss accumulator, a ciphertext, from the checkpoint); the guest
    # just after the setup and mid-epoch
    for role, k, j in ((H, 2, 7), (H, 3, 0), (H, 8, 2), (G, 1, 0), (G, 3, 1)):
        got, _ = _run(_makers(data, keys, params), kill=(role, k, j))
        if reveal == "shared":
            assert got[G].shares == ref[G].shares and got[H].shares == ref[H].shares
            assert got[G].metrics == ref[G].metrics and np.array_equal(got[G].test_scores, ref[G].test_scores)
        else:
            _same(ref, got)
