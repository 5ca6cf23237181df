"""What verification finds: :class:`Problem`, :class:`VerificationResult` and the stable problem codes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["PROBLEM_CODES", "Problem", "VerificationResult", "Findings"]

#: Every problem code, with what it means in plain words.
PROBLEM_CODES: dict[str, str] = {
    "UNREADABLE": "a transcript file could not be opened",
    "BAD_JSON": "a line of a transcript is cut off or is not a readable record",
    "FORMAT": "a record does not have the layout of a fedcredit transcript record",
    "INDEX": "records are missing, repeated or out of order",
    "CHAIN": "a record does not link to the record before it (removed, inserted or moved records)",
    "HASH": "a record was changed after it was written",
    "SIGNATURE": "a record is not signed by the node whose transcript it is in",
    "CERT": "a signing certificate is not valid for the node that used it",
    "ENVELOPE_SIGNATURE": "a message's details do not carry a valid signature of its sender",
    "MISMATCH": "two transcripts describe the same message differently",
    "MISSING": "a message recorded by one side is not recorded by the other",
    "SPEC_MISMATCH": "the nodes did not record and approve the same job specification",
    "APPROVAL_SIGNATURE": "a recorded approval or rejection is not signed by the party it names",
    "JOB_MISMATCH": "a transcript mixes records of different jobs or nodes",
    "DUPLICATE": "two transcripts claim to be the same node's record of the same job",
    "NO_CA": "no trust anchor (CA certificate) was given, so no signature proves who wrote a transcript",
    "INTERNAL": "the report could not be completed",
}


@dataclass(frozen=True)
class Problem:
    """One finding.

    ``record`` is the record's index when the record could be read, ``line``
    its 1-based line in the file. ``other_file``/``other_record`` name the
    second transcript of a cross-file finding.
    """

    code: str
    message: str
    file: str | None = None
    record: int | None = None
    line: int | None = None
    other_file: str | None = None
    other_record: int | None = None

    @property
    def meaning(self) -> str:
        """What :attr:`code` means, in plain words (empty for an unknown code)."""
        return PROBLEM_CODES.get(self.code, "")

    def where(self) -> str:
        """``file, record N`` (or ``line N``), as the report prints it; empty when nothing is known."""
        parts = [self.file] if self.file else []
        if self.record is not None:
            parts.append(f"record {self.record}")
        elif self.line is not None:
            parts.append(f"line {self.line}")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["meaning"] = self.meaning
        return d

    def __str__(self) -> str:
        where = self.file or ""
        if self.record is not None:
            where += f" record {self.record}"
        elif self.line is not None:
            where += f" line {self.line}"
        return f"[{self.code}] {where.strip()}: {self.message}" if where.strip() else f"[{self.code}] {self.message}"


@dataclass
class VerificationResult:
    """``ok`` is true when there is no problem (warnings do not count)."""

    ok: bool
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    jobs: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "Verified" if self.ok else "NOT verified"

    def codes(self) -> set[str]:
        return {p.code for p in self.problems}

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "status": self.status,
            "jobs": list(self.jobs),
            "checked": dict(self.checked),
            "problems": [p.to_dict() for p in self.problems],
            "warnings": [w.to_dict() for w in self.warnings],
        }


class Findings:
    """Collects problems and warnings while the checks run."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []

    def problem(self, code: str, message: str, **where: Any) -> None:
        self.problems.append(Problem(code, message, **where))

    def warn(self, code: str, message: str, **where: Any) -> None:
        self.warnings.append(Problem(code, message, **where))
