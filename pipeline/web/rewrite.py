"""Archived HTML and CSS, rewritten so that every resource they load comes from the archive.

Pure functions (no web framework). A reference to ``http://site/a.png`` in a page captured
at 2020-10-10 18:00:00 becomes ``{prefix}/20201010180000/http://site/a.png``; links stay
in the archive the same way. Scripts, event handlers, ``javascript:`` URLs and form
targets are removed: the rendition is shown in a sandboxed frame without scripts anyway,
this is defence in depth. The rendition is for viewing only; downloads serve the archived
bytes unchanged.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit

from bs4 import BeautifulSoup
from bs4.dammit import EntitySubstitution
from bs4.element import Stylesheet, Tag
from bs4.formatter import HTMLFormatter

from pipeline.extract import decode_html
from pipeline.pagestructure import srcset_candidates

__all__ = [
    "DEFAULT_PREFIX",
    "archived_url",
    "parse_timestamp",
    "rewrite_css",
    "rewrite_html",
    "rewrite_url",
    "timestamp14",
]

DEFAULT_PREFIX = "/archived/web"

# Resource attributes: their URLs are loaded by the browser (data: images are fine).
_RESOURCE_ATTRS = (
    "src",
    "data-src",
    "data-lazy-src",
    "data-original",
    "poster",
    "background",
    "lowsrc",
)
_SRCSET_ATTRS = ("srcset", "data-srcset", "data-lazy-srcset", "imagesrcset")
# Frames and plugins: never data: (a document of its own) nor anything outside the archive.
_FRAME_TAGS = {"iframe", "frame", "embed", "object"}
# Navigation: clicks and links stay in the archive.
_NAVIGATION_TAGS = {"a", "area"}
# Attributes that send or submit somewhere, or carry a document that would not be rewritten.
_DROPPED_ATTRS = {"action", "formaction", "ping", "srcdoc", "integrity", "nonce"}
_SCRIPT_SCHEMES = ("javascript:", "vbscript:", "livescript:")
_CONTROL = re.compile(r"[\x00-\x20\x7f]+")
_CSS_REF = re.compile(
    r"""url\(\s*(?:"(?P<u1>[^"]*)"|'(?P<u2>[^']*)'|(?P<u3>[^)'"\s]*))\s*\)"""
    r"""|@import\s+(?:"(?P<i1>[^"]*)"|'(?P<i2>[^']*)')""",
    re.I,
)
_CSS_CHARSET = re.compile(rb'^@charset\s+"([A-Za-z0-9_.:-]{1,40})"\s*;')
_REFRESH = re.compile(r"^(?P<delay>\s*[\d.]*\s*[;,]?\s*)(?:url\s*=\s*)?(?P<url>.*)$", re.I | re.S)
# Characters a rewritten URL must not carry into a CSS string or a URL path.
_CSS_UNSAFE = {"\\": "%5C", '"': "%22", "'": "%27", "<": "%3C", ">": "%3E", "\n": "%0A"}
_TIMESTAMP_FILL = "19700101000000"
# Only &, <, > (and quotes in attributes) escaped; void elements without "/>".
_FORMATTER = HTMLFormatter(
    entity_substitution=EntitySubstitution.substitute_xml,
    void_element_close_prefix=None,
    empty_attributes_are_booleans=True,
)


def timestamp14(moment: datetime) -> str:
    """``YYYYMMDDhhmmss`` of a (UTC) capture time."""
    return moment.strftime("%Y%m%d%H%M%S")


def parse_timestamp(value: str) -> datetime | None:
    """A timestamp of 4 to 14 digits (``2020``, ``202010``, ... ``20201010180000``) as a
    naive UTC datetime, missing parts filled with their minimum; None if it is not one."""
    if not value.isdigit() or not 4 <= len(value) <= 14:
        return None
    try:
        return datetime.strptime(value + _TIMESTAMP_FILL[len(value) :], "%Y%m%d%H%M%S")
    except ValueError:
        return None


def archived_url(url: str, timestamp: str, prefix: str = DEFAULT_PREFIX) -> str:
    """Where the archive serves ``url`` (an absolute http(s) URL) as of ``timestamp``."""
    return f"{prefix}/{timestamp}/{url}"


def rewrite_url(
    raw: str,
    base: str,
    timestamp: str,
    *,
    prefix: str = DEFAULT_PREFIX,
    navigation: bool = False,
) -> str | None:
    """One reference (``href``, ``Location``...) resolved against ``base`` and rewritten;
    None if it is not an http(s) URL the archive could serve."""
    return _Rewriter(base, timestamp, prefix).url(raw, navigation=navigation, data=False)


def _is_script_url(value: str) -> bool:
    return _CONTROL.sub("", value).lower().startswith(_SCRIPT_SCHEMES)


def _without_dot_segments(url: str) -> str:
    """``http://h/a/../b`` -> ``http://h/b``: a browser would otherwise apply the dots to
    the archive's own path."""
    parts = urlsplit(url)
    segments = parts.path.split("/")
    if "." not in segments and ".." not in segments:
        return url
    path = urljoin("http://x/", "/" + parts.path.lstrip("/"))[len("http://x") :]
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


class _Rewriter:
    """URL rewriting for one document: its base URL, capture time and the archive prefix."""

    def __init__(self, base: str, timestamp: str, prefix: str) -> None:
        self.base = base
        self.timestamp = timestamp
        self.prefix = prefix.rstrip("/")

    def url(self, raw: str | None, *, navigation: bool = False, data: bool = True) -> str | None:
        """The archived form of ``raw``; None if it must not be loaded or followed.

        Fragments (``#top``) stay as they are; ``data:`` URLs stay unless ``data`` is
        false; other schemes than http(s) (javascript:, mailto:, ...) give None.
        """
        if raw is None:
            return None
        value = re.sub(r"[\t\n\r]", "", raw.strip())
        if not value:
            return None
        if value.startswith("#"):
            return value
        if _is_script_url(value):
            return None
        if value[:5].lower() == "data:":
            return value if data and not navigation else None
        try:
            absolute = urljoin(self.base, value)
            if not navigation:
                absolute = urldefrag(absolute)[0]
            parts = urlsplit(absolute)
        except ValueError:
            return None
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return None
        return archived_url(_without_dot_segments(absolute), self.timestamp, self.prefix)

    def srcset(self, value: str) -> str:
        """A srcset with every candidate's URL rewritten and its descriptors kept."""
        candidates = []
        for url, descriptors in srcset_candidates(value):
            rewritten = self.url(url)
            if rewritten:
                candidates.append(f"{rewritten} {descriptors}".strip())
        return ", ".join(candidates)

    def css(self, text: str) -> str:
        """CSS with every ``url(...)`` and ``@import`` rewritten (unusable ones emptied)."""

        def replace(match: re.Match[str]) -> str:
            groups = match.groupdict()
            raw = next(
                (groups[g] for g in ("u1", "u2", "u3", "i1", "i2") if groups[g] is not None), ""
            )
            rewritten = self.url(raw) if raw.strip() else None
            quoted = _css_quote(rewritten) if rewritten else "about:invalid"
            if match.group(0)[:1] == "@":
                return f'@import "{quoted}"'
            return f'url("{quoted}")'

        return _CSS_REF.sub(replace, text)


def _css_quote(url: str) -> str:
    return "".join(_CSS_UNSAFE.get(c, c) for c in url)


def _attr(tag: Tag, name: str) -> str | None:
    value = tag.get(name)
    return " ".join(value) if isinstance(value, list) else value


def _set(tag: Tag, name: str, value: str | None) -> None:
    if value is None:
        del tag[name]
    else:
        tag[name] = value


def _document_base(soup: BeautifulSoup, url: str) -> str:
    """The first usable ``<base href>``, resolved against the page URL, else the URL."""
    for base in soup.find_all("base", href=True):
        try:
            resolved = urljoin(url, re.sub(r"[\t\n\r]", "", (_attr(base, "href") or "").strip()))
        except ValueError:
            continue
        if urlsplit(resolved).scheme in ("http", "https"):
            return resolved
        break  # only the first <base href> counts; a javascript:/data: one is ignored
    return url


def _rewrite_refresh(content: str, rewrite: Callable[[str], str | None]) -> str | None:
    match = _REFRESH.match(content)
    if match is None:
        return None
    raw = match.group("url").strip().strip("'\"")
    if not raw:
        return content
    target = rewrite(raw)
    delay = match.group("delay").strip().rstrip(";,").strip() or "0"
    return f"{delay}; url={target}" if target else None


def _rewrite_tag(tag: Tag, rw: _Rewriter) -> None:
    name = tag.name
    for attr in list(tag.attrs):
        lowered = attr.lower()
        if (lowered.startswith("on") and lowered != "open") or lowered in _DROPPED_ATTRS:
            del tag[attr]
    frame = name in _FRAME_TAGS
    for attr in _RESOURCE_ATTRS:
        if tag.has_attr(attr):
            _set(tag, attr, rw.url(_attr(tag, attr), data=not frame))
    for attr in _SRCSET_ATTRS:
        if tag.has_attr(attr):
            _set(tag, attr, rw.srcset(_attr(tag, attr) or "") or None)
    if name == "object" and tag.has_attr("data"):
        _set(tag, "data", rw.url(_attr(tag, "data"), data=False))
    if name == "link" and tag.has_attr("href"):
        _set(tag, "href", rw.url(_attr(tag, "href")))
    for attr in ("href", "xlink:href"):
        if tag.has_attr(attr) and name != "link":
            _set(tag, attr, rw.url(_attr(tag, attr), navigation=name in _NAVIGATION_TAGS))
    if name in _NAVIGATION_TAGS or name == "form":
        del tag["target"]  # a click stays in the frame
    if name == "meta" and (_attr(tag, "http-equiv") or "").strip().lower() == "refresh":
        _set(tag, "content", _rewrite_refresh(_attr(tag, "content") or "", rw.url))
    style = _attr(tag, "style")
    if style:
        tag["style"] = rw.css(style)
    for attr in list(tag.attrs):  # whatever else still names a script URL
        if _is_script_url(_attr(tag, attr) or ""):
            del tag[attr]


def rewrite_html(
    body: bytes,
    url: str,
    captured_at: datetime | str,
    *,
    content_type: str | None = None,
    prefix: str = DEFAULT_PREFIX,
) -> bytes:
    """An archived HTML page as UTF-8 whose resources and links point into the archive.

    ``body`` is the decoded payload, ``content_type`` the archived Content-Type (its
    charset is honoured, then ``<meta charset>``, then detection), ``url`` the page's URL
    and ``captured_at`` its capture time (or a ``YYYYMMDDhhmmss`` timestamp).
    """
    text, _encoding = decode_html(body, content_type)
    soup = BeautifulSoup(text.replace("\x00", ""), "lxml")
    timestamp = captured_at if isinstance(captured_at, str) else timestamp14(captured_at)
    rw = _Rewriter(_document_base(soup, url), timestamp, prefix)
    for tag in soup.find_all(["script", "base"]):
        tag.decompose()
    for tag in soup.find_all("meta"):
        equiv = (_attr(tag, "http-equiv") or "").strip().lower()
        if tag.has_attr("charset") or equiv == "content-type":
            tag.decompose()
    for tag in soup.find_all(True):
        _rewrite_tag(tag, rw)
    for tag in soup.find_all("style"):
        tag.string = Stylesheet(rw.css(tag.get_text()))
    _declare_utf8(soup)
    return soup.decode(formatter=_FORMATTER).encode("utf-8")


def _declare_utf8(soup: BeautifulSoup) -> None:
    html = soup.find("html")
    if not isinstance(html, Tag):
        html = soup.new_tag("html")
        soup.append(html)
    head = soup.find("head")
    if not isinstance(head, Tag):
        head = soup.new_tag("head")
        html.insert(0, head)
    head.insert(0, soup.new_tag("meta", attrs={"charset": "utf-8"}))


def _css_text(body: bytes, content_type: str | None) -> str:
    """Decode a stylesheet: BOM, then the Content-Type charset, then ``@charset``, else UTF-8."""
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8"),
        (b"\xff\xfe", "utf-16-le"),
        (b"\xfe\xff", "utf-16-be"),
    ):
        if body.startswith(bom):
            return body[len(bom) :].decode(codec, "replace")
    candidates = []
    match = re.search(r"charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", content_type or "", re.I)
    if match:
        candidates.append(match.group(1))
    declared = _CSS_CHARSET.match(body)
    if declared:
        candidates.append(declared.group(1).decode("ascii"))
    for charset in candidates:
        try:
            return body.decode(codecs.lookup(charset).name, "replace")
        except LookupError:
            continue
    return body.decode("utf-8", "replace")


def rewrite_css(
    body: bytes,
    url: str,
    captured_at: datetime | str,
    *,
    content_type: str | None = None,
    prefix: str = DEFAULT_PREFIX,
) -> bytes:
    """An archived stylesheet as UTF-8 whose ``url()`` and ``@import`` point into the archive
    (relative references resolve against the stylesheet's own URL)."""
    text = _css_text(body, content_type)
    text = re.sub(r'^\s*@charset\s+"[^"]*"\s*;', "", text)
    timestamp = captured_at if isinstance(captured_at, str) else timestamp14(captured_at)
    return _Rewriter(url, timestamp, prefix).css(text).encode("utf-8")
