"""The audit report's content as typed values: what :mod:`fedcredit.runtime.audit.render` shows.

:func:`build_report` verifies the transcripts (:func:`fedcredit.runtime.audit.verify.audit`)
and summarises each job from what was read: parties, purpose and approved
spec, who sent what to whom by classification and bytes, disclosed results,
plaintext messages, consent counts and outcomes. Every class has a
``to_dict`` giving the JSON report's layout (``fedcredit-audit-report/1``);
:func:`report_data` returns that dict.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import FedCreditError
from ..security.signing import canonical_json, cert_fingerprint
from ..transcript import ROLES

from .reader import Msg, TranscriptFile, ts_text
from .result import PROBLEM_CODES, Problem, VerificationResult
from .verify import audit

__all__ = [
    "CLASSIFICATION_LABELS",
    "REPORT_FORMAT",
    "Report",
    "JobReport",
    "PartyRow",
    "ApprovalRow",
    "OtherSpec",
    "FlowRow",
    "ClassTotal",
    "DisclosedRow",
    "PlaintextRow",
    "ConsentRow",
    "FinishedRow",
    "FileRow",
    "build_report",
    "report_data",
    "json_safe",
]

REPORT_FORMAT = "fedcredit-audit-report/1"

CLASSIFICATION_LABELS: dict[str, str] = {
    "ciphertext": "encrypted",
    "masked": "masked (hidden by random numbers)",
    "public": "public parameter",
    "aggregate": "agreed result",
    "plaintext": "PLAIN VALUES",
}
_CLASS_ORDER = ("plaintext", "aggregate", "public", "masked", "ciphertext")

_WORDS = {
    "auc": "AUC", "ks": "KS", "test_auc": "AUC on the test rows", "test_ks": "KS on the test rows",
    "test_rows": "test rows", "test_positives": "positive labels among the test rows",
    "training_rows": "training rows", "batches_per_epoch": "batches per epoch",
    "mean_training_loss": "mean training loss", "loss": "loss", "epoch": "epoch",
    "intersection_size": "intersection size", "paillier_key_bits": "encryption key size (bits)",
    "key_fingerprint": "key fingerprint", "stop": "training stops",
    "set_size": "number of ids the other party put into the matching",
    "bins": "size of the bank's hash table (follows from its set size)",
    "cache_size": "size of the platform's cached id set",
    "cache_digest": "fingerprint of the platform's cached id set", "cache_current": "the bank's copy of the cache is current",
    "ckks_context_bytes": "size of the public encryption context (bytes)", "contains_secret_key": "contains a secret key",
}
_EXPLAIN_KEYS = ("explanation", "why", "reason")
_BY_TEXT = {"policy": "automatically, by the node's local policy", "operator": "by an operator, explicitly"}


# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------
class _Row:
    """A report row: ``to_dict`` names the fields as the JSON report does (``from_`` -> ``from``, ``nbytes`` -> ``bytes``)."""

    _JSON_NAMES = {"from_": "from", "nbytes": "bytes"}

    def to_dict(self) -> dict[str, Any]:
        return {self._JSON_NAMES.get(f.name, f.name): getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]


@dataclass
class PartyRow(_Row):
    node: str
    role: str | None
    transcript: str | None
    records: int
    signing_cert_fingerprint: str | None


@dataclass
class ApprovalRow(_Row):
    """One party's decision, merged from every transcript that recorded it."""

    node: str | None
    decision: str  # "approved" or "rejected"
    by: str | None
    by_text: str
    checks: list[str]
    reason: str
    spec_sha256: Any
    time: str
    recorded_by: list[str | None]

    @property
    def approved(self) -> bool:
        return self.decision == "approved"


@dataclass
class OtherSpec(_Row):
    """A job specification that differs from the first one recorded."""

    node: str | None
    record: int
    spec: Any
    purpose: Any
    spec_sha256: Any


@dataclass
class FlowRow(_Row):
    """All messages from one node to another of one classification (and, for ciphertexts, one key owner)."""

    from_: str
    to: str
    classification: str
    key_owner: str | None
    label: str
    messages: int = 0
    nbytes: int = 0
    sealed_messages: int = 0
    steps: list[str] = field(default_factory=list)


@dataclass
class ClassTotal(_Row):
    classification: str
    label: str
    messages: int = 0
    nbytes: int = 0


@dataclass
class DisclosedRow(_Row):
    """A public or aggregate message whose recorded summary says what it disclosed."""

    from_: str
    to: str
    step: str
    sequence: int
    classification: str
    time: str
    values: Any
    text: str

    @property
    def kind_label(self) -> str:
        return CLASSIFICATION_LABELS.get(self.classification, self.classification)


@dataclass
class PlaintextRow(_Row):
    """A message carrying plain values, with what it contains and why, as recorded."""

    from_: str
    to: str
    step: str
    sequence: int
    classification: str
    time: str
    nbytes: int
    sealed: bool
    payload_type: str
    what: str | None
    explanation: str | None
    disclosed: Any
    recorded_in: list[str]


@dataclass
class ConsentRow(_Row):
    node: str | None
    purpose: Any
    included: Any
    excluded: Any
    time: str
    note: str


@dataclass
class FinishedRow(_Row):
    node: str | None
    ok: bool
    error: str
    time: str


@dataclass
class FileRow:
    """One transcript file given; ``records`` is None when the report could not read the files at all."""

    file: str
    job_id: str | None = None
    node: str | None = None
    role: str | None = None
    records: int | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.records is None:
            return {"file": self.file}
        return {"file": self.file, "job_id": self.job_id, "node": self.node, "role": self.role, "records": self.records}


@dataclass
class JobReport:
    """Everything the report says about one job."""

    job_id: str
    problems: list[Problem]
    started: str
    ended: str
    parties: list[PartyRow]
    purpose: Any
    spec: Any
    spec_sha256: Any
    spec_recorded_by: str | None
    other_specs: list[OtherSpec]
    approvals: list[ApprovalRow]
    flows: list[FlowRow]
    totals_by_classification: list[ClassTotal]
    messages: int
    disclosed: list[DisclosedRow]
    plaintext: list[PlaintextRow]
    consent: list[ConsentRow]
    finished: list[FinishedRow]

    @property
    def verified(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "verified": self.verified,
            "problems": [p.to_dict() for p in self.problems],
            "started": self.started,
            "ended": self.ended,
            "parties": [r.to_dict() for r in self.parties],
            "purpose": self.purpose,
            "spec": self.spec,
            "spec_sha256": self.spec_sha256,
            "spec_recorded_by": self.spec_recorded_by,
            "other_specs": [r.to_dict() for r in self.other_specs],
            "approvals": [r.to_dict() for r in self.approvals],
            "flows": [r.to_dict() for r in self.flows],
            "totals_by_classification": [r.to_dict() for r in self.totals_by_classification],
            "messages": self.messages,
            "disclosed": [r.to_dict() for r in self.disclosed],
            "plaintext": [r.to_dict() for r in self.plaintext],
            "consent": [r.to_dict() for r in self.consent],
            "finished": [r.to_dict() for r in self.finished],
        }


@dataclass
class Report:
    """The whole report: the verification result first, then each job, then the files."""

    verification: VerificationResult
    jobs: list[JobReport]
    files: list[FileRow]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "verification": self.verification.to_dict(),
            "jobs": [j.to_dict() for j in self.jobs],
            "files": [fl.to_dict() for fl in self.files],
            "problem_codes": dict(PROBLEM_CODES),
        }


# --------------------------------------------------------------------------
# Building it
# --------------------------------------------------------------------------
def _words(key: str) -> str:
    return _WORDS.get(key, key.replace("_", " "))


def _value_text(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else str(v)
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False, sort_keys=True)
    return str(v)


def _label(classification: str, key_owner: str | None, role_nodes: dict[str, str]) -> str:
    if classification == "ciphertext":
        if not key_owner:
            return "encrypted (the key holder is not recorded)"
        node = role_nodes.get(key_owner)
        who = key_owner if node in (None, key_owner) else f"{key_owner} ({node})"
        return f"encrypted (only the {who}'s key can open it)"
    return CLASSIFICATION_LABELS.get(classification, f"unknown kind {classification!r}")


def _class_rank(classification: str) -> int:
    return _CLASS_ORDER.index(classification) if classification in _CLASS_ORDER else 9


def json_safe(v: Any) -> Any:
    """``v`` with non-finite floats as text and tuples as lists, so that it is valid JSON."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    return v


def _safe_fp(pem: str | None) -> str | None:
    if pem is None:
        return None
    try:
        return cert_fingerprint(pem.encode("utf-8"))
    except (FedCreditError, UnicodeError):
        return None


def _parties(by_node: dict[str, TranscriptFile], unique: dict[tuple[Any, ...], list[Msg]]) -> list[PartyRow]:
    nodes = set(by_node)
    for key in unique:
        nodes.update((key[1], key[2]))

    def rank(n: str) -> tuple[int, str]:
        role = by_node[n].role if n in by_node else None
        return (ROLES.index(role) if role in ROLES else 9, n)

    rows = []
    for n in sorted(nodes, key=rank):
        tf = by_node.get(n)
        rows.append(PartyRow(node=n, role=tf.role if tf else None, transcript=tf.label if tf else None,
                             records=tf.records if tf else 0, signing_cert_fingerprint=_safe_fp(tf.cert_pem) if tf else None))
    return rows


@dataclass
class _Spec:
    spec: Any = None
    purpose: Any = None
    sha: Any = None
    others: list[OtherSpec] = field(default_factory=list)
    approvals: list[ApprovalRow] = field(default_factory=list)


def _spec_and_approvals(by_node: dict[str, TranscriptFile]) -> _Spec:
    out = _Spec()
    spec_key: str | None = None
    approvals_by: dict[tuple[Any, ...], ApprovalRow] = {}
    for tf in by_node.values():
        for ev in tf.events:
            if ev.name == "job_spec":
                try:
                    key = canonical_json([ev.body.get("spec"), ev.body.get("spec_sha256"), ev.body.get("purpose")]).decode()
                except (TypeError, ValueError):
                    key = repr(ev.body)
                if spec_key is None:
                    spec_key = key
                    out.spec, out.purpose, out.sha = ev.body.get("spec"), ev.body.get("purpose"), ev.body.get("spec_sha256")
                elif key != spec_key:
                    out.others.append(OtherSpec(node=tf.node, record=ev.index, spec=json_safe(ev.body.get("spec")),
                                                purpose=ev.body.get("purpose"), spec_sha256=ev.body.get("spec_sha256")))
            elif ev.name in ("approved", "rejected"):
                # A party records its own decision; the coordinator records each party's
                # decision with ``node`` set to that party. Merge the copies.
                by, checks, reason = ev.body.get("by"), ev.body.get("checks"), ev.body.get("reason")
                decider = ev.body.get("node") if isinstance(ev.body.get("node"), str) else tf.node
                ident = (decider, ev.name, ev.body.get("spec_sha256"), str(by))
                row = approvals_by.get(ident)
                if row is None:
                    row = approvals_by[ident] = ApprovalRow(
                        node=decider, decision=ev.name, by=str(by) if by is not None else None,
                        by_text=_BY_TEXT.get(str(by), f"by {by}"), checks=[], reason=str(reason) if reason else "",
                        spec_sha256=ev.body.get("spec_sha256"), time=ts_text(ev.ts_ms), recorded_by=[])
                    out.approvals.append(row)
                if isinstance(checks, list) and not row.checks:
                    row.checks = [str(c) for c in checks]
                if reason and not row.reason:
                    row.reason = str(reason)
                if tf.node not in row.recorded_by:
                    row.recorded_by.append(tf.node)
    if out.purpose is None and isinstance(out.spec, dict):
        out.purpose = out.spec.get("purpose")
    return out


@dataclass
class _Flows:
    rows: list[FlowRow]
    totals: list[ClassTotal]
    disclosed: list[DisclosedRow]
    plaintext: list[PlaintextRow]


def _flows(unique: dict[tuple[Any, ...], list[Msg]], role_nodes: dict[str, str]) -> _Flows:
    flows: dict[tuple[str, str, str, str | None], FlowRow] = {}
    totals: dict[str, ClassTotal] = {}
    disclosed: list[DisclosedRow] = []
    plaintext: list[PlaintextRow] = []
    for key in sorted(unique, key=lambda k: (min(m.ts_ms for m in unique[k]), k[3], k[4])):
        ms = unique[key]
        ref = ms[0]
        env = ref.envelope
        cls = env["classification"]
        key_owner = next((m.key_owner for m in ms if m.key_owner), None)
        fk = (env["sender"], env["receiver"], cls, key_owner if cls == "ciphertext" else None)
        row = flows.get(fk)
        if row is None:
            row = flows[fk] = FlowRow(from_=env["sender"], to=env["receiver"], classification=cls, key_owner=fk[3],
                                      label=_label(cls, key_owner, role_nodes))
        row.messages += 1
        row.nbytes += env["payload_size"]
        row.sealed_messages += int(env["sealed"])
        if env["step"] not in row.steps:
            row.steps.append(env["step"])
        tot = totals.get(cls)
        if tot is None:
            tot = totals[cls] = ClassTotal(classification=cls, label=CLASSIFICATION_LABELS.get(cls, cls))
        tot.messages += 1
        tot.nbytes += env["payload_size"]
        values = next((m.disclosed for m in ms if m.disclosed), None)
        base: dict[str, Any] = {"from_": env["sender"], "to": env["receiver"], "step": env["step"],
                                "sequence": env["sequence"], "classification": cls, "time": ts_text(ref.ts_ms)}
        if cls == "plaintext":
            v = dict(values or {})
            explanation = next((str(v[k]) for k in _EXPLAIN_KEYS if k in v), None)
            plaintext.append(PlaintextRow(**base, nbytes=env["payload_size"], sealed=env["sealed"],
                                          payload_type=env["payload_type"], what=str(v["what"]) if "what" in v else None,
                                          explanation=explanation, disclosed=json_safe(v),
                                          recorded_in=[m.where() for m in ms]))
        elif values and cls in ("aggregate", "public"):
            text = ", ".join(f"{_words(str(k))} = {_value_text(x)}" for k, x in values.items())
            disclosed.append(DisclosedRow(**base, values=json_safe(values), text=text))
    rows = sorted(flows.values(), key=lambda r: (r.from_, r.to, _class_rank(r.classification)))
    return _Flows(rows, sorted(totals.values(), key=lambda r: _class_rank(r.classification)), disclosed, plaintext)


def _job_report(job: str, jf: list[TranscriptFile], by_node: dict[str, TranscriptFile],
                result: VerificationResult) -> JobReport:
    labels = {tf.label for tf in jf}
    role_nodes = {tf.role: tf.node for tf in by_node.values() if tf.role and tf.node}

    # unique messages, the sender's record first
    order = {"sent": 0, "received": 1, "relayed": 2}
    unique: dict[tuple[Any, ...], list[Msg]] = {}
    for tf in by_node.values():
        for m in tf.messages:
            unique.setdefault(m.key, []).append(m)
    for ms in unique.values():
        ms.sort(key=lambda m: order[m.direction])

    spec = _spec_and_approvals(by_node)
    flows = _flows(unique, role_nodes)
    consent: list[ConsentRow] = []
    finished: list[FinishedRow] = []
    for tf in by_node.values():
        for ev in tf.events_named("consent"):
            consent.append(ConsentRow(node=tf.node, purpose=ev.body.get("purpose"), included=ev.body.get("included"),
                                      excluded=ev.body.get("excluded"), time=ts_text(ev.ts_ms),
                                      note=f"Only {tf.node} sees these counts: they are recorded in its own transcript "
                                           "and are not sent to any other node."))
        for ev in tf.events_named("finished"):
            finished.append(FinishedRow(node=tf.node, ok=ev.body.get("ok") is True,
                                        error=str(ev.body.get("error") or ""), time=ts_text(ev.ts_ms)))

    first = min((tf.first_ts for tf in jf if tf.first_ts is not None), default=None)
    last = max((tf.last_ts for tf in jf if tf.last_ts is not None), default=None)
    return JobReport(
        job_id=job,
        problems=[p for p in result.problems if p.file in labels or p.other_file in labels],
        started=ts_text(first),
        ended=ts_text(last),
        parties=_parties(by_node, unique),
        purpose=spec.purpose,
        spec=json_safe(spec.spec),
        spec_sha256=spec.sha,
        spec_recorded_by=next((tf.node for tf in by_node.values() if tf.events_named("job_spec")), None),
        other_specs=spec.others,
        approvals=spec.approvals,
        flows=flows.rows,
        totals_by_classification=flows.totals,
        messages=len(unique),
        disclosed=flows.disclosed,
        plaintext=flows.plaintext,
        consent=consent,
        finished=finished,
    )


def build_report(paths: Sequence[Path], *, ca_cert_pem: bytes | None = None) -> Report:
    """Verify ``paths`` and build the report's content. Never raises for bad files.

    If the transcripts cannot be fully checked, the report holds one
    ``INTERNAL`` problem and says NOT verified.
    """
    try:
        a = audit(paths, ca_cert_pem)
        jobs = [_job_report(job, jf, a.by_job_node[job], a.result) for job, jf in sorted(a.jobs.items())]
        files = [FileRow(file=tf.label, job_id=tf.job_id, node=tf.node, role=tf.role, records=tf.records) for tf in a.files]
        return Report(a.result, jobs, files)
    except Exception as exc:  # noqa: BLE001 - the report must never show a stack trace
        result = VerificationResult(ok=False, problems=[Problem(
            "INTERNAL", f"the transcripts could not be fully checked ({type(exc).__name__}: {exc}); "
            "treat them as not verified")])
        return Report(result, [], [FileRow(file=str(p)) for p in paths])


def report_data(paths: Sequence[Path], *, ca_cert_pem: bytes | None = None) -> dict[str, Any]:
    """The report's content as a JSON-ready dict (what ``fmt="json"`` prints). Never raises for bad files."""
    return build_report(paths, ca_cert_pem=ca_cert_pem).to_dict()
