"""The consent registry: which enterprises authorized which use of their data, and when.

A registry is a CSV file kept by the data holder (the platform)::

    enterprise_id,purpose,valid_from,valid_to,revoked
    91310115000094836E,financing.credit_risk_model,2026-01-01,2027-12-31,
    91310115000166596D,financing.*,2026-03-01,,2026-10-15

* ``purpose`` is an exact purpose or a prefix ending in ``*``;
* ``valid_to`` may be empty (open-ended);
* ``revoked`` is empty/``false``, ``true`` (revoked from the start), or the date
  from which the consent is revoked.

The registry is read once when a job starts, so a revocation applies from the
next job on. Only ids with a consent that covers the job's purpose on that date
enter PSI; the holder alone learns how many were excluded.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from fedcredit.protocols.errors import DataError
from fedcredit.protocols.psi.ids import normalize_id

__all__ = ["Consent", "ConsentDecision", "load_consent_registry", "apply_consent"]

COLUMNS = ("enterprise_id", "purpose", "valid_from", "valid_to", "revoked")


@dataclass(frozen=True)
class Consent:
    enterprise_id: str  # normalized
    purpose: str
    valid_from: dt.date
    valid_to: dt.date | None
    revoked_on: dt.date | None

    def covers(self, purpose: str, on: dt.date) -> bool:
        if self.purpose.endswith("*"):
            if not purpose.startswith(self.purpose[:-1]):
                return False
        elif self.purpose != purpose:
            return False
        if on < self.valid_from or (self.valid_to is not None and on > self.valid_to):
            return False
        return self.revoked_on is None or on < self.revoked_on


@dataclass(frozen=True)
class ConsentDecision:
    keep: np.ndarray  # bool per input row
    included: int
    excluded: int


def _date(text: str, where: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise DataError(f"{where}: {text!r} is not a date (use YYYY-MM-DD)") from None


def load_consent_registry(path: Path) -> list[Consent]:
    """Read and validate a registry. Raises :class:`DataError` naming file, line and column."""
    try:
        f = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise DataError(f"{path}: cannot read the consent registry ({exc.strerror})") from None
    with f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise DataError(f"{path}: the consent registry lacks column(s) {missing}; its header is {header}")
        out: list[Consent] = []
        for line, row in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            if not any(row.values()):
                continue
            where = f"{path}: line {line}"
            eid = normalize_id(row["enterprise_id"])
            if not eid:
                raise DataError(f"{where}, column 'enterprise_id': empty id")
            if not row["purpose"]:
                raise DataError(f"{where}, column 'purpose': empty purpose")
            valid_from = _date(row["valid_from"], f"{where}, column 'valid_from'")
            valid_to = _date(row["valid_to"], f"{where}, column 'valid_to'") if row["valid_to"] else None
            if valid_to is not None and valid_to < valid_from:
                raise DataError(f"{where}: valid_to {valid_to} is before valid_from {valid_from}")
            rev = row["revoked"].lower()
            if rev in ("", "false", "no", "0"):
                revoked_on = None
            elif rev in ("true", "yes", "1"):
                revoked_on = dt.date.min
            else:
                revoked_on = _date(row["revoked"], f"{where}, column 'revoked'")
            out.append(Consent(eid, row["purpose"], valid_from, valid_to, revoked_on))
    return out


def apply_consent(ids: Sequence[str], registry: Sequence[Consent], purpose: str, on: dt.date) -> ConsentDecision:
    """Keep only ids (normalized) with a consent covering ``purpose`` on date ``on``."""
    allowed = {c.enterprise_id for c in registry if c.covers(purpose, on)}
    keep = np.fromiter((i in allowed for i in ids), dtype=bool, count=len(ids))
    included = int(keep.sum())
    return ConsentDecision(keep, included, len(ids) - included)
