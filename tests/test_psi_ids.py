"""fedcredit.protocols.psi.ids: id normalization, USCC check digits, and prepare_ids (validation, de-duplication, error lines)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedcredit.protocols.errors import DataError
from fedcredit.protocols.psi.ids import (
    USCC_CHARSET,
    is_valid_uscc,
    normalize_id,
    prepare_ids,
    uscc_check_digit,
)


def test_normalize_full_width_and_spaces() -> None:
    assert normalize_id("９１３５") == "9135"
    assert normalize_id("  ９１ ３５\u3000ａｂ\t\n") == "9135AB"
    assert normalize_id("91350100m000100y43") == "91350100M000100Y43"
    assert normalize_id("\ufeff9135\u200b0100") == "91350100"
    assert normalize_id("\u3000 \t") == ""
    with pytest.raises(TypeError):
        normalize_id(9135)  # type: ignore[arg-type]


# Published codes: the GB 32100 example, Huawei Technologies, Alibaba (China).
KNOWN_USCC = ["91350100M000100Y43", "914403001922038216", "91330100716105852F"]


@pytest.mark.parametrize("code", KNOWN_USCC)
def test_known_uscc_valid(code: str) -> None:
    assert is_valid_uscc(code)
    assert uscc_check_digit(code[:17]) == code[17]


def test_uscc_synthetic_prefix_and_flip() -> None:
    prefix = "9144030012345678X"
    check = uscc_check_digit(prefix)
    # By hand: Σ value·weight = 1745 (X has value 29), 1745 mod 31 = 9, 31 - 9 = 22 -> "N".
    assert check == "N"
    code = prefix + check
    assert is_valid_uscc(code)
    for pos in range(18):
        for other in ("0", "A"):
            if code[pos] == other:
                continue
            flipped = code[:pos] + other + code[pos + 1 :]
            assert not is_valid_uscc(flipped), flipped


def test_uscc_rejects_malformed() -> None:
    code = KNOWN_USCC[0]
    assert not is_valid_uscc(code[:17])
    assert not is_valid_uscc(code + "0")
    assert not is_valid_uscc(code.lower())
    assert not is_valid_uscc(code.replace("M", "I"))  # I is not in the charset
    with pytest.raises(DataError):
        uscc_check_digit("123")
    with pytest.raises(DataError):
        uscc_check_digit("9135010OM000100Y4")  # letter O


def _reference_check(code17: str) -> str:
    """Independent formulation: weights are 3**i mod 31."""
    s = sum(USCC_CHARSET.index(c) * pow(3, i, 31) for i, c in enumerate(code17))
    return USCC_CHARSET[-s % 31]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=USCC_CHARSET, min_size=17, max_size=17))
def test_uscc_check_digit_matches_reference(code17: str) -> None:
    assert uscc_check_digit(code17) == _reference_check(code17)
    assert is_valid_uscc(code17 + _reference_check(code17))


def test_prepare_ids_normalizes() -> None:
    assert prepare_ids([" ab 1", "９１３５"], source="x.csv") == ["AB1", "9135"]
    assert prepare_ids([], source="x.csv") == []


_ID_PARTS = st.sampled_from(["a", "Z", "9", " ", "\u3000", "\u200b", "\ufeff", "Ａ", "９", "-", "Ä", "ß", "\t", "ﬁ"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_ID_PARTS, max_size=6).map("".join), max_size=12), st.booleans())
def test_prepare_ids_fast_path_equals_row_by_row(raw: list[str], dedupe: bool) -> None:
    """The all-clean fast path and the checking loop agree: same ids, or the same error."""
    norm = [normalize_id(r) for r in raw]
    clean = all(norm) and len(set(norm)) == len(norm)
    if clean:
        got = prepare_ids(raw, source="p.csv", dedupe=dedupe)
        assert (got.ids if dedupe else got) == norm
        if dedupe:
            assert got.removed == 0 and got.kept == tuple(range(len(raw)))
    else:
        if dedupe and all(norm):  # duplicates only: dropped, first occurrence kept
            got = prepare_ids(raw, source="p.csv", dedupe=True)
            assert got.ids == list(dict.fromkeys(norm)) and got.removed == len(norm) - len(set(norm))
        else:
            with pytest.raises(DataError, match="^p.csv: "):
                prepare_ids(raw, source="p.csv", dedupe=dedupe)


def test_prepare_ids_non_text_cells_are_named() -> None:
    for cell, what in ((b"A1", "id is bytes, not text"), (7, "id is int, not text"), (float("nan"), "empty id")):
        with pytest.raises(DataError, match=f"line 3: {what}"):
            prepare_ids(["B2", cell], source="n.csv")  # type: ignore[list-item]


def test_prepare_ids_duplicates_and_empties() -> None:
    raw = ["A1", "b 2", "", "a1", "B2", "   ", None, "C3"]
    with pytest.raises(DataError) as err:
        prepare_ids(raw, source="guest.csv")
    msg = str(err.value)
    assert msg.startswith("guest.csv:")
    assert "5 unusable ids" in msg  # lines 4 to 8
    assert "line 4: empty id" in msg
    assert "line 5: duplicate of line 2" in msg
    assert "line 6: duplicate of line 3" in msg
    assert "line 7: empty id" in msg
    assert "line 8: empty id" in msg  # None, as pandas gives for an empty cell
    assert "line 9" not in msg
    assert "A1" not in msg and "B2" not in msg  # ids are not echoed
    assert err.value.code == "DATA"


def test_prepare_ids_lists_first_five_and_first_line() -> None:
    raw = [""] * 8
    with pytest.raises(DataError) as err:
        prepare_ids(raw, source="host.csv", first_line=10)
    msg = str(err.value)
    assert "8 unusable ids" in msg and "first 5" in msg
    for line in range(10, 15):
        assert f"line {line}: empty id" in msg
    assert "line 15" not in msg


def test_prepare_ids_invalid_uscc() -> None:
    good = KNOWN_USCC[0]
    bad = good[:17] + ("0" if good[17] != "0" else "1")
    raw = [good, KNOWN_USCC[1], bad, "123", KNOWN_USCC[1].lower()]
    assert prepare_ids(raw[:2], source="c.csv", validate_uscc=True) == raw[:2]
    with pytest.raises(DataError) as err:
        prepare_ids(raw, source="c.csv", validate_uscc=True)
    msg = str(err.value)
    assert msg.startswith("c.csv:")
    assert "line 4: invalid USCC (check digit mismatch)" in msg
    assert "line 5: invalid USCC (length 3, expected 18)" in msg
    assert "line 6: duplicate of line 3" in msg  # lower-case variant normalizes equal
    # Without validation the malformed codes are accepted.
    assert len(prepare_ids(raw[:4], source="c.csv")) == 4

