"""The audit report: readable by a compliance officer, in HTML, Markdown and JSON, never a stack trace."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fedcredit.runtime.audit import bytes_text, render_report, report_data
from fedcredit.runtime.security.certs import CertLayout
from transcript_builder import (  # the shared builder of realistic transcripts (tests/ is on sys.path)
    AUC,
    JOB,
    MESSAGES,
    PLAINTEXT_WHY,
    PURPOSE,
    SPEC,
    build_job,
    copy_job,
    dump,
    find_message,
    read_lines,
    spec_sha,
    write_lines,
)


@pytest.fixture(scope="module")
def job(job: dict[str, Path]) -> list[Path]:
    """The valid job of tests/conftest.py, as a list: bank, platform, coordinator."""
    return [job["bank"], job["platform"], job["coordinator"]]


@pytest.fixture(scope="module")
def tampered(job: list[Path], tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The bank's record of its first lr.residuals message, edited to claim a smaller payload."""
    paths = copy_job({"bank": job[0], "platform": job[1], "coordinator": job[2]}, tmp_path_factory.mktemp("tampered"))
    lines = read_lines(paths["bank"])
    k = find_message(paths["bank"], "lr.residuals", "sent")
    rec = json.loads(lines[k])
    rec["body"]["envelope"]["payload_size"] = 12
    lines[k] = dump(rec)
    write_lines(paths["bank"], lines)
    return list(paths.values())


def _bytes_of(classification: str) -> int:
    return sum(m.size for m in MESSAGES if m.classification == classification)


def _visible_text(html_text: str) -> str:
    body = html_text[max(html_text.find("<body>"), 0):]  # skip the <style> block
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)))


# --------------------------------------------------------------------------
# the valid job
# --------------------------------------------------------------------------
def test_html_report_of_a_verified_job(job: list[Path], ca: bytes) -> None:
    out = render_report(job, ca_cert_pem=ca, fmt="html")
    out.encode("utf-8")  # valid UTF-8
    assert out.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in out
    # self-contained: inline CSS only, no scripts, no external resources
    lowered = out.lower()
    for forbidden in ("<script", "<link", "src=", "http://", "https://", "@import", "url("):
        assert forbidden not in lowered, forbidden
    text = _visible_text(out)
    # the verdict comes first
    assert "Verified" in text and "NOT verified" not in text
    assert text.index("Verified") < text.index("Parties")
    assert 'class="banner verified"' in out
    # parties and roles, purpose, the approved spec with its hash and who approved it
    for node, role in (("bank", "guest"), ("platform", "host"), ("coordinator", "coordinator")):
        assert re.search(rf"<td>{node}</td><td>{role}</td>", out), node
    assert PURPOSE in text
    assert spec_sha(SPEC) in text
    assert "tax_invoices_2024q1" in text  # the spec itself is shown
    assert "by an operator, explicitly" in text and "automatically, by the node's local policy" in text
    # what was sent, by kind, in plain words, with bytes
    assert "encrypted (only the coordinator's key can open it)" in text
    assert "masked (hidden by random numbers)" in text
    assert "public parameter" in text and "agreed result" in text
    assert f"{_bytes_of('ciphertext'):,} bytes" in text
    assert f"{_bytes_of('masked'):,} bytes" in text
    # disclosed aggregates
    assert f"AUC on the test rows = {AUC}" in text
    assert "intersection size = 412" in text
    assert "mean training loss = 0.61" in text and "mean training loss = 0.56" in text
    # the plaintext message is highlighted, with its explanation
    assert 'class="plaintext"' in out and 'class="cls-plaintext"' in out
    box = out[out.index('class="plaintext"'):]
    box = box[: box.index("</div>")]
    assert "lr.host_test_scores" in box and "PLAIN VALUES" in box
    assert PLAINTEXT_WHY in _visible_text(box)
    # consent: counts, and that only the platform sees them
    assert "449 enterprises included, 37 excluded" in text
    assert "Only platform sees these counts" in text
    assert "Traceback" not in out


def test_markdown_report_of_a_verified_job(job: list[Path], ca: bytes) -> None:
    out = render_report(job, ca_cert_pem=ca, fmt="md")
    first = out.split("\n## ", 1)[1]
    assert first.startswith("✅ Verified")
    assert "NOT verified" not in out
    for needle in ("| bank | guest |", "| platform | host |", "| coordinator | coordinator |", PURPOSE, spec_sha(SPEC),
                   f"AUC on the test rows = {AUC}", "intersection size = 412", f"{_bytes_of('ciphertext'):,} bytes",
                   "encrypted (only the coordinator's key can open it)", "449 enterprises included, 37 excluded"):
        assert needle in out, needle
    # plaintext in bold, as a warning
    assert "**⚠ PLAIN VALUES**" in out
    assert "> **⚠ PLAIN VALUES: platform sent lr.host_test_scores #0 to bank**" in out
    assert PLAINTEXT_WHY in out


def test_json_report_of_a_verified_job(job: list[Path], ca: bytes) -> None:
    data = json.loads(render_report(job, ca_cert_pem=ca, fmt="json"))
    assert data["verification"]["ok"] is True and data["verification"]["status"] == "Verified"
    assert data["verification"]["problems"] == []
    [j] = data["jobs"]
    assert j["job_id"] == JOB and j["purpose"] == PURPOSE and j["spec_sha256"] == spec_sha(SPEC)
    assert j["spec"] == SPEC
    assert {(p["node"], p["role"]) for p in j["parties"]} == {("bank", "guest"), ("platform", "host"),
                                                              ("coordinator", "coordinator")}
    # one row per decision, attributed to the party even where the coordinator recorded it
    assert sorted((a["node"], a["by"], a["decision"], tuple(sorted(a["recorded_by"]))) for a in j["approvals"]) == [
        ("bank", "operator", "approved", ("bank", "coordinator")),
        ("platform", "policy", "approved", ("coordinator", "platform")),
    ]
    assert all(a["checks"] for a in j["approvals"])
    totals = {t["classification"]: (t["messages"], t["bytes"]) for t in j["totals_by_classification"]}
    for cls in ("ciphertext", "masked", "public", "aggregate", "plaintext"):
        assert totals[cls] == (sum(1 for m in MESSAGES if m.classification == cls), _bytes_of(cls)), cls
    assert j["messages"] == len(MESSAGES)
    metrics = [d for d in j["disclosed"] if d["step"] == "lr.metrics"]
    assert metrics and metrics[0]["values"]["test_auc"] == AUC
    [pt] = j["plaintext"]
    assert pt["step"] == "lr.host_test_scores" and pt["explanation"] == PLAINTEXT_WHY and pt["sealed"] is True
    assert j["consent"][0]["included"] == 449 and j["consent"][0]["excluded"] == 37
    assert report_data(job, ca_cert_pem=ca)["jobs"][0]["spec_sha256"] == spec_sha(SPEC)


def test_byte_counts_are_exact_at_every_scale() -> None:
    assert bytes_text(0) == "0 B" and bytes_text(1023) == "1023 B"
    assert bytes_text(1536) == "1.5 KiB (1,536 bytes)"
    assert bytes_text(11_639_000) == "11.1 MiB (11,639,000 bytes)"
    assert bytes_text(3 * 1024**3) == "3.0 GiB (3,221,225,472 bytes)"


# --------------------------------------------------------------------------
# problems, in words
# --------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["html", "md", "json"])
def test_tampered_report_says_not_verified_in_words(tampered: list[Path], ca: bytes, fmt: str) -> None:
    out = render_report(tampered, ca_cert_pem=ca, fmt=fmt)
    assert "NOT verified" in out
    assert "Traceback" not in out and 'File "' not in out
    if fmt == "json":
        v = json.loads(out)["verification"]
        assert v["ok"] is False
        codes = {p["code"] for p in v["problems"]}
        assert {"HASH", "MISMATCH", "ENVELOPE_SIGNATURE"} <= codes
        assert all(p["meaning"] for p in v["problems"])
    else:
        text = _visible_text(out) if fmt == "html" else out
        assert "was changed after it was written" in text
        assert "disagree about message lr.residuals #0 from bank to platform" in text
        assert "payload_size differs" in text
    if fmt == "html":
        assert 'class="banner not-verified"' in out
        assert out.index("NOT verified") < out.index("Parties")


def test_unreadable_and_hostile_input_never_breaks_the_report(job: list[Path], ca: bytes, tmp_path: Path,
                                                              layout: CertLayout) -> None:
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage\n")
    surrogate = tmp_path / "surrogate.jsonl"
    surrogate.write_text('{"index": 0, "kind": "header", "job_id": "\\ud800", "node": "x"}\n', encoding="utf-8")
    directory = tmp_path / "a-directory.jsonl"
    directory.mkdir()
    hostile = build_job(layout, tmp_path / "hostile", job_id="job-hostile",
                        recorded_spec={"coordinator": {**SPEC, "note": "<script>alert(1)</script>"}})
    inputs = [*job, binary, surrogate, directory, tmp_path / "absent.jsonl", *hostile.values()]
    for fmt in ("html", "md", "json"):
        out = render_report(inputs, ca_cert_pem=ca, fmt=fmt)
        out.encode("utf-8")
        assert "NOT verified" in out and "Traceback" not in out
        for name in ("binary.jsonl", "surrogate.jsonl", "a-directory.jsonl", "absent.jsonl"):
            assert name in out, (fmt, name)
    html_out = render_report(inputs, ca_cert_pem=ca, fmt="html")
    assert "<script" not in html_out.lower()
    assert "&lt;script&gt;" in html_out  # shown, escaped
    assert "coordinator recorded a DIFFERENT specification" in _visible_text(html_out)
    with pytest.raises(ValueError, match="html, md or json"):
        render_report(job, fmt="pdf")


def test_report_without_a_ca_is_not_verified(job: list[Path]) -> None:
    out = render_report(job, fmt="md")
    assert "✅ Verified" not in out
    assert "no CA certificate was given" in out


# --------------------------------------------------------------------------
# a real browser
# --------------------------------------------------------------------------
def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed; cannot render the HTML report in a browser")
@pytest.mark.parametrize("which", ["valid", "tampered"])
def test_html_report_renders_in_headless_chromium(job: list[Path], tampered: list[Path], ca: bytes,
                                                   tmp_path: Path, which: str) -> None:
    paths: Any = job if which == "valid" else tampered
    page = tmp_path / "report.html"
    page.write_text(render_report(paths, ca_cert_pem=ca, fmt="html"), encoding="utf-8")
    png = tmp_path / "report.png"
    cmd = [
        str(_chromium()), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={png}", "--window-size=1200,1600", page.resolve().as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, timeout=90, check=False)
    assert png.is_file(), proc.stderr.decode("utf-8", "replace")[-2000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000
