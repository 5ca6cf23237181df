"""Resuming the streamed ECDH-PSI: a role killed anywhere restarts from its last checkpoint and gives the same
result; the checkpoint's format, its secrets kept out of progress reports, and the checks on resume.

``run_resumable`` and ``RESUME_CASE`` are shared with test_psi_count_first.py.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from typing import Any, Callable

import pytest

from fedcredit.protocols.core import Checkpoint, Progress, Recv, Role, RoleProgram, Send, check_recv, check_send
from fedcredit.protocols.errors import ProtocolError
from fedcredit.protocols.psi.ecdh import random_scalar
from fedcredit.protocols.psi.protocol import PsiCheckpoint, PsiParams, PsiStep, Reveal, guest_program, host_program
from test_psi import SALT, make_ids, recording


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
