"""The printable evidence summary: every fact shown, hostile text inert, how to verify."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

import pytest

from pipeline.evidence.custody import event_line, line_sha256
from pipeline.evidence.summary import render_html, render_markdown

HOSTILE = "<script>alert(1)</script>"
ATTRIBUTE = '" onmouseover="alert(2)'
COMMANDS = [
    "sha256sum -c evidence/manifest-sha256.txt",
    "wacz validate -f rally.wacz",
    "warcio check -v archive/data.warc.gz",
    "linkarchive evidence verify rally.wacz",
    "openssl ts -verify -data evidence/manifest-sha256.txt -in evidence/timestamp.tsr"
    " -CAfile tsa-ca.pem",
]


def _ledger() -> list[str]:
    lines: list[str] = []
    start = datetime(2020, 10, 10, 10, 0)
    for i, event in enumerate(["captured", "indexed", "exported"]):
        lines.append(
            event_line(
                capture_record_id="<urn:uuid:page>",
                event=event,
                at=start + timedelta(hours=i),
                actor=f"ana {HOSTILE}",
                tool="linkarchive",
                tool_version="0.1.0",
                reason="for the <b>court</b> & counsel" if event == "exported" else None,
                details={"url": "http://127.0.0.1/rally?a=1&b=2"},
                prev_sha256=line_sha256(lines[-1]) if lines else None,
            )
        )
    return lines


RECORDS = [
    {"record_id": "<urn:uuid:page>", "type": "response", "url": "http://127.0.0.1/rally",
     "payload_sha256": "1" * 64, "block_sha256": "2" * 64, "warc_file": "a.warc.gz"},
    {"record_id": "<urn:uuid:img>", "type": "revisit", "url": "http://127.0.0.1/p.jpg",
     "payload_sha256": "3" * 64, "block_sha256": "4" * 64, "warc_file": "b.warc.gz"},
]  # fmt: skip


@pytest.fixture
def facts() -> dict[str, Any]:
    return {
        "title": "Evidence summary: Moscow rally",
        "generated_at": "2026-11-22T10:00:00Z",
        "generated_by": "ana@host",
        "package": "rally.wacz",
        "link": {"id": 7, "country": "Russia", "city": "Moscow", "kind": "report",
                 "label": f"label {ATTRIBUTE}", "url": "http://127.0.0.1/rally"},
        "capture": {
            "record_id": "<urn:uuid:page>",
            "requested_url": "http://127.0.0.1/old",
            "final_url": "http://127.0.0.1/rally",
            "redirects": [{"url": "http://127.0.0.1/old", "status": 301}],
            "captured_at": "2020-10-10T10:00:00Z",
            "host": "linkarchive@field-laptop",
            "software": "linkarchive/0.1.0",
            "http_status": 200,
            "content_type": "text/html; charset=utf-8",
        },
        "records": RECORDS,
        "metadata": {"title": HOSTILE, "author": "Иван <i>", "published": "2020-10-10",
                     "language": "ru", "description": "a | b *c* [d](javascript:x)"},
        "custody": [{"record_id": "<urn:uuid:page>", "url": "http://127.0.0.1/rally",
                     "lines": _ledger()}],
        "files": [{"path": "archive/data.warc.gz", "sha256": "5" * 64, "bytes": 1234}],
        "signature": {"fingerprint": "SHA256:abcdef", "algorithm": "ed25519",
                      "signed_at": "2026-11-22T10:00:01Z"},
        "timestamp": {"authority": "Example TSA", "time": "2026-11-22T10:00:02Z"},
    }  # fmt: skip


def test_html_escapes_every_archived_value(facts: dict[str, Any]) -> None:
    page = render_html(facts)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert ATTRIBUTE not in page and "&quot; onmouseover=&quot;alert(2)" in page
    assert "<b>court</b>" not in page and "&lt;b&gt;court&lt;/b&gt; &amp; counsel" in page
    assert "<i>" not in page


def test_html_is_self_contained_and_printable(facts: dict[str, Any]) -> None:
    page = render_html(facts)
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"\b(src|href|action)\s*=", page, re.IGNORECASE)
    assert "@import" not in page and "url(" not in page
    assert "default-src 'none'" in page  # nothing may load, no script may run
    assert "@media print" in page and "<style>" in page


@pytest.mark.parametrize("render", [render_html, render_markdown])
def test_every_fact_and_hash_is_shown(render: Any, facts: dict[str, Any]) -> None:
    text = render(facts)
    for record in RECORDS:
        assert record["payload_sha256"] in text and record["block_sha256"] in text
    assert "5" * 64 in text  # package file
    for line in _ledger():
        assert line_sha256(line) in text
    for value in ("Moscow", "Russia", "http://127.0.0.1/old", "301", "2020-10-10T10:00:00Z",
                  "linkarchive@field-laptop", "linkarchive/0.1.0", "text/html", "Иван",
                  "SHA256:abcdef", "Example TSA", "captured", "exported",
                  "2020-10-10T12:00:00.000000Z", "Chain check: intact"):  # fmt: skip
        assert value in text, value
    for command in COMMANDS:
        assert command in text.replace("&#x27;", "'"), command


def test_markdown_has_the_verification_commands_and_inert_text(facts: dict[str, Any]) -> None:
    text = render_markdown(facts)
    for command in COMMANDS:
        assert re.search(rf"^ *{re.escape(command)}$", text, re.MULTILINE), command
    assert "openssl ts -reply -in evidence/timestamp.tsr -text" in text
    assert "<script>" not in text and r"\<script\>alert(1)\</script\>" in text
    assert r"a \| b \*c\* \[d\](javascript:x)" in text  # no table split, emphasis or link
    assert "<i>" not in text and "<b>" not in text


@pytest.mark.parametrize("render", [render_html, render_markdown])
def test_without_a_timestamp_no_step_names_a_token(render: Any, facts: dict[str, Any]) -> None:
    """A package without a timestamp token: the steps name only files it has."""
    text = render({k: v for k, v in facts.items() if k != "timestamp"})
    assert "timestamp.tsr" not in text and "openssl ts" not in text
    assert "warcio check -v archive/data.warc.gz" in text


def test_a_tampered_ledger_is_flagged(facts: dict[str, Any]) -> None:
    lines = _ledger()
    edited = json.loads(lines[1]) | {"actor": "someone else"}
    lines[1] = json.dumps(edited, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    facts["custody"] = lines  # a plain list of lines is one ledger
    for render in (render_html, render_markdown):
        text = render(facts)
        assert "Chain check FAILED" in text and "line 3" in text


def test_missing_facts_render_as_not_recorded() -> None:
    for render in (render_html, render_markdown):
        text = render({})
        assert "—" in text and "neither signed nor timestamped" in text
        assert "sha256sum -c evidence/manifest-sha256.txt" in text
        assert "wacz validate -f FILE.wacz" in text


def test_the_package_name_is_quoted_in_commands(facts: dict[str, Any]) -> None:
    facts["package"] = "rally\n2020 ````.wacz"
    text = render_markdown(facts)
    assert "wacz validate -f 'rally 2020 ````.wacz'" in text
    assert "   `````sh" in text  # the fence outgrows any backticks in the command
