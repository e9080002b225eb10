"""What the crawler must fetch to see a page again.

Pure functions over ``(html text, base url)``. Every function returns absolute
http(s) URLs, de-duplicated in document order, without fragments; ``data:``,
``javascript:``, ``mailto:`` and other non-web schemes are ignored. A document's
``<base href>`` is honoured.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urldefrag, urljoin, urlsplit

from bs4 import BeautifulSoup, SoupStrainer
from bs4.element import Tag

__all__ = [
    "GalleryPage",
    "find_css_requisites",
    "find_media",
    "find_requisites",
    "largest_srcset_candidate",
    "parse_gallery",
]

IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".jpe",
    ".png",
    ".gif",
    ".webp",
    ".avif",
    ".tif",
    ".tiff",
    ".bmp",
    ".heic",
    ".heif",
    ".jxl",
)
MEDIA_EXTENSIONS = (
    ".mp4",
    ".webm",
    ".ogv",
    ".mov",
    ".m4v",
    ".mp3",
    ".ogg",
    ".oga",
    ".wav",
    ".m4a",
)
# Streaming manifests are playlists, not media files.
_MANIFEST_EXTENSIONS = (".m3u8", ".mpd")
_MANIFEST_TYPES = ("mpegurl", "dash+xml")
_MEDIA_META = ("og:video", "og:audio", "twitter:player:stream")

_LINK_RELS = {"stylesheet", "icon", "apple-touch-icon", "apple-touch-icon-precomposed", "mask-icon"}
_PRELOAD_AS = {"style", "font", "image"}
_LAZY_SRC_ATTRS = ("data-src", "data-lazy-src", "data-original")
_FULL_SRC_ATTRS = ("data-full", "data-large", "data-full-src", "data-large-src", "data-zoom-src")
_SRCSET_ATTRS = ("srcset", "data-srcset", "data-lazy-srcset")
_CHROME_TAGS = {"header", "nav", "footer", "aside"}
_CHROME_ROLES = {"banner", "navigation", "contentinfo", "complementary"}
_CHROME_WORDS = {
    "logo",
    "sidebar",
    "related",
    "header",
    "footer",
    "masthead",
    "navbar",
    "navigation",
    "menu",
    "breadcrumb",
    "breadcrumbs",
}
_GALLERY_WORDS = ("gallery", "photos")
_CONTENT_WORDS = ("content",)
_PAGINATION_WORDS = ("pagination", "pager", "page-numbers", "pagenav")
_PLACEHOLDER_RE = re.compile(
    r"placeholder|blank\.(?:gif|png)|spacer\.gif|transparent\.(?:gif|png)|1x1", re.I
)
_PAGE_SUFFIX_RE = re.compile(r"/(?:page|p|seite|pagina|strona)/\d+/?$", re.I)
_PAGE_IN_URL_RE = re.compile(r"(?:[?&/](?:page|paged|pg|p|seite|pagina|strona)[=/]\d+)", re.I)
_PAGE_LINK_TEXTS = frozenset(
    [
        "next",
        "previous",
        "prev",
        "older",
        "newer",
        "more",
        "»",
        "«",
        "›",
        "‹",
        ">",
        "<",
        "→",
        "←",
        "weiter",
        "zurück",
        "далее",
        "назад",
        "следующая",
        "предыдущая",
        "suivant",
        "précédent",
        "siguiente",
        "anterior",
    ]
) | {"next »", "« previous", "next ›", "‹ previous"}
_CSS_COMMENT_RE = re.compile(r"/\*.*?\*/", re.S)
_CSS_URL_RE = re.compile(
    r"""@import\s+(?:"(?P<i1>[^"]*)"|'(?P<i2>[^']*)')"""
    r"""|url\(\s*(?:"(?P<u1>[^"]*)"|'(?P<u2>[^']*)'|(?P<u3>[^)'"\s]*))\s*\)""",
    re.I,
)
_DESCRIPTOR_RE = re.compile(r"^(\d+(?:\.\d+)?|\.\d+)([wx])$", re.I)


@dataclass
class GalleryPage:
    """Full-size images of a gallery page and the other pages of the same gallery."""

    images: list[str] = field(default_factory=list)
    next_pages: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- helpers


def absolute_url(raw: str | None, base_url: str, *, keep_fragment: bool = False) -> str | None:
    """Resolve ``raw`` against ``base_url``; None unless the result is an http(s) URL."""
    if not raw:
        return None
    # Browsers strip surrounding whitespace and drop tabs/newlines inside URLs.
    value = re.sub(r"[\t\n\r]", "", raw.strip())
    if not value:
        return None
    try:
        url = urljoin(base_url, value)
        if not keep_fragment:
            url = urldefrag(url)[0]
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return url


class _UrlList:
    """Ordered set of absolute URLs."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._seen: set[str] = set()
        self.urls: list[str] = []

    def add(self, raw: str | None, base_url: str | None = None) -> str | None:
        url = absolute_url(raw, base_url or self.base_url)
        if url and url not in self._seen:
            self._seen.add(url)
            self.urls.append(url)
        return url

    def extend(self, urls: Iterable[str]) -> None:
        for url in urls:
            self.add(url)


def parse_html(html: str) -> BeautifulSoup:
    """A page parsed once, for handing to several of this module's functions."""
    return BeautifulSoup(html or "", "lxml")


def _soup(html: str | BeautifulSoup) -> BeautifulSoup:
    return html if isinstance(html, BeautifulSoup) else parse_html(html)


def _document_base(soup: BeautifulSoup, base_url: str) -> str:
    """The document base URL: the first ``<base href>`` resolved against ``base_url``."""
    base = soup.find("base", href=True)
    if isinstance(base, Tag):
        resolved = absolute_url(_attr(base, "href"), base_url)
        if resolved:  # a javascript:/data: base is ignored, as browsers do
            return resolved
    return base_url


def _attr(tag: Tag, name: str) -> str | None:
    value = tag.get(name)
    if isinstance(value, list):
        return " ".join(value)
    return value


def _words(tag: Tag) -> str:
    """class, id and aria-label of a tag, lower case, for keyword matching."""
    parts = [_attr(tag, "class") or "", _attr(tag, "id") or "", _attr(tag, "aria-label") or ""]
    return " ".join(parts).lower()


def srcset_candidates(srcset: str) -> list[tuple[str, str]]:
    """The ``(url, descriptors)`` candidates of a srcset, per the HTML parsing algorithm.

    A URL runs to the next whitespace, so URLs containing commas survive when
    they are followed by a descriptor or whitespace (``a,b.jpg 2x``).
    """
    candidates: list[tuple[str, str]] = []
    pos, n = 0, len(srcset)
    while pos < n:
        while pos < n and (srcset[pos].isspace() or srcset[pos] == ","):
            pos += 1
        if pos >= n:
            break
        start = pos
        while pos < n and not srcset[pos].isspace():
            pos += 1
        url = srcset[start:pos]
        descriptors = ""
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            start = pos
            depth = 0
            while pos < n:
                char = srcset[pos]
                if char == "(":
                    depth += 1
                elif char == ")":
                    depth = max(0, depth - 1)
                elif char == "," and depth == 0:
                    break
                pos += 1
            descriptors = " ".join(srcset[start:pos].split())
            pos += 1  # skip the comma
        if url:
            candidates.append((url, descriptors))
    return candidates


def _parse_srcset(srcset: str) -> list[tuple[str, str | None, float]]:
    """A srcset's (url, 'w'|'x'|None, value) candidates."""
    candidates: list[tuple[str, str | None, float]] = []
    for url, descriptors in srcset_candidates(srcset):
        kind: str | None = None
        value = 1.0
        for token in descriptors.split():
            match = _DESCRIPTOR_RE.match(token)
            if match:
                kind, value = match.group(2).lower(), float(match.group(1))
                break
        candidates.append((url, kind, value))
    return candidates


def _srcset_best(srcsets: Iterable[str], base_url: str) -> str | None:
    """Largest candidate over several srcsets (an img's and its picture sources)."""
    best_w: tuple[float, str] | None = None
    best_x: tuple[float, str] | None = None
    for srcset in srcsets:
        for raw, kind, value in _parse_srcset(srcset):
            url = absolute_url(raw, base_url)
            if url is None:
                continue
            if kind == "w":
                if best_w is None or value > best_w[0]:
                    best_w = (value, url)
            elif best_x is None or value > best_x[0]:
                best_x = (value, url)
    if best_w is not None:
        return best_w[1]
    return best_x[1] if best_x is not None else None


def _enclosing_picture(tag: Tag) -> Tag | None:
    """The ``<picture>`` of an img/source.

    lxml's HTML parser does not know ``<source>`` is a void element and nests what follows
    it inside, so the picture may be several ``<source>`` levels up.
    """
    node = tag.parent
    while isinstance(node, Tag) and node.name == "source":
        node = node.parent
    return node if isinstance(node, Tag) and node.name == "picture" else None


def _is_image_url(url: str) -> bool:
    return urlsplit(url).path.lower().endswith(IMAGE_EXTENSIONS)


def _style_urls(style: str) -> Iterator[str]:
    for match in _CSS_URL_RE.finditer(_CSS_COMMENT_RE.sub("", style)):
        raw = next((g for g in match.groups() if g is not None), None)
        if raw:
            yield raw.strip()


# --------------------------------------------------------------------------- public API


def largest_srcset_candidate(srcset: str, base_url: str) -> str | None:
    """The srcset candidate with the largest ``w`` descriptor, else the largest ``x``.

    Returns an absolute http(s) URL, or None if the srcset has no usable candidate.
    """
    if not srcset:
        return None
    return _srcset_best([srcset], base_url)


def find_css_requisites(css: str, base_url: str) -> list[str]:
    """URLs a stylesheet loads: ``url(...)`` and ``@import``, resolved against ``base_url``."""
    found = _UrlList(base_url)
    for raw in _style_urls(css or ""):
        found.add(raw)
    return found.urls


def find_requisites(html: str | BeautifulSoup, base_url: str) -> list[str]:
    """What a browser loads to render the page: images, stylesheets, icons, scripts, CSS urls.

    Covers ``<img>`` (src, largest srcset candidate, lazy-load attributes), ``<picture><source
    srcset>``, ``<link rel=stylesheet|icon|apple-touch-icon|preload as=style/font/image>``,
    ``<script src>``, ``<video poster>``, inline ``style`` url(...) and ``<style>`` url/@import.
    """
    soup = _soup(html)
    base = _document_base(soup, base_url)
    found = _UrlList(base)
    for tag in soup.find_all(True):
        name = tag.name
        if name == "img":
            found.add(_attr(tag, "src"))
            for attr in _SRCSET_ATTRS:
                srcset = _attr(tag, attr)
                if srcset:
                    found.add(_srcset_best([srcset], base))
            for attr in _LAZY_SRC_ATTRS:
                found.add(_attr(tag, attr))
        elif name == "source":
            if _enclosing_picture(tag) is not None:
                for attr in _SRCSET_ATTRS:
                    srcset = _attr(tag, attr)
                    if srcset:
                        found.add(_srcset_best([srcset], base))
        elif name == "link":
            rels = {r.lower() for r in (_attr(tag, "rel") or "").split()}
            preload = "preload" in rels and (_attr(tag, "as") or "").lower() in _PRELOAD_AS
            if rels & _LINK_RELS or preload:
                found.add(_attr(tag, "href"))
                imagesrcset = _attr(tag, "imagesrcset")
                if imagesrcset:
                    found.add(_srcset_best([imagesrcset], base))
        elif name == "script":
            found.add(_attr(tag, "src"))
        elif name == "video":
            found.add(_attr(tag, "poster"))
        elif name == "style":
            found.extend(find_css_requisites(tag.get_text(), base))
        elif name in ("body", "table", "td", "th") and _attr(tag, "background"):
            found.add(_attr(tag, "background"))
        style = _attr(tag, "style")
        if style and "url(" in style.lower():
            found.extend(find_css_requisites(style, base))
    return found.urls


class _Page:
    """One parsed page with per-tag keyword text and site-chrome flags, computed once."""

    def __init__(self, html: str | BeautifulSoup, base_url: str) -> None:
        self.soup = _soup(html)
        self.base = _document_base(self.soup, base_url)
        self.tags: list[Tag] = list(self.soup.find_all(True))
        self.words: dict[int, str] = {id(t): _words(t) for t in self.tags}
        # find_all yields parents before children, so one pass inherits the parent's flag.
        self.chrome: dict[int, bool] = {}
        for tag in self.tags:
            parent = tag.parent
            inherited = self.chrome.get(id(parent), False) if parent is not None else False
            self.chrome[id(tag)] = inherited or self._own_chrome(tag)

    def _own_chrome(self, tag: Tag) -> bool:
        if tag.name in ("body", "html"):
            return False
        if tag.name in _CHROME_TAGS or (_attr(tag, "role") or "").lower() in _CHROME_ROLES:
            return True
        return any(_is_chrome_token(token) for token in self.words[id(tag)].split())

    def has_word(self, tag: Tag, words: Iterable[str]) -> bool:
        text = self.words.get(id(tag), "")
        return any(word in text for word in words)

    def is_chrome(self, tag: Tag) -> bool:
        """True if the tag or an ancestor is header, nav, footer, aside, a logo, a sidebar..."""
        return self.chrome.get(id(tag), False)

    def content_roots(self) -> list[Tag]:
        """Gallery/photos containers, else main/article/content elements, else the body."""
        usable = [t for t in self.tags if t.name not in ("body", "html") and not self.is_chrome(t)]
        candidates = [t for t in usable if self.has_word(t, _GALLERY_WORDS)]
        if not candidates:
            candidates = [
                t
                for t in usable
                if t.name in ("main", "article") or self.has_word(t, _CONTENT_WORDS)
            ]
        if candidates:
            return _outermost(candidates)
        body = self.soup.body
        return [body] if isinstance(body, Tag) else []


def _is_chrome_token(token: str) -> bool:
    """``logo``, ``site-header``, ``sidebar-primary``... but not ``content-sidebar-wrap``."""
    parts = re.split(r"[-_]+", token)
    return parts[0] in _CHROME_WORDS or parts[-1] in _CHROME_WORDS


def _outermost(tags: list[Tag]) -> list[Tag]:
    chosen = set(map(id, tags))
    result = []
    for tag in tags:
        if not any(id(parent) in chosen for parent in tag.parents):
            result.append(tag)
    return result


def _linked_original(img: Tag, base: str) -> str | None:
    """An ``<a href>`` to an image file wrapping the img, or next to it in its container."""
    depth = 0
    for ancestor in img.parents:
        if not isinstance(ancestor, Tag) or ancestor.name in ("body", "html") or depth > 3:
            break
        if ancestor.name not in ("source", "picture"):
            depth += 1
        if ancestor.name == "a":
            for attr in ("href", "data-full", "data-large", "data-src"):
                url = absolute_url(_attr(ancestor, attr), base)
                if url and _is_image_url(url):
                    return url
    picture = _enclosing_picture(img)
    parent = (picture or img).parent
    if isinstance(parent, Tag) and parent.name in ("figure", "div", "li", "span", "p"):
        images_here = parent.find_all("img")
        if len(images_here) == 1:
            for link in parent.find_all("a", href=True):
                url = absolute_url(_attr(link, "href"), base)
                if url and _is_image_url(url):
                    return url
    return None


def _best_image(img: Tag, base: str) -> str | None:
    """Full-size URL of one photo: linked original > data-full > srcset > lazy src > src."""
    original = _linked_original(img, base)
    if original:
        return original
    for attr in _FULL_SRC_ATTRS:
        url = absolute_url(_attr(img, attr), base)
        if url:
            return url
    srcsets = [s for a in _SRCSET_ATTRS if (s := _attr(img, a))]
    picture = _enclosing_picture(img)
    if picture is not None:
        for source in picture.find_all("source"):
            srcsets.extend(s for a in _SRCSET_ATTRS if (s := _attr(source, a)))
    url = _srcset_best(srcsets, base)
    if url:
        return url
    for attr in _LAZY_SRC_ATTRS:
        url = absolute_url(_attr(img, attr), base)
        if url:
            return url
    src = _attr(img, "src")
    if src and not _PLACEHOLDER_RE.search(src):
        return absolute_url(src, base)
    return None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _same_gallery(candidate: str, page_url: str) -> bool:
    """Same scheme+host+port, and same path (other query) or a path under the gallery's path."""
    if candidate == page_url or _origin(candidate) != _origin(page_url):
        return False
    path = urlsplit(candidate).path or "/"
    page_path = urlsplit(page_url).path or "/"
    if path == page_path:
        return True
    root = _PAGE_SUFFIX_RE.sub("", page_path).rstrip("/")
    if not root:  # a gallery at the site root would make every page "under" it
        return False
    return path.rstrip("/") == root or path.startswith(root + "/")


def _looks_like_page_link(link: Tag) -> bool:
    """A numbered/next/previous link, or a URL with a page number in it."""
    text = link.get_text(" ", strip=True).lower()
    label = (_attr(link, "aria-label") or "").lower()
    rels = (_attr(link, "rel") or "").lower().split()
    if text.isdigit() or text in _PAGE_LINK_TEXTS or {"next", "prev", "previous"} & set(rels):
        return True
    if "page" in label or "next" in label or "previous" in label:
        return True
    return bool(_PAGE_IN_URL_RE.search(_attr(link, "href") or ""))


def parse_gallery(html: str | BeautifulSoup, base_url: str) -> GalleryPage:
    """Full-size images of a gallery page and the pagination pages of the same gallery.

    Images come from the main content only (gallery/photos containers, else main/article/
    content, else body), never from header/nav/footer/aside or logos; for each photo the best
    of a linked original, data-full/data-large, the largest srcset candidate, a lazy-load
    attribute, else src (placeholders skipped). Next pages come from ``rel=next`` and
    pagination containers, restricted to the same origin and the same gallery path.
    """
    page = _Page(html, base_url)
    base = page.base
    images = _UrlList(base)
    for root in page.content_roots():
        for tag in root.find_all(["img", "a"]):
            if page.is_chrome(tag):
                continue
            if tag.name == "img":
                images.add(_best_image(tag, base))
            else:
                url = absolute_url(_attr(tag, "href"), base)
                if url and _is_image_url(url):
                    images.add(url)

    page_url = absolute_url(base_url, base_url) or base_url
    pages = _UrlList(base)
    links: list[Tag] = []
    for tag in page.tags:
        if tag.name in ("link", "a") and "next" in (_attr(tag, "rel") or "").lower().split():
            links.append(tag)
    for container in page.tags:
        if page.has_word(container, _PAGINATION_WORDS):
            links.extend(container.find_all("a", href=True))
        elif container.name == "nav":
            # A plain <nav> may be the site menu or a language switcher: keep page-like links.
            links.extend(a for a in container.find_all("a", href=True) if _looks_like_page_link(a))
    for link in links:
        url = absolute_url(_attr(link, "href"), base)
        if url and _same_gallery(url, page_url):
            pages.add(url)
    return GalleryPage(images=images.urls, next_pages=pages.urls)


def _is_media_url(url: str) -> bool:
    return urlsplit(url).path.lower().endswith(MEDIA_EXTENSIONS)


def _is_manifest(url: str, mime: str) -> bool:
    return urlsplit(url).path.lower().endswith(_MANIFEST_EXTENSIONS) or any(
        t in mime for t in _MANIFEST_TYPES
    )


def find_media(html: str | BeautifulSoup, base_url: str) -> list[str]:
    """Plain media files embedded in the page.

    ``<video>``/``<audio>`` src and their ``<source>`` children, plus ``og:video`` /
    ``og:video:url`` / ``og:video:secure_url`` / ``og:audio*`` / ``twitter:player:stream`` when
    they point to a plain file (media extension, or a video/* or audio/* type). Iframe players
    and streaming manifests (.m3u8, .mpd) are not plain files and are left out.
    """
    if isinstance(html, BeautifulSoup):
        soup = html  # parsed already (whole): the same elements are found in it
    else:
        # Only these elements (with their subtrees) matter: parsing just them is faster.
        strainer = SoupStrainer(["base", "meta", "video", "audio"])
        soup = BeautifulSoup(html or "", "lxml", parse_only=strainer)
    base = _document_base(soup, base_url)
    found = _UrlList(base)

    # OpenGraph arrays: a structured property (``:type``) belongs to the latest root property.
    groups: list[tuple[list[str], list[str]]] = []  # (urls, [mime])
    current: dict[str, tuple[list[str], list[str]]] = {}
    for meta in soup.find_all("meta"):
        key = (_attr(meta, "property") or _attr(meta, "name") or "").strip().lower()
        content = (_attr(meta, "content") or "").strip()
        prefix = next((p for p in _MEDIA_META if key == p or key.startswith(p + ":")), None)
        if prefix is None or not content:
            continue
        suffix = key[len(prefix) :]
        if suffix in ("", ":url", ":secure_url"):
            if suffix == "" or prefix not in current:
                current[prefix] = ([], [""])
                groups.append(current[prefix])
            current[prefix][0].append(content)
        elif suffix in (":type", ":content_type") and prefix in current:
            current[prefix][1][0] = content.lower()
    for urls, (mime,) in groups:
        for raw in urls:
            url = absolute_url(raw, base)
            plain = url and (_is_media_url(url) or mime.startswith(("video/", "audio/")))
            if url and plain and not _is_manifest(url, mime):
                found.add(url)

    for tag in soup.find_all(["video", "audio", "source"]):
        mime = (_attr(tag, "type") or "").lower()
        if tag.name == "source":
            parent = tag.find_parent(["video", "audio", "picture"])
            if parent is None or parent.name == "picture":
                continue
        for attr in ("src", "data-src"):
            url = absolute_url(_attr(tag, attr), base)
            if url and not _is_manifest(url, mime):
                found.add(url)
    return found.urls
