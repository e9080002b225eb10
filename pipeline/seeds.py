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

from pipeline.gazetteer import Gazetteer, Place, default_gazetteer, fold
from pipeline.netpolicy import AddressRefused, address_policy
from pipeline.netpolicy import urlopen as guarded_urlopen

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_SOURCE",
    "LINK_KINDS",
    "USER_AGENT",
    "SeedEntry",
    "SeedError",
    "SeedLink",
    "kind_from_label",
    "SeedSource",
    "load_source",
    "parse_csv",
    "parse_index_html",
]

LINK_KINDS = ("report", "photo_gallery", "video")
DEFAULT_SOURCE = "https://belaruswomen.org/ru/news/you-go-girl"
USER_AGENT = "linkarchive/0.1 (+https://github.com/linkarchive)"
CSV_COLUMNS = ("country", "city", "kind", "label", "url")
FETCH_TIMEOUT = 30.0
MAX_SOURCE_BYTES = 20 * 1024 * 1024
HTML_SUFFIXES = (".html", ".htm")


class SeedError(Exception):
    """One readable line for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


@dataclass(frozen=True)
class SeedLink:
    """One link of an entry: its kind (one of LINK_KINDS), anchor text and absolute URL."""

    kind: str
    label: str
    url: str


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
    """A seed source as read: where from, its entries, and its bytes."""

    location: str
    entries: list[SeedEntry]
    body: bytes
    content_type: str
    problems: list[str] = field(default_factory=list)  # rows skipped, each naming its line


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


class _PlaceResolver:
    def __init__(self, gazetteer: Gazetteer) -> None:
        self.gazetteer = gazetteer

    def country(self, text: str, fuzzy: bool) -> tuple[str, str, bool] | None:
        text = _clean(text)
        if not text or len(text.split()) > _MAX_PART_WORDS:
            return None
        if re.fullmatch(r"[A-Z]{2}", text):
            return None  # "PS:", "NB:" - two capitals on a page are rarely a country code
        found = self.gazetteer.country(text, fuzzy=False)
        if found is not None:
            return found[0], found[1], True
        if fuzzy:
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
                place = self.gazetteer.city(name, country_code, fuzzy=not exact)
                if place is None or (country_code and place.country_code != country_code):
                    continue
                # A region with towns in parentheses keeps its own name: "Sicily (Messina)".
                canonical = main if position > 0 and main else place.city or main
                return place, canonical, exact
        return None

    def resolve(self, place_text: str, fuzzy: bool = True) -> _Resolved | None:
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


def _absolute_url(href: str, base_url: str) -> str | None:
    """``href`` made absolute, without fragment; None unless a valid http(s) URL."""
    try:
        url = urldefrag(urljoin(base_url, href.strip())).url
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or re.search(r"\s", url):
        return None
    return url


def _anchor_label(anchor: Tag) -> str:
    label = _clean(anchor.get_text(" "))
    if not label:
        image = anchor.find("img", alt=True)
        label = _clean(str(image["alt"])) if image else ""
    return label or _clean(str(anchor.get("title") or anchor.get("aria-label") or ""))


def _entries_in(root: Tag, base_url: str, resolver: _PlaceResolver) -> list[SeedEntry]:
    entries: dict[tuple[str, str | None], SeedEntry] = {}
    seen: dict[tuple[str, str | None], set[str]] = {}
    for block in _entry_blocks(root):
        for line in _lines(block):
            split = _place_and_rest(line.text)
            if split is None:
                continue
            place_text, rest = split
            resolved = resolver.resolve(place_text)
            if resolved is None:
                continue
            links: list[SeedLink] = []
            for anchor in line.anchors:
                href = str(anchor["href"]).strip()
                if href.startswith("#"):
                    continue  # a place on this page, not a report
                url = _absolute_url(href, base_url)
                if url is not None:
                    label = _anchor_label(anchor) or url
                    links.append(SeedLink(kind_from_label(label), label, url))
            if not links:
                # A line without links is an entry only when it is nothing but a place
                # ("Belgium, Brüssel:") or clearly "Country, City"; "Date: 10 October" is not.
                clearly_place = resolved.country_given and resolved.city is not None
                if not resolved.exact or (rest and not clearly_place):
                    continue
            _add_entry(entries, seen, resolved, links)
    return list(entries.values())


def _add_entry(
    entries: dict[tuple[str, str | None], SeedEntry],
    seen: dict[tuple[str, str | None], set[str]],
    resolved: _Resolved,
    links: list[SeedLink],
) -> None:
    key = (resolved.country_code, fold(resolved.city) if resolved.city else None)
    entry = entries.get(key)
    if entry is None:
        entry = entries[key] = SeedEntry(
            country=resolved.country,
            country_code=resolved.country_code,
            country_original=resolved.country_original,
            city=resolved.city,
            city_original=resolved.city_original,
            links=[],
        )
        seen[key] = set()
    for link in links:
        if link.url not in seen[key]:
            seen[key].add(link.url)
            entry.links.append(link)


def _soup(html: str | bytes, encoding: str | None = None) -> BeautifulSoup:
    if isinstance(html, bytes):
        known = [encoding] if encoding else None
        dammit = UnicodeDammit(html, known_definite_encodings=known, is_html=True)
        if dammit.unicode_markup is not None:
            return BeautifulSoup(dammit.unicode_markup, "lxml")
    return BeautifulSoup(html, "lxml")


def _parse_soup(soup: BeautifulSoup, base_url: str, gazetteer: Gazetteer | None) -> list[SeedEntry]:
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
        entries = _entries_in(root, base_url, resolver)
        if entries:
            return entries
    body = soup.body or soup
    return _entries_in(body, base_url, resolver)


def parse_index_html(
    html: str | bytes, base_url: str, gazetteer: Gazetteer | None = None
) -> list[SeedEntry]:
    """Rally entries of an index page, in page order, repeated places merged.

    Only lines of the main content that start with a known place and a colon count, and
    only the links on those lines. ``bytes`` are decoded from the page's own charset.
    """
    return _parse_soup(_soup(html), base_url, gazetteer)


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


def parse_csv(
    text: str, gazetteer: Gazetteer | None = None, problems: list[str] | None = None
) -> list[SeedEntry]:
    """Entries of a CSV file with the header ``country,city,kind,label,url``.

    One row per link (a row without kind, label and url records a place with no link yet);
    rows of the same place merge. A bad row raises SeedError naming its line; given a
    ``problems`` list, each bad row's error goes there instead and the row is skipped (a
    file whose rows are all bad still raises, as does a bad header or CSV syntax).
    """
    gazetteer = gazetteer or default_gazetteer()
    resolver = _PlaceResolver(gazetteer)
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    header: list[str] | None = None
    entries: dict[tuple[str, str | None], SeedEntry] = {}
    seen: dict[tuple[str, str | None], set[str]] = {}
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
                continue
            if header is None:
                header = [cell.strip().lower() for cell in row]
                if sorted(header) != sorted(CSV_COLUMNS):
                    raise SeedError(
                        f"line {line}: expected the header {','.join(CSV_COLUMNS)}, "
                        f"found {','.join(cell.strip() for cell in row)}"
                    )
                continue
            try:
                if len(row) != len(header):
                    raise SeedError(f"line {line}: expected {len(header)} fields, found {len(row)}")
                values = {name: cell.strip() for name, cell in zip(header, row, strict=True)}
                resolved, links = _csv_row(values, line, resolver, gazetteer)
            except SeedError as exc:
                if problems is None:
                    raise
                problems.append(str(exc))
                continue
            _add_entry(entries, seen, resolved, links)
    except csv.Error as exc:
        raise SeedError(f"line {reader.line_num}: malformed CSV ({exc})") from exc
    if header is None:
        raise SeedError(f"line 1: empty file, expected the header {','.join(CSV_COLUMNS)}")
    if problems and not entries:
        more = f" (and {len(problems) - 1} more bad rows)" if len(problems) > 1 else ""
        raise SeedError(f"no valid row: {problems[0]}{more}")
    return list(entries.values())


def _csv_row(
    values: dict[str, str], line: int, resolver: _PlaceResolver, gazetteer: Gazetteer
) -> tuple[_Resolved, list[SeedLink]]:
    country_text, city_text = _clean(values["country"]), _clean(values["city"])
    if not country_text:
        raise SeedError(f"line {line}: the country is missing")
    country = gazetteer.country(country_text, fuzzy=False)
    if country is None:
        guess = gazetteer.country(country_text)
        hint = f" (did you mean {guess[0]}?)" if guess else ""
        raise SeedError(f"line {line}: unknown country {country_text!r}{hint}")
    city: str | None = None
    if city_text:
        found = resolver.city(city_text, country[1], fuzzy=True)
        city = found[1] if found else _clean(_PARENS.sub(" ", city_text)) or city_text
    resolved = _Resolved(country[0], country[1], country_text, city, city_text or None, True, True)
    kind, label, url = _normal_kind(values["kind"]), _clean(values["label"]), values["url"]
    if not url:
        if kind or label:
            raise SeedError(f"line {line}: a url is required when kind or label is given")
        return resolved, []
    absolute = _absolute_url(url, "")
    if absolute is None:
        raise SeedError(f"line {line}: invalid URL {url!r} (expected an absolute http(s) URL)")
    if kind and kind not in LINK_KINDS:
        expected = ", ".join(LINK_KINDS)
        raise SeedError(f"line {line}: unknown kind {values['kind']!r} (use one of {expected})")
    kind = kind or (kind_from_label(label) if label else "report")
    return resolved, [SeedLink(kind, label or kind.replace("_", " "), absolute)]


# --- sources ------------------------------------------------------------------------------


def _is_url(source: str) -> bool:
    return re.match(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://", source) is not None


def _fetch(url: str) -> tuple[bytes, str, str | None, str]:
    """(body, content type, charset, final URL) of ``url``."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "*/*"})
    policy = address_policy()  # a bad setting is the operator's error, not the URL's
    try:
        with guarded_urlopen(request, timeout=FETCH_TIMEOUT, policy=policy) as response:
            body = response.read(MAX_SOURCE_BYTES + 1)
            headers: Message = response.headers
            final_url = response.geturl() or url
    except AddressRefused as exc:  # never fetched: nothing to tell a port scanner
        raise SeedError(f"cannot fetch {url}: {exc}") from exc
    except urllib.error.HTTPError as exc:
        raise SeedError(f"cannot fetch {url}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise SeedError(f"cannot reach {url}: {exc.reason}") from exc
    except (OSError, ValueError) as exc:  # timeouts, resets, malformed responses
        raise SeedError(f"cannot fetch {url}: {exc}") from exc
    if len(body) > MAX_SOURCE_BYTES:
        raise SeedError(f"{url} is larger than {MAX_SOURCE_BYTES // (1024 * 1024)} MB")
    return body, headers.get_content_type(), headers.get_content_charset(), final_url


def _decode_csv(data: bytes, where: str, charset: str | None = None) -> str:
    try:
        return data.decode(charset or "utf-8-sig")
    except (UnicodeDecodeError, LookupError) as exc:
        raise SeedError(f"{where}: not a UTF-8 text file ({exc})") from exc


def _load_url(url: str) -> SeedSource:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise SeedError(f"unsupported source {url!r}: use an http(s) URL or a .html/.csv file")
    if not parts.hostname:
        raise SeedError(f"invalid URL {url!r}: no host name")
    body, content_type, charset, final_url = _fetch(url)
    if content_type in ("text/csv", "application/csv") or parts.path.lower().endswith(".csv"):
        problems: list[str] = []
        entries = parse_csv(_decode_csv(body, url, charset), problems=problems)
        return SeedSource(url, entries, body, content_type, problems)
    if "html" not in content_type and "xml" not in content_type and content_type != "text/plain":
        raise SeedError(f"{url}: expected an HTML page or a CSV file, got {content_type}")
    entries = _parse_soup(_soup(body, charset), final_url, None)
    return SeedSource(url, entries, body, content_type)


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
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SeedError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if suffix == ".csv":
        problems = []
        entries = parse_csv(_decode_csv(data, str(path)), problems=problems)
        return SeedSource(str(path), entries, data, "text/csv", problems)
    soup = _soup(data)
    # A saved page's relative links belong to the site it was saved from, not to the disk.
    entries = _parse_soup(soup, _canonical_url(soup) or path.as_uri(), None)
    return SeedSource(str(path), entries, data, "text/html")


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
        raise SeedError(f"no rally entries found in {loaded.location}")
    return loaded
