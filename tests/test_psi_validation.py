"""The streamed ECDH-PSI refuses what it must: bad parameters and payloads, duplicate ids, wrong roles and types,
steps out of order, and a peer's malformed batches or matches."""

from __future__ import annotations

import random

import pytest

from fedcredit.protocols.core import Public, Recv, Role, RoleProgram, Send, check_recv, check_send, run_local
from fedcredit.protocols.errors import CryptoError, DataError, ProtocolError
from fedcredit.protocols.psi.ecdh import blind, hash_to_point, random_scalar
from fedcredit.protocols.psi.protocol import BlindedPoints, MatchedPositions, PsiParams, PsiStep, Reveal, SetSize, guest_program, host_program

SALT = bytes(range(16))


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

