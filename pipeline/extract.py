"""Metadata extraction from archived responses (HTML and PDF), offline only.

HTML precedence, field by field: JSON-LD (extruct) > OpenGraph / ``article:*`` (extruct, then
plain ``<meta>`` for misplaced tags) > plain ``<meta>``, ``<link rel=canonical>``, ``<html lang>``,
``<time datetime>`` > trafilatura (title, author, site name, main text, htmldate date) >
htmldate extensive search. The HTML is decoded once (w3lib) and parsed once (lxml); the tree
is shared by extruct, trafilatura and htmldate. Nothing here fetches a URL.
"""

from __future__ import annotations

import codecs
import contextlib
import datetime
import functools
import io
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urldefrag

import htmldate
import lxml.html
import py3langid
import trafilatura
from extruct.jsonld import JsonLdExtractor
from extruct.opengraph import OpenGraphExtractor
from lxml import etree
from trafilatura.utils import detect_encoding
from w3lib.encoding import html_to_unicode

from pipeline.pagestructure import absolute_url

__all__ = ["PageMetadata", "decode_html", "extract_metadata"]

log = logging.getLogger(__name__)

T = TypeVar("T")

HTML_TYPES = {"text/html", "application/xhtml+xml", "application/vnd.wap.xhtml+xml"}
PDF_TYPES = {"application/pdf", "application/x-pdf"}
_SNIFF_TYPES = {"", "application/octet-stream", "binary/octet-stream", "application/unknown"}
PDF_TEXT_PAGES = 5
#: Extraction reads at most this many bytes of a body (the crawl's LINKARCHIVE_PARSE_MAXSIZE
#: default): whatever a server sends, parsing stays bounded ...
MAX_INPUT_BYTES = 4 * 1024 * 1024
#: ... and this many of a PDF (LINKARCHIVE_PDF_PARSE_MAXSIZE): a cut PDF is unreadable.
MAX_PDF_BYTES = 16 * 1024 * 1024
_LANGID_SAMPLE = 4000
# Above this many elements trafilatura skips its backup extractors ...
FAST_TEXT_ELEMENTS = 3000
# ... and above this many it reads only the beginning of the page (see _analysis_tree).
MAX_ANALYSIS_ELEMENTS = 20000
_MIN_LANGID_CHARS = 20

# schema.org types, most specific first.
_ARTICLE_TYPES = (
    "NewsArticle",
    "ReportageNewsArticle",
    "AnalysisNewsArticle",
    "OpinionNewsArticle",
    "BackgroundNewsArticle",
    "ReviewNewsArticle",
    "LiveBlogPosting",
    "BlogPosting",
    "SocialMediaPosting",
    "DiscussionForumPosting",
    "ScholarlyArticle",
    "TechArticle",
    "Report",
    "Article",
)
_PAGE_TYPES = (
    "WebPage",
    "ItemPage",
    "CollectionPage",
    "MediaGallery",
    "ImageGallery",
    "VideoGallery",
    "AboutPage",
    "ProfilePage",
    "QAPage",
    "FAQPage",
    "ContactPage",
    "SearchResultsPage",
)
_MEDIA_TYPES = ("VideoObject", "AudioObject", "Event")
_META_DESCRIPTION = ("description", "twitter:description", "dc.description", "dcterms.description")
_META_AUTHOR = (
    "author",
    "dc.creator",
    "dcterms.creator",
    "citation_author",
    "parsely-author",
    "sailthru.author",
    "byl",
)
_META_TITLE = ("twitter:title", "dc.title", "dcterms.title", "citation_title", "parsely-title")
_META_DATE = (
    "article:published_time",
    "datepublished",
    "date",
    "dc.date",
    "dc.date.issued",
    "dcterms.date",
    "dcterms.issued",
    "dcterms.created",
    "citation_publication_date",
    "citation_date",
    "pubdate",
    "publishdate",
    "publish-date",
    "publish_date",
    "parsely-pub-date",
    "sailthru.date",
    "article.published",
    "og:published_time",
)
_META_LANGUAGE = ("http-equiv:content-language", "content-language", "language", "dc.language")
_META_SITE = ("application-name", "twitter:site:name")
_META_IMAGE = ("twitter:image", "twitter:image:src")
_OG_IMAGE = ("og:image", "og:image:url", "og:image:secure_url")
_LEGACY_LANG = {"iw": "he", "in": "id", "ji": "yi", "jw": "jv", "mo": "ro"}
_NON_LANGUAGES = {"und", "zxx", "mul", "mis"}
_LANG_RE = re.compile(r"^\s*([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]+)*\s*$")
_DATE_RES = (
    re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})(?:$|[T\s])"),
    re.compile(r"^\s*(\d{4})/(\d{1,2})/(\d{1,2})(?:$|[T\s])"),
    re.compile(r"^\s*(?:D:)?(\d{4})(\d{2})(\d{2})"),
)
_COPYRIGHT_RE = re.compile(r"(?:©|\(c\)|copyright)\D{{0,99}}(?:\d{{4}}\s*[-–]\s*)?{year}\b")
_URL_SITENAME_RE = re.compile(r"https?://(?:www\.|w[0-9]+\.)?([^/]+)")


@dataclass
class PageMetadata:
    """Descriptive metadata of one archived document."""

    title: str | None = None
    description: str | None = None
    author: str | None = None
    published: datetime.date | None = None
    language: str | None = None
    site_name: str | None = None
    canonical_url: str | None = None
    images: list[str] = field(default_factory=list)
    text: str | None = None
    encoding: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict; ``published`` as ``YYYY-MM-DD`` or None."""
        return {
            "title": self.title,
            "description": self.description,
            "author": self.author,
            "published": self.published.isoformat() if self.published else None,
            "language": self.language,
            "site_name": self.site_name,
            "canonical_url": self.canonical_url,
            "images": list(self.images),
            "text": self.text,
            "encoding": self.encoding,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PageMetadata:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        published = d.get("published")
        if isinstance(published, str):
            published = _parse_date(published)
        elif isinstance(published, datetime.datetime):
            published = published.date()
        elif not isinstance(published, datetime.date):
            published = None
        return cls(
            title=d.get("title"),
            description=d.get("description"),
            author=d.get("author"),
            published=published,
            language=d.get("language"),
            site_name=d.get("site_name"),
            canonical_url=d.get("canonical_url"),
            images=list(d.get("images") or []),
            text=d.get("text"),
            encoding=d.get("encoding"),
        )


# --------------------------------------------------------------------------- small helpers


def _safe(what: str, fn: Callable[[], T], default: T) -> T:
    """Run one extraction step; a failure is logged and yields ``default``."""
    try:
        return fn()
    except Exception:  # messy input must never break extraction as a whole
        log.debug("extraction step %s failed", what, exc_info=True)
        return default


def _clean(value: Any) -> str | None:
    """Whitespace-normalised non-empty string, or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(value)
    value = " ".join(value.split())
    return value or None


def _first(*values: Any) -> str | None:
    for value in values:
        cleaned = _clean(value)
        if cleaned:
            return cleaned
    return None


def _parse_date(value: Any) -> datetime.date | None:
    """Date of an ISO-like string (``2024-03-12``, ``2024-03-12T10:00+03:00``, ``D:20240312``).

    The date is taken as written (the publisher's local date), not converted to UTC.
    """
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if not isinstance(value, str):
        return None
    for pattern in _DATE_RES:
        match = pattern.match(value)
        if match:
            try:
                parsed = datetime.date(*map(int, match.groups()))
            except ValueError:
                return None
            return parsed if parsed.year >= 1000 else None
    return None


def _language(value: Any) -> str | None:
    """ISO 639 primary subtag, lower case (``pt-BR`` -> ``pt``), or None."""
    if not isinstance(value, str):
        return None
    match = _LANG_RE.match(value)
    if not match:
        return None
    code = match.group(1).lower()
    if code in _NON_LANGUAGES:
        return None
    return _LEGACY_LANG.get(code, code)


def _detect_language(text: str | None) -> str | None:
    """Language of a text by py3langid, or None for too little text."""
    if not text:
        return None
    sample = " ".join(text[:_LANGID_SAMPLE].split())
    if len(sample) < _MIN_LANGID_CHARS:
        return None
    lang, _score = py3langid.classify(sample)
    return _language(lang)


def _absolute(raw: Any, base: str) -> str | None:
    """``raw`` resolved against ``base`` if it gives an http(s) URL; the fragment is kept."""
    return absolute_url(_clean(raw), base, keep_fragment=True)


def _dedupe(values: Iterable[str | None]) -> list[str]:
    seen: set[str] = set()
    result = []
    for value in values:
        if value and value not in seen:
            seen.add(value)
            result.append(value)
    return result


# --------------------------------------------------------------------------- decoding/parsing


def _auto_detect(body: bytes) -> str | None:
    """Encoding guess for undeclared pages: UTF-8 if it decodes, else charset_normalizer."""
    guesses = detect_encoding(body)
    return guesses[0] if guesses else None


def decode_html(body: bytes, content_type: str | None = None) -> tuple[str, str]:
    """Decode an HTML body; returns ``(text, encoding)``.

    w3lib's order: byte-order mark, then the HTTP ``Content-Type`` charset, then ``<meta
    charset>`` / ``<meta http-equiv>``, then detection (UTF-8 if valid, else charset_normalizer).
    ``encoding`` is the Python codec name it was decoded with (``cp1251``, ``utf-8``...).
    """
    encoding, text = html_to_unicode(content_type, body, auto_detect_fun=_auto_detect)
    with contextlib.suppress(LookupError):  # "utf8" -> "utf-8", "windows-1251" -> "cp1251"
        encoding = codecs.lookup(encoding).name
    return text, encoding


def _parse_html(text: str) -> lxml.html.HtmlElement | None:
    """One lxml tree for the whole extraction, or None for an empty/unparsable document."""
    data = text.replace("\x00", "").encode("utf-8", "replace")
    if not data.strip():
        return None
    # A fresh parser per call: lxml parsers are not safe to share across threads. The explicit
    # encoding makes lxml ignore the (already applied) <meta charset> of the document.
    parser = lxml.html.HTMLParser(
        encoding="utf-8", collect_ids=False, remove_comments=True, remove_pis=True
    )
    try:
        tree = lxml.html.document_fromstring(data, parser=parser)
    except (etree.ParserError, ValueError):
        return None
    return tree if isinstance(tree, lxml.html.HtmlElement) else None


def _content_kind(body: bytes, content_type: str | None) -> str:
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime in PDF_TYPES or (mime in _SNIFF_TYPES and b"%PDF-" in body[:1024]):
        return "pdf"
    if mime in HTML_TYPES:
        return "html"
    if mime in _SNIFF_TYPES:
        head = body[:512].lstrip()
        if head.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
            return "html"
        if head[:1] == b"<" and not head.startswith(b"<?xml"):
            return "html"
        lowered = head.lower()
        if head.startswith(b"<?xml") and (b"<html" in lowered or b"xhtml" in lowered):
            return "html"
    return "other"


# --------------------------------------------------------------------------- JSON-LD


def _types(node: dict[str, Any]) -> set[str]:
    raw = node.get("@type")
    values = raw if isinstance(raw, list) else [raw]
    return {str(v).rstrip("/").rsplit("/", 1)[-1].rsplit("#", 1)[-1] for v in values if v}


def _walk_jsonld(item: Any) -> Iterator[dict[str, Any]]:
    if isinstance(item, list):
        for sub in item:
            yield from _walk_jsonld(sub)
    elif isinstance(item, dict):
        if item.get("@type"):
            yield item
        if "@graph" in item:
            yield from _walk_jsonld(item["@graph"])


R = TypeVar("R")


def _guarded(default: Callable[[], R] | None) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """JSON-LD in the wild has every shape: a failing lookup gives ``default()`` (or None)."""

    def decorate(method: Callable[..., R]) -> Callable[..., R]:
        @functools.wraps(method)
        def guarded(*args: Any, **kwargs: Any) -> R:
            try:
                return method(*args, **kwargs)
            except Exception:
                log.debug("JSON-LD lookup %s failed", method.__name__, exc_info=True)
                return default() if default is not None else None  # type: ignore[return-value]

        return guarded

    return decorate


class _JsonLd:
    """The JSON-LD nodes of a page; ``main`` = article nodes, then page nodes, then media."""

    def __init__(self, tree: lxml.html.HtmlElement) -> None:
        extractor = JsonLdExtractor()
        items: list[Any] = []
        # One script at a time: extruct fails the whole syntax on a single malformed block.
        for script in tree.xpath('//script[@type="application/ld+json"]'):
            try:
                items.extend(extractor.extract_items(script))
            except Exception:
                log.debug("malformed JSON-LD block skipped", exc_info=True)
        self.nodes = list(_walk_jsonld(items))
        self.by_id = {n["@id"]: n for n in self.nodes if isinstance(n.get("@id"), str)}
        articles = [n for t in _ARTICLE_TYPES for n in self.nodes if t in _types(n)]
        pages = [n for t in _PAGE_TYPES for n in self.nodes if t in _types(n)]
        media = [n for t in _MEDIA_TYPES for n in self.nodes if t in _types(n)]
        self.main = _dedupe_nodes(articles + pages + media)
        self.websites = [n for n in self.nodes if "WebSite" in _types(n)]

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict) and set(value) <= {"@id", "@type"}:
            ref = value.get("@id")
            return self.by_id.get(ref, value) if isinstance(ref, str) else value
        return value

    @_guarded(None)
    def get(self, *keys: str) -> Any:
        """First non-empty value of ``keys`` over the main nodes (article, then page)."""
        for node in self.main:
            for key in keys:
                value = node.get(key)
                if value not in (None, "", [], {}):
                    return value
        return None

    @_guarded(list)
    def names(self, value: Any) -> list[str]:
        """Names of a person/organisation value: a string, an object, an @id, or a list."""
        value = self.resolve(value)
        if isinstance(value, list):
            return [name for item in value for name in self.names(item)]
        if isinstance(value, str):
            name = _clean(value)
            return [name] if name and not name.startswith(("http://", "https://")) else []
        if isinstance(value, dict):
            name = value.get("name")
            if isinstance(name, list):
                name = name[0] if name else None
            if not name and (value.get("givenName") or value.get("familyName")):
                name = f"{value.get('givenName') or ''} {value.get('familyName') or ''}"
            cleaned = _clean(name)
            return [cleaned] if cleaned else []
        return []

    @_guarded(list)
    def urls(self, value: Any) -> list[str]:
        """URLs of an image-like value: a string, an ImageObject, an @id, or a list."""
        value = self.resolve(value)
        if isinstance(value, list):
            return [url for item in value for url in self.urls(item)]
        if isinstance(value, str):
            return [value]
        if isinstance(value, dict):
            found = _first(value.get("url"), value.get("contentUrl"))
            if found:
                return [found]
            if isinstance(value.get("@id"), str) and "#" not in value["@id"]:
                return [value["@id"]]
        return []

    @_guarded(None)
    def language(self) -> str | None:
        value = self.get("inLanguage") or next(
            (w.get("inLanguage") for w in self.websites if w.get("inLanguage")), None
        )
        value = self.resolve(value)
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, dict):
            value = value.get("alternateName") or value.get("name")
        return _language(value)

    @_guarded(None)
    def site_name(self) -> str | None:
        for website in self.websites:
            name = _first(*self.names(website))
            if name:
                return name
        return None

    @_guarded(None)
    def publisher(self) -> str | None:
        return _first(*self.names(self.get("publisher")))


def _dedupe_nodes(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[int] = set()
    result = []
    for node in nodes:
        if id(node) not in seen:
            seen.add(id(node))
            result.append(node)
    return result


# --------------------------------------------------------------------------- OpenGraph / meta


def _opengraph(tree: lxml.html.HtmlElement) -> dict[str, list[str]]:
    """OpenGraph (and article:*) properties by extruct, lower-case keys, document order."""
    props: dict[str, list[str]] = {}
    for item in OpenGraphExtractor().extract_items(tree):
        for key, value in item.get("properties", []):
            if _clean(value):
                props.setdefault(key.lower(), []).append(value.strip())
    return props


def _meta_tags(tree: lxml.html.HtmlElement) -> dict[str, list[str]]:
    """All ``<meta>`` contents by property/name/itemprop (lower case); http-equiv prefixed."""
    metas: dict[str, list[str]] = {}
    for meta in tree.iter("meta"):
        content = meta.get("content")
        if not _clean(content):
            continue
        for attr in ("property", "name", "itemprop"):
            for key in (meta.get(attr) or "").lower().split():
                metas.setdefault(key, []).append(content.strip())
        equiv = (meta.get("http-equiv") or "").strip().lower()
        if equiv:
            metas.setdefault(f"http-equiv:{equiv}", []).append(content.strip())
    return metas


def _time_published(tree: lxml.html.HtmlElement) -> datetime.date | None:
    """``<time datetime>`` marked as the publication date, or the only one on the page."""
    times = [t for t in tree.iter("time") if _clean(t.get("datetime"))]
    preferred = [
        t
        for t in times
        if (t.get("itemprop") or "").lower() == "datepublished"
        or t.get("pubdate") is not None
        or "publish" in (t.get("class") or "").lower()
        or "entry-date" in (t.get("class") or "").lower()
    ]
    in_article = [t for t in times if any(a.tag == "article" for a in t.iterancestors())]
    for candidates in (preferred, in_article, times if len(times) == 1 else []):
        for node in candidates:
            parsed = _parse_date(node.get("datetime"))
            if parsed:
                return parsed
    return None


def _article_images(tree: lxml.html.HtmlElement, base: str) -> list[str]:
    """``<img>`` inside the article body (``<article>``, articleBody, else ``<main>``)."""
    roots = tree.xpath('//article | //*[@itemprop="articleBody"]') or tree.xpath("//main")
    urls: list[str | None] = []
    for root in roots:
        for img in root.iter("img"):
            src = img.get("src")
            if not src or src.strip().startswith("data:"):
                src = img.get("data-src") or img.get("data-lazy-src") or img.get("data-original")
            urls.append(_absolute(src, base))
    return _dedupe(urls)


# --------------------------------------------------------------------------- trafilatura


def _date_params(extensive: bool) -> dict[str, Any]:
    return {
        "original_date": True,
        "extensive_search": extensive,
        "outputformat": "%Y-%m-%d",
        "max_date": datetime.date.today().isoformat(),
    }


def _main_text(tree: lxml.html.HtmlElement, url: str | None, elements: int) -> str | None:
    """Main text by trafilatura (it works on a copy: our tree stays untouched).

    Large pages skip trafilatura's backup extractors (readability, jusText), which cost
    more than the main pass there.
    """
    document = trafilatura.bare_extraction(
        tree,
        url=url,
        fast=elements > FAST_TEXT_ELEMENTS,
        include_comments=False,
        with_metadata=False,
    )
    text = getattr(document, "text", None) if document is not None else None
    if not isinstance(text, str):
        return None
    return text.strip() or None


def _trafilatura_metadata(
    tree: lxml.html.HtmlElement, url: str | None
) -> trafilatura.settings.Document:
    """trafilatura's metadata (title, author, site name...), its date by htmldate, not extensive."""
    return trafilatura.extract_metadata(tree, default_url=url, date_config=_date_params(False))


def _htmldate(tree: lxml.html.HtmlElement, url: str | None) -> datetime.date | None:
    """htmldate without extensive search: markup, JSON, URL."""
    return _parse_date(htmldate.find_date(tree, url=url, **_date_params(False)))


def _analysis_tree(
    tree: lxml.html.HtmlElement, text: str, elements: int
) -> lxml.html.HtmlElement | None:
    """The tree for trafilatura/htmldate: ours, or for huge pages a parse of their beginning.

    trafilatura's cost grows faster than linearly (an 8 MB, 136k-element page takes about a
    minute), so beyond MAX_ANALYSIS_ELEMENTS only a proportional prefix of the HTML is read.
    """
    if elements <= MAX_ANALYSIS_ELEMENTS:
        return tree
    cut = len(text) * MAX_ANALYSIS_ELEMENTS // elements
    log.debug("huge page (%d elements): main text from the first %d characters", elements, cut)
    return _parse_html(text[:cut])


def _htmldate_extensive(tree: lxml.html.HtmlElement, url: str | None) -> datetime.date | None:
    """htmldate's extensive (text pattern) search, minus its copyright-year guess.

    As a last resort htmldate returns January 1st of a "(c) YYYY" footer year; that is the
    site's copyright, not the page's publication date, so it is discarded.
    """
    found = _parse_date(
        htmldate.find_date(
            tree, extensive_search=True, original_date=True, outputformat="%Y-%m-%d", url=url
        )
    )
    if found and (found.month, found.day) == (1, 1):
        text = tree.text_content()
        if re.search(_COPYRIGHT_RE.pattern.format(year=found.year), text, re.I):
            return None
    return found


# --------------------------------------------------------------------------- HTML


def _extract_html(body: bytes, url: str, content_type: str | None) -> PageMetadata:
    text, encoding = decode_html(body, content_type)
    meta = PageMetadata(encoding=encoding)
    tree = _safe("parse", lambda: _parse_html(text), None)
    if tree is None:
        return meta

    base = url
    base_href = tree.xpath("string(//base[@href][1]/@href)")
    if base_href:
        base = _absolute(base_href, url) or url

    ld = _safe("json-ld", lambda: _JsonLd(tree), None)
    og = _safe("opengraph", lambda: _opengraph(tree), {})
    metas = _safe("meta", lambda: _meta_tags(tree), {})

    def og_get(key: str) -> str | None:
        return _first(*(og.get(key) or metas.get(key) or []))

    def meta_get(keys: Iterable[str]) -> str | None:
        return _first(*(v for key in keys for v in metas.get(key, [])))

    def ld_text(*keys: str) -> str | None:
        value = ld.get(*keys) if ld else None
        if isinstance(value, list):
            value = value[0] if value else None
        return _clean(value) if isinstance(value, str) else None

    # Title, description, author, site name: JSON-LD > OpenGraph > meta (trafilatura later).
    meta.title = _first(ld_text("headline", "name"), og_get("og:title"), meta_get(_META_TITLE))
    meta.description = _first(ld_text("description"), og_get("og:description"))
    meta.description = meta.description or meta_get(_META_DESCRIPTION)
    ld_authors = ld.names(ld.get("author", "creator")) if ld else []
    og_authors = [
        a for a in (og.get("article:author") or metas.get("article:author") or []) if "//" not in a
    ]
    meta.author = _first("; ".join(_dedupe(ld_authors)), *og_authors, meta_get(_META_AUTHOR))
    meta.site_name = _first(
        ld.site_name() if ld else None,
        og_get("og:site_name"),
        ld.publisher() if ld else None,
        meta_get(_META_SITE),
    )

    # Canonical URL: <link rel=canonical> is the page's own declaration; then og:url, JSON-LD.
    canonical_href = tree.xpath(
        'string(//link[contains(concat(" ", normalize-space(translate(@rel, '
        '"CANONICAL", "canonical")), " "), " canonical ")][@href][1]/@href)'
    )
    ld_url = ld.get("url", "mainEntityOfPage") if ld else None
    ld_url = ld.urls(ld_url)[0] if ld and ld.urls(ld_url) else None
    for candidate, against in ((canonical_href, base), (og_get("og:url"), url), (ld_url, url)):
        absolute = _absolute(candidate, against)
        if absolute:
            meta.canonical_url = urldefrag(absolute)[0]
            break

    # Published: JSON-LD > article:published_time > meta dates > <time> (htmldate later).
    meta.published = (
        _parse_date(ld_text("datePublished", "dateCreated", "uploadDate"))
        or _parse_date(og_get("article:published_time"))
        or next(
            (d for k in _META_DATE for v in metas.get(k, []) if (d := _parse_date(v))),
            None,
        )
        or _safe("time", lambda: _time_published(tree), None)
    )

    # Language: <html lang> > og:locale > JSON-LD inLanguage > content-language meta.
    meta.language = (
        _language(tree.get("lang") or tree.get("xml:lang"))
        or _language(og_get("og:locale"))
        or (ld.language() if ld else None)
        or _language(meta_get(_META_LANGUAGE))
    )

    # Images: og:image, JSON-LD image, twitter:image, article <img>.
    image_candidates = [v for key in _OG_IMAGE for v in og.get(key, [])]
    if not image_candidates:
        image_candidates = [v for key in _OG_IMAGE for v in metas.get(key, [])]
    if ld:
        image_candidates += ld.urls(ld.get("image", "thumbnailUrl"))
    image_candidates += [v for key in _META_IMAGE for v in metas.get(key, [])]
    images = [_absolute(v, base) for v in image_candidates]
    images += _safe("article images", lambda: _article_images(tree, base), [])
    meta.images = _dedupe(urldefrag(u)[0] if u else None for u in images)

    # trafilatura: main text, and whatever is still missing; htmldate for the date.
    elements = sum(1 for _ in tree.iter())
    work = _safe("analysis tree", lambda: _analysis_tree(tree, text, elements), None)
    if work is not None:
        meta.text = _safe("main text", lambda: _main_text(work, url, elements), None)
        if not (meta.title and meta.author and meta.site_name):
            doc = _safe("trafilatura", lambda: _trafilatura_metadata(work, url), None)
            if doc is not None:
                meta.title = meta.title or _clean(doc.title)
                meta.description = meta.description or _clean(doc.description)
                meta.author = meta.author or _clean(doc.author)
                sitename = _clean(doc.sitename)
                derived = _URL_SITENAME_RE.match(doc.url or url or "")
                if sitename and not (derived and sitename.lower() == derived.group(1).lower()):
                    meta.site_name = meta.site_name or sitename  # not merely the host name
                meta.published = meta.published or _parse_date(doc.date)
            else:
                meta.published = meta.published or _safe(
                    "htmldate", lambda: _htmldate(work, meta.canonical_url or url), None
                )
        elif meta.published is None:
            meta.published = _safe(
                "htmldate", lambda: _htmldate(work, meta.canonical_url or url), None
            )
        if meta.published is None and elements <= MAX_ANALYSIS_ELEMENTS:
            meta.published = _safe(
                "htmldate extensive",
                lambda: _htmldate_extensive(work, meta.canonical_url or url),
                None,
            )
    if meta.title is None:
        meta.title = _clean(tree.findtext(".//title"))
    if meta.language is None:
        sample = meta.text or " ".join(filter(None, (meta.title, meta.description)))
        meta.language = _safe("langid", lambda: _detect_language(sample), None)
    return meta


# --------------------------------------------------------------------------- PDF


def _pdf_date(info: Any) -> datetime.date | None:
    try:
        created = info.creation_date
    except Exception:
        created = None
    if isinstance(created, datetime.datetime):
        return created.date()
    raw = info.get("/CreationDate") if hasattr(info, "get") else None
    return _parse_date(str(raw)) if raw else None


def _extract_pdf(body: bytes) -> PageMetadata:
    from pypdf import PdfReader  # only needed for PDFs

    meta = PageMetadata()
    try:
        reader = PdfReader(io.BytesIO(body), strict=False)
        if reader.is_encrypted:
            reader.decrypt("")
    except Exception:
        log.debug("unreadable PDF", exc_info=True)
        return meta
    info = _safe("pdf info", lambda: reader.metadata, None)
    if info is not None:
        meta.title = _safe("pdf title", lambda: _clean(info.title), None)
        meta.author = _safe("pdf author", lambda: _clean(info.author), None)
        meta.published = _safe("pdf date", lambda: _pdf_date(info), None)

    def first_pages_text() -> str | None:
        parts = []
        for page in reader.pages[:PDF_TEXT_PAGES]:
            parts.append(_safe("pdf page", page.extract_text, "") or "")
        return "\n".join(parts).strip() or None

    meta.text = _safe("pdf text", first_pages_text, None)
    meta.language = _safe("langid", lambda: _detect_language(meta.text or meta.title), None)
    return meta


# --------------------------------------------------------------------------- entry point


def extract_metadata(
    body: bytes,
    url: str,
    content_type: str | None = None,
    *,
    max_bytes: int = MAX_INPUT_BYTES,
    max_pdf_bytes: int = MAX_PDF_BYTES,
) -> PageMetadata:
    """Metadata of one response body: HTML, PDF, or an empty PageMetadata for other types.

    ``content_type`` is the HTTP header value; without it the body is sniffed. Only the
    first ``max_bytes`` bytes are read (``max_pdf_bytes`` of a PDF; 0: all). Never raises
    on messy input and never touches the network.
    """
    kind = _content_kind(body or b"", content_type)
    limit = max_pdf_bytes if kind == "pdf" else max_bytes
    if limit and body and len(body) > limit:
        body = body[:limit]
    if kind == "pdf":
        return _extract_pdf(body)
    if kind == "html":
        try:
            return _extract_html(body, url, content_type)
        except Exception:
            log.warning("metadata extraction failed for %s", url, exc_info=True)
            return PageMetadata()
    return PageMetadata()
