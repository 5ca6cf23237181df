"""A party's PSI: the role program its job plan names, run over the relay, and the rows it aligns.

:func:`run_psi` runs this node's side of the job's PSI (:class:`~fedcredit.runtime.plan.PsiPlan`):

* ECDH, resumed from this node's checkpoint after a restart (the checkpoint holds the secret scalar: it is
  kept, 0600, only while the exchange runs);
* OT-extension;
* unbalanced: the host answers from its cached blinding under a long-lived key, rotated on its schedule and
  rebuilt when its set changes; the guest keeps the host's cache between jobs.

It then checks what this party learned against its minimum and writes ``intersection.csv``.

Owns: calling ``fedcredit.protocols.psi``'s role programs with this node's ids. May import: ``protocols``,
:mod:`fedcredit.runtime.plan`, :mod:`fedcredit.runtime.driver`, :mod:`fedcredit.runtime.node.workdir`, :mod:`fedcredit.runtime.node.results`,
:mod:`fedcredit.runtime.transcript` and :mod:`fedcredit.runtime.errors`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np

from fedcredit.protocols.core import Checkpoint, Role
from fedcredit.protocols.errors import ProtocolError
from fedcredit.protocols.hetero_lr.two_party_checkpoint import EpochPrg
from fedcredit.protocols.psi import (
    PsiCheckpoint,
    PsiResult,
    PsiStep,
    Reveal,
    guest_program,
    host_program,
    unbalanced_build_cache,
    unbalanced_cache_digest,
    unbalanced_guest_program,
    unbalanced_host_program,
    unbalanced_new_key,
)
from fedcredit.protocols.psi.ot import ot_guest_program, ot_host_program

from ..errors import PermissionDeniedError
from ..plan import PsiPlan, PsiProgram, RolePlan
from .results import PsiOutcome
from ..driver import RoleRun
from ..transcript import TranscriptWriter, read_transcript
from .workdir import JobFiles, NodeStore, UnbalancedHostFiles, UnbalancedKey

__all__ = ["PartyIds", "PsiRun", "run_psi", "restore_endpoint"]

_LOG = logging.getLogger(__name__)

#: A replayed role's checkpoint stage: the sealing phase of its steps (``psi_ot.*``; ``psi.ub_*``), so the endpoint
#: keeps that phase's keys with it.
OT_CHECKPOINT_STAGE = "psi_ot"
PSI_CHECKPOINT_STAGE = "psi"


@dataclass(frozen=True)
class PartyIds:
    """The ids this party brings to PSI.

    Attributes:
        ids: the usable ids (normalized; after the consent registry), in the order PSI sees them.
        file_ids: every id of the dataset file, row by row.
        rows: the file row of each usable id; None when every row is usable.
        duplicates_removed: rows the dataset's ``duplicates: dedupe`` dropped.
    """

    ids: list[str]
    file_ids: list[str]
    rows: np.ndarray | None = None
    duplicates_removed: int = 0


@dataclass(frozen=True)
class PsiRun:
    """What PSI gave this party.

    Attributes:
        outcome: its part of the job's result.
        rows: its file rows of the intersection, in the order both parties agreed; None when it learns none.
        aligned: the ids of those rows (empty when it learns none).
    """

    outcome: PsiOutcome
    rows: np.ndarray | None
    aligned: list[str]


def run_psi(run: RoleRun, plan: PsiPlan, me: RolePlan, mine: PartyIds, *, salt: bytes, minimum: int, files: JobFiles,
            store: NodeStore, transcript: TranscriptWriter) -> PsiRun:
    """Run this node's side of the job's PSI, then align and write what it learned.

    Args:
        run: this role's endpoint, randomness and pool.
        plan, me: the job's PSI and this node's role in it.
        mine: the ids this node brings.
        salt: the job's PSI salt (drawn by the coordinator).
        minimum: this node's minimum intersection in this job (:meth:`PsiPlan.minimum`).
        files, store: this node's files for the job, and its unbalanced-PSI keys and caches.
        transcript: this node's transcript of the job (read back to resume, and told that it resumed).

    Raises:
        PermissionDeniedError: the intersection is below ``minimum`` (a count-first exchange refuses it
            before; this is a guard).
    """
    if plan.program is PsiProgram.UNBALANCED:
        outcome, learned = _unbalanced(run, plan, me, mine.ids, minimum, store, salt, files, transcript)
    else:
        t0 = time.monotonic()
        if plan.program is PsiProgram.OT:
            learned = _ot(run, plan, me, mine.ids, salt, minimum, files, transcript)
        else:
            learned = _ecdh(run, plan, me, mine.ids, salt, minimum, files, transcript)
        outcome = PsiOutcome(protocol=plan.protocol, seconds=time.monotonic() - t0, duplicates_removed=mine.duplicates_removed)
    return _align(outcome, learned, plan.reveal, mine, minimum, files)


def _align(outcome: PsiOutcome, learned: PsiResult | None, reveal: Reveal, mine: PartyIds, minimum: int,
           files: JobFiles) -> PsiRun:
    if learned is None or learned.size < 0:
        return PsiRun(outcome, None, [])  # this party learns nothing of the intersection
    if reveal is Reveal.CARDINALITY:
        return PsiRun(replace(outcome, intersection_size=learned.size), None, [])  # the count only; no rows are known
    rows = np.asarray(learned.rows, dtype=np.int64)
    if mine.rows is not None:
        rows = mine.rows[rows]  # back to rows of the full file
    aligned = [mine.file_ids[i] for i in rows]
    if len(aligned) < minimum:
        # the count-first exchange refused this before any row was known; reaching here would be a bug: still write nothing
        raise PermissionDeniedError(f"the intersection has {len(aligned)} enterprises, below this node's minimum of {minimum}",
                                    public=f"the intersection is below this party's minimum (min_intersection {minimum})")
    files.write_intersection(aligned)
    return PsiRun(replace(outcome, intersection_size=len(aligned)), rows, aligned)


def _ecdh(run: RoleRun, plan: PsiPlan, me: RolePlan, ids: Sequence[str], salt: bytes, minimum: int, files: JobFiles,
          transcript: TranscriptWriter) -> PsiResult:
    """The balanced ECDH-PSI, checkpointed after every batch and resumed from this node's last checkpoint."""
    resume = None
    state = files.load_checkpoint()
    if state is not None:
        resume = PsiCheckpoint.from_dict(state)
        restore_endpoint(run, PsiStep, resume.sent, resume.recv_from, transcript, files)
        transcript.event("resumed_psi", sent=dict(resume.sent), recv_from=dict(resume.recv_from))
        _LOG.warning("job %s: resuming PSI from its checkpoint (sent %s)", transcript.job_id, dict(resume.sent))
    program = guest_program if me.role is Role.GUEST else host_program
    try:
        result: PsiResult = run.drive(program(ids, plan.ecdh_params(salt), run.rng, map_fn=run.map_fn(len(ids)), checkpoint=True,
                                              resume=resume, min_intersection=minimum))
    except Exception:
        # a failed role fails the job (a refused count, or the peer's failure), which cannot resume: keep none of its
        # secrets. Only a killed process leaves its checkpoint behind, to resume from.
        files.drop_checkpoint()
        raise
    # Kept until the caller has recorded what PSI gave (a train job's psi.done.json), then dropped by it: a crash
    # in between resumes PSI from its last batch instead of starting it again while the peer trains.
    return result


def _ot(run: RoleRun, plan: PsiPlan, me: RolePlan, ids: Sequence[str], salt: bytes, minimum: int, files: JobFiles,
        transcript: TranscriptWriter) -> PsiResult:
    """The OT-extension PSI, resumed after a restart by running it again from its start.

    Its only checkpoint is a secret seed, kept before the first message: every random draw of the role (cuckoo
    seed, base-OT secrets, code key, permutation) comes from a PRG keyed by it, so a restarted role re-creates
    its messages byte for byte. What it had sent is not sent again (the relay has it; the last one is handed over
    again in case the crash cut it off), what the peer had sent is fetched again (the relay keeps delivered
    messages), and the result is the same. The cost is the role's own OT computation once more (OT keeps no
    per-batch state worth saving: 2.2 s for a whole job at 2^17, 9.1 s at 2^20)."""
    seed = _replay_seed(run, me, "psi.ot", OT_CHECKPOINT_STAGE, salt, files, transcript)
    program = ot_guest_program if me.role is Role.GUEST else ot_host_program
    try:
        result: PsiResult = run.drive(program(ids, plan.ot_params(salt), EpochPrg(seed, "psi_ot"), min_intersection=minimum))
    except Exception:
        files.drop_checkpoint()  # a failed role fails the job, which cannot resume: keep none of its secrets
        raise
    return result


def _replay_seed(run: RoleRun, me: RolePlan, protocol: str, stage: str, salt: bytes, files: JobFiles,
                 transcript: TranscriptWriter) -> bytes:
    """The secret seed of a PSI role resumed by replay (OT, unbalanced): kept before its first message, read back
    after a restart (and the endpoint told what was sent and received before it)."""
    state = files.load_checkpoint()
    if state is not None:
        if state.get("protocol") != protocol or state.get("role") != me.role.value or state.get("salt") != salt.hex():
            raise ProtocolError(f"the PSI checkpoint is not this job's {protocol} role's; cannot resume")
        restore_endpoint(run, PsiStep, {}, {}, transcript, files)
        transcript.event("resumed_psi", protocol=protocol)
        _LOG.warning("job %s: resuming %s: running it again from its seed", transcript.job_id, protocol)
        return bytes.fromhex(state["secret"]["seed"])
    seed: bytes = run.rng.getrandbits(256).to_bytes(32, "little")
    # persisted before the first message; the endpoint adds the phase's sealing keys once they are agreed
    run.endpoint.checkpoint(Checkpoint(stage, {"version": 1, "protocol": protocol, "role": me.role.value, "salt": salt.hex(),
                                               "secret": {"seed": seed.hex()}}))
    return seed


def restore_endpoint(run: RoleRun, steps: Any, sent: Mapping[str, int], recv_from: Mapping[str, int],
                     transcript: TranscriptWriter, files: JobFiles) -> None:
    """After a restart: the sequence numbers a checkpoint reached (``steps``: its step table), and what this node's
    transcript says it already sent and received (the relay holds those; they are neither sent again nor
    recorded twice)."""
    endpoint = run.endpoint
    endpoint.restore_counters(steps, sent, recv_from)
    last_sent = None
    for rec in read_transcript(transcript.path):
        if rec.get("kind") != "message":
            continue
        body = rec["body"]
        e = body["envelope"]
        if body["direction"] == "sent":
            last_sent = (e["step"], e["receiver"], int(e["sequence"]))
            endpoint.already_sent.add(last_sent)
        elif body["direction"] == "received":
            endpoint.already_received.add((e["step"], e["sender"], int(e["sequence"])))
    kept = files.load_outbox()
    if kept is not None and last_sent is not None and (kept[0].step, kept[0].receiver, kept[0].sequence) == last_sent:
        # A send is recorded before it leaves, and a role sends one message at a time: only the last one recorded
        # may have been cut off by the crash. Hand the relay that very message again (it drops it if it has it),
        # or the peer would wait for it forever.
        endpoint.redeliver(*kept)
        _LOG.info("job %s: handed the relay %s#%d again (the last message sent before the restart)", transcript.job_id,
                  kept[0].step, kept[0].sequence)


def _unbalanced(run: RoleRun, plan: PsiPlan, me: RolePlan, ids: Sequence[str], minimum: int, store: NodeStore, salt: bytes,
                files: JobFiles, transcript: TranscriptWriter) -> tuple[PsiOutcome, PsiResult | None]:
    """Unbalanced PSI; resumed after a restart by running the role again from its seed (as OT)."""
    try:
        return _unbalanced_role(run, plan, me, ids, minimum, store, salt, files, transcript)
    except Exception:
        files.drop_checkpoint()  # a failed role fails the job, which cannot resume: keep none of its secrets
        raise


def _unbalanced_role(run: RoleRun, plan: PsiPlan, me: RolePlan, ids: Sequence[str], minimum: int, store: NodeStore,
                     salt: bytes, files: JobFiles, transcript: TranscriptWriter) -> tuple[PsiOutcome, PsiResult | None]:
    params = plan.unbalanced_params()
    t_off = time.monotonic()
    if me.role is Role.HOST:
        held = store.unbalanced_host(me.dataset)
        key = _host_key(held, me.dataset, run)
        digest = unbalanced_cache_digest(ids, key.key, key.salt)
        cache = held.cache(digest.digest)
        rebuilt = cache is None
        if cache is None:  # the set or the key changed: blind the whole set again (offline work)
            cache = unbalanced_build_cache(ids, key.key, key.salt, map_fn=run.map_fn(len(ids)))
            held.save_cache(cache, digest.digest)
        offline = time.monotonic() - t_off
        t_on = time.monotonic()
        rng = EpochPrg(_replay_seed(run, me, "psi.unbalanced", PSI_CHECKPOINT_STAGE, salt, files, transcript), "psi_ub")
        run.drive(unbalanced_host_program(key.key, cache, digest, params, rng, map_fn=run.map_fn(len(ids)),
                                          min_intersection=minimum))
        return PsiOutcome(online_seconds=time.monotonic() - t_on, offline_seconds=offline, cache_rebuilt=rebuilt), None
    copy = store.unbalanced_guest(me.peer, me.peer_dataset)
    cache = copy.cache()  # the host's cache from an earlier job, if this node kept one
    t_on = time.monotonic()
    rng = EpochPrg(_replay_seed(run, me, "psi.unbalanced", PSI_CHECKPOINT_STAGE, salt, files, transcript), "psi_ub")
    res = run.drive(unbalanced_guest_program(ids, params, rng, cache=cache, map_fn=run.map_fn(len(ids)),
                                             min_intersection=minimum))
    online = time.monotonic() - t_on
    if res.cache_updated:
        copy.save_cache(res.cache)
    return PsiOutcome(online_seconds=online, cache_received=res.cache_updated), res.result


def _host_key(files: UnbalancedHostFiles, dataset: str, run: RoleRun) -> UnbalancedKey:
    """The host's long-lived key and salt for ``dataset``, rotated on the configured schedule."""
    now = time.time()
    saved = files.key()
    if saved is not None:
        age = saved.age_days(now)
        if age < files.rotation_days:
            return saved
        _LOG.info("unbalanced key for %s is %.1f days old: rotating (the cache is rebuilt)", dataset, age)
    key = UnbalancedKey(unbalanced_new_key(run.rng), run.rng.getrandbits(256).to_bytes(32, "big"), now)
    files.save_key(key)
    return key
