"""Render the audit report as HTML, Markdown or JSON.

HTML and Markdown come from Jinja2 templates shipped with the package
(``federated/audit/templates/report.html.j2`` and ``report.md.j2``), rendered
from the typed :class:`~fedcredit.runtime.audit.model.Report`:

* HTML autoescapes every value (a transcript is untrusted input: a spec may
  hold ``<script>``); the page is self-contained: inline CSS, no scripts, no
  external resources.
* Markdown escapes every value the same way for its own syntax (``|``,
  backslashes and line breaks), except what a template marks ``|raw`` (the
  spec's JSON inside a code block).
"""

from __future__ import annotations

import functools
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2

from .model import Report, build_report, json_safe

__all__ = ["render_report", "bytes_text"]

_TEMPLATES = {"html": "report.html.j2", "md": "report.md.j2"}


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def bytes_text(n: int) -> str:
    """``512 B``, ``1.5 KiB (1,536 bytes)``, ``11.1 MiB (11,639,000 bytes)``."""
    if n < 1024:
        return f"{n} B"
    scaled = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        scaled /= 1024
        if scaled < 1024 or unit == "TiB":
            return f"{scaled:.1f} {unit} ({n:,} bytes)"
    raise AssertionError("unreachable")


def _pretty_json(v: Any) -> str:
    return json.dumps(v, indent=2, sort_keys=True, ensure_ascii=False)


class _Raw(str):
    """Markdown text a template has marked as not to be escaped."""


def _md(v: Any) -> str:
    """Escape a value for Markdown text and table cells; ``None`` is empty."""
    if isinstance(v, _Raw):
        return v
    return ("" if v is None else str(v)).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _none_empty(v: Any) -> Any:
    return "" if v is None else v


@functools.cache
def _environment(fmt: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("fedcredit.runtime.audit", "templates"),
        autoescape=fmt == "html",
        finalize=_none_empty if fmt == "html" else _md,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(plural=plural, bytes_text=bytes_text, pretty_json=_pretty_json, raw=_Raw)
    return env


def render(report: Report, fmt: str) -> str:
    """Render a built report: ``html``, ``md`` or ``json``."""
    if fmt == "json":
        return json.dumps(json_safe(report.to_dict()), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    template = _environment(fmt).get_template(_TEMPLATES[fmt])
    v = report.verification
    return template.render(v=v, c=v.checked, jobs=report.jobs, files=report.files)


def render_report(paths: Sequence[Path], *, ca_cert_pem: bytes | None = None, fmt: str = "html") -> str:
    """Verify ``paths`` and render the audit report.

    Args:
        paths: transcript files.
        ca_cert_pem: the job's CA certificate (without it nothing verifies).
        fmt: ``html`` (one self-contained file: inline CSS, no scripts, no
            external resources), ``md`` or ``json``.

    Returns:
        The report text (valid UTF-8 when encoded). Unreadable or tampered
        files become problems in the report; this function does not raise
        for them.

    Raises:
        ValueError: unknown ``fmt``.
    """
    if fmt not in ("html", "md", "json"):
        raise ValueError(f"report format must be html, md or json, got {fmt!r}")
    report = build_report(paths, ca_cert_pem=ca_cert_pem)
    try:
        text = render(report, fmt)
    except Exception as exc:  # noqa: BLE001 - never a stack trace in a report
        msg = f"NOT verified: the report could not be rendered ({type(exc).__name__}: {exc})"
        text = (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>fedcredit audit report</title></head>"
                f"<body><h1>fedcredit audit report</h1><p>{html.escape(msg, quote=True)}</p></body></html>\n" if fmt == "html"
                else json.dumps({"verification": {"ok": False, "status": "NOT verified", "problems": [msg]}}) + "\n"
                if fmt == "json" else f"# fedcredit audit report\n\n{msg}\n")
    # Lone surrogates from hand-edited JSON cannot be encoded; never emit invalid UTF-8.
    return text.encode("utf-8", "replace").decode("utf-8")
