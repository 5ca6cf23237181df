"""Audit: verify transcripts and write a report a compliance officer can read.

The room in three parts, with arrows one way (render → model → verify → reader → result):

* :mod:`~fedcredit.runtime.audit.verify` checks transcripts alone and against each
  other (:func:`verify_transcripts`), and says when a missing record is
  excused (its module docstring). :mod:`~fedcredit.runtime.audit.reader` reads one
  file through the runtime's own parser (:func:`fedcredit.runtime.transcript.iter_lines`);
  :mod:`~fedcredit.runtime.audit.result` holds :class:`Problem`,
  :class:`VerificationResult` and the stable problem codes.
* :mod:`~fedcredit.runtime.audit.model` turns what was read into a typed report
  (:class:`~fedcredit.runtime.audit.model.Report`; :func:`report_data` is its JSON).
* :mod:`~fedcredit.runtime.audit.render` renders it through the Jinja2 templates in
  ``templates/`` (:func:`render_report`: HTML, Markdown or JSON).

It may import :mod:`fedcredit.runtime.transcript`, :mod:`fedcredit.runtime.security.signing`,
:mod:`fedcredit.runtime.errors` and :mod:`fedcredit.runtime.node.approval`; nothing else in the
runtime imports it but the CLI and the demo.
"""

from __future__ import annotations

from .model import CLASSIFICATION_LABELS, Report, build_report, report_data
from .render import bytes_text, render_report
from .result import PROBLEM_CODES, Problem, VerificationResult
from .verify import verify_transcripts

__all__ = [
    "PROBLEM_CODES",
    "Problem",
    "VerificationResult",
    "verify_transcripts",
    "render_report",
    "report_data",
    "build_report",
    "Report",
    "bytes_text",
    "CLASSIFICATION_LABELS",
]
