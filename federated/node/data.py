"""Loading a party's CSV data set, with one clear error naming file, row and column."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fedcredit.protocols.errors import DataError
from fedcredit.protocols.psi.ids import prepare_ids

from ..config import DatasetConfig

__all__ = ["LocalDataset", "load_dataset"]

MAX_LISTED = 5


@dataclass(frozen=True)
class LocalDataset:
    source: Path
    ids: list[str]  # normalized
    features: np.ndarray  # float64, NaN where missing
    feature_names: list[str]
    labels: np.ndarray | None  # 0/1 int
    duplicates_removed: int = 0


def _bad_lines(mask: np.ndarray, lines: np.ndarray) -> str:
    """Line numbers only (what may leave the node): ``lines 4, 9 and 2 more``."""
    rows = np.flatnonzero(mask)[:MAX_LISTED]
    more = f" and {int(mask.sum()) - len(rows)} more" if mask.sum() > len(rows) else ""
    return "line" + ("s " if mask.sum() > 1 else " ") + ", ".join(str(int(lines[i])) for i in rows) + more


def _bad_cells(series: pd.Series, mask: np.ndarray, lines: np.ndarray) -> str:
    rows = np.flatnonzero(mask)[:MAX_LISTED]
    shown = ", ".join(f"line {int(lines[i])} ({series.iloc[int(i)]!r})" for i in rows)
    more = f" and {int(mask.sum()) - len(rows)} more" if mask.sum() > len(rows) else ""
    return shown + more


def load_dataset(cfg: DatasetConfig, *, require_label: bool, require_features: bool = True) -> LocalDataset:
    """Read the CSV named by ``cfg``. Raises :class:`DataError` naming file, line and column."""
    path = cfg.path
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[], skipinitialspace=True, skip_blank_lines=False)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found", public="the party's dataset file is not found") from None
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: cannot parse as CSV: {exc}", public="the party's dataset cannot be parsed as CSV") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    # File line of each row (header is line 1). Blank lines are read as empty rows so the
    # numbering stays exact, then dropped. (Quoted fields spanning lines are not supported.)
    frame = frame.fillna("")
    blank = (frame == "").all(axis=1).to_numpy()
    line_numbers = np.flatnonzero(~blank) + 2
    frame = frame.loc[~blank].reset_index(drop=True)
    columns = list(frame.columns)
    if frame.empty:
        raise DataError(f"{path}: no data rows (only a header, or nothing)", public="the party's dataset has no data rows")

    def need(col: str, what: str) -> None:
        if col not in columns:
            raise DataError(f"{path}: no {what} column {col!r}; the header has {columns}",
                            public=f"the party's dataset has no {what} column {col!r}")

    need(cfg.id_column, "id")
    label_col = cfg.label_column
    if require_label:
        if not label_col:
            raise DataError(f"{path}: this party is the guest and needs label_column in its dataset config",
                            public="the guest's dataset config has no label_column")
        need(label_col, "label")
    elif label_col and label_col not in columns:
        label_col = None
    if cfg.feature_columns is not None:
        for c in cfg.feature_columns:
            need(c, "feature")
        feature_names = list(cfg.feature_columns)
    else:
        feature_names = [c for c in columns if c not in (cfg.id_column, label_col)]
    if not feature_names and require_features:
        raise DataError(f"{path}: no feature columns", public="the party's dataset has no feature columns")

    removed = 0
    if cfg.duplicates == "dedupe":
        d = prepare_ids(frame[cfg.id_column].tolist(), source=str(path), validate_uscc=cfg.validate_uscc, lines=line_numbers, dedupe=True)
        ids, removed = list(d.ids), d.removed
        if removed:
            frame = frame.iloc[list(d.kept)].reset_index(drop=True)
            line_numbers = line_numbers[list(d.kept)]
    else:
        ids = prepare_ids(frame[cfg.id_column].tolist(), source=str(path), validate_uscc=cfg.validate_uscc, lines=line_numbers)

    x = np.empty((len(frame), len(feature_names)), dtype=float)
    for j, col in enumerate(feature_names):
        raw = frame[col].str.strip()
        missing = raw.isin(["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]).to_numpy()
        values = pd.to_numeric(raw.str.replace(",", "", regex=False).where(~missing, None), errors="coerce").to_numpy(dtype=float)
        bad = np.isnan(values) & ~missing
        if bad.any():
            raise DataError(f"{path}: column {col!r} has non-numeric values at {_bad_cells(frame[col], bad, line_numbers)}",
                            public=f"column {col!r} has non-numeric values at {_bad_lines(bad, line_numbers)}")
        inf = np.isinf(values)
        if inf.any():
            raise DataError(f"{path}: column {col!r} has infinite values at {_bad_cells(frame[col], inf, line_numbers)}",
                            public=f"column {col!r} has infinite values at {_bad_lines(inf, line_numbers)}")
        if missing.any() and cfg.missing_values == "error":
            raise DataError(
                f"{path}: column {col!r} has missing values at {_bad_cells(frame[col], missing, line_numbers)} "
                "(set missing_values: impute_mean to fill them with the training mean)",
                public=f"column {col!r} has missing values at {_bad_lines(missing, line_numbers)}")
        x[:, j] = values

    labels = None
    if label_col:
        raw = frame[label_col].str.strip()
        mapped = raw.map({"0": 0, "1": 1, "0.0": 0, "1.0": 1, "-1": 0, "true": 1, "false": 0, "True": 1, "False": 0})
        bad = mapped.isna().to_numpy()
        if bad.any():
            raise DataError(f"{path}: label column {label_col!r} must be 0/1; bad values at {_bad_cells(frame[label_col], bad, line_numbers)}",
                            public=f"label column {label_col!r} must be 0/1; bad values at {_bad_lines(bad, line_numbers)}")
        labels = mapped.to_numpy(dtype=np.int64)
    return LocalDataset(path, ids, x, feature_names, labels, removed)
