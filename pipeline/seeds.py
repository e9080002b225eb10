"""Seed sources -> rally entries: a curated index page (HTML) or a CSV file.

The index page lists rallies one per line, each line starting with its place and a colon:
"Country, City: link report", "Country: link report" or "City: link report" (the country
then comes from the gazetteer). Places are checked against the gazetteer, so ordinary
sentences ending in a colon are not mistaken for entries, and spelling variants are
normalised ("Kopenhagen" -> "Copenhagen") with the original text kept alongside.
"""

from __future__ import annotations

import csv
import io
import os
import re
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlsplit

from bs4 import BeautifulSoup, Comment, NavigableString, Tag, UnicodeDammit
from w3lib.url import safe_url_string

from pipeline.gazetteer import Gazetteer, Place, default_gazetteer, fold
from pipeline.netpolicy import AddressRefused, address_policy
from pipeline.netpolicy import urlopen as guarded_urlopen

__all__ = [
    "CSV_COLUMNS",
    "BadLink",
    "DEFAULT_SOURCE",
    "FUZZY_LOOKUPS",
    "LINK_KINDS",
    "MAX_URL_CHARS",
    "SEED_MAXSIZE_SETTING",
    "USER_AGENT",
    "SeedEntry",
    "SeedError",
    "SeedLink",
    "kind_from_label",
    "SeedSource",
    "load_source",
    "max_source_bytes",
    "parse_csv",
    "parse_index_html",
    "web_url",
]

LINK_KINDS = ("report", "photo_gallery", "video")
DEFAULT_SOURCE = "https://belaruswomen.org/ru/news/you-go-girl"
USER_AGENT = "linkarchive/0.1 (+https://github.com/linkarchive)"
CSV_COLUMNS = ("country", "city", "kind", "label", "url")
FETCH_TIMEOUT = 30.0
# The largest seed source read, file or download: ``LINKARCHIVE_SEED_MAXSIZE`` (bytes, or
# with a unit: "50MB", "64MiB"). Larger sources are refused before they are read.
SEED_MAXSIZE_SETTING = "LINKARCHIVE_SEED_MAXSIZE"
MAX_SOURCE_BYTES = 20 * 1024 * 1024
MAX_URL_CHARS = 2048  # the catalog's column for URLs
MAX_LABEL_CHARS = 500  # and for labels
HTML_SUFFIXES = (".html", ".htm")


class SeedError(Exception):
    """One readable line for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


@dataclass(frozen=True)
class SeedLink:
    """One link of an entry: its kind (one of LINK_KINDS), anchor text and absolute URL.

    ``url`` is canonical (see :func:`web_url`: IDNA host, percent-encoded as browsers send
    it); ``original`` is the link as the source wrote it, when that differs.
    """

    kind: str
    label: str
    url: str
    original: str | None = field(default=None, compare=False)


@dataclass
class SeedEntry:
    """One rally place and its links.

    ``country``/``city`` are canonical names; ``*_original`` the text as the source wrote
    it. When the source names only a city, ``country_original`` is the canonical country
    name (the source has no country text); ``city``/``city_original`` are None for a
    country-only entry.
    """

    country: str
    country_code: str
    country_original: str
    city: str | None
    city_original: str | None
    links: list[SeedLink] = field(default_factory=list)


@dataclass(frozen=True)
class SeedSource:
    """A seed source as read: where from, its entries, and its bytes.

    ``problems``: the rows (CSV) or links (page) skipped, one line each naming the row or
    link and why; ``duplicates``: rows or links that repeat an earlier one (imported once).
    """

    location: str
    entries: list[SeedEntry]
    body: bytes
    content_type: str
    problems: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    unit: str = "rows"  # what a problem is about: "rows" (CSV) or "links" (page)


# --- link kinds ---------------------------------------------------------------------------

# Matched at the start of a word, accents ignored: "Photos", "Fotogalerie", "фотоотчёт".
_PHOTO_WORDS = re.compile(r"\b(?:photo|foto|фото|galer|galler|галере|галерэ)")
_VIDEO_WORDS = re.compile(r"\b(?:video|видео|відео|відэа|youtube)")


def _plain(text: str) -> str:
    """Casefolded text without accents (spaces kept)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def kind_from_label(label: str) -> str:
    """The link kind an anchor text announces: photo_gallery, video, else report."""
    plain = _plain(label)
    if _PHOTO_WORDS.search(plain):
        return "photo_gallery"
    if _VIDEO_WORDS.search(plain):
        return "video"
    return "report"


# --- places -------------------------------------------------------------------------------

_MAX_PLACE_CHARS = 80
_MAX_PART_WORDS = 5
_SPACES = re.compile(r"\s+")
_PARENS = re.compile(r"\(([^()]*)\)")
_LEADING_JUNK = re.compile(r"^[\W_]+")
_TRAILING_JUNK = re.compile(r"[\s\-–—:;.,]+$")


@dataclass(frozen=True)
class _Resolved:
    """A place line resolved through the gazetteer."""

    country: str
    country_code: str
    country_original: str
    city: str | None
    city_original: str | None
    exact: bool  # every name matched exactly (no misspelling fallback)
    country_given: bool  # the line names a country, not only a city


def _clean(text: str) -> str:
    return _SPACES.sub(" ", text.replace("\xa0", " ")).strip()


def _split_top_level(text: str, separators: str) -> list[str]:
    """Split on ``separators`` outside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth = max(0, depth - 1)
        elif char in separators and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _place_and_rest(line: str) -> tuple[str, str] | None:
    """Split "Place: rest" at the first colon outside parentheses."""
    pieces = _split_top_level(line, ":：")
    if len(pieces) < 2:
        return None
    place = _TRAILING_JUNK.sub("", _LEADING_JUNK.sub("", pieces[0])).strip()
    rest = line[len(pieces[0]) + 1 :].strip()
    if not place or len(place) > _MAX_PLACE_CHARS:
        return None
    return place, rest


def _names_of(text: str) -> list[str]:
    """A place part and the names in its parentheses: "Sicily (Nealel, Messina)" -> 3."""
    main = _clean(_PARENS.sub(" ", text))
    inner = [_clean(n) for group in _PARENS.findall(text) for n in re.split(r"[,;/]", group)]
    return [n for n in [main, *inner] if n]


# Guessing a misspelt place compares it with every name in the gazetteer (up to 50 ms):
# a source gets this many guesses, beyond which places must be spelt as the gazetteer does
# (a real index page needs a handful; a huge or hostile one would take hours otherwise).
FUZZY_LOOKUPS = 200


class _PlaceResolver:
    def __init__(self, gazetteer: Gazetteer, guesses: int = FUZZY_LOOKUPS) -> None:
        self.gazetteer = gazetteer
        self.guesses_left = guesses
        self.out_of_guesses = False
        self._resolved: dict[tuple[str, bool], _Resolved | None] = {}

    def may_guess(self) -> bool:
        if self.guesses_left > 0:
            self.guesses_left -= 1
            return True
        self.out_of_guesses = True
        return False

    def budget_problem(self) -> list[str]:
        """One line when the guesses ran out, else none."""
        if not self.out_of_guesses:
            return []
        return [
            f"spelling guesses after {FUZZY_LOOKUPS} unknown place names: later places "
            "count only when spelt as in the gazetteer (an unusually long source)"
        ]

    def country(self, text: str, fuzzy: bool) -> tuple[str, str, bool] | None:
        text = _clean(text)
        if not text or len(text.split()) > _MAX_PART_WORDS:
            return None
        if re.fullmatch(r"[A-Z]{2}", text):
            return None  # "PS:", "NB:" - two capitals on a page are rarely a country code
        found = self.gazetteer.country(text, fuzzy=False)
        if found is not None:
            return found[0], found[1], True
        if fuzzy and self.may_guess():
            found = self.gazetteer.country(text, fuzzy=True)
            if found is not None:
                return found[0], found[1], False
        return None

    def city(
        self, text: str, country_code: str | None, fuzzy: bool
    ) -> tuple[Place, str, bool] | None:
        """(place, canonical city name, exact) of a city part, or None."""
        names = _names_of(text)
        if not names or any(len(n.split()) > _MAX_PART_WORDS for n in names):
            return None
        main = _clean(_PARENS.sub(" ", text))
        for exact in (True, False) if fuzzy else (True,):
            for position, name in enumerate(names):
                if not exact and not self.may_guess():
                    return None
                place = self.gazetteer.city(name, country_code, fuzzy=not exact)
                if place is None or (country_code and place.country_code != country_code):
                    continue
                # A region with towns in parentheses keeps its own name: "Sicily (Messina)".
                canonical = main if position > 0 and main else place.city or main
                return place, canonical, exact
        return None

    def resolve(self, place_text: str, fuzzy: bool = True) -> _Resolved | None:
        """The place a line starts with (each text looked up once), or None."""
        key = (place_text, fuzzy)
        if key not in self._resolved:
            self._resolved[key] = self._resolve(place_text, fuzzy)
        return self._resolved[key]

    def _resolve(self, place_text: str, fuzzy: bool) -> _Resolved | None:
        parts = [_clean(p) for p in _split_top_level(place_text, ",")]
        if any(not p for p in parts):
            return None
        if len(parts) == 1:
            return self._single(parts[0], fuzzy)
        # "Country, City" (or "City, Country"); a longer list reads "Country, Region, City".
        for country_part, city_parts in ((parts[0], parts[1:]), (parts[-1], parts[:-1])):
            country = self.country(country_part, fuzzy)
            if country is None:
                continue
            name, code, exact = country
            city_text = ", ".join(city_parts)
            candidates = [city_text] if len(city_parts) == 1 else [*reversed(city_parts)]
            canonical = _clean(_PARENS.sub(" ", city_parts[-1])) or city_text
            for candidate in candidates:
                found = self.city(candidate, code, fuzzy)
                if found is not None:
                    canonical, exact = found[1], exact and found[2]
                    break
            return _Resolved(name, code, country_part, canonical, city_text, exact, True)
        return None

    def _single(self, text: str, fuzzy: bool) -> _Resolved | None:
        for allow_fuzzy in (False, True) if fuzzy else (False,):
            # "USA (New York, Boston)" is the country; "Sicily (Messina)" is tried as a city.
            country = self.country(_clean(_PARENS.sub(" ", text)), allow_fuzzy)
            if country is not None:
                name, code, exact = country
                return _Resolved(name, code, text, None, None, exact, True)
            found = self.city(text, None, allow_fuzzy)
            if found is not None:
                place, canonical, exact = found
                return _Resolved(
                    place.country, place.country_code, place.country, canonical, text, exact, False
                )
        return None


# --- HTML ---------------------------------------------------------------------------------

_CONTENT_SELECTORS = (
    ".entry-content",
    ".post-content",
    ".article-content",
    "[itemprop=articleBody]",
    "article",
    "main",
    "[role=main]",
    "#content",
)
_SKIPPED = {"nav", "header", "footer", "aside", "form", "script", "style", "noscript", "template"}
_SKIPPED_ROLES = {"navigation", "banner", "contentinfo", "complementary", "search"}
_ENTRY_BLOCKS = {"p", "li", "div", "h2", "h3", "h4", "h5", "h6", "td", "dd", "dt"}
_BLOCKS = _ENTRY_BLOCKS | {
    "ul", "ol", "dl", "table", "tr", "h1", "blockquote", "section", "article", "pre",
    "figure", "main", "aside", "nav", "header", "footer", "form", "hr",
}  # fmt: skip


@dataclass
class _Line:
    """The text of one visual line of a block and the anchors on it."""

    parts: list[str] = field(default_factory=list)
    anchors: list[Tag] = field(default_factory=list)

    @property
    def text(self) -> str:
        return _clean("".join(self.parts))


def _is_skipped(tag: Tag, root: Tag) -> bool:
    for node in (tag, *tag.parents):
        if node is root or not isinstance(node, Tag):
            return False
        if node.name in _SKIPPED or node.get("role") in _SKIPPED_ROLES:
            return True
    return False


def _entry_blocks(root: Tag) -> Iterator[Tag]:
    for tag in root.find_all(_ENTRY_BLOCKS):
        if tag.find(_BLOCKS) is None and not _is_skipped(tag, root):
            yield tag


def _inside_skipped(node: NavigableString, block: Tag) -> bool:
    parent = node.parent
    while parent is not None and parent is not block:
        if parent.name in _SKIPPED:
            return True
        parent = parent.parent
    return False


def _lines(block: Tag) -> list[_Line]:
    """Split a block at its ``<br>`` line breaks."""
    lines = [_Line()]
    for node in block.descendants:
        if isinstance(node, Tag):
            if node.name == "br":
                lines.append(_Line())
            elif node.name == "a" and node.get("href"):
                lines[-1].anchors.append(node)
        elif (
            isinstance(node, NavigableString)
            and not isinstance(node, Comment)
            and not _inside_skipped(node, block)
        ):
            lines[-1].parts.append(str(node))
    return lines


class BadLink(ValueError):
    """Why a link is not a web page's URL (one short phrase)."""


# Schemes that are not web pages, and what they are instead.
_NOT_WEB = {
    "javascript": "a script",
    "mailto": "an e-mail address",
    "tel": "a phone number",
    "sms": "a phone number",
    "data": "inline data",
    "file": "a file on someone's disk",
}
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):")
_TAB_NEWLINE = re.compile(r"[\t\n\r]")
_C0_AND_SPACE = "".join(map(chr, range(0x21)))
_HOST_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_\-]{0,61}[a-z0-9_])?$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def web_url(href: str, base_url: str = "", encoding: str = "utf-8") -> str:
    """The canonical form of an http(s) link ``href`` (resolved against ``base_url`` if
    given): no fragment, IDNA (punycode) host in lower case, no default port, spaces and
    other characters percent-encoded as browsers send them (the query in the page's
    ``encoding``), the form the crawler fetches. Raises BadLink saying why not."""
    # Browsers drop tabs and newlines anywhere in a URL, and spaces around it.
    text = _TAB_NEWLINE.sub("", href).strip(_C0_AND_SPACE)
    if not text:
        raise BadLink("an empty link")
    scheme = _SCHEME.match(text)
    if scheme and scheme.group(1).lower() not in ("http", "https"):
        name = scheme.group(1).lower()
        what = _NOT_WEB.get(name, "not a web page")
        raise BadLink(f"a {name}: link ({what}), not an http(s) URL")
    if not scheme and not base_url:
        raise BadLink("a relative URL: give an absolute http(s) URL")
    try:
        absolute = urldefrag(urljoin(base_url, text) if base_url else text).url
        try:
            url = safe_url_string(absolute, encoding=encoding)
        except (UnicodeError, LookupError):  # a character the page's charset cannot write
            url = safe_url_string(absolute)
        parts = urlsplit(url)
        port = parts.port
    except (ValueError, UnicodeError) as exc:
        raise BadLink(f"a malformed URL ({_one_line(str(exc))})") from None
    if parts.scheme not in ("http", "https"):
        raise BadLink("a relative link, and the page gives no web address to resolve it")
    host = parts.hostname or ""
    if not host:
        raise BadLink("a URL without a host name")
    if ":" not in host:  # not an IPv6 address: DNS labels (IDNA-encoded above)
        labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
        if len(host) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
            raise BadLink(f"an invalid host name {parts.netloc.rpartition('@')[2]!r}")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[parts.scheme]:
        netloc = f"{netloc}:{port}"
    userinfo = parts.netloc.rpartition("@")[0]
    url = parts._replace(netloc=f"{userinfo}@{netloc}" if userinfo else netloc).geturl()
    if len(url) > MAX_URL_CHARS:
        raise BadLink(f"a URL longer than {MAX_URL_CHARS} characters")
    return url


def _one_line(text: str, limit: int = 120) -> str:
    """``text`` on one line, at most ``limit`` characters (a hostile href can be huge)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _absolute_url(href: str, base_url: str) -> str | None:
    """``href`` as a canonical http(s) URL (see :func:`web_url`), or None."""
    try:
        return web_url(href, base_url)
    except BadLink:
        return None


def _anchor_label(anchor: Tag) -> str:
    label = _clean(anchor.get_text(" "))
    if not label:
        image = anchor.find("img", alt=True)
        label = _clean(str(image["alt"])) if image else ""
    return label or _clean(str(anchor.get("title") or anchor.get("aria-label") or ""))


class _Collected:
    """Entries by place, each link once per place; the links skipped and those repeated."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str | None], SeedEntry] = {}
        self.seen: dict[tuple[str, str | None], dict[str, str]] = {}  # url -> where first
        self.problems: list[str] = []
        self.duplicates: list[str] = []

    def add(self, resolved: _Resolved, links: list[SeedLink], where: str | None = None) -> None:
        """Add a place and its links; a link the place already has is counted, not added."""
        key = (resolved.country_code, fold(resolved.city) if resolved.city else None)
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = SeedEntry(
                country=resolved.country,
                country_code=resolved.country_code,
                country_original=resolved.country_original,
                city=resolved.city,
                city_original=resolved.city_original,
                links=[],
            )
            self.seen[key] = {}
        for link in links:
            first = self.seen[key].get(link.url)
            if first is not None:
                self.duplicates.append(f"{where} (as {first})" if where else link.url)
                continue
            self.seen[key][link.url] = where or link.url
            entry.links.append(link)


def _seed_link(label: str, url: str, written: str, kind: str | None = None) -> SeedLink:
    label = label[:MAX_LABEL_CHARS]
    original = written.strip() if written.strip() != url else None
    return SeedLink(kind or kind_from_label(label), label, url, original)


def _collect(root: Tag, base_url: str, resolver: _PlaceResolver, encoding: str) -> _Collected:
    found = _Collected()
    for block in _entry_blocks(root):
        for line in _lines(block):
            split = _place_and_rest(line.text)
            if split is None:
                continue
            place_text, rest = split
            # Only a line with links may name its place misspelt (see below): one without
            # needs no guess, and most lines of a long text have none.
            resolved = resolver.resolve(place_text, fuzzy=bool(line.anchors))
            if resolved is None:
                continue
            links: list[SeedLink] = []
            for anchor in line.anchors:
                href = str(anchor["href"])
                if href.strip().startswith("#"):
                    continue  # a place on this page, not a report
                label = _anchor_label(anchor)
                try:
                    url = web_url(href, base_url, encoding)
                except BadLink as why:  # the line is a rally's: its reader should know
                    found.problems.append(
                        f"link {_one_line(label or '(no text)', 60)!r} of {place_text!r} "
                        f"({_one_line(href, 80)!r}): {why}"
                    )
                    continue
                links.append(_seed_link(label or url, url, href))
            if not links:
                # A line without links is an entry only when it is nothing but a place
                # ("Belgium, Brüssel:") or clearly "Country, City"; "Date: 10 October" is not.
                clearly_place = resolved.country_given and resolved.city is not None
                if not resolved.exact or (rest and not clearly_place):
                    continue
            found.add(resolved, links)
    return found


def _soup(html: str | bytes, encoding: str | None = None) -> tuple[BeautifulSoup, str]:
    """The parsed page and its character encoding (from the HTTP header, else the page)."""
    if isinstance(html, bytes):
        known = [encoding] if encoding else None
        dammit = UnicodeDammit(html, known_definite_encodings=known, is_html=True)
        if dammit.unicode_markup is not None:
            return BeautifulSoup(dammit.unicode_markup, "lxml"), dammit.original_encoding or "utf-8"
    return BeautifulSoup(html, "lxml"), "utf-8"


def _parse_soup(
    soup: BeautifulSoup, base_url: str, gazetteer: Gazetteer | None, encoding: str = "utf-8"
) -> _Collected:
    base_tag = soup.find("base", href=True)
    if isinstance(base_tag, Tag):
        base_url = urljoin(base_url, str(base_tag["href"]))
    resolver = _PlaceResolver(gazetteer or default_gazetteer())
    tried: set[int] = set()
    for selector in _CONTENT_SELECTORS:
        root = soup.select_one(selector)
        if root is None or id(root) in tried:
            continue
        tried.add(id(root))
        found = _collect(root, base_url, resolver, encoding)
        if found.entries:
            break
    else:
        found = _collect(soup.body or soup, base_url, resolver, encoding)
    found.problems.extend(resolver.budget_problem())
    return found


def parse_index_html(
    html: str | bytes,
    base_url: str,
    gazetteer: Gazetteer | None = None,
    problems: list[str] | None = None,
) -> list[SeedEntry]:
    """Rally entries of an index page, in page order, repeated places merged.

    Only lines of the main content that start with a known place and a colon count, and
    only the links on those lines. Relative links resolve against ``base_url`` (or the
    page's ``<base href>``). Links of those lines that are no web page (``javascript:``,
    ``mailto:``, ``tel:``, malformed) are skipped, each named in ``problems`` if given.
    ``bytes`` are decoded from the page's own charset.
    """
    soup, encoding = _soup(html)
    found = _parse_soup(soup, base_url, gazetteer, encoding)
    if problems is not None:
        problems.extend(found.problems)
    return list(found.entries.values())


def _canonical_url(soup: BeautifulSoup) -> str | None:
    for tag, attr in (
        (soup.find("link", rel="canonical", href=True), "href"),
        (soup.find("meta", property="og:url", content=True), "content"),
    ):
        if isinstance(tag, Tag):
            url = _absolute_url(str(tag[attr]), "")
            if url:
                return url
    return None


# --- CSV ----------------------------------------------------------------------------------


def _normal_kind(kind: str) -> str:
    return re.sub(r"[\s\-]+", "_", kind.strip().lower())


_REQUIRED_COLUMNS = ("country", "url")


def _csv_header(row: list[str]) -> list[str | None]:
    """Each column's name (None for an unnamed one); city, kind and label may be missing.

    An unknown column refuses the file: a typo ("lable") must not lose a column in silence.
    """
    names = [cell.strip().lower() for cell in row]
    named = [name for name in names if name]  # a spreadsheet's trailing commas name none
    wrong = [f"no {name} column" for name in _REQUIRED_COLUMNS if name not in names]
    wrong += [f"column {n!r} twice" for n in sorted({n for n in named if named.count(n) > 1})]
    wrong += [f"unknown column {name!r}" for name in named if name not in CSV_COLUMNS]
    if wrong:
        raise SeedError(
            f"line 1: expected the header {','.join(CSV_COLUMNS)}, "
            f"found {_one_line(','.join(cell.strip() for cell in row))} ({wrong[0]})"
        )
    return [name or None for name in names]


def parse_csv(
    text: str,
    gazetteer: Gazetteer | None = None,
    problems: list[str] | None = None,
    duplicates: list[str] | None = None,
) -> list[SeedEntry]:
    """Entries of a CSV file with the header ``country,city,kind,label,url``.

    One row per link (a row without kind, label and url records a place with no link yet);
    rows of the same place merge, a link listed twice for one place is kept once (its row
    named in ``duplicates`` if given); the header may omit city, kind and label. A bad row
    raises SeedError naming its line; given a ``problems`` list, each bad row's error goes
    there instead and the row is skipped (a file whose rows are all bad still raises, as
    does a bad header).
    """
    gazetteer = gazetteer or default_gazetteer()
    place_of = _CsvPlaces(gazetteer)
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    header: list[str | None] | None = None
    found = _Collected()
    end = 0  # the last line read
    while True:
        begin = end + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            end = reader.line_num
            error = SeedError(f"{_lines_named(begin, end)}: malformed CSV ({exc})")
            if problems is None or header is None:
                raise error from exc
            problems.append(str(error))
            continue
        end = reader.line_num
        if not any(cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = _csv_header(row)
            continue
        where = _lines_named(begin, end)
        try:
            if len(row) != len(header):
                hint = " (an unclosed quote?)" if end > begin else ""
                raise SeedError(f"{where}: expected {len(header)} fields, found {len(row)}{hint}")
            values = dict.fromkeys(CSV_COLUMNS, "")
            values.update(
                (name, cell.strip()) for name, cell in zip(header, row, strict=True) if name
            )
            resolved, links = _csv_row(values, where, place_of)
        except SeedError as exc:
            if problems is None:
                raise
            problems.append(str(exc))
            continue
        found.add(resolved, links, where)
    if header is None:
        raise SeedError(f"line 1: empty file, expected the header {','.join(CSV_COLUMNS)}")
    if problems is not None:
        problems.extend(place_of.resolver.budget_problem())
    if problems and not found.entries:
        more = f" (and {len(problems) - 1} more bad rows)" if len(problems) > 1 else ""
        raise SeedError(f"no valid row: {problems[0]}{more}")
    if duplicates is not None:
        duplicates.extend(found.duplicates)
    return list(found.entries.values())


def _lines_named(begin: int, end: int) -> str:
    return f"line {end}" if end <= begin else f"lines {begin}-{end}"


class _CsvPlaces:
    """A CSV row's place, each (country, city) text resolved once (large files repeat them)."""

    def __init__(self, gazetteer: Gazetteer) -> None:
        self.gazetteer = gazetteer
        self.resolver = _PlaceResolver(gazetteer)
        self.known: dict[tuple[str, str], _Resolved | str] = {}

    def __call__(self, country_text: str, city_text: str, where: str) -> _Resolved:
        key = (country_text, city_text)
        if key not in self.known:
            self.known[key] = self._resolve(country_text, city_text)
        found = self.known[key]
        if isinstance(found, str):
            raise SeedError(f"{where}: {found}")
        return found

    def _resolve(self, country_text: str, city_text: str) -> _Resolved | str:
        if not country_text:
            return "the country is missing"
        country = self.gazetteer.country(country_text, fuzzy=False)
        if country is None:
            guess = self.gazetteer.country(country_text) if self.resolver.may_guess() else None
            hint = f" (did you mean {guess[0]}?)" if guess else ""
            return f"unknown country {_one_line(country_text, 80)!r}{hint}"
        city: str | None = None
        if city_text:
            found = self.resolver.city(city_text, country[1], fuzzy=True)
            city = found[1] if found else _clean(_PARENS.sub(" ", city_text)) or city_text
        return _Resolved(country[0], country[1], country_text, city, city_text or None, True, True)


def _csv_row(
    values: dict[str, str], where: str, place_of: _CsvPlaces
) -> tuple[_Resolved, list[SeedLink]]:
    resolved = place_of(_clean(values["country"]), _clean(values["city"]), where)
    kind, label, url = _normal_kind(values["kind"]), _clean(values["label"]), values["url"]
    if not url:
        if kind or label:
            raise SeedError(f"{where}: a url is required when kind or label is given")
        return resolved, []
    try:
        absolute = web_url(url)
    except BadLink as why:
        raise SeedError(f"{where}: invalid URL {_one_line(url, 80)!r}: {why}") from None
    if kind and kind not in LINK_KINDS:
        expected = ", ".join(LINK_KINDS)
        raise SeedError(
            f"{where}: unknown kind {_one_line(values['kind'], 40)!r} (use one of {expected})"
        )
    kind = kind or (kind_from_label(label) if label else "report")
    return resolved, [_seed_link(label or kind.replace("_", " "), absolute, url, kind)]


# --- sources ------------------------------------------------------------------------------


def _is_url(source: str) -> bool:
    return re.match(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://", source) is not None


def max_source_bytes() -> int:
    """The largest seed source read: ``LINKARCHIVE_SEED_MAXSIZE`` (default 20 MiB)."""
    text = os.environ.get(SEED_MAXSIZE_SETTING, "").strip()
    if not text:
        return MAX_SOURCE_BYTES
    match = re.fullmatch(r"(\d+)\s*([kmg]?)(i?b)?", text.lower())
    if match is None or int(match[1]) == 0:
        raise SeedError(
            f"{SEED_MAXSIZE_SETTING}={text!r}: give a size in bytes, or e.g. 50MB or 64MiB"
        )
    return int(match[1]) * 1024 ** " kmg".index(match[2] or " ")


def _mebibytes(size: int) -> str:
    if size < 1024 * 1024:
        return f"{size} bytes"
    return f"{size / (1024 * 1024):.1f} MiB".replace(".0 MiB", " MiB")


def _too_large(where: str, size: int | None, limit: int) -> SeedError:
    got = f"{_mebibytes(size)}, more" if size else "more"
    return SeedError(
        f"{where} is {got} than the seed source limit of {_mebibytes(limit)} "
        f"({SEED_MAXSIZE_SETTING} sets it): not read"
    )


def _fetch(url: str) -> tuple[bytes, str, str | None, str]:
    """(body, content type, charset, final URL) of ``url``, at most max_source_bytes()."""
    limit = max_source_bytes()
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "*/*"})
    policy = address_policy()  # a bad setting is the operator's error, not the URL's
    try:
        with guarded_urlopen(request, timeout=FETCH_TIMEOUT, policy=policy) as response:
            headers: Message = response.headers
            length = headers.get("Content-Length", "")
            if length.strip().isdigit() and int(length) > limit:  # refused before reading
                raise _too_large(url, int(length), limit)
            body = response.read(limit + 1)
            final_url = response.geturl() or url
    except AddressRefused as exc:  # never fetched: nothing to tell a port scanner
        raise SeedError(f"cannot fetch {url}: {exc}") from exc
    except urllib.error.HTTPError as exc:
        raise SeedError(f"cannot fetch {url}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise SeedError(f"cannot reach {url}: {exc.reason}") from exc
    except (OSError, ValueError) as exc:  # timeouts, resets, malformed responses
        raise SeedError(f"cannot fetch {url}: {exc}") from exc
    if len(body) > limit:
        raise _too_large(url, None, limit)
    return body, headers.get_content_type(), headers.get_content_charset(), final_url


def _decode_csv(data: bytes, where: str, charset: str | None = None) -> str:
    try:
        return data.decode(charset or "utf-8-sig")
    except (UnicodeDecodeError, LookupError) as exc:
        raise SeedError(f"{where}: not a UTF-8 text file ({exc})") from exc


def _from_csv(location: str, data: bytes, content_type: str, charset: str | None) -> SeedSource:
    problems: list[str] = []
    duplicates: list[str] = []
    text = _decode_csv(data, location, charset)
    entries = parse_csv(text, problems=problems, duplicates=duplicates)
    return SeedSource(location, entries, data, content_type, problems, duplicates, "rows")


def _from_html(
    location: str, data: bytes, content_type: str, charset: str | None, base_url: str | None
) -> SeedSource:
    soup, encoding = _soup(data, charset)
    # A saved page's relative links belong to the site it was saved from, not to the disk.
    base = base_url or _canonical_url(soup) or Path(location).as_uri()
    found = _parse_soup(soup, base, None, encoding)
    entries = list(found.entries.values())
    return SeedSource(
        location, entries, data, content_type, found.problems, found.duplicates, "links"
    )


def _load_url(url: str) -> SeedSource:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise SeedError(f"unsupported source {url!r}: use an http(s) URL or a .html/.csv file")
    if not parts.hostname:
        raise SeedError(f"invalid URL {url!r}: no host name")
    body, content_type, charset, final_url = _fetch(url)
    if content_type in ("text/csv", "application/csv") or parts.path.lower().endswith(".csv"):
        return _from_csv(url, body, content_type, charset)
    if "html" not in content_type and "xml" not in content_type and content_type != "text/plain":
        raise SeedError(f"{url}: expected an HTML page or a CSV file, got {content_type}")
    return _from_html(url, body, content_type, charset, final_url)


def _load_file(source: str) -> SeedSource:
    path = Path(source).expanduser().resolve()
    if not path.exists():
        raise SeedError(f"seed file not found: {path}")
    if not path.is_file():
        raise SeedError(f"not a file: {path}")
    suffix = path.suffix.lower()
    if suffix not in (*HTML_SUFFIXES, ".csv"):
        raise SeedError(
            f"unsupported file type {suffix or '(none)'!r} for {path}: "
            "use a .html, .htm or .csv file"
        )
    limit = max_source_bytes()
    try:
        size = path.stat().st_size
        if size > limit:  # refused before a byte is read
            raise _too_large(str(path), size, limit)
        with path.open("rb") as file:
            data = file.read(limit + 1)  # it may have grown since
    except OSError as exc:
        raise SeedError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise _too_large(str(path), None, limit)
    if suffix == ".csv":
        return _from_csv(str(path), data, "text/csv", None)
    return _from_html(str(path), data, "text/html", None, None)


def load_source(source: str) -> SeedSource:
    """Read a seed source: an http(s) URL, or a local .html/.htm/.csv file.

    Returns its canonical identifier (the URL, or the absolute file path), its entries
    and the bytes read (kept so an import can be archived). Raises SeedError when the
    source cannot be read or holds no rally entries.
    """
    source = source.strip()
    if not source:
        raise SeedError("no seed source given: pass a URL or a .html/.csv file")
    loaded = _load_url(source) if _is_url(source) else _load_file(source)
    if not loaded.entries:
        skipped = loaded.problems
        more = f" and {len(skipped) - 1} more" if len(skipped) > 1 else ""
        why = f" (skipped {skipped[0]}{more})" if skipped else ""
        raise SeedError(f"no rally entries found in {loaded.location}{why}")
    return loaded
