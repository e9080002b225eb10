"""A printable evidence summary of one archived link, for a lawyer: Markdown or HTML.

Both renderers take the same ``facts`` dict. Every key is optional; a missing value is
shown as "—" (not recorded). Values are plain data: strings, numbers, ``None``.

``facts``::

    {
      "title": str,                  # the report's heading (default "Evidence summary")
      "generated_at": str,           # UTC time the summary was written, ISO 8601
      "generated_by": str,           # who made it (e.g. custody.current_actor())
      "package": str,                # the WACZ file's name, used in the commands
      "link": {"id", "country", "city", "kind", "label", "url"},
      "capture": {
        "record_id": str,            # WARC-Record-ID of the final response
        "requested_url": str,
        "final_url": str,            # after redirects
        "redirects": [{"url": str, "status": int}, ...],  # in order, up to the final URL
        "captured_at": str,          # UTC
        "host": str,                 # the capturing host (and operator)
        "software": str,             # the capturing software and version
        "http_status": int,
        "content_type": str,
      },
      "borrowed": [                  # resources this capture's crawl did not fetch again,
        {"url", "record_id", "captured_at"},  # each from its capture nearest in time
      ],
      "records": [                   # every WARC record in the package for this link
        {"record_id", "type", "url", "payload_sha256", "block_sha256", "warc_file"},
      ],
      "metadata": {"title", "author", "published", "language", "description"},
      "browser": {                   # only for a page rendered in a browser
        "screenshot_url", "screenshot_record", "screenshot_sha256", "screenshot_bytes",
        "dom_record", "dom_sha256", "browser", "user_agent", "viewport", "behaviours",
      },
      "custody": [                   # the capture ledgers (pipeline.evidence.custody lines)
        {"record_id": str, "url": str, "lines": [str, ...]},
      ],                             # or just [str, ...]: one ledger
      "files": [{"path": str, "sha256": str, "bytes": int}],  # the package's files
      "signature": {"fingerprint", "algorithm", "signer", "signed_at", "file"},
      "timestamp": {"authority", "time", "token", "data", "ca_file"},
    }

Archived values (titles, URLs, descriptions) are hostile input: the HTML escapes every
value and loads nothing from elsewhere (inline CSS, a Content-Security-Policy that forbids
scripts), and the Markdown backslash-escapes every character Markdown or HTML would
interpret.
"""

from __future__ import annotations

import html
import json
import re
import shlex
from collections.abc import Mapping
from typing import Any

from pipeline.evidence.custody import line_sha256, verify_lines

NOT_RECORDED = "—"
_BORROWED_NOTE = (
    "This capture's crawl did not fetch these resources of the page again (a check fetches "
    "the page alone; a crawl may skip what it already holds). Each is taken from its capture "
    "nearest in time, as a replay of the page would show it."
)
MANIFEST = "evidence/manifest-sha256.txt"
WARC_DATA = "archive/data.warc.gz"
TIMESTAMP_TOKEN = "evidence/timestamp.tsr"
TSA_CA = "tsa-ca.pem"

_LINK_FIELDS = (
    ("country", "Country"), ("city", "City"), ("kind", "Kind"), ("label", "Label"),
    ("url", "URL"),
)  # fmt: skip
_CAPTURE_FIELDS = (
    ("requested_url", "Requested URL"), ("final_url", "Final URL (after redirects)"),
    ("captured_at", "Captured at (UTC)"), ("host", "Capturing host"),
    ("software", "Capturing software"), ("http_status", "HTTP status"),
    ("content_type", "Content type"), ("record_id", "WARC-Record-ID"),
)  # fmt: skip
_META_FIELDS = (
    ("title", "Title"), ("author", "Author"), ("published", "Published"),
    ("language", "Language"), ("description", "Description"),
)  # fmt: skip
_BROWSER_FIELDS = (
    ("screenshot_url", "Screenshot (PNG, in the package)"),
    ("screenshot_record", "Screenshot WARC-Record-ID"),
    ("screenshot_sha256", "Screenshot SHA-256"), ("screenshot_bytes", "Screenshot bytes"),
    ("dom_record", "Rendered DOM WARC-Record-ID"), ("dom_sha256", "Rendered DOM SHA-256"),
    ("browser", "Browser"), ("user_agent", "User agent"), ("viewport", "Viewport"),
    ("behaviours", "Behaviours run"),
)  # fmt: skip
_BROWSER_NOTE = (
    "The page was rendered in a browser. Every exchange the browser made was recorded as it "
    "went over the wire; the screenshot, the rendered DOM and its text are resource records "
    "of the package, each naming the page's response (WARC-Concurrent-To)."
)
_RECORD_COLUMNS = (
    ("record_id", "WARC-Record-ID"), ("type", "Type"), ("url", "URL"),
    ("payload_sha256", "Payload SHA-256"), ("block_sha256", "Block SHA-256"),
    ("warc_file", "WARC file"),
)  # fmt: skip
_LEDGER_COLUMNS = ("#", "Time (UTC)", "Event", "Actor", "Tool", "Reason", "Details",
                   "Line SHA-256")  # fmt: skip
_SIGNATURE_FIELDS = (
    ("fingerprint", "Key fingerprint"), ("algorithm", "Algorithm"), ("signer", "Signer"),
    ("signed_at", "Signed at (UTC)"), ("file", "Signature file"),
)  # fmt: skip
_TIMESTAMP_FIELDS = (
    ("authority", "Timestamp authority"), ("time", "Time stamped (UTC)"),
    ("token", "Token file"), ("data", "Stamped file"),
)  # fmt: skip


# --- the facts, as rows of text ---------------------------------------------------------


def _text(value: Any) -> str:
    """A value as one line of text (``—`` if missing)."""
    if value is None or value == "":
        return NOT_RECORDED
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return " ".join(str(value).split())


def _section(facts: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = facts.get(key)
    return value if isinstance(value, Mapping) else {}


def _pairs(
    section: Mapping[str, Any], fields: tuple[tuple[str, str], ...]
) -> list[tuple[str, str]]:
    return [(label, _text(section.get(key))) for key, label in fields]


def _ledgers(facts: Mapping[str, Any]) -> list[dict[str, Any]]:
    custody = facts.get("custody") or []
    if custody and all(isinstance(line, str) for line in custody):
        return [{"record_id": None, "url": None, "lines": list(custody)}]
    return [dict(ledger) for ledger in custody if isinstance(ledger, Mapping)]


def _ledger_rows(lines: list[str]) -> list[list[str]]:
    rows = []
    for number, line in enumerate(lines, start=1):
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        digest = line_sha256(line)
        if not isinstance(event, dict):
            rows.append([str(number), "", "(unparsable line)", "", "", "", _text(line), digest])
            continue
        tool = " ".join(filter(None, [str(event.get("tool") or ""),
                                      str(event.get("tool_version") or "")]))  # fmt: skip
        details = event.get("details")
        rows.append(
            [
                str(number),
                _text(event.get("at")),
                _text(event.get("event")),
                _text(event.get("actor")),
                _text(tool),
                _text(event.get("reason")),
                _text(details) if details else NOT_RECORDED,
                digest,
            ]
        )
    return rows


def _ledger_check(lines: list[str]) -> str:
    problems = verify_lines(lines)
    if problems:
        return "Chain check FAILED: " + "; ".join(problems)
    last = line_sha256(lines[-1])
    return (
        f"Chain check: intact. {len(lines)} lines; the last line's SHA-256 is {last} "
        "(compare it with the count and hash recorded in the package: the chain alone cannot "
        "show lines cut from its end)."
    )


def _borrowed_rows(facts: Mapping[str, Any]) -> list[list[str]]:
    items = [b for b in facts.get("borrowed") or [] if isinstance(b, Mapping)]
    return [[_text(b.get(k)) for k in ("url", "captured_at", "record_id")] for b in items]


def _redirect_rows(capture: Mapping[str, Any]) -> list[list[str]]:
    hops = capture.get("redirects") or []
    return [
        [str(i), _text(hop.get("status")), _text(hop.get("url"))]
        for i, hop in enumerate((h for h in hops if isinstance(h, Mapping)), start=1)
    ]


def verify_commands(facts: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The "How to verify" steps, in order: (what it checks, shell command).

    The first two run on the package file; the others inside the unpacked package. The
    timestamp's steps only when the package has a token.
    """

    def arg(value: Any, default: str) -> str:  # one line, quoted for the shell
        return shlex.quote(" ".join(str(value or default).split()) or default)

    stamp = _section(facts, "timestamp")
    package = arg(facts.get("package"), "FILE.wacz")
    token = arg(stamp.get("token"), TIMESTAMP_TOKEN)
    data = arg(stamp.get("data"), MANIFEST)
    ca_file = arg(stamp.get("ca_file"), TSA_CA)
    steps = [
        ("Everything below, the custody ledgers and the signature, with linkarchive",
         f"linkarchive evidence verify {package}"),
        ("The package's structure, resources and hashes (py-wacz: pip install wacz)",
         f"wacz validate -f {package}"),
        ("Unpack the package (a WACZ file is a ZIP file) and enter it",
         f"unzip {package} -d package && cd package"),
        ("Every file of the package against the manifest of SHA-256 hashes",
         f"sha256sum -c {MANIFEST}"),
        ("Every WARC record's block and payload digest (pip install warcio)",
         f"warcio check -v {WARC_DATA}"),
    ]  # fmt: skip
    if not stamp:  # no token in the package: no step may name one
        return steps
    return [*steps,
        ("The trusted timestamp covers the stamped file (with the TSA's CA certificate)",
         f"openssl ts -verify -data {data} -in {token} -CAfile {ca_file}"),
        ("The timestamp token's time and authority, readable",
         f"openssl ts -reply -in {token} -text"),
    ]  # fmt: skip


# --- Markdown ---------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|&~])")


def _md(value: Any) -> str:
    """Text for Markdown: every character Markdown or inline HTML would act on escaped."""
    return _MD_SPECIAL.sub(r"\\\1", _text(value))


def _md_table(headers: list[str] | tuple[str, ...], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(_md(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in rows]
    return out


def _md_pairs(pairs: list[tuple[str, str]]) -> list[str]:
    return [f"- **{_md(label)}:** {_md(value)}" for label, value in pairs]


def _fence(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def render_markdown(facts: dict) -> str:
    """The evidence summary as Markdown (see the module docstring for ``facts``)."""
    out = [f"# {_md(facts.get('title') or 'Evidence summary')}", ""]
    made = [("Generated at (UTC)", _text(facts.get("generated_at"))),
            ("Generated by", _text(facts.get("generated_by"))),
            ("Package", _text(facts.get("package")))]  # fmt: skip
    out += _md_pairs(made) + ["", "## The link", ""]
    out += _md_pairs(_pairs(_section(facts, "link"), _LINK_FIELDS))
    capture = _section(facts, "capture")
    out += ["", "## The capture", ""] + _md_pairs(_pairs(capture, _CAPTURE_FIELDS))
    redirects = _redirect_rows(capture)
    if redirects:
        out += ["", "Redirect chain:", ""] + _md_table(["#", "HTTP status", "URL"], redirects)
    browser = _section(facts, "browser")
    if browser:
        out += ["", "## Browser capture", "", _md(_BROWSER_NOTE), ""]
        out += _md_pairs(_pairs(browser, _BROWSER_FIELDS))
    borrowed = _borrowed_rows(facts)
    if borrowed:
        out += ["", "## Resources from other captures", "", _md(_BORROWED_NOTE), ""]
        out += _md_table(["URL", "Captured at (UTC)", "WARC-Record-ID"], borrowed)
    out += ["", "## Extracted metadata", ""]
    out += _md_pairs(_pairs(_section(facts, "metadata"), _META_FIELDS))
    out += ["", "## WARC records", ""]
    records = [r for r in facts.get("records") or [] if isinstance(r, Mapping)]
    rows = [[_text(r.get(key)) for key, _ in _RECORD_COLUMNS] for r in records]
    out += _md_table([label for _, label in _RECORD_COLUMNS], rows) if rows else ["None."]
    out += ["", "## Chain of custody", ""]
    ledgers = _ledgers(facts)
    for ledger in ledgers:
        lines = [str(line) for line in ledger.get("lines") or []]
        if ledger.get("record_id") or ledger.get("url"):
            heading = f"{_text(ledger.get('record_id'))} ({_text(ledger.get('url'))})"
            out += [f"### Ledger of {_md(heading)}", ""]
        out += _md_table(_LEDGER_COLUMNS, _ledger_rows(lines)) if lines else ["No events."]
        if lines:
            out += ["", _md(_ledger_check(lines))]
        out.append("")
    if not ledgers:
        out += ["No custody ledger.", ""]
    out += ["## Package files", ""]
    files = [f for f in facts.get("files") or [] if isinstance(f, Mapping)]
    rows = [[_text(f.get("path")), _text(f.get("sha256")), _text(f.get("bytes"))] for f in files]
    out += _md_table(["File", "SHA-256", "Bytes"], rows) if rows else ["None."]
    out += ["", "## Signature and timestamp", ""]
    signature, stamp = _section(facts, "signature"), _section(facts, "timestamp")
    if not signature and not stamp:
        out.append("The package is neither signed nor timestamped.")
    out += _md_pairs(_pairs(signature, _SIGNATURE_FIELDS)) if signature else []
    out += _md_pairs(_pairs(stamp, _TIMESTAMP_FIELDS)) if stamp else []
    out += ["", "## How to verify", ""]
    for number, (what, command) in enumerate(verify_commands(facts), start=1):
        fence = _fence(command)
        out += [f"{number}. {_md(what)}:", "", f"   {fence}sh", f"   {command}", f"   {fence}", ""]
    return "\n".join(out)


# --- HTML -------------------------------------------------------------------------------

_CSS = """
:root { color-scheme: light; }
body { font: 11pt/1.45 "Liberation Serif", "Times New Roman", serif; color: #000;
       background: #fff; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 18pt; border-bottom: 2px solid #000; padding-bottom: .2rem; }
h2 { font-size: 14pt; margin-top: 1.6rem; border-bottom: 1px solid #888; }
h3 { font-size: 11pt; }
dl { display: grid; grid-template-columns: 14rem 1fr; gap: .15rem 1rem; margin: 0; }
dt { font-weight: bold; } dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; font-size: 9pt; margin: .5rem 0; }
th, td { border: 1px solid #666; padding: .2rem .35rem; text-align: left;
         vertical-align: top; overflow-wrap: anywhere; }
th { background: #eee; }
code, pre, .hash { font: 9pt/1.35 "DejaVu Sans Mono", "Courier New", monospace; }
.hash { word-break: break-all; }
pre { background: #f4f4f4; border: 1px solid #ccc; padding: .5rem; white-space: pre-wrap;
      overflow-wrap: anywhere; }
.check { font-weight: bold; } .failed { color: #a00; }
.muted { color: #555; }
@page { size: A4; margin: 15mm; }
@media print {
  body { margin: 0; max-width: none; }
  h2, h3 { break-after: avoid; }
  tr, pre, dl { break-inside: avoid; }
  thead { display: table-header-group; }
}
"""

_HASH_COLUMNS = {"Payload SHA-256", "Block SHA-256", "Line SHA-256", "SHA-256",
                 "WARC-Record-ID"}  # fmt: skip


def _h(value: Any) -> str:
    return html.escape(_text(value), quote=True)


def _html_pairs(pairs: list[tuple[str, str]]) -> str:
    items = "".join(f"<dt>{_h(label)}</dt><dd>{_h(value)}</dd>" for label, value in pairs)
    return f"<dl>{items}</dl>"


def _html_table(headers: list[str] | tuple[str, ...], rows: list[list[str]]) -> str:
    hashed = [h in _HASH_COLUMNS for h in headers]
    head = "".join(f"<th>{_h(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="hash">{_h(cell)}</td>' if hashed[i] else f"<td>{_h(cell)}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(facts: dict) -> str:
    """The evidence summary as one self-contained, printable HTML page."""
    title = _text(facts.get("title") or "Evidence summary")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        '<meta name="referrer" content="no-referrer">',
        f"<title>{_h(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_h(title)}</h1>",
        _html_pairs(
            [
                ("Generated at (UTC)", _text(facts.get("generated_at"))),
                ("Generated by", _text(facts.get("generated_by"))),
                ("Package", _text(facts.get("package"))),
            ]
        ),  # fmt: skip
        "<h2>The link</h2>",
        _html_pairs(_pairs(_section(facts, "link"), _LINK_FIELDS)),
        "<h2>The capture</h2>",
    ]
    capture = _section(facts, "capture")
    parts.append(_html_pairs(_pairs(capture, _CAPTURE_FIELDS)))
    redirects = _redirect_rows(capture)
    if redirects:
        parts += ["<h3>Redirect chain</h3>", _html_table(["#", "HTTP status", "URL"], redirects)]
    browser = _section(facts, "browser")
    if browser:
        parts += ["<h2>Browser capture</h2>", f"<p>{_h(_BROWSER_NOTE)}</p>",
                  _html_pairs(_pairs(browser, _BROWSER_FIELDS))]  # fmt: skip
    borrowed = _borrowed_rows(facts)
    if borrowed:
        headers = ["URL", "Captured at (UTC)", "WARC-Record-ID"]
        parts += ["<h2>Resources from other captures</h2>", f"<p>{_h(_BORROWED_NOTE)}</p>",
                  _html_table(headers, borrowed)]  # fmt: skip
    parts += ["<h2>Extracted metadata</h2>",
              _html_pairs(_pairs(_section(facts, "metadata"), _META_FIELDS)),
              "<h2>WARC records</h2>"]  # fmt: skip
    records = [r for r in facts.get("records") or [] if isinstance(r, Mapping)]
    rows = [[_text(r.get(key)) for key, _ in _RECORD_COLUMNS] for r in records]
    parts.append(
        _html_table([label for _, label in _RECORD_COLUMNS], rows) if rows else "<p>None.</p>"
    )
    parts.append("<h2>Chain of custody</h2>")
    ledgers = _ledgers(facts)
    for ledger in ledgers:
        lines = [str(line) for line in ledger.get("lines") or []]
        if ledger.get("record_id") or ledger.get("url"):
            heading = f"{_text(ledger.get('record_id'))} ({_text(ledger.get('url'))})"
            parts.append(f"<h3>Ledger of {_h(heading)}</h3>")
        if not lines:
            parts.append("<p>No events.</p>")
            continue
        parts.append(_html_table(_LEDGER_COLUMNS, _ledger_rows(lines)))
        check = _ledger_check(lines)
        css = "check failed" if check.startswith("Chain check FAILED") else "check"
        parts.append(f'<p class="{css}">{_h(check)}</p>')
    if not ledgers:
        parts.append("<p>No custody ledger.</p>")
    parts.append("<h2>Package files</h2>")
    files = [f for f in facts.get("files") or [] if isinstance(f, Mapping)]
    rows = [[_text(f.get("path")), _text(f.get("sha256")), _text(f.get("bytes"))] for f in files]
    parts.append(_html_table(["File", "SHA-256", "Bytes"], rows) if rows else "<p>None.</p>")
    parts.append("<h2>Signature and timestamp</h2>")
    signature, stamp = _section(facts, "signature"), _section(facts, "timestamp")
    if not signature and not stamp:
        parts.append("<p>The package is neither signed nor timestamped.</p>")
    if signature:
        parts.append(_html_pairs(_pairs(signature, _SIGNATURE_FIELDS)))
    if stamp:
        parts.append(_html_pairs(_pairs(stamp, _TIMESTAMP_FIELDS)))
    parts.append("<h2>How to verify</h2><ol>")
    for what, command in verify_commands(facts):
        parts.append(f"<li>{_h(what)}<pre>{html.escape(command)}</pre></li>")
    parts += ["</ol>", "</body></html>", ""]
    return "\n".join(parts)
