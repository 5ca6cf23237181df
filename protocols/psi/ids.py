"""Identifier normalization and validation for PSI inputs.

Both parties must turn "the same entity" into the same byte string before
hashing, or the intersection silently shrinks. :func:`normalize_id` is that
canonical form; :func:`prepare_ids` applies it to a whole column and refuses
unusable input with one :class:`~fedcredit.protocols.errors.DataError` that names the file
and the offending line numbers.

Error messages name line numbers and the kind of problem but never echo the id
values: a :class:`DataError` may travel to the coordinator's job status, and ids
(national or company registration numbers) are exactly what PSI keeps private.

Pure functions: no files are read here; the caller passes the column's values
and the file name used in messages.
"""

from __future__ import annotations

import math
import unicodedata
from typing import Literal, NamedTuple, Sequence, overload

from ..errors import DataError

__all__ = [
    "USCC_CHARSET",
    "USCC_WEIGHTS",
    "normalize_id",
    "uscc_check_digit",
    "is_valid_uscc",
    "prepare_ids",
    "DedupedIds",
]

#: GB 32100-2015 code characters (digits and upper-case letters without I, O, Z, S, V).
USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
#: GB 32100-2015 position weights (3**i mod 31) for the first 17 characters.
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

_USCC_VALUE = {c: i for i, c in enumerate(USCC_CHARSET)}

# Invisible format characters that str.split() does not treat as whitespace but
# that routinely ride along with copy-pasted ids: zero-width space/non-joiner/
# joiner, word joiner, and the byte-order mark (first cell of an Excel CSV).
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))

_MAX_LISTED = 5


def normalize_id(raw: str) -> str:
    """Return the canonical form of one identifier.

    Steps: Unicode NFKC (full-width ``９１３５ＡＢ`` becomes ``9135AB``, the
    ideographic space U+3000 becomes a space), then remove every whitespace
    character (leading, trailing and inner) and the invisible zero-width
    characters / BOM, then upper-case.

    Args:
        raw: the identifier as read from the file.

    Returns:
        The normalized identifier (possibly ``""`` if ``raw`` was blank).

    Raises:
        TypeError: if ``raw`` is not a ``str``.
    """
    if not isinstance(raw, str):
        raise TypeError(f"id must be str, got {type(raw).__name__}")
    text = unicodedata.normalize("NFKC", raw).translate(_INVISIBLE)
    return "".join(text.split()).upper()


def uscc_check_digit(code17: str) -> str:
    """Compute the GB 32100-2015 check character for a 17-character USCC prefix.

    check = 31 - (Σ value(cᵢ)·wᵢ mod 31), with 31 written as ``0``.

    Args:
        code17: the first 17 characters of a unified social credit code,
            already normalized (upper-case, no spaces).

    Returns:
        The 18th character.

    Raises:
        DataError: if ``code17`` is not 17 characters of the USCC charset.
    """
    if len(code17) != 17:
        raise DataError(f"USCC prefix must be 17 characters, got {len(code17)}")
    total = 0
    for pos, (ch, weight) in enumerate(zip(code17, USCC_WEIGHTS), start=1):
        value = _USCC_VALUE.get(ch)
        if value is None:
            raise DataError(f"USCC character {pos} is not allowed (charset {USCC_CHARSET})")
        total += value * weight
    return USCC_CHARSET[(31 - total % 31) % 31]


def _uscc_problem(code: str) -> str | None:
    """Describe why ``code`` is not a valid USCC, or return None if it is."""
    if len(code) != 18:
        return f"invalid USCC (length {len(code)}, expected 18)"
    for pos, ch in enumerate(code, start=1):
        if ch not in _USCC_VALUE:
            return f"invalid USCC (character {pos} is not allowed)"
    if uscc_check_digit(code[:17]) != code[17]:
        return "invalid USCC (check digit mismatch)"
    return None


def is_valid_uscc(code: str) -> bool:
    """Return True if ``code`` is a well-formed unified social credit code.

    Checks length 18, the charset and the GB 32100-2015 check character. The
    embedded GB 11714 organization-code check (character 17) and the
    registration-authority / division fields are not checked. Pass a
    normalized id (see :func:`normalize_id`); lower-case letters are rejected.
    """
    return isinstance(code, str) and _uscc_problem(code) is None


def _normalize_fast(raw: str) -> str:
    # NFKC leaves ASCII unchanged and an ASCII letter-or-digit string has no
    # whitespace or invisible characters, so normalize_id(raw) == raw.upper().
    if type(raw) is str and raw.isascii() and raw.isalnum():
        return raw.upper()
    return normalize_id(raw)  # raises TypeError on a non-text cell


def _prepare_fast(raw_ids: Sequence[str], validate_uscc: bool) -> list[str] | None:
    """The normalized ids if every one is usable (text, non-empty, unique, valid); else None.

    The same result as the checking loop of :func:`prepare_ids` for clean
    input, about 5× faster at 2^20 ids; on any problem the caller runs that
    loop, which names the lines.
    """
    try:
        out = [_normalize_fast(raw) for raw in raw_ids]
    except TypeError:  # a missing (NaN/None) or non-text cell
        return None
    distinct = set(out)
    if len(distinct) != len(out) or "" in distinct:
        return None
    if validate_uscc and any(_uscc_problem(x) is not None for x in out):
        return None
    return out


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class DedupedIds(NamedTuple):
    """What :func:`prepare_ids` returns with ``dedupe=True``.

    Attributes:
        ids: the normalized ids, first occurrence of each, in input order.
        removed: how many later duplicates (after normalization) were dropped.
        kept: for each of ``ids``, its position in the input, so the caller
            can drop the same rows from the rest of the file.
    """

    ids: list[str]
    removed: int
    kept: tuple[int, ...]


@overload
def prepare_ids(
    raw_ids: Sequence[str],
    *,
    source: str,
    validate_uscc: bool = ...,
    first_line: int = ...,
    lines: Sequence[int] | None = ...,
    dedupe: Literal[False] = ...,
) -> list[str]: ...


@overload
def prepare_ids(
    raw_ids: Sequence[str],
    *,
    source: str,
    validate_uscc: bool = ...,
    first_line: int = ...,
    lines: Sequence[int] | None = ...,
    dedupe: Literal[True],
) -> DedupedIds: ...


def prepare_ids(
    raw_ids: Sequence[str],
    *,
    source: str,
    validate_uscc: bool = False,
    first_line: int = 2,
    lines: Sequence[int] | None = None,
    dedupe: bool = False,
) -> list[str] | DedupedIds:
    """Normalize a column of ids and reject empty, duplicate or invalid ones.

    Args:
        raw_ids: the id column, in file order. ``None`` and float NaN (what
            pandas yields for an empty cell) count as empty.
        source: the file name, used in the error message.
        validate_uscc: also require every id to be a valid USCC.
        first_line: the line number of ``raw_ids[0]``; the default 2 assumes a
            one-line CSV header.
        lines: the file line number of each id, when rows are not contiguous
            (e.g. blank lines were skipped); overrides ``first_line``.
        dedupe: instead of rejecting duplicates (after normalization), keep the
            first occurrence of each id and drop the later ones, and return a
            :class:`DedupedIds` ``(ids, removed, kept)`` that counts them.
            Empty and invalid ids are still rejected.

    Returns:
        The normalized ids, in input order; with ``dedupe=True`` a
        :class:`DedupedIds`.

    Raises:
        DataError: one error listing how many rows are unusable and the first
            five of them by line number, e.g.::

                hosts.csv: 2 unusable ids (empty, duplicate after normalization
                or invalid USCC); first 2: line 5: empty id; line 9: duplicate
                of line 3

            Duplicates are detected after normalization, so ``"ab 1"`` and
            ``"AB1"`` collide; the later line is reported and names the earlier.
    """
    if lines is not None and len(lines) != len(raw_ids):
        raise ValueError("lines must give one line number per id")
    fast = _prepare_fast(raw_ids, validate_uscc)
    if fast is not None:  # every id usable: the common case, without per-row bookkeeping
        return DedupedIds(fast, 0, tuple(range(len(fast)))) if dedupe else fast
    out: list[str] = []
    problems: list[tuple[int, str]] = []
    first_seen: dict[str, int] = {}
    kept: list[int] = []
    removed = 0
    for i, raw in enumerate(raw_ids):
        line = int(lines[i]) if lines is not None else first_line + i
        if _is_missing(raw):
            problems.append((line, "empty id"))
            out.append("")
            continue
        if not isinstance(raw, str):
            problems.append((line, f"id is {type(raw).__name__}, not text"))
            out.append("")
            continue
        norm = normalize_id(raw)
        if not norm:
            problems.append((line, "empty id"))
            out.append(norm)
            continue
        issues: list[str] = []
        if validate_uscc:
            bad = _uscc_problem(norm)
            if bad is not None:
                issues.append(bad)
        earlier = first_seen.get(norm)
        if earlier is None:
            first_seen[norm] = line
        elif dedupe:
            removed += 1
            if issues:
                problems.append((line, ", ".join(issues)))
            continue
        else:
            issues.append(f"duplicate of line {earlier}")
        out.append(norm)
        kept.append(i)
        if issues:
            problems.append((line, ", ".join(issues)))
    if problems:
        shown = problems[:_MAX_LISTED]
        listed = "; ".join(f"line {line}: {what}" for line, what in shown)
        kinds = "empty" + ("" if dedupe else ", duplicate after normalization") + (" or invalid USCC" if validate_uscc else "")
        raise DataError(
            f"{source}: {len(problems)} unusable id{'s' if len(problems) != 1 else ''} "
            f"({kinds}); first {len(shown)}: {listed}"
        )
    if dedupe:
        return DedupedIds(out, removed, tuple(kept))
    return out
