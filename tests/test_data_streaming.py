"""#16: a PSI job's ids read in chunks, from CSV or Parquet, with the whole-file reader's results and messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fedcredit.protocols.errors import DataError
from fedcredit.runtime.config import DatasetConfig
from fedcredit.runtime.node.data import load_dataset, read_ids
from helpers import read_breast


def _csv(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "d.csv"
    p.write_text(text, encoding="utf-8")
    return p


def _errors(cfg: DatasetConfig, chunk_rows: int) -> tuple[DataError, DataError]:
    with pytest.raises(DataError) as whole:
        load_dataset(cfg, require_label=False, require_features=False)
    with pytest.raises(DataError) as chunked:
        read_ids(cfg, chunk_rows=chunk_rows)
    return whole.value, chunked.value


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 1000])
def test_chunked_ids_equal_the_whole_file_read_blank_lines_and_all(tmp_path: Path, chunk_rows: int) -> None:
    p = _csv(tmp_path, "id,x\n a-1 ,1\n\nB2,2\n,\nc3,\nd 4,5\n\n")
    cfg = DatasetConfig(path=p)
    assert read_ids(cfg, chunk_rows=chunk_rows).ids == load_dataset(cfg, require_label=False, require_features=False).ids


@pytest.mark.parametrize("chunk_rows", [1, 2, 4])
def test_a_duplicate_across_chunks_and_an_empty_id_are_named_by_line_as_before(tmp_path: Path, chunk_rows: int) -> None:
    p = _csv(tmp_path, "id,x\na1,1\nb2,2\n\nc3,3\nA 1,4\n,5\n")  # line 6 repeats line 2 after normalization; line 7 is empty
    whole, chunked = _errors(DatasetConfig(path=p), chunk_rows)
    assert str(chunked) == str(whole) and chunked.public_message == whole.public_message
    assert "line 6: duplicate of line 2" in str(chunked) and "line 7: empty id" in str(chunked)


def test_dedupe_across_chunks_keeps_the_first_row_and_counts(tmp_path: Path) -> None:
    p = _csv(tmp_path, "id,x\na1,1\nb2,2\nA1,3\nc3,4\nb 2,5\n")
    cfg = DatasetConfig(path=p, duplicates="dedupe")
    column = read_ids(cfg, chunk_rows=2)
    whole = load_dataset(cfg, require_label=False, require_features=False)
    assert (column.ids, column.duplicates_removed) == (whole.ids, whole.duplicates_removed) == (["A1", "B2", "C3"], 2)


def test_missing_file_column_and_rows_say_what_the_whole_file_read_says(tmp_path: Path) -> None:
    for text in ("ident,x\na,1\n", "id,x\n", "id,x\n\n\n"):
        whole, chunked = _errors(DatasetConfig(path=_csv(tmp_path, text)), 1)
        assert str(chunked) == str(whole), text
    whole, chunked = _errors(DatasetConfig(path=tmp_path / "nope.csv"), 1)
    assert str(chunked) == str(whole) and "file not found" in str(whole)


def test_parquet_gives_the_csvs_ids_features_and_labels(tmp_path: Path) -> None:
    guest, _ = read_breast()
    csv, parquet = tmp_path / "g.csv", tmp_path / "g.parquet"
    guest.to_csv(csv, index=False)
    guest.to_parquet(parquet, index=False)
    a = load_dataset(DatasetConfig(path=csv, label_column="y"), require_label=True)
    b = load_dataset(DatasetConfig(path=parquet, label_column="y"), require_label=True)
    assert a.ids == b.ids and a.feature_names == b.feature_names
    np.testing.assert_allclose(a.features, b.features)
    assert b.labels is not None and list(a.labels) == list(b.labels)  # type: ignore[arg-type]
    assert read_ids(DatasetConfig(path=parquet), chunk_rows=50).ids == a.ids


def test_parquet_rows_are_named_by_number_and_numeric_ids_are_text(tmp_path: Path) -> None:
    p = tmp_path / "d.parquet"
    pq.write_table(pa.table({"id": pa.array([101, 102, None, 101], type=pa.int64()), "x": [1.0, 2.0, 3.0, None]}), p,
                   row_group_size=2)
    whole, chunked = _errors(DatasetConfig(path=p), 1)
    assert str(chunked) == str(whole)
    assert "line 3: empty id" in str(chunked) and "line 4: duplicate of line 1" in str(chunked)  # rows 1-based
    pq.write_table(pa.table({"id": pa.array([101, 102], type=pa.int64()), "x": [1.0, None]}), p)
    assert read_ids(DatasetConfig(path=p)).ids == ["101", "102"]
    d = load_dataset(DatasetConfig(path=p), require_label=False)
    assert np.isnan(d.features[1, 0]) and d.features[0, 0] == 1.0  # a null cell is missing, as an empty CSV cell
    pq.write_table(pa.table({"other": [1]}), p)
    whole, chunked = _errors(DatasetConfig(path=p), 1)
    assert str(chunked) == str(whole) and "no id column 'id'" in str(chunked)
    bad = tmp_path / "not.parquet"
    bad.write_text("id\na\n")
    whole, chunked = _errors(DatasetConfig(path=bad), 1)
    assert str(chunked) == str(whole) and "cannot read as Parquet" in str(chunked)


def test_a_bad_feature_in_a_parquet_file_names_column_and_row_not_value(tmp_path: Path) -> None:
    p = tmp_path / "d.parquet"
    pd.DataFrame({"id": ["a", "b", "c"], "x": ["1", "2", "ACME Ltd"]}).to_parquet(p, index=False)
    with pytest.raises(DataError) as err:
        load_dataset(DatasetConfig(path=p), require_label=False)
    assert "column 'x' has non-numeric values at line 3" in err.value.public_message and "ACME" not in err.value.public_message
