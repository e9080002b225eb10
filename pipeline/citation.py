"""Citations of captures: APA 7, Chicago 17 (notes-bibliography), BibTeX and CSL-JSON.

A citation is built from catalog facts (``citation_facts``): what the page said of itself
(title, author, site, publication date), where it lived (its URL), when it was captured,
where the archived copy is served, and which WARC record holds it with what payload digest.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from pipeline.catalog.models import Link, PageMetadataRow
from pipeline.catalog.queries import QueryError, get_capture, payload_capture

STYLES = ("apa", "chicago", "bibtex", "csl-json")
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")  # fmt: skip


def public_url() -> str:
    """The web app's public base URL: LINKARCHIVE_PUBLIC_URL, without a trailing slash."""
    return (os.environ.get("LINKARCHIVE_PUBLIC_URL") or DEFAULT_PUBLIC_URL).rstrip("/")


def archived_url(base: str, captured_at: datetime, url: str) -> str:
    """Where the web app serves the archived copy of ``url`` captured at ``captured_at``."""
    return f"{base.rstrip('/')}/archived/web/{captured_at:%Y%m%d%H%M%S}/{url}"


def citation_facts(session: Session, capture_id: int, base: str | None = None) -> dict[str, Any]:
    """What a citation of a capture says, from the catalog.

    A revisit capture is cited as itself (its time and record); its page metadata is its
    own, or else that of the capture whose payload it shares.
    """
    capture = get_capture(session, capture_id)
    meta = session.get(PageMetadataRow, capture.id)
    if meta is None and capture.record_type == "revisit":
        try:
            meta = session.get(PageMetadataRow, payload_capture(session, capture).id)
        except QueryError:
            meta = None
    link = session.get(Link, capture.link_id) if capture.link_id else None
    return {
        "capture_id": capture.id,
        "url": capture.url,
        "title": meta.title if meta else None,
        "author": meta.author if meta else None,
        "site_name": meta.site_name if meta else None,
        "published": meta.published.isoformat() if meta and meta.published else None,
        "language": meta.language if meta else None,
        "captured_at": capture.captured_at.isoformat(timespec="seconds") + "Z",
        "archived_url": archived_url(base or public_url(), capture.captured_at, capture.url),
        "record_id": capture.record_id,
        "record_type": capture.record_type,
        "payload_sha256": capture.payload_sha256,
        "link_id": link.id if link else None,
        "label": link.label if link else None,
    }


def cite(facts: dict[str, Any], style: str) -> str:
    """The citation of ``facts`` (from :func:`citation_facts`) in one of STYLES."""
    styles = {"apa": _apa, "chicago": _chicago, "bibtex": _bibtex, "csl-json": _csl_json}
    if style not in styles:
        raise QueryError(f"unknown citation style {style!r}: use one of {', '.join(STYLES)}")
    return styles[style](facts)


# --- pieces --------------------------------------------------------------------------------


def _published(facts: dict[str, Any]) -> date | None:
    return date.fromisoformat(facts["published"]) if facts.get("published") else None


def _captured(facts: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(facts["captured_at"].removesuffix("Z"))


def _long_date(day: date) -> str:
    return f"{MONTHS[day.month - 1]} {day.day}, {day.year}"


def _utc(moment: datetime) -> str:
    return f"{_long_date(moment.date())}, {moment:%H:%M:%S} UTC"


_NAME_PART = re.compile(r"[^\W\d_][\w'.-]*")


def _latin_person(author: str) -> list[str] | None:
    """The words of a name that looks like "Given Family" in Latin script, else None."""
    parts = author.split()
    if not 2 <= len(parts) <= 4 or not all(_NAME_PART.fullmatch(p) for p in parts):
        return None
    letters = [c for c in author if c.isalpha()]
    if not all("LATIN" in unicodedata.name(c, "") for c in letters):
        return None
    return parts


def _sentence(text: str) -> str:
    """Text ending with one full stop (or its own ?/!)."""
    text = text.strip()
    return text if text.endswith((".", "?", "!")) else text + "."


def _title(facts: dict[str, Any]) -> str:
    return (facts.get("title") or "").strip() or facts["url"]


def _evidence(facts: dict[str, Any]) -> str:
    parts = [f"WARC-Record-ID {facts['record_id']}"]
    if facts.get("payload_sha256"):
        parts.append(f"payload SHA-256 {facts['payload_sha256']}")
    return "; ".join(parts)


# --- styles --------------------------------------------------------------------------------


def _apa(facts: dict[str, Any]) -> str:
    published, captured = _published(facts), _captured(facts)
    when = (
        f"({published.year}, {MONTHS[published.month - 1]} {published.day})"
        if published
        else "(n.d.)"
    )
    author = (facts.get("author") or "").strip()
    title = _title(facts)
    if author:
        parts = _latin_person(author)
        if parts:
            initials = " ".join(f"{p[0]}." for p in parts[:-1])
            author = f"{parts[-1]}, {initials}"
        head = f"{_sentence(author)} {when}. {_sentence(title)}"
    else:  # APA: without an author, the title takes the author's place
        head = f"{_sentence(title)} {when}."
    site = (facts.get("site_name") or "").strip()
    if site and site != author:
        head += f" {_sentence(site)}"
    return (
        f"{head} Retrieved {_long_date(captured.date())}, from {facts['url']}. "
        f"Archived copy: {facts['archived_url']}"
    )


def _chicago(facts: dict[str, Any]) -> str:
    published, captured = _published(facts), _captured(facts)
    author = (facts.get("author") or "").strip()
    parts = _latin_person(author) if author else None
    if parts:
        author = f"{parts[-1]}, {' '.join(parts[:-1])}"
    title = _title(facts).rstrip(".")
    pieces = [_sentence(author)] if author else []
    pieces.append(f"\u201c{title}.\u201d")
    where = (facts.get("site_name") or "").strip()
    if published:
        where = f"{where}, {_long_date(published)}" if where else _long_date(published)
    else:  # Chicago: an access date only when the page gives no date of its own
        access = f"Accessed {_long_date(captured.date())}"
        where = f"{where}. {access}" if where else access
    pieces.append(_sentence(where))
    pieces.append(_sentence(facts["url"]))
    pieces.append(f"Archived {_utc(captured)}, at {facts['archived_url']}.")
    return " ".join(pieces)


_BIBTEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "%": r"\%",
    "&": r"\&",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def bibtex_escape(text: str) -> str:
    """Text safe inside a braced BibTeX field: TeX's special characters escaped."""
    text = " ".join(text.split())  # no line breaks or control characters
    return "".join(_BIBTEX_SPECIAL.get(c, c) for c in text if c.isprintable())


def _bibtex_url(url: str) -> str:
    # \url and the url field read their argument verbatim, but braces must still balance.
    return url.replace("\\", "%5C").replace("{", "%7B").replace("}", "%7D").replace(" ", "%20")


def _tex_url(url: str) -> str:
    # Inside another field (note, howpublished) \url is a macro argument: % and # must be
    # escaped there; hyperref prints them as they were.
    return "\\url{" + _bibtex_url(url).replace("%", "\\%").replace("#", "\\#") + "}"


def _ascii_word(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", folded.lower())


def bibtex_key(facts: dict[str, Any]) -> str:
    """A citation key of ASCII letters and digits: author, year, first title word, capture."""
    parts = _latin_person(facts.get("author") or "")
    family = _ascii_word(parts[-1]) if parts else ""
    published = _published(facts)
    year = str(published.year) if published else ""
    title = (facts.get("title") or "").split()
    word = next((w[:20] for w in map(_ascii_word, title) if len(w) > 3), "")
    return f"{family or 'capture'}{year}{word}{facts['capture_id']}"


def _bibtex(facts: dict[str, Any]) -> str:
    published, captured = _published(facts), _captured(facts)
    fields: list[tuple[str, str]] = []
    author = (facts.get("author") or "").strip()
    if author:
        parts = _latin_person(author)
        # A name BibTeX cannot split into given and family names is kept whole, in braces.
        name = f"{parts[-1]}, {' '.join(parts[:-1])}" if parts else author
        fields.append(("author", bibtex_escape(name) if parts else f"{{{bibtex_escape(name)}}}"))
    fields.append(("title", "{" + bibtex_escape(_title(facts)) + "}"))
    if facts.get("site_name"):
        fields.append(("organization", bibtex_escape(facts["site_name"])))
    if published:
        fields += [("year", str(published.year)), ("month", str(published.month)),
                   ("date", published.isoformat())]  # fmt: skip
    fields += [
        ("url", _bibtex_url(facts["url"])),
        ("howpublished", _tex_url(facts["url"])),
        ("urldate", captured.date().isoformat()),
    ]
    if facts.get("language"):
        fields.append(("language", bibtex_escape(facts["language"])))
    note = (
        f"Archived {captured.isoformat(timespec='seconds')}Z at "
        f"{_tex_url(facts['archived_url'])}; {bibtex_escape(_evidence(facts))}"
    )
    fields.append(("note", note))
    body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
    return f"@misc{{{bibtex_key(facts)},\n{body}\n}}"


def _date_parts(day: date) -> dict[str, list[list[int]]]:
    return {"date-parts": [[day.year, day.month, day.day]]}


def _csl_json(facts: dict[str, Any]) -> str:
    published, captured = _published(facts), _captured(facts)
    item: dict[str, Any] = {
        "id": f"capture-{facts['capture_id']}",
        "type": "webpage",
        "title": _title(facts),
        "URL": facts["url"],
        "accessed": _date_parts(captured.date()),
        "archive": "linkarchive",
        "archive_location": facts["archived_url"],
        "note": f"Archived {facts['captured_at']}; {_evidence(facts)}",
    }
    author = (facts.get("author") or "").strip()
    if author:
        parts = _latin_person(author)
        item["author"] = [
            {"family": parts[-1], "given": " ".join(parts[:-1])} if parts else {"literal": author}
        ]
    if facts.get("site_name"):
        item["container-title"] = facts["site_name"]
    if published:
        item["issued"] = _date_parts(published)
    if facts.get("language"):
        item["language"] = facts["language"]
    return json.dumps([item], ensure_ascii=False, indent=2)
