"""OT-PSI resume by replay (federated/node/psi_runner.py ``_ot``): given a PRG keyed by its seed, an OT role run
again from its start after a kill re-sends byte-identical messages and ends with the same result.

The in-memory network keeps every message, as the relay keeps delivered ones; a restarted role starts from
nothing but its seed, every send it makes again must equal the original, and it fetches the peer's again.
"""

from __future__ import annotations

import random
from typing import Any, Callable

import pytest

from fedcredit.protocols.core import Checkpoint, Progress, Recv, Role, Send
from fedcredit.protocols.hetero_lr.two_party_checkpoint import EpochPrg
from fedcredit.protocols.psi.ot import OtPsiParams, ot_guest_program, ot_host_program
from fedcredit.protocols.psi.protocol import Reveal
from fedcredit.runtime.codec import encode_payload

G, H = Role.GUEST, Role.HOST
SALT = b"test-salt-0123456789"


def _ids(n_common: int = 300, n_own: int = 200) -> tuple[list[str], list[str]]:
    r = random.Random(4)
    common = [f"C{i:06d}" for i in range(n_common)]
    g = common + [f"G{i:06d}" for i in range(n_own)]
    h = common + [f"H{i:06d}" for i in range(n_own + 57)]
    r.shuffle(g)
    r.shuffle(h)
    return g, h


def _run(makers: dict[Role, Callable[[], Any]], kill: tuple[Role, int] | None = None) -> tuple[dict[Role, Any], int]:
    """Run both roles; ``kill = (role, n)`` kills ``role`` after its n-th action and starts it again from its seed."""
    log: dict[tuple[str, Role], list[Any]] = {}
    state = {r: {"gen": m(), "started": False, "pending": None, "value": None, "sent": {}, "recv": {}, "n": 0} for r, m in makers.items()}
    results: dict[Role, Any] = {}
    replayed = 0

    def advance(role: Role) -> bool:
        nonlocal kill, replayed
        p, peer, moved = state[role], (H if role is G else G), False
        while role not in results:
            if p["pending"] is not None:
                wire = p["pending"].step.wire
                queue, seq = log.get((wire, peer), []), p["recv"].get(wire, 0)
                if seq >= len(queue):
                    return moved
                p["value"], p["pending"] = queue[seq], None
                p["recv"][wire] = seq + 1
            try:
                action = p["gen"].send(p["value"]) if p["started"] else next(p["gen"])
            except StopIteration as stop:
                results[role] = stop.value
                return True
            p["started"], p["value"], moved = True, None, True
            p["n"] += 1
            if isinstance(action, Send):
                wire = action.step.wire
                queue, seq = log.setdefault((wire, role), []), p["sent"].get(wire, 0)
                p["sent"][wire] = seq + 1
                if seq < len(queue):
                    assert encode_payload(action.payload) == encode_payload(queue[seq]), f"{role} re-sent a different {wire}#{seq}"
                    replayed += 1
                else:
                    queue.append(action.payload)
            elif isinstance(action, Recv):
                p["pending"] = action
            else:
                assert isinstance(action, (Progress, Checkpoint))
            if kill is not None and kill[0] is role and p["n"] == kill[1]:
                kill = None
                state[role] = {"gen": makers[role](), "started": False, "pending": None, "value": None, "sent": {}, "recv": {}, "n": 0}
                p = state[role]
        return moved

    for _ in range(1_000_000):
        if len(results) == 2:
            return results, replayed
        if not any([advance(G), advance(H)]):
            raise AssertionError("deadlock")
    raise AssertionError("did not finish")


def _makers(mode: Reveal, minimum: int = 0) -> dict[Role, Callable[[], Any]]:
    g, h = _ids()
    params = OtPsiParams(salt=SALT, mode=mode)
    return {G: lambda: ot_guest_program(g, params, EpochPrg(b"\x01" * 32, "psi_ot"), min_intersection=minimum),
            H: lambda: ot_host_program(h, params, EpochPrg(b"\x02" * 32, "psi_ot"), min_intersection=minimum)}


def _same(a: Any, b: Any) -> None:
    assert list(a.rows) == list(b.rows) and a.size == b.size


@pytest.mark.parametrize("mode,minimum", [(Reveal.BOTH, 0), (Reveal.GUEST, 0), (Reveal.BOTH, 10)])  # 10: count-first ECDH
def test_ot_role_restarted_from_its_seed_ends_the_same(mode: Reveal, minimum: int) -> None:
    ref, _ = _run(_makers(mode, minimum))
    assert ref[G].size == 300
    for role in (G, H):
        for n in (2, 5, 8):
            got, _ = _run(_makers(mode, minimum), kill=(role, n))
            _same(ref[G], got[G])
            _same(ref[H], got[H])


def test_a_different_seed_gives_different_messages() -> None:
    """The replay is exact because of the seed, not by accident: with another seed the first message differs."""
    g, _ = _ids()
    params = OtPsiParams(salt=SALT, mode=Reveal.BOTH)

    def first_send(seed: bytes) -> bytes:
        for action in ot_guest_program(g, params, EpochPrg(seed, "psi_ot")):
            if isinstance(action, Send):
                return encode_payload(action.payload)[1]
        raise AssertionError("no send")

    assert first_send(b"\x01" * 32) == first_send(b"\x01" * 32) != first_send(b"\x03" * 32)


@pytest.mark.parametrize("mode,count_first", [(Reveal.GUEST, True), (Reveal.CARDINALITY, False)])
def test_unbalanced_role_restarted_from_its_seed_ends_the_same(mode: Reveal, count_first: bool) -> None:
    """The unbalanced mode resumes the same way (psi_runner ``_unbalanced``): the host's key and cache are on its
    disk already, and everything else either role draws comes from its seed."""
    from fedcredit.protocols.psi import (UnbalancedParams, unbalanced_build_cache, unbalanced_cache_digest,
                                         unbalanced_guest_program, unbalanced_host_program, unbalanced_new_key)

    g, h = _ids()
    key, salt = unbalanced_new_key(random.Random(7)), b"\x05" * 32
    cache, digest = unbalanced_build_cache(h, key, salt), unbalanced_cache_digest(h, key, salt)
    params = UnbalancedParams(mode=mode, count_first=count_first, batch_size=64, cache_batch_size=128)
    makers = {G: lambda: unbalanced_guest_program(g, params, EpochPrg(b"\x01" * 32, "psi_ub"), min_intersection=1 if count_first else 0),
              H: lambda: unbalanced_host_program(key, cache, digest, params, EpochPrg(b"\x02" * 32, "psi_ub"),
                                                 min_intersection=1 if count_first else 0)}
    ref, _ = _run(makers)
    assert ref[G].result.size == 300
    for role in (G, H):
        for n in (2, 5, 9):
            got, _ = _run(makers, kill=(role, n))
            assert got[G].result == ref[G].result and got[G].cache_updated == ref[G].cache_updated
