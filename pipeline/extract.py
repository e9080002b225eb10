"""Metadata extraction from archived responses (HTML and PDF), offline only.

Every source a page has is read — JSON-LD (extruct), OpenGraph / ``article:*``, plain
``<meta>``, ``<link rel=canonical>``, ``<html lang>``, ``<time datetime>``, the URL, the
visible text, trafilatura (title, byline, site name, main text) and htmldate (dates) — and
each field is chosen among them by the precedence measured on public corpora
(``bench/accuracy.py``; the rules are in docs/ARCHITECTURE.md, "Page metadata: which source
wins", and in :func:`_choose_date`, :func:`_choose_title`, :func:`_choose_author`). The
publication date carries its source (``published_source``). The HTML is decoded once
(w3lib) and parsed once (lxml); the tree is shared by extruct, trafilatura and htmldate.
Nothing here fetches a URL.
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
_LEGAL_NAME_RE = re.compile(
    r"\b(?:ltd|limited|gmbh|ggmbh|inc|llc|plc|ag|kg|se|s\.a|sa|s\.l|srl|sarl|bv|nv|oy|oü|"
    r"uab|sia|ooo|ооо|оао|зао|sp\. z o\.o|corp|corporation|group|holding|media group)\.?$",
    re.I,
)
_URL_SITENAME_RE = re.compile(r"https?://(?:www\.|w[0-9]+\.)?([^/]+)")


@dataclass
class PageMetadata:
    """Descriptive metadata of one archived document."""

    title: str | None = None
    description: str | None = None
    author: str | None = None
    published: datetime.date | None = None
    #: Where ``published`` came from: ``json-ld datePublished``, ``url``, ``text: 10 мая 2021``...
    published_source: str | None = None
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
            "published_source": self.published_source if self.published else None,
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
            published_source=d.get("published_source") if published else None,
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

    @_guarded(bool)
    def author_is_organisation(self) -> bool:
        """Whether every author of the main node is an Organization (not a person)."""
        value = self.resolve(self.get("author", "creator"))
        values = value if isinstance(value, list) else [value]
        nodes = [self.resolve(v) for v in values]
        return bool(nodes) and all(
            isinstance(n, dict) and "Organization" in _types(n) for n in nodes
        )

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
    tree: lxml.html.HtmlElement, url: str | None, extensive: bool
) -> trafilatura.settings.Document:
    """trafilatura's metadata (title, author, site name...), its date by htmldate's original
    date search (markup, JSON, URL, and with ``extensive`` the text)."""
    return trafilatura.extract_metadata(tree, default_url=url, date_config=_date_params(extensive))


def _htmldate_latest(tree: lxml.html.HtmlElement, url: str | None) -> datetime.date | None:
    """htmldate with its default settings (the latest date it finds, extensive search),
    minus its copyright-year guess."""
    found = _parse_date(
        htmldate.find_date(
            tree, url=url, outputformat="%Y-%m-%d", max_date=datetime.date.today().isoformat()
        )
    )
    return None if found and _copyright_year(tree, found) else found


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


def _copyright_year(tree: lxml.html.HtmlElement, found: datetime.date) -> bool:
    """Whether ``found`` is htmldate's last resort, January 1st of a "(c) YYYY" footer year:
    the site's copyright, not the page's publication date."""
    if (found.month, found.day) != (1, 1):
        return False
    pattern = _COPYRIGHT_RE.pattern.format(year=found.year)
    return re.search(pattern, tree.text_content(), re.I) is not None


# --------------------------------------------------------------------------- dates

_META_MODIFIED = (
    "article:modified_time",
    "og:updated_time",
    "datemodified",
    "last-modified",
    "http-equiv:last-modified",
    "dc.date.modified",
    "dcterms.modified",
)
#: Dates content systems print when they have none: never a page's publication date.
_PLACEHOLDER_DATES = {
    datetime.date(1970, 1, 1),
    datetime.date(1900, 1, 1),
    datetime.date(2000, 1, 1),
    datetime.date(1999, 12, 31),
    datetime.date(2001, 1, 1),
}
_MIN_WEB_DATE = datetime.date(1991, 8, 6)  # the first web page
_URL_DATE_RE = re.compile(
    r"/((?:19|20)\d{2})[/_-]((?:0?[1-9])|(?:1[0-2]))[/_-]((?:0?[1-9])|(?:[12]\d)|(?:3[01]))(?:/|[_-]|$)"
)
#: Month names (lower-case stems, at least three letters) of the rally pages' languages.
_MONTH_STEMS: dict[str, tuple[str, ...]] = {
    "en": ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    "de": ("jän", "feb", "mär", "apr", "mai", "jun", "jul", "aug", "sep", "okt", "nov", "dez"),
    "fr": ("janv", "févr", "mars", "avr", "mai", "juin", "juil", "août", "sept", "oct", "nov",
           "déc"),
    "ru": ("янв", "фев", "мар", "апр", "мая", "июн", "июл", "авг", "сен", "окт", "ноя", "дек"),
    "uk": ("січ", "лют", "бер", "кві", "тра", "чер", "лип", "сер", "вер", "жов", "лис", "гру"),
    "be": ("сту", "лют", "сак", "кра", "тра", "чэр", "ліп", "жні", "вер", "кас", "ліс", "сне"),
    "pl": ("sty", "lut", "mar", "kwi", "maj", "cze", "lip", "sie", "wrz", "paź", "lis", "gru"),
    "lt": ("sau", "vas", "kov", "bal", "geg", "bir", "lie", "rugp", "rugs", "spa", "lap", "gruo"),
    "lv": ("janv", "febr", "mart", "apr", "maij", "jūn", "jūl", "aug", "sept", "okt", "nov",
           "dec"),
    "et": ("jaan", "veeb", "märt", "apr", "mai", "juun", "juul", "aug", "sept", "okt", "nov",
           "dets"),
    # and the replica world's other languages (da and no are covered by en and de)
    "it": ("gen", "feb", "mar", "apr", "mag", "giu", "lug", "ago", "sett", "ott", "nov", "dic"),
    "pt": ("jan", "fev", "mar", "abr", "mai", "jun", "jul", "ago", "set", "out", "nov", "dez"),
    "hu": ("jan", "febr", "márc", "ápr", "máj", "jún", "júl", "aug", "szept", "okt", "nov",
           "dec"),
}  # fmt: skip
_MONTHS: list[tuple[str, int]] = sorted(
    {(stem, month) for stems in _MONTH_STEMS.values() for month, stem in enumerate(stems, 1)},
    key=lambda item: -len(item[0]),
)
_EXTRA_MONTH_WORDS = {"май": 5, "мае": 5}
_WORD = r"([^\W\d_]{3,}\.?)"
_VISIBLE_DATE_RES = (
    # 10 October 2020, 10. Oktober 2020, 10 октября 2020 г., 10 de outubro de 2020
    ("dmy", re.compile(rf"\b(\d{{1,2}})\.?\s+(?:de\s+)?{_WORD}\s+(?:de\s+)?((?:19|20)\d{{2}})\b")),
    # October 10, 2020
    ("mdy", re.compile(rf"{_WORD}\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+((?:19|20)\d{{2}})\b")),
    # 2020 m. spalio 10 d. (lt), 2020. gada 10. oktobris (lv)
    ("ymd", re.compile(rf"\b((?:19|20)\d{{2}})\.?\s+m\.\s+{_WORD}\s+(\d{{1,2}})\s*d\b")),
    ("ydm", re.compile(rf"\b((?:19|20)\d{{2}})\.\s+gada\s+(\d{{1,2}})\.\s+{_WORD}")),
    # 2020. október 10. (hu)
    ("ymd", re.compile(rf"\b((?:19|20)\d{{2}})\.\s+{_WORD}\s+(\d{{1,2}})\.")),
    # 2020年10月10日 (ja)
    ("cjk", re.compile(r"((?:19|20)\d{2})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日")),
    # 10.10.2020, 2020-10-10
    ("num", re.compile(r"\b(\d{1,2})\.(\d{1,2})\.((?:19|20)\d{2})\b")),
    ("iso", re.compile(r"\b((?:19|20)\d{2})-(\d{2})-(\d{2})\b")),
)
#: Words before a date that make it an update, not the publication (the ten languages).
_UPDATED_RE = re.compile(
    r"(updated|modified|edited|aktualisiert|geändert|mis à jour|modifié|обновлен|изменен|"
    r"оновлен|змінен|абноўлен|zaktualizowan|zmodyfikowan|atnaujint|atjaunināt|uuendatud|"
    r"muudetud)\W{0,3}\S{0,12}\W{0,3}$",
    re.I,
)
_SKIP_CONTAINERS_RE = re.compile(r"comment|footer|related|sidebar|widget|teaser|recommend", re.I)
_VISIBLE_TEXT_CHARS = 1500  # where a byline date is; further down, dates are events


def _month(word: str) -> int | None:
    word = word.rstrip(".").lower()
    if word in _EXTRA_MONTH_WORDS:
        return _EXTRA_MONTH_WORDS[word]
    return next((month for stem, month in _MONTHS if word.startswith(stem)), None)


def _plausible(found: datetime.date | None) -> bool:
    """Not in the future, not before the web, not a placeholder."""
    if found is None:
        return False
    tomorrow = datetime.date.today() + datetime.timedelta(days=1)  # time zones ahead of ours
    return _MIN_WEB_DATE <= found <= tomorrow and found not in _PLACEHOLDER_DATES


def _url_date(url: str | None) -> datetime.date | None:
    """A full date in a URL's path: ``/2020/10/10/``, ``/2020-10-10-slug``."""
    match = _URL_DATE_RE.search(urldefrag(url or "")[0].split("?", 1)[0])
    if not match:
        return None
    with contextlib.suppress(ValueError):
        return datetime.date(*map(int, match.groups()))
    return None


def _visible_text(tree: lxml.html.HtmlElement, limit: int = _VISIBLE_TEXT_CHARS) -> str:
    """The beginning of the article's visible text (``<article>``, ``<main>``, else the body),
    without comments, footers, related links and scripts."""
    roots = tree.xpath("//article | //main") or tree.xpath("//body") or [tree]
    parts: list[str] = []
    size = 0

    def walk(node: lxml.html.HtmlElement) -> None:
        nonlocal size
        if size > limit or not isinstance(node.tag, str):
            return
        if node.tag in ("script", "style", "noscript", "footer", "nav", "aside", "template"):
            return
        if _SKIP_CONTAINERS_RE.search(f"{node.get('class', '')} {node.get('id', '')}"):
            return
        if node.text:
            parts.append(node.text)
            size += len(node.text)
        for child in node:
            walk(child)
            if child.tail:
                parts.append(child.tail)
                size += len(child.tail)

    walk(roots[0])
    return " ".join(" ".join(parts).split())[:limit]


def _visible_date(tree: lxml.html.HtmlElement) -> tuple[datetime.date, str] | None:
    """The first plausible date written in the article's text, not marked as an update.

    Numeric day-first (``10.10.2020``) and ISO forms, and month names in the ten languages
    of the rally pages (en, de, fr, ru, uk, be, pl, lt, lv, et). Returns the date and its
    source, the words it was read from (``text: 10 октября 2020``).
    """
    return _text_date(_visible_text(tree))


def _text_date(text: str) -> tuple[datetime.date, str] | None:
    """The first plausible date in ``text`` (see :func:`_visible_date`)."""
    text = text[:_VISIBLE_TEXT_CHARS]
    best: tuple[int, datetime.date, str] | None = None
    for kind, pattern in _VISIBLE_DATE_RES:
        for match in pattern.finditer(text):
            if best and match.start() >= best[0]:
                break
            if _UPDATED_RE.search(text[max(0, match.start() - 40) : match.start()]):
                continue
            groups = match.groups()
            if kind in ("num", "iso", "cjk"):
                day, month, year = (groups[0], groups[1], groups[2])
                if kind != "num":
                    year, month, day = groups
                numbers = int(year), int(month), int(day)
            else:
                word = {"dmy": groups[1], "mdy": groups[0], "ymd": groups[1], "ydm": groups[2]}
                month_number = _month(word[kind])
                if month_number is None:
                    continue
                day = {"dmy": groups[0], "mdy": groups[1], "ymd": groups[2], "ydm": groups[1]}
                year = groups[2] if kind in ("dmy", "mdy") else groups[0]
                numbers = int(year), month_number, int(day[kind])
            try:
                found = datetime.date(*numbers)
            except ValueError:
                continue
            if _plausible(found):
                best = (match.start(), found, "text: " + " ".join(match.group(0).split()))
                break
    return (best[1], best[2]) if best else None


def _choose_date(
    found: datetime.date | None,
    declared: list[tuple[datetime.date | None, str]],
    modified: set[datetime.date],
    *,
    url_date: datetime.date | None,
    text: Callable[[], tuple[datetime.date, str] | None],
    latest: Callable[[], datetime.date | None],
) -> tuple[datetime.date | None, str | None]:
    """The publication date and its source. The precedence follows the public corpora
    (docs/ARCHITECTURE.md, "Page metadata"): htmldate's original-date search (``found``),
    which reads the markup the way publishers get it right most often, unless it is
    implausible or a modification date while the page declares another publication date;
    then the page's own declarations, its URL, the visible text, and last htmldate's default
    (latest) date. Where the page declares several publication dates, htmldate does not pick
    among them: the order of ``declared`` does. A date equal to a declared one is credited
    to the declaration.
    """
    plausible = [(d, source) for d, source in declared if _plausible(d)]
    published = {d for d, _source in plausible} | ({url_date} if _plausible(url_date) else set())
    if found and not _plausible(found):
        found = None
    if found and found in modified and published and found not in published:
        found = None  # a "last modified" date where the page says when it was published
    if found and plausible and found != plausible[0][0] and found in published - {url_date}:
        return plausible[0]  # the page's declarations disagree: our precedence among them
    visible: tuple[datetime.date, str] | None = None
    if found:
        source = next((s for d, s in plausible if d == found), None)
        if source is None and found == url_date:
            source = "url"
        if source is None and (visible := _safe("visible date", text, None)):
            source = visible[1] if visible[0] == found else None
        return found, source or "htmldate"
    if plausible:
        return plausible[0]
    if _plausible(url_date):
        return url_date, "url"
    visible = _safe("visible date", text, None)
    if visible:
        return visible
    last = _safe("htmldate", latest, None)
    if _plausible(last) and last not in modified:
        return last, "htmldate (latest)"
    return None, None


# --------------------------------------------------------------------------- title, author

_TRUNCATED_RE = re.compile(r"(?:\.\.\.|…)\s*$")


def _headline(tree: lxml.html.HtmlElement) -> str | None:
    """The visible headline: the first ``<h1>`` of the article (or of the page)."""
    for path in ("//article//h1", "//main//h1", "//h1"):
        for node in tree.xpath(path)[:1]:
            return _clean(node.text_content())
    return None


def _choose_title(ours: str | None, library: str | None, headline: str | None) -> str | None:
    """The page's own title (JSON-LD headline, og:title, meta) unless it is a shortened
    form of the visible headline or of trafilatura's title: cut with an ellipsis, or
    contained in the longer one (``Musik-Stars fordern …`` for ``Abrechnung: Musik-Stars
    fordern …``)."""
    if not ours:
        return library or headline
    for longer in (headline, library):
        if not longer or longer == ours:
            continue
        if _TRUNCATED_RE.search(ours) and longer.startswith(_TRUNCATED_RE.sub("", ours)[:40]):
            return longer
        if ours.casefold() in longer.casefold() and len(longer) <= 3 * len(ours):
            return longer
    if _TRUNCATED_RE.search(ours) and library and not _TRUNCATED_RE.search(library):
        return library
    return ours


_BYLINE_PATHS = (
    '//*[@rel="author"]',
    '//*[@itemprop="author"]',
    '//*[contains(concat(" ", normalize-space(@class), " "), " author ")]',
    '//*[contains(@class, "author-name") or contains(@class, "byline__name")]',
)
_BY_RE = re.compile(r"^(?:by|von|par|por|di|af|av|от|автор(?:ка)?:?|autor(?:ka|ė|e)?:?)\s+", re.I)


def _byline(tree: lxml.html.HtmlElement) -> str | None:
    """The visible byline's name (``rel=author``, ``itemprop=author``, ``class=author``)."""
    for path in _BYLINE_PATHS:
        for node in tree.xpath(path)[:3]:
            if node.tag in ("meta", "link"):
                continue
            name = _clean(node.text_content())
            if name and len(name) <= 80:
                return _BY_RE.sub("", name)
    return None


def _choose_author(
    ours: str | None,
    bylines: list[str | None],
    site_names: set[str | None],
    *,
    ld_organisation: bool,
) -> str | None:
    """The declared author, unless it is the site or publisher (or a JSON-LD Organization)
    and the page shows a byline naming someone else (trafilatura's, then ours)."""
    sites = {_norm_name(s) for s in site_names if s}

    def site_like(value: str) -> bool:
        name = _norm_name(value)
        return any(name == s or (len(name) > 2 and s.startswith(name)) for s in sites)

    if ours and not (ld_organisation or site_like(ours)):
        return ours
    return next((b for b in bylines if b and not site_like(b)), None) or ours or _first(*bylines)


def _host(url: str) -> str | None:
    """The host's name without ``www.`` and the public suffix's last label (``ndr`` for
    ``www.ndr.de``): what a site-named byline looks like."""
    match = _URL_SITENAME_RE.match(url or "")
    return match.group(1).rsplit(".", 1)[0] if match else None


def _norm_name(value: str) -> str:
    return re.sub(r"\W+", "", value.casefold())


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
    # Site name: the JSON-LD WebSite, then its publisher (the masthead: "Frankfurter
    # Allgemeine Zeitung" rather than og:site_name "FAZ.NET") unless that is a company's
    # legal name, then og:site_name.
    publisher = ld.publisher() if ld else None
    meta.site_name = _first(
        ld.site_name() if ld else None,
        publisher if publisher and not _LEGAL_NAME_RE.search(publisher) else None,
        og_get("og:site_name"),
        publisher,
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

    # Dates the page declares, in order of precedence among themselves (see _choose_date).
    declared: list[tuple[datetime.date | None, str]] = [
        (_parse_date(ld_text("datePublished")), "json-ld datePublished"),
        (_parse_date(og_get("article:published_time")), "article:published_time"),
        *((_parse_date(v), f"meta {k}") for k in _META_DATE for v in metas.get(k, [])[:1]),
        (_safe("time", lambda: _time_published(tree), None), "<time datetime>"),
        (_parse_date(ld_text("dateCreated", "uploadDate")), "json-ld dateCreated"),
    ]
    modified = {
        d
        for d in (
            _parse_date(ld_text("dateModified")),
            *(_parse_date(v) for k in _META_MODIFIED for v in metas.get(k, [])[:1]),
        )
        if d
    }

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

    # trafilatura: main text; its metadata (title, byline, site name, and htmldate's original
    # date with the extensive search) to check ours against.
    elements = sum(1 for _ in tree.iter())
    work = _safe("analysis tree", lambda: _analysis_tree(tree, text, elements), None)
    doc = None
    if work is not None:
        meta.text = _safe("main text", lambda: _main_text(work, url, elements), None)
        extensive = elements <= MAX_ANALYSIS_ELEMENTS
        doc = _safe("trafilatura", lambda: _trafilatura_metadata(work, url, extensive), None)
    found = _parse_date(doc.date) if doc is not None else None
    if found and work is not None and _copyright_year(work, found):
        found = None
    page_url = meta.canonical_url or url
    meta.published, meta.published_source = _choose_date(
        found,
        declared,
        modified,
        url_date=_url_date(url) or _url_date(page_url),
        text=lambda: _visible_date(tree),
        latest=lambda: _htmldate_latest(work, page_url) if work is not None else None,
    )
    if doc is not None:
        meta.title = _choose_title(meta.title, _clean(doc.title), _headline(tree))
        meta.description = meta.description or _clean(doc.description)
        meta.author = _choose_author(
            meta.author,
            [_clean(doc.author), _safe("byline", lambda: _byline(tree), None)],
            {meta.site_name, ld.publisher() if ld else None, og_get("og:site_name"), _host(url)},
            ld_organisation=bool(ld and ld.author_is_organisation()),
        )
        sitename = _clean(doc.sitename)
        derived = _URL_SITENAME_RE.match(doc.url or url or "")
        if sitename and not (derived and sitename.lower() == derived.group(1).lower()):
            meta.site_name = meta.site_name or sitename  # not merely the host name
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
        if not _plausible(meta.published):
            meta.published = None
        meta.published_source = "pdf metadata CreationDate" if meta.published else None

    def first_pages_text() -> str | None:
        parts = []
        for page in reader.pages[:PDF_TEXT_PAGES]:
            parts.append(_safe("pdf page", page.extract_text, "") or "")
        return "\n".join(parts).strip() or None

    meta.text = _safe("pdf text", first_pages_text, None)
    if meta.published is None and meta.text:
        found = _safe("pdf text date", lambda: _text_date(meta.text or ""), None)
        if found:
            meta.published, source = found
            meta.published_source = f"pdf {source}"
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
