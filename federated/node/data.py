"""Loading a party's data set (CSV or Parquet), with one clear error naming file, row and column.

:func:`load_dataset` reads the whole file (training and scoring use its features). :func:`read_ids` reads only
the id column, in chunks of :data:`ID_CHUNK_ROWS` rows, for a job that needs nothing else (a PSI job): the
node's memory then holds the ids, never the file's other columns. Both report a bad id by file and line, with
the same messages. In a Parquet file, "line" is the 1-based row number.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fedcredit.protocols.errors import DataError
from fedcredit.protocols.psi.ids import prepare_ids

from ..config import DatasetConfig

__all__ = ["IdColumn", "LocalDataset", "load_dataset", "read_ids", "ID_CHUNK_ROWS", "PARQUET_SUFFIXES"]

MAX_LISTED = 5
#: Rows per chunk when :func:`read_ids` streams a file.
ID_CHUNK_ROWS = 100_000
PARQUET_SUFFIXES = (".parquet", ".pq")
_CSV_OPTIONS: dict[str, Any] = dict(dtype=str, keep_default_na=False, na_values=[], skipinitialspace=True, skip_blank_lines=False)


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in PARQUET_SUFFIXES


def _not_found(path: Path) -> DataError:
    return DataError(f"{path}: file not found", public="the party's dataset file is not found")


def _parquet_error(path: Path, exc: Exception) -> DataError:
    return DataError(f"{path}: cannot read as Parquet: {type(exc).__name__}", public="the party's dataset cannot be read as Parquet")


def _parquet_text(column: Any) -> list[str]:
    """A Parquet column as the text a CSV cell would hold: null is empty, numbers are written out."""
    return ["" if v is None else v if isinstance(v, str) else str(v) for v in column.to_pylist()]


def _read_parquet_frame(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise _not_found(path) from None
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a file that is not Parquet
        raise _parquet_error(path, exc) from None
    return pd.DataFrame({str(name): _parquet_text(table.column(i)) for i, name in enumerate(table.column_names)}, dtype=object)


def _missing_column(path: Path, col: str, what: str, columns: list[str]) -> DataError:
    return DataError(f"{path}: no {what} column {col!r}; the header has {columns}", public=f"the party's dataset has no {what} column {col!r}")


def _no_rows(path: Path) -> DataError:
    return DataError(f"{path}: no data rows (only a header, or nothing)", public="the party's dataset has no data rows")


def _csv_id_chunks(path: Path, id_column: str, chunk_rows: int) -> Iterator[tuple[list[str], np.ndarray]]:
    """(raw ids, file line numbers) per chunk of a CSV; blank lines are skipped as :func:`load_dataset` skips them."""
    try:
        reader = pd.read_csv(path, chunksize=chunk_rows, **_CSV_OPTIONS)
        seen = 0
        for chunk in reader:
            chunk.columns = [str(c).strip() for c in chunk.columns]
            columns = list(chunk.columns)
            if id_column not in columns and len(chunk):  # a header alone is "no data rows", as load_dataset says
                raise _missing_column(path, id_column, "id", columns)
            if not len(chunk):
                continue
            chunk = chunk.fillna("")
            blank = (chunk == "").all(axis=1).to_numpy()
            lines = np.flatnonzero(~blank) + 2 + seen
            seen += len(chunk)
            yield chunk[id_column].to_numpy()[~blank].tolist(), lines
    except FileNotFoundError:
        raise _not_found(path) from None
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: cannot parse as CSV: {exc}", public="the party's dataset cannot be parsed as CSV") from None


def _parquet_id_chunks(path: Path, id_column: str, chunk_rows: int) -> Iterator[tuple[list[str], np.ndarray]]:
    """(ids as text, 1-based row numbers) per record batch of a Parquet file's id column."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except FileNotFoundError:
        raise _not_found(path) from None
    except Exception as exc:
        raise _parquet_error(path, exc) from None
    columns = [str(c) for c in pf.schema_arrow.names]
    if id_column not in columns:
        raise _missing_column(path, id_column, "id", columns)
    seen = 0
    try:
        for batch in pf.iter_batches(batch_size=chunk_rows, columns=[id_column]):
            raw = _parquet_text(batch.column(0))
            yield raw, np.arange(seen + 1, seen + 1 + len(raw))
            seen += len(raw)
    except DataError:
        raise
    except Exception as exc:
        raise _parquet_error(path, exc) from None


@dataclass(frozen=True)
class IdColumn:
    """A data set's ids as :func:`read_ids` gives them.

    Attributes:
        ids: normalized, in file order (after ``duplicates: dedupe``, the first row of each id).
        duplicates_removed: rows ``dedupe`` dropped.
    """

    ids: list[str]
    duplicates_removed: int = 0


def read_ids(cfg: DatasetConfig, *, chunk_rows: int = ID_CHUNK_ROWS) -> IdColumn:
    """Only the id column of the CSV or Parquet file named by ``cfg``, read ``chunk_rows`` rows at a time.

    The other columns of a chunk are dropped as soon as it is read (a CSV's blank lines are recognized and
    skipped, as by :func:`load_dataset`), so what stays in memory is the ids and their line numbers. Empty,
    invalid and duplicate ids (across chunks too) are reported as by :func:`load_dataset`: file and line.

    Raises:
        DataError: the file is missing or cannot be parsed, has no id column or no rows, or has unusable ids.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    path = cfg.path
    chunks = _parquet_id_chunks(path, cfg.id_column, chunk_rows) if _is_parquet(path) else _csv_id_chunks(path, cfg.id_column, chunk_rows)
    raw: list[str] = []
    line_parts: list[np.ndarray] = []
    for ids, lines in chunks:
        raw.extend(ids)
        line_parts.append(lines)
    if not raw:
        raise _no_rows(path)
    lines_all = np.concatenate(line_parts)
    del line_parts
    if cfg.duplicates == "dedupe":
        d = prepare_ids(raw, source=str(path), validate_uscc=cfg.validate_uscc, lines=lines_all, dedupe=True)
        return IdColumn(list(d.ids), d.removed)
    return IdColumn(prepare_ids(raw, source=str(path), validate_uscc=cfg.validate_uscc, lines=lines_all))


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
    """Read the CSV or Parquet file named by ``cfg``. Raises :class:`DataError` naming file, line and column."""
    path = cfg.path
    parquet = _is_parquet(path)
    if parquet:
        frame = _read_parquet_frame(path)
    else:
        try:
            frame = pd.read_csv(path, **_CSV_OPTIONS)
        except FileNotFoundError:
            raise _not_found(path) from None
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise DataError(f"{path}: cannot parse as CSV: {exc}", public="the party's dataset cannot be parsed as CSV") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    # File line of each row (header is line 1; a Parquet row's own number). Blank lines are read as empty rows
    # so the numbering stays exact, then dropped. (Quoted fields spanning lines are not supported.)
    frame = frame.fillna("")
    blank = (frame == "").all(axis=1).to_numpy()
    line_numbers = np.flatnonzero(~blank) + (1 if parquet else 2)
    frame = frame.loc[~blank].reset_index(drop=True)
    columns = list(frame.columns)
    if frame.empty:
        raise _no_rows(path)

    def need(col: str, what: str) -> None:
        if col not in columns:
            raise _missing_column(path, col, what, columns)

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
