"""Scoring applicants with a two-party model: the bank's part and the platform's part, one job.

A trained two-party LR (``reveal_weights: owner``) leaves the bank (guest) its weights ``w_G``, the
intercept ``b`` and its standardizer, and the platform (host) its weights ``w_H`` and standardizer. The
joint score of an enterprise is ``z = u_G + u_H`` with ``u_G = std_G(x_G)·w_G + b`` and ``u_H =
std_H(x_H)·w_H``, and its probability of default ``sigmoid(z)``. Each party computes its own partial
(:func:`partial_scores`); neither part alone gives ``z``. The bank learns ``u_H`` of every applicant it
scores that the platform knows, and "not found" for the others.

Private mode (the default): the platform learns how many, not which
---------------------------------------------------------------------
Offline, per model version, the platform seals its partial scores in a table (:func:`build_table`). For
each of its enterprises ``p``, with ``y = k·h(p)`` (the Diffie-Hellman OPRF of the unbalanced PSI:
X25519, hash-to-curve salted by ``salt``, the platform's long-lived key ``k``)::

    tag_p   = SHA-256("score-tag" ‖ table_id ‖ y)[:16]
    key_p   = SHA-256("score-key" ‖ table_id ‖ version ‖ y)
    entry_p = tag_p ‖ AES-256-GCM(key_p, nonce 0, u_H(p), aad = version ‖ tag_p)

sorted by tag. ``table_id`` is drawn fresh per build, so no key seals twice (a fixed nonce is safe) and
two builds are unlinkable. The exchange:

==================  ===========  ==============  =============================================
step                direction    payload         content
==================  ===========  ==============  =============================================
``VERSION``         host→guest   ModelVersion    the platform part's model version (both modes)
``TABLE_DIGEST``    host→guest   TableDigest     key id, table id, size, salt
``TABLE_STATUS``    guest→host   TableStatus     whether the bank holds that table
``TABLE``           host→guest   SealedEntries   the table in batches -- only if it had not
``QUERY_SIZE``      guest→host   SetSize         n, the number of applicants (both modes)
``QUERY``           guest→host   BlindedPoints   per batch: r·h(q), fresh r per job
``REPLY``           host→guest   BlindedPoints   per batch: k·r·h(q), same order
==================  ===========  ==============  =============================================

The bank unblinds with r⁻¹ to ``k·h(q)``, derives tag and key, and opens the entry if there is one
(else: not found). Plain mode replaces TABLE_* / QUERY / REPLY by ``PLAIN_QUERY`` (the ids) and
``PLAIN_REPLY`` (``u_H`` or not found).

What each side learns (semi-honest)
-----------------------------------
* Platform, private mode: n (the query count, which it can cap: ``ScoringParams.max_queries``) and when
  the bank scores; whether the bank holds the current table. r is fresh per job, so every query point is
  pseudorandom under DDH and independent of the id: the platform's view is the same for any two id
  sets of the same size (``tests/attacks/test_scoring_platform_view.py``). It learns no score.
* Bank: ``u_H`` of each applicant it scores that the platform knows (the declared prediction leak),
  "not found" for the others, and |P| (the table's size). The other entries stay sealed: opening one
  needs ``k·h(p)``, which only an online query gives; every query is counted by the platform and
  recorded in both transcripts. So the table allows no offline dictionary attack on the platform's set,
  though ids are guessable. Querying an id reveals its ``u_H`` whether or not the bank has a customer
  behind it: the cap and the audit are what bound that.
* Plain mode: the platform also learns which ids are scored; the bank learns the same as above.
"""

from __future__ import annotations

import hashlib
import math
import struct
from typing import Any, Callable, Generator, Protocol, Sequence

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..core import Progress, RandomSource, Role, RoleProgram, Send, batch_bounds, batches, check_unique_ids, n_batches, recv_typed
from ..errors import ProtocolError
from ..psi.ecdh import POINT_BYTES, MapFn, Pending, blind_async, hash_and_blind, hash_and_blind_async, invertible_scalar, random_scalar
from ..psi.messages import MIN_SALT_BYTES, BlindedPoints, SetSize
from ..psi.streams import one_ahead, recv_one_ahead
from .messages import (
    TAG_BYTES,
    VERSION_BYTES,
    HostScoringResult,
    ModelVersion,
    PlainIds,
    PlainPartials,
    ScoreResult,
    ScoreStep,
    ScoreTable,
    ScoringMode,
    ScoringParams,
    SealedEntries,
    TableDigest,
    TableStatus,
)

__all__ = ["new_key", "key_id", "build_table", "open_entry", "partial_scores", "sigmoid", "host_program", "guest_program",
           "Requests", "host_session_program", "guest_session_program"]

_KEY_ID_TAG = b"fedcredit/v1/score-key-id"
_TAG = b"fedcredit/v1/score-tag"
_KEY = b"fedcredit/v1/score-key"
_NONCE = bytes(12)


def new_key(rng: RandomSource) -> bytes:
    """A fresh OPRF key for the platform's scoring tables (keep it with the party's secrets)."""
    return random_scalar(rng)


def key_id(key: bytes) -> bytes:
    if not isinstance(key, bytes) or len(key) != POINT_BYTES:
        raise ProtocolError(f"a scoring key must be {POINT_BYTES} bytes")
    return hashlib.sha256(_KEY_ID_TAG + key).digest()


def _tag_and_key(table_id: bytes, version: bytes, y: bytes) -> tuple[bytes, bytes]:
    tag = hashlib.sha256(_TAG + table_id + y).digest()[:TAG_BYTES]
    return tag, hashlib.sha256(_KEY + table_id + version + y).digest()


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def partial_scores(x: np.ndarray, mean: np.ndarray, scale: np.ndarray, clip: float | None, weights: np.ndarray,
                   intercept: float = 0.0) -> np.ndarray:
    """A party's partial scores: its raw features standardized as in training (missing → mean, then
    clipped at ±clip), times its weights, plus the intercept if it holds it."""
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[1] != len(weights) or len(mean) != len(weights) or len(scale) != len(weights):
        raise ProtocolError("features, standardizer and weights do not have the same number of columns")
    z = (np.where(np.isnan(x), mean, x) - mean) / scale
    if clip is not None:
        z = np.clip(z, -clip, clip)
    return z @ np.asarray(weights, dtype=float) + float(intercept)


def build_table(ids: Sequence[str], partials: Sequence[float], key: bytes, salt: bytes, version: bytes, rng: RandomSource,
                map_fn: MapFn | None = None) -> ScoreTable:
    """The platform's sealed table of partial scores (module docstring): |P| hashes and scalar multiplications,
    on all cores with ``map_fn``, then one AES-GCM per entry."""
    check_unique_ids(ids, Role.HOST)
    if len(ids) != len(partials):
        raise ProtocolError("one partial score per id is needed")
    if not isinstance(salt, bytes) or not MIN_SALT_BYTES <= len(salt) <= 255:
        raise ProtocolError(f"the scoring salt must be {MIN_SALT_BYTES} to 255 bytes")
    if not isinstance(version, bytes) or len(version) != VERSION_BYTES:
        raise ProtocolError(f"the model version must be {VERSION_BYTES} bytes")
    kid = key_id(key)
    table_id = rng.getrandbits(256).to_bytes(32, "big")
    entries = []
    for y, u in zip(hash_and_blind(salt, key, ids, map_fn), partials):
        if not math.isfinite(u):
            raise ProtocolError("a partial score is not finite")
        tag, k = _tag_and_key(table_id, version, y)
        entries.append(tag + AESGCM(k).encrypt(_NONCE, struct.pack(">d", float(u)), version + tag))
    entries.sort()
    return ScoreTable(TableDigest(kid, table_id, len(entries), salt), tuple(entries))


def open_entry(index: dict[bytes, bytes], table_id: bytes, version: bytes, y: bytes) -> float | None:
    """The partial score sealed for the enterprise whose OPRF value is ``y``; None if the table has no entry."""
    tag, k = _tag_and_key(table_id, version, y)
    sealed = index.get(tag)
    if sealed is None:
        return None
    try:
        return float(struct.unpack(">d", AESGCM(k).decrypt(_NONCE, sealed, version + tag))[0])
    except InvalidTag:
        raise ProtocolError("a table entry does not open under its key: the table is corrupt") from None


def host_program(version: bytes, params: ScoringParams, *, key: bytes | None = None, table: ScoreTable | None = None,
                 partials: dict[str, float] | None = None, map_fn: MapFn | None = None,
                 on_answered: Callable[[int], None] | None = None) -> RoleProgram:
    """The platform: private mode answers blinded queries with ``key`` (``table`` was built with it); plain
    mode answers ids from ``partials``. ``on_answered(n)`` is told of every n queries answered, as they go
    (so a job that fails halfway still counts them). Returns :class:`HostScoringResult`.

    Raises:
        ProtocolError: the bank announces more than ``params.max_queries`` applicants, a batch has the
            wrong length, or the inputs do not fit the mode.
    """
    yield Send(ScoreStep.VERSION, ModelVersion(version))
    sent = False
    if params.mode is ScoringMode.PRIVATE:
        if key is None or table is None or key_id(key) != table.digest.key_id:
            raise ProtocolError("private scoring needs the key the table was built with")
        yield Send(ScoreStep.TABLE_DIGEST, table.digest)
        status = yield from recv_typed(ScoreStep.TABLE_STATUS, TableStatus)
        if not status.have:
            sent = True
            for _, lo, hi in batches(len(table.entries), params.table_batch_size):
                yield Send(ScoreStep.TABLE, SealedEntries(table.entries[lo:hi]))
    elif partials is None:
        raise ProtocolError("plain scoring needs the platform's partial scores")
    n = (yield from recv_typed(ScoreStep.QUERY_SIZE, SetSize)).count
    if params.max_queries is not None and n > params.max_queries:
        raise ProtocolError(f"the bank asks to score {n} applicants, above the platform's cap of {params.max_queries} "
                            "(the job's max_queries, or what remains of the platform's daily limit)")
    if params.mode is ScoringMode.PRIVATE:
        assert key is not None
        k = key

        def answer_batch(points: tuple[bytes, ...]) -> Pending:
            return blind_async(k, points, map_fn)

        def answer(b: int, lo: int, hi: int, points: list[bytes]) -> Generator[Any, Any, None]:
            yield Send(ScoreStep.REPLY, BlindedPoints(tuple(points)))
            if on_answered is not None:
                on_answered(len(points))
            yield Progress(stage="score", done=hi, total=n, detail={"phase": "answer"})

        yield from recv_one_ahead(ScoreStep.QUERY, n, params.batch_size, answer_batch, answer)
    else:
        assert partials is not None
        for b, lo, hi in batches(n, params.batch_size):
            got = yield from recv_typed(ScoreStep.PLAIN_QUERY, PlainIds)
            if len(got.ids) != hi - lo:
                raise ProtocolError(f"{ScoreStep.PLAIN_QUERY.wire} batch {b} carries {len(got.ids)} ids, expected {hi - lo}")
            found = tuple(i in partials for i in got.ids)
            yield Send(ScoreStep.PLAIN_REPLY, PlainPartials(found, tuple(float(partials.get(i, 0.0)) for i in got.ids)))
            if on_answered is not None:
                on_answered(len(got.ids))
            yield Progress(stage="score", done=hi, total=n, detail={"phase": "answer"})
    return HostScoringResult(queries=n, table_sent=sent)


def guest_program(ids: Sequence[str], own: Sequence[float], version: bytes, params: ScoringParams, rng: RandomSource, *,
                  table: ScoreTable | None = None, map_fn: MapFn | None = None) -> RoleProgram:
    """The bank: ``ids`` its applicants (normalized, unique), ``own`` its partial scores ``u_G`` of them
    (intercept included), ``version`` its part's model version, ``table`` its copy of the platform's table from
    an earlier job, if any. Returns :class:`ScoreResult`.

    Raises:
        ProtocolError: the platform's part is another model version, or a batch or the table is malformed.
    """
    check_unique_ids(ids, Role.GUEST)
    n = len(ids)
    if len(own) != n:
        raise ProtocolError("one own partial score per applicant is needed")
    theirs = yield from recv_typed(ScoreStep.VERSION, ModelVersion)
    if theirs.version != version:
        raise ProtocolError("the platform's model part is another version than the bank's: "
                            f"{theirs.version.hex()[:16]}… against {version.hex()[:16]}…")
    u_h: list[float | None] = [None] * n
    updated = False
    if params.mode is ScoringMode.PRIVATE:
        digest = yield from recv_typed(ScoreStep.TABLE_DIGEST, TableDigest)
        have = table is not None and table.digest == digest
        yield Send(ScoreStep.TABLE_STATUS, TableStatus(have))
        if not have:
            got: list[bytes] = []
            for b, lo, hi in batches(digest.count, params.table_batch_size):
                part = yield from recv_typed(ScoreStep.TABLE, SealedEntries)
                if len(part.entries) != hi - lo:
                    raise ProtocolError(f"{ScoreStep.TABLE.wire} batch {b} carries {len(part.entries)} entries, expected {hi - lo}")
                got.extend(part.entries)
            table, updated = ScoreTable(digest, tuple(got)), True
        assert table is not None
        index = table.index()
        r, r_inv = invertible_scalar(rng)
        yield Send(ScoreStep.QUERY_SIZE, SetSize(n))

        def blind_queries(b: int) -> Pending:
            lo, hi = batch_bounds(b, n, params.batch_size)
            return hash_and_blind_async(digest.salt, r, ids[lo:hi], map_fn)

        for b, points in one_ahead(range(n_batches(n, params.batch_size)), blind_queries):
            yield Send(ScoreStep.QUERY, BlindedPoints(tuple(points)))

        def unblind(points: tuple[bytes, ...]) -> Pending:
            return blind_async(r_inv, points, map_fn)

        def look_up(b: int, lo: int, hi: int, points: list[bytes]) -> Generator[Any, Any, None]:
            for i, y in enumerate(points):
                u_h[lo + i] = open_entry(index, digest.table_id, version, y)
            yield Progress(stage="score", done=hi, total=n, detail={"phase": "open"})

        yield from recv_one_ahead(ScoreStep.REPLY, n, params.batch_size, unblind, look_up)
    else:
        yield Send(ScoreStep.QUERY_SIZE, SetSize(n))
        for b, lo, hi in batches(n, params.batch_size):
            yield Send(ScoreStep.PLAIN_QUERY, PlainIds(tuple(ids[lo:hi])))
            reply = yield from recv_typed(ScoreStep.PLAIN_REPLY, PlainPartials)
            if len(reply.found) != hi - lo:
                raise ProtocolError(f"{ScoreStep.PLAIN_REPLY.wire} batch {b} carries {len(reply.found)} scores, expected {hi - lo}")
            for i, (f, v) in enumerate(zip(reply.found, reply.values)):
                u_h[lo + i] = v if f else None
            yield Progress(stage="score", done=hi, total=n, detail={"phase": "plain"})
    z = tuple(None if u is None else float(g) + u for g, u in zip(own, u_h))
    return ScoreResult(found=tuple(u is not None for u in u_h), z=z,
                       probability=tuple(None if v is None else sigmoid(v) for v in z),
                       table=table, table_updated=updated)


# --------------------------------------------------------------------------- online sessions


class Requests(Protocol):
    """Where an online session's requests come from (the bank's runtime: its ScoreApplicant RPCs).

    ``next()`` blocks until there is a batch of ids to score, or returns None to end the session;
    ``answer(u_h)`` takes the platform's partial score of each id of that batch (None: not found)."""

    def next(self) -> Sequence[str] | None: ...

    def answer(self, u_h: list[float | None]) -> None: ...


def _sync_table(version: bytes, table: ScoreTable | None) -> Generator[Any, Any, tuple[ScoreTable, bool]]:
    """The bank's side of VERSION and the table exchange (as in :func:`guest_program`)."""
    theirs = yield from recv_typed(ScoreStep.VERSION, ModelVersion)
    if theirs.version != version:
        raise ProtocolError("the platform's model part is another version than the bank's: "
                            f"{theirs.version.hex()[:16]}… against {version.hex()[:16]}…")
    digest = yield from recv_typed(ScoreStep.TABLE_DIGEST, TableDigest)
    have = table is not None and table.digest == digest
    yield Send(ScoreStep.TABLE_STATUS, TableStatus(have))
    if have:
        assert table is not None
        return table, False
    got: list[bytes] = []
    for b, lo, hi in batches(digest.count, 1 << 16):
        part = yield from recv_typed(ScoreStep.TABLE, SealedEntries)
        if len(part.entries) != hi - lo:
            raise ProtocolError(f"{ScoreStep.TABLE.wire} batch {b} carries {len(part.entries)} entries, expected {hi - lo}")
        got.extend(part.entries)
    return ScoreTable(digest, tuple(got)), True


def host_session_program(version: bytes, params: ScoringParams, *, key: bytes, table: ScoreTable,
                         map_fn: MapFn | None = None, on_answered: Callable[[int], None] | None = None) -> RoleProgram:
    """The platform's side of an online session (private mode): the table exchange, then one blinded
    answer per request batch until the bank sends an empty batch. The platform learns each batch's size
    and time, nothing about the ids. ``on_answered`` as in :func:`host_program`. Returns
    :class:`HostScoringResult` (the session's query count).

    Raises:
        ProtocolError: the session's queries pass ``params.max_queries``.
    """
    if key_id(key) != table.digest.key_id:
        raise ProtocolError("private scoring needs the key the table was built with")
    yield Send(ScoreStep.VERSION, ModelVersion(version))
    yield Send(ScoreStep.TABLE_DIGEST, table.digest)
    status = yield from recv_typed(ScoreStep.TABLE_STATUS, TableStatus)
    if not status.have:
        for _, lo, hi in batches(len(table.entries), 1 << 16):
            yield Send(ScoreStep.TABLE, SealedEntries(table.entries[lo:hi]))
    total = 0
    while True:
        q = yield from recv_typed(ScoreStep.SESSION_QUERY, BlindedPoints)
        if not q.points:
            break
        total += len(q.points)
        if params.max_queries is not None and total > params.max_queries:
            raise ProtocolError(f"the bank's session passed the platform's cap of {params.max_queries} applicants")
        yield Send(ScoreStep.SESSION_REPLY, BlindedPoints(tuple(blind_async(key, q.points, map_fn).result())))
        if on_answered is not None:
            on_answered(len(q.points))
        yield Progress(stage="score", done=total, total=params.max_queries or total, detail={"phase": "online"})
    return HostScoringResult(queries=total, table_sent=not status.have)


def guest_session_program(version: bytes, rng: RandomSource, requests: Requests, *, table: ScoreTable | None = None) -> RoleProgram:
    """The bank's side of an online session: the table exchange, then for each batch ``requests.next()``
    gives, one blinded query (fresh r), and ``requests.answer`` gets the opened partial scores. Returns
    ``(queries, table, table_updated)``."""
    table, updated = yield from _sync_table(version, table)
    index, digest = table.index(), table.digest
    total = 0
    while True:
        ids = requests.next()
        if not ids:
            yield Send(ScoreStep.SESSION_QUERY, BlindedPoints(()))
            return total, table, updated
        r, r_inv = invertible_scalar(rng)
        yield Send(ScoreStep.SESSION_QUERY, BlindedPoints(tuple(hash_and_blind(digest.salt, r, ids))))
        reply = yield from recv_typed(ScoreStep.SESSION_REPLY, BlindedPoints)
        if len(reply.points) != len(ids):
            raise ProtocolError(f"{ScoreStep.SESSION_REPLY.wire} carries {len(reply.points)} points for {len(ids)} queries")
        total += len(ids)
        ys = blind_async(r_inv, reply.points, None).result()
        requests.answer([open_entry(index, digest.table_id, version, y) for y in ys])
