"""Online scoring at the bank's node (#14): the ``ScoreApplicant`` RPC, served while an online score job runs.

The bank's own services call ``ScoreApplicant`` (one applicant or a batch) over mTLS, with a certificate of
this node's CA whose name ``scoring_service.allowed_clients`` lists. Each call waits in a queue; the job's
session (:func:`fedcredit.protocols.scoring.guest_session_program`) takes every call waiting at that moment
as one batch -- so concurrent calls share a round trip to the platform -- sends it blinded under a fresh r,
opens the platform's sealed entries and answers each call with ``sigmoid(u_G + u_H)``, or "not found".
The platform sees batch sizes and times only.

Owns: the RPC and the session's queue. May import: ``protocols``, ``fedcredit.proto``,
:mod:`fedcredit.runtime.security` and :mod:`fedcredit.runtime.errors`.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Sequence

import grpc

from fedcredit.proto.v1 import scoring_pb2, scoring_pb2_grpc
from fedcredit.protocols.scoring import sigmoid

from ..config import ScoringServiceConfig
from ..errors import DeadlineError, NotFoundError, PermissionDeniedError, TransportError
from ..files import atomic_write
from ..security.certs import TlsMaterial
from ..security.transport import create_server, peer_identity

__all__ = ["OnlineSession", "serving"]

_Answer = list[tuple[bool, float, float | None]]  # found, probability, a scorecard's total points


class OnlineSession:
    """The queue between ``ScoreApplicant`` calls and the job's session program (its :class:`Requests`).

    Args:
        own: the bank's partial score ``u_G`` (intercept included) of each applicant it can score.
        deadline: when the session ends (monotonic seconds), unless ``stop`` is set first.
        idle_s: it also ends after this long without a request (None: it does not).
        link: a scorecard model's total points to its probability of default (#15); each answer then also carries
            the points. None: ``sigmoid(u_G + u_H)``.
    """

    def __init__(self, own: dict[str, float], deadline: float, stop: threading.Event, request_timeout_s: float = 10.0,
                 idle_s: float | None = None, link: Callable[[float], float] | None = None) -> None:
        self.own = own
        self.link = link
        self.deadline = deadline
        self.idle_s = idle_s
        self._last: float | None = None  # the last batch's time; idleness counts from the session's first wait
        self.stop = stop
        self.request_timeout_s = request_timeout_s
        self._queue: queue.Queue[tuple[Sequence[str], Future[_Answer]]] = queue.Queue()
        self._current: list[tuple[Sequence[str], Future[_Answer]]] = []
        self._closed = False
        self.batches = 0

    # -- the RPC side
    def score(self, ids: Sequence[str]) -> _Answer:
        """``(found, probability, points)`` per id, once the session has asked the platform.

        Raises:
            NotFoundError: an id is not among the bank's applicants (it has no features to score).
            TransportError: the session is over.
            DeadlineError: no answer within the request timeout."""
        unknown = sum(1 for i in ids if i not in self.own)
        if unknown:
            raise NotFoundError(f"{unknown} of the {len(ids)} ids are not among the bank's applicants")
        if self._closed:
            raise TransportError("the online scoring session is over")
        fut: Future[_Answer] = Future()
        self._queue.put((list(ids), fut))
        try:
            return fut.result(timeout=self.request_timeout_s)
        except TimeoutError:
            raise DeadlineError(f"no score within {self.request_timeout_s:.0f}s") from None

    # -- the session program's side (fedcredit.protocols.scoring.Requests)
    def next(self) -> Sequence[str] | None:
        while True:
            now = time.monotonic()
            if self._last is None:
                self._last = now
            if self.stop.is_set() or now > self.deadline or (self.idle_s is not None and now - self._last > self.idle_s):
                self.close()
                return None
            try:
                first = self._queue.get(timeout=0.2)
                break
            except queue.Empty:
                continue
        items = [first]
        while True:  # every call waiting now joins this batch: one round trip for all of them
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        self._current = items
        self.batches += 1
        self._last = time.monotonic()
        return [i for ids, _ in items for i in ids]

    def answer(self, u_h: list[float | None]) -> None:
        pos = 0
        for ids, fut in self._current:
            part = u_h[pos : pos + len(ids)]
            pos += len(ids)
            fut.set_result([self._one(self.own[i], u) for i, u in zip(ids, part)])
        self._current = []

    def _one(self, own: float, u: float | None) -> tuple[bool, float, float | None]:
        if u is None:
            return False, 0.0, None
        if self.link is None:
            return True, sigmoid(own + u), None
        return True, self.link(own + u), own + u

    def close(self, error: BaseException | None = None) -> None:
        """No more calls; every waiting one fails (the session ended, or failed with ``error``)."""
        self._closed = True
        pending = self._current
        self._current = []
        while True:
            try:
                pending.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for _, fut in pending:
            if not fut.done():
                fut.set_exception(error or TransportError("the online scoring session is over"))


class _Servicer(scoring_pb2_grpc.ScoringServiceServicer):
    def __init__(self, session: OnlineSession, model_id: str, version: str, allowed: Sequence[str]) -> None:
        self.session, self.model_id, self.version, self.allowed = session, model_id, version, set(allowed)

    def ScoreApplicant(self, request: scoring_pb2.ScoreApplicantRequest, context: grpc.ServicerContext) -> Any:
        who = peer_identity(context)
        if who not in self.allowed:
            raise PermissionDeniedError(f"{who!r} may not call ScoreApplicant on this node")
        ids = list(request.ids)
        scores = self.session.score(ids)
        return scoring_pb2.ScoreApplicantResponse(
            model_id=self.model_id, model_version=self.version,
            scores=[scoring_pb2.ApplicantScore(id=i, found=f, probability=p, points=pts) for i, (f, p, pts) in zip(ids, scores)])


class serving:
    """``with serving(...) as port:`` -- the ScoreApplicant server for one session, its port in ``port_file``."""

    def __init__(self, session: OnlineSession, cfg: ScoringServiceConfig, tls: TlsMaterial, model_id: str, version: str) -> None:
        self.server, self.port = create_server(tls, cfg.listen, max_workers=64)
        scoring_pb2_grpc.add_ScoringServiceServicer_to_server(_Servicer(session, model_id, version, cfg.allowed_clients), self.server)
        self.port_file = cfg.port_file
        self.session = session

    def __enter__(self) -> int:
        self.server.start()
        if self.port_file is not None:
            atomic_write(self.port_file, str(self.port).encode())
        return self.port

    def __exit__(self, *exc: object) -> None:
        self.session.close()
        if self.port_file is not None:
            self.port_file.unlink(missing_ok=True)
        self.server.stop(1.0).wait()
