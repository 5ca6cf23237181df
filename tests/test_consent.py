"""The consent registry: purpose, validity window, revocation, and clear input errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from fedcredit.runtime.node.consent import apply_consent, load_consent_registry
from fedcredit.protocols.errors import DataError

D = dt.date


def _registry(tmp_path: Path, rows: str) -> Path:
    p = tmp_path / "consent.csv"
    p.write_text("enterprise_id,purpose,valid_from,valid_to,revoked\n" + rows, encoding="utf-8")
    return p


def test_valid_expired_revoked_and_purpose(tmp_path: Path) -> None:
    reg = load_consent_registry(_registry(tmp_path, (
        "A1,financing.credit_risk_model,2026-01-01,,\n"
        "B2,financing.*,2026-01-01,2026-06-30,\n"        # expires
        "C3,financing.*,2026-01-01,,2026-09-01\n"        # revoked from 2026-09-01
        "D4,marketing.campaigns,2026-01-01,,\n"          # another purpose
        "E5,financing.*,2027-01-01,,\n"                  # not valid yet
        "f6 ,financing.credit_risk_model,2026-01-01,,true\n"  # revoked outright; id normalized
    )))
    ids = ["A1", "B2", "C3", "D4", "E5", "F6", "G7"]
    purpose = "financing.credit_risk_model"
    may = apply_consent(ids, reg, purpose, D(2026, 5, 1))
    assert [i for i, k in zip(ids, may.keep) if k] == ["A1", "B2", "C3"]
    assert (may.included, may.excluded) == (3, 4)
    later = apply_consent(ids, reg, purpose, D(2026, 11, 30))
    assert [i for i, k in zip(ids, later.keep) if k] == ["A1"]  # B2 expired, C3 revoked
    other = apply_consent(ids, reg, "marketing.campaigns", D(2026, 11, 30))
    assert [i for i, k in zip(ids, other.keep) if k] == ["D4"]
    # financing.* covers financing.loan_pricing; on 2027-02-01 only E5 (valid from 2027) qualifies:
    # A1 is for another purpose, B2 expired, C3 and F6 are revoked, D4 is for marketing.
    wild = apply_consent(ids, reg, "financing.loan_pricing", D(2027, 2, 1))
    assert [i for i, k in zip(ids, wild.keep) if k] == ["E5"]


def test_wildcard_only_covers_its_prefix(tmp_path: Path) -> None:
    reg = load_consent_registry(_registry(tmp_path, "A1,financing.*,2026-01-01,,\n"))
    assert apply_consent(["A1"], reg, "financing.loan_pricing", D(2026, 2, 1)).included == 1
    assert apply_consent(["A1"], reg, "financial_marketing", D(2026, 2, 1)).included == 0


@pytest.mark.parametrize("row, words", [
    ("A1,financing.*,2026-13-01,,\n", ["line 2", "valid_from"]),
    ("A1,financing.*,2026-01-01,2025-01-01,\n", ["line 2", "before"]),
    (",financing.*,2026-01-01,,\n", ["line 2", "enterprise_id"]),
    ("A1,financing.*,2026-01-01,,sometime\n", ["line 2", "revoked"]),
])
def test_bad_rows_name_file_line_and_column(tmp_path: Path, row: str, words: list[str]) -> None:
    path = _registry(tmp_path, row)
    with pytest.raises(DataError) as err:
        load_consent_registry(path)
    assert str(path) in str(err.value)
    for w in words:
        assert w in str(err.value)


def test_missing_columns_are_named(tmp_path: Path) -> None:
    p = tmp_path / "c.csv"
    p.write_text("enterprise_id,purpose\nA1,x\n", encoding="utf-8")
    with pytest.raises(DataError, match="valid_from"):
        load_consent_registry(p)
