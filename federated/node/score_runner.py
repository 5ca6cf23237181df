"""A party's score job: its part of a trained model, its rows, and its role of the scoring protocol.

:func:`run_scoring` reads this party's part of the job's model (:mod:`fedcredit.runtime.node.model_package`),
checks that it is the part for this role and this peer, computes its partial scores of its usable rows, then:

* the platform (host), private mode: its OPRF key for the model (drawn once, kept 0600 in the model's folder)
  and its sealed table of partial scores, rebuilt only when the model, the key or its data changed, so the
  bank's copy stays valid between jobs; plain mode: its partial scores by id;
* the bank (guest): its copy of the platform's table, if current, and then ``jobs/<job>/scores.csv`` -- one
  row per applicant: the probability of default, or ``not_found`` where the platform does not know it; for a
  scorecard model (``link: scorecard``, #15) the partial scores are each party's points, and the column is
  ``score``: the scorecard's total points (higher is safer).

Both record the query count in their transcripts. Owns: calling ``fedcredit.protocols.scoring``'s role
programs with this node's data. May import: ``protocols``, :mod:`fedcredit.runtime.plan`,
:mod:`fedcredit.runtime.driver`, :mod:`fedcredit.runtime.transcript` and the node's own modules.
"""

from __future__ import annotations

import csv
import hashlib
import io
import struct
import sys
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from fedcredit.protocols.core import Role
from fedcredit.protocols.hetero_lr import ks_statistic, roc_auc
from fedcredit.protocols.scoring import (
    ScoreTable,
    ScoringMode,
    build_table,
    guest_program,
    guest_session_program,
    host_program,
    host_session_program,
    key_id,
    new_key,
)

from ..config import ScoringServiceConfig
from ..driver import RoleRun
from ..errors import ConfigError, DataError, PermissionDeniedError
from ..files import atomic_write
from .data import LocalDataset
from .model_package import ModelPart, load_package
from .results import ScoringSummary
from .score_service import OnlineSession, serving
from .workdir import JobFiles, ModelFiles, NodeStore
from ..plan import RolePlan, ScorePlan
from ..security.certs import load_tls
from ..transcript import TranscriptWriter

__all__ = ["OnlineWiring", "run_scoring", "scores_path"]

SALT_BYTES = 32


def scores_path(files: JobFiles) -> str:
    return str(files.folder / "scores.csv")


def run_scoring(run: RoleRun, plan: ScorePlan, me: RolePlan, data: LocalDataset, ids: list[str], rows: np.ndarray | None, *,
                store: NodeStore, files: JobFiles, transcript: TranscriptWriter, daily_limit: int | None = None,
                online: OnlineWiring | None = None) -> ScoringSummary:
    """Run this party's side of a score job on its usable ``ids`` (file rows ``rows``; None: every row).
    ``daily_limit``: the platform's rate limit, applicants answered per model and UTC day (None: none).
    ``online``: the bank's ScoreApplicant service and stop signal, for an online session (``plan.online``).

    Raises:
        NotFoundError: this node has no such model.
        PermissionDeniedError: the model was trained in another role or with another peer.
        DataError: the dataset lacks one of the model's features.
    """
    t0 = time.monotonic()
    joint, part = load_package(store, plan.model_id)
    mine = joint.roles.get(me.role.value, {})
    theirs = joint.roles.get(Role.HOST.value if me.role is Role.GUEST else Role.GUEST.value, {})
    if part.role != me.role.value or mine.get("party") != me.party or theirs.get("party") != me.peer:
        raise PermissionDeniedError(f"model {plan.model_id} was trained by {mine.get('party')} as {part.role} with "
                                    f"{theirs.get('party')}; this job has {me.party} as {me.role.value} with {me.peer}",
                                    public="the model was trained in other roles or with another peer")
    x = _features(data, part, rows)
    own = part.partial(x)
    version = bytes.fromhex(joint.version)
    params = plan.params
    model = store.model(plan.model_id)
    pool = run.map_fn(len(ids), minimum=4096)
    if me.role is Role.HOST:
        table = key = None
        if params.mode is ScoringMode.PRIVATE:
            key, salt = _scoring_key(model, run)
            table = _host_table(model, ids, own, key, salt, version, run)
        partials = dict(zip(ids, (float(v) for v in own))) if params.mode is ScoringMode.PLAIN else None
        day = time.strftime("%Y-%m-%d", time.gmtime())
        used = _usage(model).get(day, 0)
        if daily_limit is not None:
            left = max(0, daily_limit - used)
            params = replace(params, max_queries=left if params.max_queries is None else min(left, params.max_queries))
        answered = [0]  # what the bank got answers for, counted as they go: a failed job's answers count too

        def count(n: int) -> None:
            answered[0] += n

        try:
            if plan.online:
                assert key is not None and table is not None
                res = run.drive(host_session_program(version, params, key=key, table=table, on_answered=count))
            else:
                res = run.drive(host_program(version, params, key=key, table=table, partials=partials, map_fn=pool, on_answered=count))
        finally:
            usage = _usage(model)
            usage[day] = usage.get(day, 0) + answered[0]
            model.write_json(model.folder / "queries.json", usage)
            if answered[0] and sys.exc_info()[0] is not None:
                transcript.event("scoring_failed", model=plan.model_id, answered=answered[0], queries_today=usage[day])
        mode = "online" if plan.online else str(params.mode)
        transcript.event("scoring", model=plan.model_id, model_version=joint.version, mode=mode, queries=res.queries,
                         max_queries=params.max_queries, daily_limit=daily_limit, queries_today=usage[day], table_sent=res.table_sent)
        return ScoringSummary(plan.model_id, joint.version, mode, res.queries, time.monotonic() - t0,
                              table_transferred=res.table_sent)
    cached = model.table(peer=True)
    if plan.online:
        link = (lambda total: float(part.probability(np.asarray([total]))[0])) if joint.link == "scorecard" else None
        return _online(run, plan, joint.version, dict(zip(ids, (float(v) for v in own))), cached[0] if cached else None, model,
                       transcript, online, t0, link)
    out = run.drive(guest_program(ids, [float(v) for v in own], version, params, run.rng,
                                  table=cached[0] if cached else None, map_fn=pool))
    if out.table_updated and out.table is not None:
        model.save_table(out.table, "", peer=True)
    card = joint.link == "scorecard"
    if card:  # the total points, and the probability of default they stand for
        prob = tuple(None if v is None else float(part.probability(np.asarray([v]))[0]) for v in out.z)
        _write_scores(files, ids, prob, points=out.z)
    else:
        _write_scores(files, ids, out.probability)
    auc = ks = None
    if data.labels is not None:
        found = np.array(out.found)
        labels = data.labels if rows is None else data.labels[rows]
        y, z = labels[found], np.array([v for v in out.z if v is not None])
        z = -z if card else z  # points rise with safety: the risk is their negative
        if len(y) and 0 < int(y.sum()) < len(y):
            auc, ks = float(roc_auc(y, z)), float(ks_statistic(y, z))
    transcript.event("scoring", model=plan.model_id, model_version=joint.version, mode=str(params.mode), queries=len(ids),
                     found=out.n_found, table_received=out.table_updated)
    return ScoringSummary(plan.model_id, joint.version, str(params.mode), len(ids), time.monotonic() - t0,
                          rows_scored=out.n_found, not_found=len(ids) - out.n_found, scores_file=scores_path(files),
                          auc=auc, ks=ks, table_transferred=out.table_updated)


@dataclass(frozen=True)
class OnlineWiring:
    """What an online session needs from the bank's node: its ScoreApplicant settings and stop signal."""

    service: ScoringServiceConfig
    stop: threading.Event


def _online(run: RoleRun, plan: ScorePlan, version: str, own: dict[str, float], cached: ScoreTable | None, model: ModelFiles,
            transcript: TranscriptWriter, online: OnlineWiring | None, t0: float,
            link: Callable[[float], float] | None = None) -> ScoringSummary:
    """The bank's online session: serve ScoreApplicant until ``session_seconds`` pass or the node stops."""
    if online is None or online.service.tls is None:
        raise ConfigError("an online score job needs the bank node's scoring_service, with its tls (the bank's internal PKI)",
                          public="the bank's node has no scoring_service.tls for online scoring")
    t = online.service.tls
    tls = load_tls(t.ca, t.cert, t.key)
    session = OnlineSession(own, time.monotonic() + plan.session_seconds, online.stop, online.service.request_timeout_s,
                            plan.idle_seconds, link)
    with serving(session, online.service, tls, plan.model_id, version) as port:
        transcript.event("scoring_session", model=plan.model_id, model_version=version, port=port)
        try:
            total, table, updated = run.drive(guest_session_program(bytes.fromhex(version), run.rng, session, table=cached))
        except BaseException as exc:
            session.close(exc)
            raise
    if updated:
        model.save_table(table, "", peer=True)
    transcript.event("scoring", model=plan.model_id, model_version=version, mode="online", queries=total, batches=session.batches)
    return ScoringSummary(plan.model_id, version, "online", total, time.monotonic() - t0, table_transferred=updated)


def _usage(model: ModelFiles) -> dict[str, int]:
    """Applicants the platform answered for this model, by UTC day (``queries.json``)."""
    try:
        d = model.read_json(model.folder / "queries.json")
        return {str(k): int(v) for k, v in d.items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def _features(data: LocalDataset, part: ModelPart, rows: np.ndarray | None) -> np.ndarray:
    index = {n: i for i, n in enumerate(data.feature_names)}
    missing = [f for f in part.features if f not in index]
    if missing:
        raise DataError(f"{data.source}: the model needs columns {missing}, which the dataset lacks",
                        public=f"the party's dataset lacks the model's columns {missing}")
    x = data.features[:, [index[f] for f in part.features]]
    return x if rows is None else x[rows]


def _scoring_key(model: ModelFiles, run: RoleRun) -> tuple[bytes, bytes]:
    """The platform's OPRF key and hash salt for this model's tables: drawn once, kept 0600 with the model."""
    try:
        d = model.read_json(model.scoring_key)
        return bytes.fromhex(d["key"]), bytes.fromhex(d["salt"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    key, salt = new_key(run.rng), run.rng.getrandbits(8 * SALT_BYTES).to_bytes(SALT_BYTES, "big")
    model.write_json(model.scoring_key, {"key": key.hex(), "salt": salt.hex(), "created_unix": time.time()})
    return key, salt


def _host_table(model: ModelFiles, ids: list[str], partials: np.ndarray, key: bytes, salt: bytes, version: bytes,
                run: RoleRun) -> ScoreTable:
    """The platform's sealed table: the saved one while model, key, salt and data are unchanged, else a new build."""
    h = hashlib.sha256(b"fedcredit/v1/score-table-source" + version + key_id(key) + salt)
    for i, u in sorted(zip(ids, (float(v) for v in partials))):
        b = i.encode("utf-8")
        h.update(len(b).to_bytes(4, "big") + b + struct.pack(">d", u))
    source = h.hexdigest()
    saved = model.table(peer=False)
    if saved is not None and saved[1] == source and saved[0].digest.key_id == key_id(key):
        return saved[0]
    table = build_table(ids, [float(v) for v in partials], key, salt, version, run.rng, map_fn=run.map_fn(len(ids), minimum=4096))
    model.save_table(table, source, peer=False)
    return table


def _write_scores(files: JobFiles, ids: list[str], probability: tuple[float | None, ...],
                  points: tuple[float | None, ...] | None = None) -> None:
    """``scores.csv``: each applicant's probability of default, or ``not_found``; a scorecard's also its total
    points (column ``score``, before the probability)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if points is not None:
        w.writerow(["id", "score", "probability"])
        w.writerows([i, "not_found", "not_found"] if p is None else [i, repr(s), repr(p)] for i, s, p in zip(ids, points, probability))
    else:
        w.writerow(["id", "probability"])
        w.writerows([i, "not_found" if p is None else repr(p)] for i, p in zip(ids, probability))
    atomic_write(files.folder / "scores.csv", buf.getvalue().encode("utf-8"))
