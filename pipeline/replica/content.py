"""Pages and assets of the offline replica world, and the manifest the tests rely on.

Standard library only. Everything a replica server sends is produced here from the data
below (``ARTICLES``, ``GALLERIES``, ``PDF_REPORT``, ``VIDEO``), and the same data is exported
as the manifest (``LINKS``, ``GALLERIES``) so that tests elsewhere can assert against the
single source of truth the servers use.

HTML, CSS and JS bodies are *templates*: wherever a page needs the base URL of a site it
contains ``{{site:NAME}}``; :func:`substitute_sites` turns those into
``http://127.0.0.1:PORT`` at serve time.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import struct
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from pipeline.replica import social

SITES: tuple[str, ...] = ("index", "news", "blog", "photos", "video", "cdn", "social")

PAGES_DIR = Path(__file__).resolve().parent / "pages"
INDEX_TEMPLATE = PAGES_DIR / "index.html"
INDEX_PATH = "/ru/news/you-go-girl"

SITE_PLACEHOLDER = re.compile(r"\{\{site:([a-z]+)\}\}")


def substitute_sites(text: str, base_urls: Mapping[str, str]) -> str:
    """Replace every ``{{site:NAME}}`` with ``base_urls[NAME]``; unknown names are left as is."""
    return SITE_PLACEHOLDER.sub(lambda m: base_urls.get(m.group(1), m.group(0)), text)


# --------------------------------------------------------------------------------------
# Binary assets (hand-built, deterministic)
# --------------------------------------------------------------------------------------


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


@lru_cache(maxsize=256)
def make_jpeg(label: str, width: int, height: int, shade: int = 0) -> bytes:
    """A valid baseline greyscale JPEG of ``width`` x ``height`` pixels of one grey level.

    ``label`` is stored in a COM segment right after SOI and the JFIF APP0 header, so
    different labels give different bytes; ``shade`` (-63..63) shifts the grey level.
    """
    shade = max(-63, min(63, shade))
    app0 = _segment(0xE0, b"JFIF\x00\x01\x01\x01\x00\x48\x00\x48\x00\x00")
    dqt = _segment(0xDB, b"\x00" + bytes([8] * 64))
    sof0 = _segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
    # DC table 0: the standard luminance DC table (Annex K.3); AC table 0: only EOB, code "0".
    dc_bits = bytes([0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    dc_vals = bytes(range(12))
    ac_bits = bytes([1] + [0] * 15)
    dht = _segment(0xC4, b"\x00" + dc_bits + dc_vals + b"\x10" + ac_bits + b"\x00")
    sos = _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    dc_codes = {0: "00", 1: "010", 2: "011", 3: "100", 4: "101", 5: "110", 6: "1110"}
    category = abs(shade).bit_length()
    extra = ""
    if category:
        value = shade if shade > 0 else shade + (1 << category) - 1
        extra = format(value, f"0{category}b")
    blocks = ((width + 7) // 8) * ((height + 7) // 8)
    bits = dc_codes[category] + extra + "0" + "000" * (blocks - 1)
    bits += "1" * (-len(bits) % 8)
    scan = int(bits, 2).to_bytes(len(bits) // 8, "big").replace(b"\xff", b"\xff\x00")
    com = _segment(0xFE, label.encode("utf-8"))
    return b"\xff\xd8" + app0 + com + dqt + sof0 + dht + sos + scan + b"\xff\xd9"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def make_png(
    width: int, height: int, pixel: Callable[[int, int], tuple[int, int, int, int]]
) -> bytes:
    """A valid RGBA PNG whose pixel colours come from ``pixel(x, y)``."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)
        for x in range(width):
            rows.extend(pixel(x, y))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"tEXt", b"Software\x00linkarchive replica")
        + _png_chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + _png_chunk(b"IEND", b"")
    )


def _logo_pixel(x: int, y: int) -> tuple[int, int, int, int]:
    # White-red-white stripes in a rounded-ish badge on the left, transparent elsewhere.
    if x < 40:
        return (255, 255, 255, 255) if y < 13 or y >= 27 else (200, 16, 46, 255)
    if 48 <= x < 116 and 14 <= y < 26 and (x // 4) % 2 == 0:
        return (40, 40, 40, 255)
    return (0, 0, 0, 0)


def _bg_pixel(x: int, y: int) -> tuple[int, int, int, int]:
    return (250, 248, 244, 255) if (x + y) % 2 else (244, 240, 232, 255)


@lru_cache(maxsize=1)
def logo_png() -> bytes:
    """The 120x40 site logo (PNG)."""
    return make_png(120, 40, _logo_pixel)


@lru_cache(maxsize=1)
def background_png() -> bytes:
    """An 8x8 tiled page background (PNG), referenced from site.css."""
    return make_png(8, 8, _bg_pixel)


#: The classic 1x1 transparent GIF (43 bytes).
PLACEHOLDER_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
    b"!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload) + 8) + kind + payload


@lru_cache(maxsize=4)
def make_mp4(label: str, duration_ms: int = 12_000) -> bytes:
    """A small MP4 that looks valid (ftyp, moov/mvhd, free, mdat); not actually playable."""
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2avc1mp41")
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = _box(
        b"mvhd",
        struct.pack(">IIIII", 0, 0, 0, 1000, duration_ms)
        + struct.pack(">IH", 0x00010000, 0x0100)
        + b"\x00" * 10
        + matrix
        + b"\x00" * 24
        + struct.pack(">I", 2),
    )
    moov = _box(b"moov", mvhd)
    free = _box(b"free", label.encode("utf-8"))
    payload = b"".join(hashlib.sha256(f"{label}:{i}".encode()).digest() for i in range(96))
    return ftyp + moov + free + _box(b"mdat", payload)


def _pdf_text(value: str) -> bytes:
    """A PDF text string: literal if ASCII, else UTF-16BE with BOM as a hex string."""
    if value.isascii():
        escaped = value.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        return b"(" + escaped.encode("ascii") + b")"
    return b"<FEFF" + value.encode("utf-16-be").hex().upper().encode("ascii") + b">"


def make_pdf(title: str, author: str, creation_date: str, lines: tuple[str, ...]) -> bytes:
    """A small valid one-page PDF with an Info dictionary (Title, Author, CreationDate)."""
    text_ops = [b"BT", b"/F1 16 Tf", b"72 770 Td", b"20 TL"]
    for i, line in enumerate(lines):
        if i == 1:
            text_ops.append(b"/F1 11 Tf")
        text_ops.append(_pdf_text(line) + b" Tj T*")
    text_ops.append(b"ET")
    stream = b"\n".join(text_ops) + b"\n"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R /Lang (en-GB) >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"endstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Title "
        + _pdf_text(title)
        + b" /Author "
        + _pdf_text(author)
        + b" /CreationDate ("
        + creation_date.encode("ascii")
        + b") /Producer (linkarchive replica) >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info {len(objects)} 0 R >>\n"
        f"startxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)


# --------------------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    """One HTTP response as the replica world will send it (before framing).

    ``body`` is either bytes (sent as is) or a ``str`` template that gets its
    ``{{site:NAME}}`` placeholders substituted and is then encoded with ``encoding``.
    ``framing`` is ``"length"`` (Content-Length), ``"gzip"`` (gzip-compressed body with
    ``Content-Encoding: gzip`` and Content-Length), ``"chunked"`` (Transfer-Encoding) or
    ``"gzip-chunked"`` (both: a gzip body in chunks).
    Header values may contain ``{{site:NAME}}`` too (e.g. ``Location``).
    """

    body: bytes | str
    content_type: str
    status: int = 200
    encoding: str = "utf-8"
    headers: tuple[tuple[str, str], ...] = ()
    framing: str = "length"


@dataclass(frozen=True)
class Article:
    """A rally report page (or the video page): its text and its expected metadata.

    ``metadata`` says where the page declares its metadata: any of ``"jsonld"`` (a
    NewsArticle), ``"jsonld-graph"`` (``@graph`` with WebPage + NewsArticle), ``"og"``
    (OpenGraph), ``"article-time"`` (``article:published_time``), ``"meta"`` (meta
    description + author), ``"meta-author"`` (meta author only), ``"meta-date"``
    (``<meta name="date">``), ``"time"`` (``<time datetime>`` in the byline),
    ``"canonical"`` (``<link rel="canonical">``). ``<title>`` and ``<html lang>`` are always
    present. ``published`` is the value the page declares (ISO 8601); pages without a date
    in their metadata show it only as visible text (``date_text``).
    """

    site: str
    path: str
    lang: str
    city: str
    title: str
    description: str
    author: str
    published: str
    date_text: str
    paragraphs: tuple[str, ...]
    metadata: frozenset[str]
    charset: str = "utf-8"
    charset_in_header: bool = True
    framing: str = "length"
    flaky: bool = False

    @property
    def language(self) -> str:
        """Primary language subtag, e.g. ``"pt"`` for ``pt-BR``."""
        return self.lang.split("-")[0]

    @property
    def slug(self) -> str:
        """Last non-empty path segment."""
        return [part for part in self.path.split("/") if part][-1]

    @property
    def image_path(self) -> str:
        """Path (on the cdn site) of the lead image, served as a 1200x630 JPEG."""
        return f"/media/{self.site}-{self.language}-{self.slug}.jpg"

    @property
    def content_type(self) -> str:
        """The Content-Type header value."""
        if not self.charset_in_header:
            return "text/html"
        return f"text/html; charset={self.charset}"


#: Full-size / displayed variants of every gallery photo: name -> (width, height).
IMAGE_VARIANTS: dict[str, tuple[int, int]] = {
    "thumb": (200, 133),
    "400": (400, 267),
    "800": (800, 533),
    "1600": (1600, 1067),
    "original": (3000, 2000),
}


@dataclass(frozen=True)
class Photo:
    """One photo of a gallery page and how the page exposes it.

    ``style`` is ``"srcset"`` (``<img src=-400 srcset=400w,800w,1600w>``; full size is the
    largest candidate, ``-1600``), ``"lazy"`` (``<img src=placeholder.gif data-src=-1600>``)
    or ``"linked"`` (``<a href=-original><img src=-thumb></a>``).
    """

    gallery: str
    slug: str
    caption: str
    style: str
    shade: int

    def path(self, variant: str) -> str:
        """Path on the photos site of one variant (``thumb``, ``400``, ..., ``original``)."""
        return f"/img/{self.gallery}/{self.slug}-{variant}.jpg"

    @property
    def full_variant(self) -> str:
        """Which variant is the full-size image for this style."""
        return "original" if self.style == "linked" else "1600"

    @property
    def full_size_path(self) -> str:
        """Path (photos site) of the full-size image the page exposes."""
        return self.path(self.full_variant)

    @property
    def referenced_paths(self) -> tuple[str, ...]:
        """Every photos-site image path the page's markup references for this photo."""
        if self.style == "srcset":
            return (self.path("400"), self.path("800"), self.path("1600"))
        if self.style == "lazy":
            return (self.path("1600"),)
        return (self.path("original"), self.path("thumb"))


@dataclass(frozen=True)
class GalleryPage:
    """One page of a gallery: its number, its path with query, and its photos."""

    gallery: str
    number: int
    path: str
    photos: tuple[Photo, ...]

    @property
    def full_size_paths(self) -> tuple[str, ...]:
        """Exact list (in page order) of the full-size image paths on this page (photos site)."""
        return tuple(photo.full_size_path for photo in self.photos)


@dataclass(frozen=True)
class GallerySpec:
    """A paginated photo gallery on the photos site (the manifest entry tests use)."""

    key: str
    path: str
    lang: str
    title: str
    description: str
    author: str
    published: str
    date_text: str
    intro: str
    pages: tuple[GalleryPage, ...]
    site: str = "photos"

    @property
    def num_pages(self) -> int:
        """Number of pages (page 1 is ``path``, page N is ``path + "?page=N"``)."""
        return len(self.pages)

    @property
    def full_size_by_page(self) -> tuple[tuple[str, ...], ...]:
        """Full-size image paths, one tuple per page."""
        return tuple(page.full_size_paths for page in self.pages)

    @property
    def full_size_paths(self) -> tuple[str, ...]:
        """All full-size image paths of the gallery, page by page."""
        return tuple(p for page in self.pages for p in page.full_size_paths)

    @property
    def photos(self) -> tuple[Photo, ...]:
        """All photos, page by page."""
        return tuple(photo for page in self.pages for photo in page.photos)

    @property
    def image_paths(self) -> tuple[str, ...]:
        """Every photos-site image path referenced by the gallery's markup (all variants)."""
        return tuple(p for photo in self.photos for p in photo.referenced_paths)


@dataclass(frozen=True)
class LinkSpec:
    """One link of the curated index page and what it demonstrates.

    ``site``/``path`` is the URL as linked; ``final_path`` is where a crawler that follows
    redirects (HTTP 301 or meta refresh) ends up on the same site; ``status`` is the final
    status a patient crawler sees (the flaky page is 200 after a retry). The metadata
    fields are what the final document declares ("" when it has none).
    """

    site: str
    path: str
    kind: str
    demonstrates: str
    final_path: str
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    title: str = ""
    description: str = ""
    author: str = ""
    published: str = ""
    lang: str = ""
    metadata: frozenset[str] = field(default_factory=frozenset)
    gallery: str | None = None

    @property
    def language(self) -> str:
        """Primary language subtag of the final document ("" if unknown)."""
        return self.lang.split("-")[0]


# --------------------------------------------------------------------------------------
# Sites
# --------------------------------------------------------------------------------------

SITE_NAMES: dict[str, str] = {
    "index": "You Go Girl",
    "news": "Solidarity Wire",
    "blog": "Voices of Solidarity",
    "photos": "OpenLens Photo",
    "video": "ClipRoom",
    "cdn": "static",
    "social": "Pulse",
}

SERVER_HEADERS: dict[str, str] = {
    "index": "nginx",
    "news": "nginx/1.18.0 (Ubuntu)",
    "blog": "Apache/2.4.41 (Ubuntu)",
    "photos": "nginx/1.20.1",
    "video": "openresty/1.19.3.1",
    "cdn": "nginx",
    "social": "envoy",
}

#: Per-language UI strings: home, about, footer, section kicker, byline prefix.
UI: dict[str, dict[str, str]] = {
    "pt": {"home": "Início", "about": "Sobre nós", "rights": "Todos os direitos reservados.",
           "section": "Mundo", "by": "Por"},
    "en": {"home": "Home", "about": "About", "rights": "All rights reserved.",
           "section": "World", "by": "By"},
    "da": {"home": "Forside", "about": "Om os", "rights": "Alle rettigheder forbeholdes.",
           "section": "Udland", "by": "Af"},
    "fr": {"home": "Accueil", "about": "À propos", "rights": "Tous droits réservés.",
           "section": "International", "by": "Par"},
    "de": {"home": "Startseite", "about": "Über uns", "rights": "Alle Rechte vorbehalten.",
           "section": "Ausland", "by": "Von"},
    "hu": {"home": "Címlap", "about": "Rólunk", "rights": "Minden jog fenntartva.",
           "section": "Külföld", "by": "Szerző:"},
    "it": {"home": "Home", "about": "Chi siamo", "rights": "Tutti i diritti riservati.",
           "section": "Esteri", "by": "Di"},
    "ja": {"home": "ホーム", "about": "私たちについて", "rights": "無断転載を禁じます。",
           "section": "国際", "by": "文："},
    "lv": {"home": "Sākums", "about": "Par mums", "rights": "Visas tiesības aizsargātas.",
           "section": "Pasaulē", "by": "Autore:"},
    "lt": {"home": "Pradžia", "about": "Apie mus", "rights": "Visos teisės saugomos.",
           "section": "Pasaulis", "by": "Autorė:"},
    "no": {"home": "Forside", "about": "Om oss", "rights": "Alle rettigheter forbeholdt.",
           "section": "Utenriks", "by": "Av"},
    "ru": {"home": "Главная", "about": "О нас", "rights": "Все права защищены.",
           "section": "В мире", "by": "Автор:"},
    "et": {"home": "Avaleht", "about": "Meist", "rights": "Kõik õigused kaitstud.",
           "section": "Maailm", "by": "Fotod:"},
}  # fmt: skip

OG_LOCALES: dict[str, str] = {
    "pt-BR": "pt_BR", "en-CA": "en_CA", "da": "da_DK", "fr": "fr_FR", "de": "de_DE",
    "hu": "hu_HU", "en-IE": "en_IE", "it": "it_IT", "ja": "ja_JP", "lv": "lv_LV",
    "lt": "lt_LT", "no": "nb_NO", "ru": "ru_RU", "de-CH": "de_CH", "en-GB": "en_GB",
    "en-US": "en_US", "de-AT": "de_AT", "et": "et_EE", "en": "en_US",
}  # fmt: skip


def _ui(lang: str) -> dict[str, str]:
    primary = lang.split("-")[0]
    return UI.get(primary, UI["en"])


# --------------------------------------------------------------------------------------
# The articles
# --------------------------------------------------------------------------------------

_F = frozenset

ARTICLES: tuple[Article, ...] = (
    Article(
        site="news",
        path="/pt/mulheres-da-bielorrussia",
        lang="pt-BR",
        city="São Paulo",
        title="Mulheres da Bielorrússia: ato de solidariedade reúne manifestantes em São Paulo",
        description=(
            "Vestidas de branco e com flores nas mãos, manifestantes se reuniram na Avenida "
            "Paulista em apoio às mulheres bielorrussas que protestam todos os sábados em Minsk."
        ),
        author="Mariana Costa",
        published="2020-10-10T18:00:00Z",
        date_text="10 de outubro de 2020",
        metadata=_F({"jsonld"}),
        paragraphs=(
            "Neste sábado, 10 de outubro de 2020, dezenas de pessoas se reuniram no vão livre "
            "do MASP, na Avenida Paulista, para um ato de solidariedade às mulheres da "
            "Bielorrússia. Vestidas de branco e segurando flores, as participantes repetiram o "
            "gesto que se tornou símbolo das marchas femininas em Minsk desde agosto.",
            "Muitas levavam bandeiras branco-vermelho-brancas e cartazes com frases como "
            "“Somos todas bielorrussas” e “Liberdade para as presas políticas”. Entre elas havia "
            "integrantes da comunidade bielorrussa de São Paulo, estudantes e ativistas de "
            "direitos humanos.",
            "As organizadoras leram em voz alta os nomes de mulheres detidas durante os "
            "protestos que se seguiram às eleições presidenciais de 9 de agosto. O ato foi "
            "pacífico e terminou com uma roda de conversa sobre como apoiar as famílias das "
            "pessoas presas.",
            "Atos semelhantes aconteceram no mesmo fim de semana em dezenas de cidades da "
            "Europa, da América do Norte e da Ásia, em resposta a um apelo das próprias "
            "manifestantes bielorrussas por um dia internacional de solidariedade.",
        ),
    ),
    Article(
        site="news",
        path="/en/2020/10/11/ottawa-solidarity-rally",
        lang="en-CA",
        city="Ottawa",
        title="Ottawa rally stands with the women of Belarus",
        description=(
            "Dressed in white and carrying flowers, demonstrators gathered on Parliament Hill "
            "on Saturday to support the women protesting in Belarus."
        ),
        author="Sarah Thompson",
        published="2020-10-11T13:00:00Z",
        date_text="October 11, 2020",
        metadata=_F({"og", "article-time", "meta-author"}),
        paragraphs=(
            "About a hundred people gathered on Parliament Hill in Ottawa on Saturday, "
            "October 10, in a show of solidarity with the women of Belarus, who have marched "
            "through Minsk every weekend since the disputed presidential election in August.",
            "Many of the participants wore white and carried flowers, echoing the women's "
            "chains of solidarity that first formed in Minsk in mid-August. White-red-white "
            "flags, the symbol of the Belarusian democratic movement, were draped over "
            "shoulders and railings.",
            "Speakers from the Belarusian-Canadian community called on the federal government "
            "to keep up diplomatic pressure and to support independent journalists and "
            "human-rights defenders inside the country. Several read letters from relatives "
            "who had been detained.",
            "The rally was one of dozens held around the world over the weekend. Organizers "
            "said they planned to meet again the following Saturday.",
        ),
    ),
    Article(
        site="news",
        path="/da/kvinder-i-hvidt",
        lang="da",
        city="København",
        title="Kvinder i hvidt: solidaritet med Belarus på Rådhuspladsen",
        description=(
            "Omkring 200 mennesker klædt i hvidt samledes lørdag i København for at støtte de "
            "kvinder, der demonstrerer i Belarus."
        ),
        author="Mette Jensen",
        published="2020-10-10T16:45:00Z",
        date_text="10. oktober 2020",
        metadata=_F({"og", "meta"}),
        framing="gzip",
        paragraphs=(
            "Lørdag den 10. oktober 2020 samledes omkring 200 mennesker på Rådhuspladsen i "
            "København for at vise solidaritet med kvinderne i Belarus. Mange var klædt i "
            "hvidt og havde blomster med, ligesom de kvinder, der hver lørdag går på gaden i "
            "Minsk.",
            "Demonstranterne dannede en lang kæde og holdt hvid-rød-hvide flag og skilte med "
            "teksten »Vi står sammen med Belarus«. Flere af deltagerne var hviderussere, der "
            "bor og arbejder i Danmark.",
            "Arrangørerne læste navne op på kvinder, som er blevet anholdt under protesterne "
            "efter præsidentvalget den 9. august, og opfordrede den danske regering til at "
            "støtte uafhængige medier og menneskerettighedsforkæmpere i landet.",
            "Demonstrationen forløb fredeligt og sluttede med, at deltagerne lagde blomster "
            "foran rådhuset.",
        ),
    ),
    Article(
        site="news",
        path="/fr/paris-solidarite",
        lang="fr",
        city="Paris",
        title="Paris : rassemblement de solidarité avec les femmes biélorusses",
        description=(
            "Samedi 10 octobre, plusieurs centaines de personnes vêtues de blanc se sont "
            "rassemblées place de la République pour soutenir les femmes qui manifestent en "
            "Biélorussie."
        ),
        author="Claire Dubois",
        published="2020-10-10",
        date_text="10 octobre 2020",
        metadata=_F({"meta", "time"}),
        paragraphs=(
            "Samedi 10 octobre 2020, plusieurs centaines de personnes se sont rassemblées place "
            "de la République, à Paris, en solidarité avec les femmes de Biélorussie. Beaucoup "
            "étaient vêtues de blanc et portaient des fleurs, à l'image des marches féminines "
            "qui se déroulent chaque samedi à Minsk depuis le mois d'août.",
            "Des drapeaux blanc-rouge-blanc, symbole de l'opposition biélorusse, flottaient "
            "au-dessus de la foule. Des membres de la diaspora biélorusse en France ont pris la "
            "parole pour raconter les arrestations de leurs proches et les violences subies par "
            "les manifestants.",
            "Les organisatrices ont appelé les autorités françaises et européennes à maintenir "
            "la pression sur le pouvoir biélorusse et à soutenir les journalistes indépendants. "
            "Le rassemblement s'est terminé dans le calme par une chaîne humaine autour de la "
            "statue de la République.",
        ),
    ),
    Article(
        site="blog",
        path="/de/berlin-demo",
        lang="de",
        city="Berlin",
        title="Berlin: Frauen in Weiß für ein freies Belarus",
        description=(
            "Am Samstag versammelten sich Hunderte Menschen am Brandenburger Tor, um sich mit "
            "den protestierenden Frauen in Belarus zu solidarisieren."
        ),
        author="Anna Weber",
        published="2020-10-10T17:30:00Z",
        date_text="10. Oktober 2020",
        metadata=_F({"og", "meta"}),
        framing="chunked",
        paragraphs=(
            "Am Samstag, dem 10. Oktober 2020, haben sich am Brandenburger Tor in Berlin "
            "mehrere Hundert Menschen versammelt, um ihre Solidarität mit den Frauen in Belarus "
            "zu zeigen. Viele Teilnehmerinnen trugen weiße Kleidung und Blumen – so wie die "
            "Frauen, die seit August jeden Samstag durch Minsk ziehen.",
            "Auf Transparenten stand „Frauen für ein freies Belarus“ und „Freiheit für alle "
            "politischen Gefangenen“. Neben vielen in Berlin lebenden Belarussinnen und "
            "Belarussen kamen auch Studierende, Gewerkschafterinnen und Mitglieder von "
            "Menschenrechtsorganisationen.",
            "In kurzen Reden berichteten Aktivistinnen von Festnahmen und Gewalt gegen "
            "Demonstrierende nach der Präsidentschaftswahl vom 9. August. Sie forderten die "
            "Bundesregierung auf, unabhängige Medien und Menschenrechtsverteidigerinnen in "
            "Belarus stärker zu unterstützen.",
            "Die Kundgebung blieb friedlich. Zum Abschluss bildeten die Teilnehmenden eine "
            "lange Kette in Weiß-Rot-Weiß entlang der Straße des 17. Juni.",
        ),
    ),
    Article(
        site="news",
        path="/de/2020/muenchen-kundgebung-bericht",
        lang="de",
        city="München",
        title="München: Kundgebung für die Frauen in Belarus auf dem Marienplatz",
        description=(
            "Rund 150 Menschen haben am Samstag auf dem Marienplatz ihre Solidarität mit den "
            "Frauen in Belarus bekundet."
        ),
        author="Julia Bauer",
        published="2020-10-10T15:20:00Z",
        date_text="10.10.2020",
        metadata=_F({"og"}),
        paragraphs=(
            "Rund 150 Menschen haben sich am Samstagnachmittag, dem 10. Oktober 2020, auf dem "
            "Marienplatz in München versammelt, um die Frauen in Belarus zu unterstützen. Die "
            "meisten von ihnen waren weiß gekleidet und hielten Blumen oder weiß-rot-weiße "
            "Fahnen in den Händen.",
            "Die Veranstalterinnen, eine Gruppe in München lebender Belarussinnen, verlasen "
            "Berichte von Frauen, die bei den Protesten in Minsk festgenommen worden waren. "
            "Mehrere Rednerinnen dankten den Münchnerinnen und Münchnern für die Unterstützung.",
            "Die Polizei sprach von einer friedlichen Versammlung. Ähnliche Kundgebungen fanden "
            "am selben Tag in vielen europäischen Städten statt.",
        ),
    ),
    Article(
        site="news",
        path="/hu/budapest-szolidaritas",
        lang="hu",
        city="Budapest",
        title="Budapesten is kiálltak a belarusz nők mellett",
        description=(
            "Fehér ruhában, virágokkal a kezükben gyűltek össze szombaton a tüntetők a Hősök "
            "terén, hogy támogassák a Belaruszban tiltakozó nőket."
        ),
        author="Kovács Eszter",
        published="2020-10-10T17:10:00Z",
        date_text="2020. október 10.",
        metadata=_F({"og", "meta"}),
        flaky=True,
        paragraphs=(
            "Több tucat ember gyűlt össze 2020. október 10-én, szombaton délután Budapesten, a "
            "Hősök terén, hogy szolidaritást vállaljon a belarusz nőkkel. A résztvevők többsége "
            "fehér ruhát viselt és virágot tartott a kezében, ahogyan a minszki női menetek "
            "résztvevői is teszik augusztus óta minden szombaton.",
            "A tüntetők fehér-piros-fehér zászlókat és „Szabadságot Belarusznak!” feliratú "
            "táblákat hoztak magukkal. A szervezők felolvasták azoknak a nőknek a nevét, akiket "
            "az augusztus 9-i elnökválasztás utáni tiltakozások során őrizetbe vettek.",
            "A megmozdulás békésen zajlott. A szervezők szerint hasonló szolidaritási akciókat "
            "tartottak ugyanazon a hétvégén Európa számos városában.",
        ),
    ),
    Article(
        site="news",
        path="/en/ireland-stands-with-belarus",
        lang="en-IE",
        city="Dublin",
        title="Ireland stands with Belarus: women in white gather in Dublin",
        description=(
            "Members of the Belarusian community in Ireland and their supporters gathered "
            "outside the GPO on Saturday in solidarity with the women protesting in Belarus."
        ),
        author="Aoife Byrne",
        published="2020-10-10T14:00:00Z",
        date_text="10 October 2020",
        metadata=_F({"jsonld-graph", "meta"}),
        paragraphs=(
            "Dozens of people gathered outside the GPO on O'Connell Street in Dublin on "
            "Saturday, 10 October 2020, to show solidarity with the women of Belarus. Many wore "
            "white and carried flowers, following the example of the women who have marched "
            "through Minsk every Saturday since August.",
            "Members of the Belarusian community in Ireland held white-red-white flags and "
            "placards reading “Ireland stands with Belarus” and “Free all political prisoners”. "
            "Several speakers described relatives who had been detained after the presidential "
            "election of 9 August.",
            "Organisers urged the Irish government to support independent journalism and "
            "human-rights defenders in Belarus. The gathering was peaceful and ended with a "
            "minute of silence for those still in detention.",
        ),
    ),
    Article(
        site="news",
        path="/it/roma-presidio",
        lang="it",
        city="Roma",
        title="Roma, presidio di solidarietà con le donne bielorusse",
        description=(
            "Sabato pomeriggio decine di persone vestite di bianco si sono riunite in piazza "
            "Santi Apostoli per sostenere le donne che protestano in Bielorussia."
        ),
        author="Giulia Ferri",
        published="2020-10-10T16:00:00Z",
        date_text="10 ottobre 2020",
        metadata=_F({"og", "meta"}),
        paragraphs=(
            "Sabato 10 ottobre 2020 decine di persone si sono ritrovate in piazza Santi "
            "Apostoli, a Roma, per un presidio di solidarietà con le donne della Bielorussia. "
            "Molte indossavano abiti bianchi e portavano fiori, come le donne che da agosto "
            "sfilano ogni sabato per le strade di Minsk.",
            "Tra bandiere bianco-rosso-bianche e cartelli con la scritta «Siamo tutte "
            "bielorusse», hanno preso la parola esponenti della comunità bielorussa in Italia, "
            "attiviste per i diritti umani e studenti universitari.",
            "Le organizzatrici hanno chiesto al governo italiano e all'Unione europea di "
            "sostenere i media indipendenti e le persone arrestate durante le proteste seguite "
            "alle elezioni presidenziali del 9 agosto. Il presidio si è svolto in modo "
            "pacifico.",
        ),
    ),
    Article(
        site="blog",
        path="/it/sicilia-messina",
        lang="it",
        city="Messina",
        title="Messina: anche la Sicilia in piazza per le donne della Bielorussia",
        description=(
            "Un piccolo ma partecipato presidio in piazza Duomo, a Messina, ha unito la città "
            "alla giornata internazionale di solidarietà con le donne bielorusse."
        ),
        author="Francesca Russo",
        published="2020-10-10",
        date_text="10 ottobre 2020",
        metadata=_F({"meta", "meta-date"}),
        paragraphs=(
            "Anche Messina ha partecipato, sabato 10 ottobre 2020, alla giornata internazionale "
            "di solidarietà con le donne della Bielorussia. Una trentina di persone si sono "
            "date appuntamento in piazza Duomo, vestite di bianco e con un fiore in mano.",
            "L'iniziativa è nata da un gruppo di studentesse dell'università e da alcune donne "
            "bielorusse che vivono in Sicilia da molti anni. «Vogliamo che le donne di Minsk "
            "sappiano che non sono sole», ha detto una delle organizzatrici.",
            "Dopo la lettura di alcune testimonianze arrivate dalla Bielorussia, il presidio si "
            "è concluso con una catena umana davanti alla cattedrale.",
        ),
    ),
    Article(
        site="blog",
        path="/ja/tokyo-solidarity",
        lang="ja",
        city="東京",
        title="東京でベラルーシの女性たちへの連帯集会",
        description=(
            "10月10日、白い服を着て花を手にした参加者が東京・渋谷に集まり、ベラルーシで抗議を"
            "続ける女性たちへの連帯を示した。"
        ),
        author="佐藤 花子",
        published="2020-10-10T08:00:00Z",
        date_text="2020年10月10日",
        metadata=_F({"og", "article-time"}),
        paragraphs=(
            "2020年10月10日（土）、東京・渋谷のハチ公前広場に約50人が集まり、ベラルーシで抗議"
            "活動を続ける女性たちへの連帯を表明した。参加者の多くは白い服を着て花を手にし、8月"
            "から毎週土曜日にミンスクで行われている女性たちの行進にならった。",
            "会場には白・赤・白の旗や「ベラルーシに自由を」と書かれたプラカードが掲げられた。"
            "日本在住のベラルーシ人のほか、学生や人権団体のメンバーも参加した。",
            "主催者は、8月9日の大統領選挙後の抗議行動で拘束された女性たちの名前を読み上げ、"
            "日本政府に対して独立系メディアや人権擁護者への支援を呼びかけた。集会は平和的に"
            "行われ、約1時間で終了した。",
        ),
    ),
    Article(
        site="news",
        path="/lv/riga-solidaritate",
        lang="lv",
        city="Rīga",
        title="Rīgā pauž solidaritāti ar Baltkrievijas sievietēm",
        description=(
            "Sestdien pie Brīvības pieminekļa pulcējās baltās drēbēs tērpti cilvēki ar ziediem, "
            "lai atbalstītu Baltkrievijas sievietes."
        ),
        author="Līga Bērziņa",
        published="2020-10-10T13:30:00Z",
        date_text="2020. gada 10. oktobrī",
        metadata=_F({"og", "article-time"}),
        paragraphs=(
            "Sestdien, 2020. gada 10. oktobrī, pie Brīvības pieminekļa Rīgā pulcējās vairāki "
            "simti cilvēku, lai paustu solidaritāti ar Baltkrievijas sievietēm. Daudzi "
            "dalībnieki bija ģērbušies baltās drēbēs un turēja rokās ziedus, tāpat kā "
            "sievietes, kuras kopš augusta katru sestdienu iziet Minskas ielās.",
            "Pasākuma dalībnieki turēja balti sarkanbaltus karogus un plakātus ar uzrakstu "
            "„Mēs esam kopā ar Baltkrieviju”. Runātāji atgādināja par sievietēm, kuras "
            "aizturētas protestos pēc 9. augusta prezidenta vēlēšanām.",
            "Akcija noritēja mierīgi un noslēdzās ar ziedu nolikšanu pie pieminekļa.",
        ),
    ),
    Article(
        site="news",
        path="/lt/vilnius-1",
        lang="lt",
        city="Vilnius",
        title="Vilniuje – solidarumo akcija su Baltarusijos moterimis",
        description=(
            "Šeštadienį Katedros aikštėje susirinko baltai apsirengę žmonės su gėlėmis, "
            "norėdami palaikyti Baltarusijos moteris."
        ),
        author="Rūta Kazlauskienė",
        published="2020-10-10T12:00:00Z",
        date_text="2020 m. spalio 10 d.",
        metadata=_F({"jsonld"}),
        paragraphs=(
            "Šeštadienį, 2020 m. spalio 10 d., Vilniaus Katedros aikštėje susirinko keli "
            "šimtai žmonių, norėdami parodyti solidarumą su Baltarusijos moterimis. Daugelis "
            "dalyvių vilkėjo baltais drabužiais ir laikė rankose gėles – taip pat, kaip "
            "moterys, kurios nuo rugpjūčio kiekvieną šeštadienį žygiuoja Minsko gatvėmis.",
            "Akcijos dalyviai laikė baltai raudonai baltas vėliavas ir plakatus su užrašu "
            "„Laisvę Baltarusijai“. Kalbėjusios organizatorės priminė apie moteris, sulaikytas "
            "per protestus po rugpjūčio 9 d. prezidento rinkimų.",
            "Akcija vyko taikiai ir baigėsi gyva grandine, nusidriekusia nuo Katedros aikštės "
            "Gedimino prospektu.",
        ),
    ),
    Article(
        site="news",
        path="/lt/vilnius-2",
        lang="lt",
        city="Vilnius",
        title="Gyva grandinė Vilniuje: moterys baltais drabužiais už laisvą Baltarusiją",
        description=(
            "Šeštadienį Vilniaus centre susibūrė šimtai žmonių, vilkinčių baltais drabužiais ir "
            "nešančių gėles bei žvakes."
        ),
        author="Eglė Petrauskaitė",
        published="2020-10-10T18:30:00Z",
        date_text="2020-10-10",
        metadata=_F({"meta"}),
        charset="windows-1257",
        charset_in_header=False,
        paragraphs=(
            "Šeštadienį, spalio 10-ąją, Vilniaus centre susibūrė šimtai žmonių, vilkinčių "
            "baltais drabužiais. Jie nusidriekė gyva grandine nuo Katedros aikštės iki "
            "Baltarusijos ambasados, laikydami rankose gėles ir baltai raudonai baltas "
            "vėliavas.",
            "Čia susirinko ir Lietuvoje gyvenančios baltarusės, ir vilniečiai, norėję išreikšti "
            "palaikymą moterims, kurios jau du mėnesius kiekvieną savaitgalį išeina į Minsko "
            "gatves. Daugelis dalyvių uždegė žvakę už sulaikytuosius.",
            "Vakarą akcijos organizatorės perskaitė laiškus iš Baltarusijos ir padėkojo "
            "visiems, atėjusiems į renginį. Akcija praėjo ramiai, policija pažeidimų "
            "neužfiksavo.",
        ),
    ),
    Article(
        site="news",
        path="/no/oslo-solidaritet",
        lang="no",
        city="Oslo",
        title="Solidaritet med kvinnene i Belarus foran Stortinget",
        description=(
            "Kledd i hvitt og med blomster i hendene samlet demonstranter seg i Oslo lørdag for "
            "å støtte kvinnene som protesterer i Belarus."
        ),
        author="Ingrid Hansen",
        published="2020-10-10T15:00:00Z",
        date_text="10. oktober 2020",
        metadata=_F({"og"}),
        paragraphs=(
            "Lørdag 10. oktober 2020 samlet rundt hundre mennesker seg på Eidsvolls plass foran "
            "Stortinget i Oslo for å vise solidaritet med kvinnene i Belarus. Mange var kledd i "
            "hvitt og bar blomster, slik kvinnene i Minsk har gjort hver lørdag siden august.",
            "Deltakerne holdt hvit-rød-hvite flagg og plakater med teksten «Vi står med "
            "Belarus». Flere hviterussere som bor i Norge, fortalte om familiemedlemmer som er "
            "blitt arrestert etter presidentvalget 9. august.",
            "Arrangørene oppfordret norske myndigheter til å støtte uavhengige medier og "
            "menneskerettighetsforkjempere i Belarus. Markeringen foregikk fredelig.",
        ),
    ),
    Article(
        site="news",
        path="/ru/moskva-solidarnost",
        lang="ru",
        city="Москва",
        title="В Москве прошла акция солидарности с женщинами Беларуси",
        description=(
            "В субботу в центре Москвы несколько десятков человек в белой одежде и с цветами "
            "выразили поддержку белорусским женщинам."
        ),
        author="Анна Смирнова",
        published="2020-10-10T14:30:00Z",
        date_text="10 октября 2020 года",
        metadata=_F({"meta", "og"}),
        charset="windows-1251",
        paragraphs=(
            "В субботу, 10 октября 2020 года, несколько десятков человек собрались в центре "
            "Москвы, чтобы выразить солидарность с женщинами Беларуси. Многие участницы пришли "
            "в белой одежде и с цветами — так же, как женщины, которые с августа каждую субботу "
            "выходят на улицы Минска.",
            "Участники держали бело-красно-белые флаги и плакаты с надписями «Мы с вами» и "
            "«Свободу политзаключённым». Организаторы зачитали имена женщин, задержанных во "
            "время протестов после президентских выборов 9 августа.",
            "Акция прошла мирно и завершилась возложением цветов.",
        ),
    ),
    Article(
        site="blog",
        path="/de/schweiz-solidaritaet",
        lang="de-CH",
        city="Zürich",
        title="Zürich: Solidarität mit den Frauen in Belarus",
        description=(
            "Rund hundert Personen versammelten sich am Samstag auf dem Helvetiaplatz, um die "
            "protestierenden Frauen in Belarus zu unterstützen."
        ),
        author="Nadine Keller",
        published="2020-10-10",
        date_text="10. Oktober 2020",
        metadata=_F({"meta", "time"}),
        paragraphs=(
            "Am Samstag, 10. Oktober 2020, versammelten sich auf dem Helvetiaplatz in Zürich "
            "rund hundert Personen, um ihre Solidarität mit den Frauen in Belarus zu zeigen. "
            "Viele trugen weisse Kleider und Blumen, so wie die Frauen, die seit August jeden "
            "Samstag durch die Strassen von Minsk ziehen.",
            "Auf Plakaten stand «Frauen für ein freies Belarus». In kurzen Ansprachen "
            "berichteten in der Schweiz lebende Belarussinnen von verhafteten Angehörigen und "
            "forderten den Bundesrat auf, sich für die Freilassung der politischen Gefangenen "
            "einzusetzen.",
            "Die Kundgebung verlief friedlich und endete mit einer Menschenkette in "
            "Weiss-Rot-Weiss.",
        ),
    ),
    Article(
        site="news",
        path="/en/london-women-in-white",
        lang="en-GB",
        city="London",
        title="Women in white: London rally for Belarus",
        description=(
            "Hundreds of people dressed in white gathered in Kensington on Saturday to support "
            "the women leading the protests in Belarus."
        ),
        author="Emily Clarke",
        published="2020-10-10T15:45:00Z",
        date_text="10 October 2020",
        metadata=_F({"og", "jsonld"}),
        paragraphs=(
            "Hundreds of people dressed in white gathered in Kensington, west London, on "
            "Saturday 10 October 2020 in solidarity with the women of Belarus. Carrying flowers "
            "and white-red-white flags, they formed a long chain along Kensington High Street.",
            "The rally, organised by members of the Belarusian diaspora in the UK, was one of "
            "many held across Europe that weekend. Speakers described the women's marches that "
            "have taken place in Minsk every Saturday since the disputed election of 9 August, "
            "and the detentions that followed.",
            "Placards read “Women of Belarus, we see you” and “Stop the violence”. Organisers "
            "urged the UK government to back independent media and human-rights defenders in "
            "Belarus. The event passed off peacefully.",
        ),
    ),
    Article(
        site="news",
        path="/en/usa-rallies",
        lang="en-US",
        city="New York",
        title="From New York to San Francisco, Americans rally for the women of Belarus",
        description=(
            "Solidarity rallies in several U.S. cities on Saturday echoed the women's marches "
            "that have filled the streets of Minsk since August."
        ),
        author="Rachel Miller",
        published="2020-10-10T22:00:00Z",
        date_text="October 10, 2020",
        metadata=_F({"meta", "og", "canonical"}),
        paragraphs=(
            "Rallies in support of the women of Belarus took place in several U.S. cities on "
            "Saturday, October 10, 2020. In New York, demonstrators dressed in white gathered "
            "in Union Square with flowers and white-red-white flags; smaller groups met in "
            "Washington, Chicago and San Francisco.",
            "The events were organized by Belarusian-American community groups in response to "
            "a call for an international day of solidarity with the women who have marched in "
            "Minsk every Saturday since the disputed presidential election in August.",
            "Speakers read the names of women detained during the protests and asked members "
            "of Congress to support independent journalists and human-rights defenders in "
            "Belarus. All of the rallies were reported to be peaceful.",
        ),
    ),
    Article(
        site="blog",
        path="/de/2020/10/frauen-fuer-frauen/",
        lang="de-AT",
        city="Wien",
        title="Frauen für Frauen: Wien zeigt Solidarität mit Belarus",
        description=(
            "Am Samstag trafen sich Hunderte Menschen in Weiß am Stephansplatz, um die Frauen "
            "in Belarus zu unterstützen."
        ),
        author="Katharina Gruber",
        published="2020-10-10T16:30:00Z",
        date_text="10. Oktober 2020",
        metadata=_F({"og", "article-time", "meta-author"}),
        paragraphs=(
            "Unter dem Motto „Frauen für Frauen“ haben sich am Samstag, dem 10. Oktober 2020, "
            "mehrere Hundert Menschen am Wiener Stephansplatz versammelt. Sie trugen weiße "
            "Kleidung und Blumen, als Zeichen der Verbundenheit mit den Frauen, die seit August "
            "jeden Samstag in Minsk auf die Straße gehen.",
            "Organisiert wurde die Kundgebung von in Österreich lebenden Belarussinnen. Auf "
            "Schildern war „Freiheit für Belarus“ und „Stoppt die Gewalt“ zu lesen. "
            "Rednerinnen erinnerten an die vielen Frauen, die nach der Präsidentschaftswahl vom "
            "9. August festgenommen wurden.",
            "Die Teilnehmenden bildeten anschließend eine Menschenkette vom Stephansplatz bis "
            "zum Graben. Die Polizei meldete keine Zwischenfälle.",
        ),
    ),
)

ARTICLES_BY_PATH: dict[tuple[str, str], Article] = {(a.site, a.path): a for a in ARTICLES}


# --------------------------------------------------------------------------------------
# Video page
# --------------------------------------------------------------------------------------

VIDEO = Article(
    site="video",
    path="/watch/copenhagen-rally",
    lang="en",
    city="Copenhagen",
    title="Women in white: Copenhagen rally for Belarus (video)",
    description=(
        "Video from Saturday's solidarity rally on Copenhagen's City Hall Square, where "
        "hundreds dressed in white stood with the women of Belarus."
    ),
    author="Lars Nielsen",
    published="2020-10-10T20:15:00Z",
    date_text="October 10, 2020",
    metadata=_F({"og", "meta"}),
    paragraphs=(
        "Hundreds of people dressed in white gathered on City Hall Square in Copenhagen on "
        "Saturday, 10 October 2020, to stand with the women of Belarus. This two-minute video "
        "follows the human chain from the square to the steps of the city hall.",
        "Organisers from the Belarusian community in Denmark read out the names of women "
        "detained after the presidential election of 9 August, and participants laid flowers "
        "in front of the building at the end of the rally.",
    ),
)
VIDEO_MP4_PATH = "/media/copenhagen-rally.mp4"
VIDEO_POSTER_PATH = "/media/copenhagen-rally.jpg"
VIDEO_EMBED_PATH = "/embed/kx7Qp2"


# --------------------------------------------------------------------------------------
# PDF report
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PdfSpec:
    """The PDF report: path (news site) and the values of its Info dictionary."""

    site: str
    path: str
    title: str
    author: str
    creation_date: str
    published: str
    lines: tuple[str, ...]


PDF_REPORT = PdfSpec(
    site="news",
    path="/reports/vilnius-2020-10-10.pdf",
    title="Moterų solidarumo akcija Vilniuje, 2020-10-10",
    author="Eglė Petrauskaitė",
    creation_date="D:20201010190000+03'00'",
    published="2020-10-10T16:00:00Z",
    lines=(
        "Women's solidarity rally in Vilnius, 10 October 2020",
        "Report prepared for the Solidarity Wire archive.",
        "On Saturday several hundred people dressed in white formed a human chain",
        "from Cathedral Square in Vilnius in support of the women of Belarus.",
        "Participants carried flowers, candles and white-red-white flags.",
        "The rally was peaceful; no incidents were reported by the police.",
    ),
)


@lru_cache(maxsize=1)
def pdf_report() -> bytes:
    """The bytes of the Vilnius PDF report."""
    spec = PDF_REPORT
    return make_pdf(spec.title, spec.author, spec.creation_date, spec.lines)


# --------------------------------------------------------------------------------------
# Galleries
# --------------------------------------------------------------------------------------


def _shade(name: str) -> int:
    return hashlib.sha256(name.encode()).digest()[0] % 127 - 63


def _gallery(
    key: str,
    styles_by_page: tuple[tuple[str, ...], ...],
    captions: tuple[str, ...],
    prefix: str,
    **fields: str,
) -> GallerySpec:
    path = f"/gallery/{key}/"
    pages = []
    index = 0
    for number, styles in enumerate(styles_by_page, start=1):
        photos = []
        for style in styles:
            slug = f"{prefix}-{index + 1:02d}"
            photos.append(Photo(key, slug, captions[index], style, _shade(f"{key}/{slug}")))
            index += 1
        page_path = path if number == 1 else f"{path}?page={number}"
        pages.append(GalleryPage(key, number, page_path, tuple(photos)))
    return GallerySpec(key=key, path=path, pages=tuple(pages), **fields)


GALLERIES: dict[str, GallerySpec] = {
    g.key: g
    for g in (
        _gallery(
            "tallinn-2020-10-10",
            (("srcset",) * 4, ("lazy",) * 4, ("linked",) * 4),
            (
                "Osalejad kogunevad Vabaduse väljakule.",
                "Valged riided ja lilled – Minski naiste marsside sümbol.",
                "Valge-punase-valge lipp vanalinna taustal.",
                "Korraldajad loevad ette kinnipeetud naiste nimesid.",
                "Elav kett ulatub üle kogu väljaku.",
                "Plakat kirjaga „Vabadus Valgevenele“.",
                "Lapsed lilledega aktsioonil.",
                "Valgevene kogukond Eestis laulab rahvalaule.",
                "Küünlad kinnipeetute toetuseks.",
                "Osalejad hoiavad üksteisel käest kinni.",
                "Lilled Vabaduse väljaku trepil.",
                "Aktsiooni lõpp õhtuhämaruses.",
            ),
            "tallinn",
            lang="et",
            title="Solidaarsusaktsioon Valgevene naistega Tallinnas, 10.10.2020",
            description=(
                "Fotogalerii: valgetesse riietesse rõivastatud inimesed kogunesid laupäeval "
                "Vabaduse väljakule, et toetada Valgevene naisi."
            ),
            author="Kadri Tamm",
            published="2020-10-10T17:00:00Z",
            date_text="10. oktoober 2020",
            intro=(
                "Laupäeval, 10. oktoobril 2020 kogunesid Tallinnas Vabaduse väljakule "
                "valgetesse riietesse rõivastatud inimesed, et väljendada solidaarsust "
                "Valgevene naistega, kes on augustist saadik igal laupäeval Minski tänavatel "
                "meelt avaldanud. Galeriis on fotod kogu aktsioonist."
            ),
        ),
        _gallery(
            "london-2020-10-10",
            (("srcset", "lazy", "linked"), ("linked", "srcset", "lazy")),
            (
                "The chain of women in white forms on Kensington High Street.",
                "Flowers and white-red-white flags outside the embassy.",
                "A placard reads “Women of Belarus, we see you”.",
                "Organisers read out the names of detained women.",
                "Children join the rally with flowers.",
                "The chain disperses peacefully at dusk.",
            ),
            "london",
            lang="en-GB",
            title="Women in white: London solidarity rally, 10 October 2020",
            description=(
                "Photo gallery: hundreds dressed in white gathered in Kensington on Saturday "
                "in solidarity with the women of Belarus."
            ),
            author="Tom Harris",
            published="2020-10-10T19:00:00Z",
            date_text="10 October 2020",
            intro=(
                "On Saturday, 10 October 2020, hundreds of people dressed in white gathered in "
                "Kensington, west London, to stand with the women of Belarus. Photographs "
                "from the afternoon's rally."
            ),
        ),
    )
}

PHOTOS_BY_SLUG: dict[tuple[str, str], Photo] = {
    (g.key, p.slug): p for g in GALLERIES.values() for p in g.photos
}


# --------------------------------------------------------------------------------------
# The curated links (the table of the brief, as data)
# --------------------------------------------------------------------------------------


def _article_link(
    article: Article, demonstrates: str, kind: str = "article", path: str | None = None
) -> LinkSpec:
    return LinkSpec(
        site=article.site,
        path=path or article.path,
        kind=kind,
        demonstrates=demonstrates,
        final_path=article.path,
        content_type=article.content_type,
        title=article.title,
        description=article.description,
        author=article.author,
        published=article.published,
        lang=article.lang,
        metadata=article.metadata,
    )


def _gallery_link(gallery: GallerySpec, demonstrates: str) -> LinkSpec:
    return LinkSpec(
        site=gallery.site,
        path=gallery.path,
        kind="gallery",
        demonstrates=demonstrates,
        final_path=gallery.path,
        title=gallery.title,
        description=gallery.description,
        author=gallery.author,
        published=gallery.published,
        lang=gallery.lang,
        metadata=_F({"og", "meta"}),
        gallery=gallery.key,
    )


def _a(site: str, path: str) -> Article:
    return ARTICLES_BY_PATH[(site, path)]


LINKS: tuple[LinkSpec, ...] = (
    _article_link(
        _a("news", "/pt/mulheres-da-bielorrussia"), "Portuguese, UTF-8, JSON-LD NewsArticle"
    ),
    _article_link(
        _a("news", "/en/2020/10/11/ottawa-solidarity-rally"),
        "HTTP 301 redirect to an English page with OpenGraph + article:published_time",
        kind="redirect",
        path="/ca/ottawa-rally",
    ),
    _article_link(
        _a("news", "/da/kvinder-i-hvidt"),
        "Danish, body always gzip-compressed (Content-Encoding: gzip)",
    ),
    _article_link(
        VIDEO,
        "video page: <video><source> mp4, og:video, and an <iframe> embed that is a page",
        kind="video",
    ),
    _gallery_link(
        GALLERIES["tallinn-2020-10-10"],
        "Estonian gallery, 3 pages: srcset, lazy data-src, linked originals",
    ),
    _gallery_link(GALLERIES["london-2020-10-10"], "English gallery, 2 pages, mixed image styles"),
    _article_link(
        _a("news", "/fr/paris-solidarite"),
        "French, metadata only in plain meta tags, <title>, <html lang>, <time>",
    ),
    _article_link(
        _a("blog", "/de/berlin-demo"), "German, Transfer-Encoding: chunked (no Content-Length)"
    ),
    _article_link(
        _a("news", "/de/2020/muenchen-kundgebung-bericht"),
        "meta refresh to the real German report (OpenGraph)",
        kind="meta-refresh",
        path="/de/muenchen-kundgebung",
    ),
    LinkSpec(
        site="news",
        path="/de/hamburg-mahnwache",
        kind="not-found",
        demonstrates="HTTP 404 with a realistic German error page",
        final_path="/de/hamburg-mahnwache",
        status=404,
        lang="de",
    ),
    _article_link(
        _a("news", "/hu/budapest-szolidaritas"),
        "flaky: odd-numbered requests get 503 (Retry-After: 1), even-numbered the page",
        kind="flaky",
    ),
    _article_link(
        _a("news", "/en/ireland-stands-with-belarus"),
        "English, JSON-LD @graph (WebPage + NewsArticle) and meta tags",
    ),
    _article_link(_a("news", "/it/roma-presidio"), "Italian, OpenGraph + meta"),
    _article_link(_a("blog", "/it/sicilia-messina"), "Italian, meta tags only"),
    _article_link(_a("blog", "/ja/tokyo-solidarity"), "Japanese, UTF-8 non-Latin text, OpenGraph"),
    _article_link(_a("news", "/lv/riga-solidaritate"), "Latvian, UTF-8, OpenGraph"),
    _article_link(_a("news", "/lt/vilnius-1"), "Lithuanian, UTF-8, JSON-LD"),
    _article_link(
        _a("news", "/lt/vilnius-2"),
        "Lithuanian in windows-1257, charset only in <meta http-equiv> (header: text/html)",
    ),
    LinkSpec(
        site=PDF_REPORT.site,
        path=PDF_REPORT.path,
        kind="pdf",
        demonstrates="a PDF document with an Info dictionary (Title, Author, CreationDate)",
        final_path=PDF_REPORT.path,
        content_type="application/pdf",
        title=PDF_REPORT.title,
        author=PDF_REPORT.author,
        published=PDF_REPORT.published,
        lang="en-GB",
        metadata=_F({"pdf-info"}),
    ),
    _article_link(_a("news", "/no/oslo-solidaritet"), "Norwegian, OpenGraph"),
    _article_link(
        _a("news", "/ru/moskva-solidarnost"),
        "Russian in windows-1251 (header and meta charset), meta + OpenGraph",
    ),
    _article_link(_a("blog", "/de/schweiz-solidaritaet"), "Swiss German, meta + <time>"),
    _article_link(_a("news", "/en/london-women-in-white"), "English, OpenGraph + JSON-LD"),
    _article_link(
        _a("news", "/en/usa-rallies"), "English, meta + OpenGraph + <link rel=canonical>"
    ),
    _article_link(
        _a("blog", "/de/2020/10/frauen-fuer-frauen/"),
        "German (Vienna), OpenGraph + article:published_time + meta author",
    ),
)


# --------------------------------------------------------------------------------------
# HTML rendering
# --------------------------------------------------------------------------------------


def _e(text: str) -> str:
    return html.escape(text, quote=False)


def _q(text: str) -> str:
    return html.escape(text, quote=False).replace('"', "&quot;")


def _header(site: str, lang: str) -> str:
    ui = _ui(lang)
    brand = SITE_NAMES[site]
    return (
        '<header class="site-header">\n'
        f'  <a class="brand" href="{{{{site:{site}}}}}/">'
        f'<img src="{{{{site:cdn}}}}/static/logo.png" alt="{_q(brand)}" width="120" height="40">'
        f'<span class="brand-name">{_e(brand)}</span></a>\n'
        '  <nav class="main-nav" aria-label="Main">\n    <ul>\n'
        f'      <li><a href="{{{{site:{site}}}}}/">{_e(ui["home"])}</a></li>\n'
        f'      <li><a href="{{{{site:{site}}}}}/about/">{_e(ui["about"])}</a></li>\n'
        "    </ul>\n  </nav>\n</header>\n"
    )


def _footer(site: str, lang: str) -> str:
    ui = _ui(lang)
    return (
        '<footer class="site-footer">\n'
        f"  <p>© 2020 {_e(SITE_NAMES[site])}. {_e(ui['rights'])}</p>\n"
        f'  <p><a href="{{{{site:{site}}}}}/about/">{_e(ui["about"])}</a></p>\n'
        "</footer>\n"
    )


def _head_common(title_tag: str, extra: list[str], charset_tag: str) -> str:
    lines = [
        charset_tag,
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title_tag)}</title>",
        *extra,
        '<link rel="stylesheet" href="{{site:cdn}}/static/site.css">',
        '<link rel="icon" type="image/png" href="{{site:cdn}}/static/logo.png">',
        '<script src="{{site:cdn}}/static/app.js" defer></script>',
    ]
    return "<head>\n" + "\n".join(lines) + "\n</head>\n"


def _charset_tag(charset: str, in_header: bool) -> str:
    if in_header:
        return f'<meta charset="{charset}">'
    return f'<meta http-equiv="Content-Type" content="text/html; charset={charset}">'


def _jsonld(data: object) -> str:
    text = json.dumps(data, ensure_ascii=False, indent=2).replace("</", "<\\/")
    return f'<script type="application/ld+json">\n{text}\n</script>'


def _news_article_ld(a: Article, url: str, image: str) -> dict[str, object]:
    return {
        "@type": "NewsArticle",
        "headline": a.title,
        "description": a.description,
        "author": {"@type": "Person", "name": a.author},
        "datePublished": a.published,
        "dateModified": a.published,
        "inLanguage": a.lang,
        "image": [image],
        "publisher": {
            "@type": "Organization",
            "name": SITE_NAMES[a.site],
            "logo": {"@type": "ImageObject", "url": "{{site:cdn}}/static/logo.png"},
        },
        "mainEntityOfPage": {"@type": "WebPage", "@id": url},
    }


def _meta_tags(a: Article, url: str, image: str, og_type: str = "article") -> list[str]:
    out: list[str] = []
    md = a.metadata
    if "meta" in md:
        out.append(f'<meta name="description" content="{_q(a.description)}">')
    if "meta" in md or "meta-author" in md:
        out.append(f'<meta name="author" content="{_q(a.author)}">')
    if "meta-date" in md:
        out.append(f'<meta name="date" content="{_q(a.published)}">')
    if "canonical" in md:
        out.append(f'<link rel="canonical" href="{url}">')
    if "og" in md:
        out += [
            f'<meta property="og:type" content="{og_type}">',
            f'<meta property="og:site_name" content="{_q(SITE_NAMES[a.site])}">',
            f'<meta property="og:title" content="{_q(a.title)}">',
            f'<meta property="og:description" content="{_q(a.description)}">',
            f'<meta property="og:url" content="{url}">',
            f'<meta property="og:image" content="{image}">',
            f'<meta property="og:locale" content="{OG_LOCALES.get(a.lang, "en_US")}">',
        ]
    if "article-time" in md:
        out.append(f'<meta property="article:published_time" content="{a.published}">')
    if "jsonld" in md:
        out.append(_jsonld({"@context": "https://schema.org", **_news_article_ld(a, url, image)}))
    if "jsonld-graph" in md:
        article: dict[str, object] = {"@type": "NewsArticle", "@id": f"{url}#article"}
        article.update(_news_article_ld(a, url, image))
        article["isPartOf"] = {"@id": f"{url}#webpage"}
        del article["mainEntityOfPage"]
        graph = {
            "@context": "https://schema.org",
            "@graph": [
                {
                    "@type": "WebPage",
                    "@id": f"{url}#webpage",
                    "url": url,
                    "name": a.title,
                    "inLanguage": a.lang,
                },
                article,
            ],
        }
        out.append(_jsonld(graph))
    return out


def render_article(a: Article) -> str:
    """The HTML template of an article page (or of the video page)."""
    ui = _ui(a.lang)
    url = f"{{{{site:{a.site}}}}}{a.path}"
    is_video = a is VIDEO
    image = (
        f"{{{{site:video}}}}{VIDEO_POSTER_PATH}" if is_video else f"{{{{site:cdn}}}}{a.image_path}"
    )
    meta = _meta_tags(a, url, image, og_type="video.other" if is_video else "article")
    if is_video:
        mp4 = f"{{{{site:video}}}}{VIDEO_MP4_PATH}"
        meta += [
            f'<meta property="og:video" content="{mp4}">',
            '<meta property="og:video:type" content="video/mp4">',
            '<meta property="og:video:width" content="1280">',
            '<meta property="og:video:height" content="720">',
        ]
    title_tag = (
        a.title
        if a.metadata <= {"meta", "meta-date", "time"}
        else (f"{a.title} | {SITE_NAMES[a.site]}")
    )
    head = _head_common(title_tag, meta, _charset_tag(a.charset, a.charset_in_header))
    if "time" in a.metadata:
        when = f'<time datetime="{a.published}">{_e(a.date_text)}</time>'
    else:
        when = f'<span class="date">{_e(a.date_text)}</span>'
    if is_video:
        media = (
            '<div class="video-player">\n'
            f'<video controls preload="metadata" width="1280" height="720" poster="{image}">\n'
            f'  <source src="{{{{site:video}}}}{VIDEO_MP4_PATH}" type="video/mp4">\n'
            "  Your browser does not support HTML5 video.\n"
            "</video>\n</div>\n"
        )
    else:
        media = (
            '<figure class="lead-image">\n'
            f'  <img src="{image}" alt="{_q(a.title)}" width="1200" height="630">\n'
            f"  <figcaption>{_e(a.city)}, {_e(a.date_text)}</figcaption>\n</figure>\n"
        )
    body = "\n".join(f"<p>{_e(p)}</p>" for p in a.paragraphs)
    related = ""
    if is_video:
        related = (
            '<section class="related-video">\n<h2>Interview with the organisers</h2>\n'
            f'<iframe src="{{{{site:video}}}}{VIDEO_EMBED_PATH}" width="560" height="315" '
            'title="Interview with the organisers" frameborder="0" allowfullscreen></iframe>\n'
            "</section>\n"
        )
    return (
        f'<!DOCTYPE html>\n<html lang="{a.lang}">\n{head}'
        f'<body class="article-page site-{a.site}">\n{_header(a.site, a.lang)}'
        '<main id="content">\n<article class="post">\n<header class="post-header">\n'
        f'<p class="kicker">{_e(ui["section"])}</p>\n<h1>{_e(a.title)}</h1>\n'
        f'<p class="byline">{_e(ui["by"])} <span class="author">{_e(a.author)}</span> · '
        f"{when}</p>\n</header>\n{media}"
        f'<div class="article-body">\n{body}\n</div>\n{related}</article>\n</main>\n'
        f"{_footer(a.site, a.lang)}</body>\n</html>\n"
    )


def _photo_markup(photo: Photo) -> str:
    base = "{{site:photos}}"
    alt = _q(photo.caption)
    if photo.style == "srcset":
        w, h = IMAGE_VARIANTS["400"]
        srcset = ", ".join(f"{base}{photo.path(v)} {v}w" for v in ("400", "800", "1600"))
        img = (
            f'<img src="{base}{photo.path("400")}" srcset="{srcset}" '
            f'sizes="(max-width: 600px) 100vw, 400px" alt="{alt}" width="{w}" height="{h}">'
        )
    elif photo.style == "lazy":
        w, h = IMAGE_VARIANTS["400"]
        img = (
            '<img src="{{site:cdn}}/static/placeholder.gif" '
            f'data-src="{base}{photo.path("1600")}" class="lazy" alt="{alt}" '
            f'width="{w}" height="{h}">'
        )
    else:
        w, h = IMAGE_VARIANTS["thumb"]
        img = (
            f'<a href="{base}{photo.path("original")}" class="original">'
            f'<img src="{base}{photo.path("thumb")}" alt="{alt}" width="{w}" height="{h}"></a>'
        )
    return (
        f'<figure class="photo" id="{photo.slug}">\n  {img}\n'
        f"  <figcaption>{_e(photo.caption)}</figcaption>\n</figure>"
    )


def render_gallery_page(g: GallerySpec, number: int) -> str:
    """The HTML template of page ``number`` (1-based) of a gallery."""
    page = g.pages[number - 1]
    ui = _ui(g.lang)
    base = "{{site:photos}}"
    url = f"{base}{page.path}"
    first = g.pages[0].photos[0]
    image = f"{base}{first.full_size_path}"
    label = {"et": "Lehekülg", "en": "Page"}.get(g.lang.split("-")[0], "Page")
    title_tag = g.title if number == 1 else f"{g.title} – {label} {number}"
    meta = [
        f'<meta name="description" content="{_q(g.description)}">',
        f'<meta name="author" content="{_q(g.author)}">',
        f'<link rel="canonical" href="{url}">',
        '<meta property="og:type" content="website">',
        f'<meta property="og:site_name" content="{_q(SITE_NAMES["photos"])}">',
        f'<meta property="og:title" content="{_q(g.title)}">',
        f'<meta property="og:description" content="{_q(g.description)}">',
        f'<meta property="og:url" content="{url}">',
        f'<meta property="og:image" content="{image}">',
        f'<meta property="og:locale" content="{OG_LOCALES.get(g.lang, "en_US")}">',
    ]
    if number > 1:
        meta.append(f'<link rel="prev" href="{base}{g.pages[number - 2].path}">')
    if number < g.num_pages:
        meta.append(f'<link rel="next" href="{base}{g.pages[number].path}">')
    head = _head_common(f"{title_tag} | {SITE_NAMES['photos']}", meta, '<meta charset="utf-8">')
    items = []
    if number > 1:
        items.append(f'  <a class="prev" rel="prev" href="{base}{g.pages[number - 2].path}">« </a>')
    for other in g.pages:
        if other.number == number:
            items.append(f'  <span class="current" aria-current="page">{other.number}</span>')
        else:
            items.append(f'  <a href="{base}{other.path}">{other.number}</a>')
    if number < g.num_pages:
        items.append(f'  <a class="next" rel="next" href="{base}{g.pages[number].path}"> »</a>')
    pagination = '<nav class="pagination" aria-label="Pages">\n' + "\n".join(items) + "\n</nav>\n"
    photos = "\n".join(_photo_markup(photo) for photo in page.photos)
    return (
        f'<!DOCTYPE html>\n<html lang="{g.lang}">\n{head}'
        f'<body class="gallery-page">\n{_header("photos", g.lang)}'
        '<main id="content">\n<section class="gallery">\n<header class="gallery-header">\n'
        f"<h1>{_e(g.title)}</h1>\n"
        f'<p class="byline">{_e(ui["by"])} <span class="author">{_e(g.author)}</span> · '
        f'<span class="date">{_e(g.date_text)}</span></p>\n'
        f'<p class="intro">{_e(g.intro)}</p>\n</header>\n'
        f'<div class="photo-grid">\n{photos}\n</div>\n{pagination}</section>\n</main>\n'
        f"{_footer('photos', g.lang)}</body>\n</html>\n"
    )


def _simple_page(site: str, lang: str, title: str, body_html: str) -> str:
    head = _head_common(f"{title} | {SITE_NAMES[site]}", [], '<meta charset="utf-8">')
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}">\n{head}<body class="simple-page">\n'
        f'{_header(site, lang)}<main id="content">\n<h1>{_e(title)}</h1>\n{body_html}\n</main>\n'
        f"{_footer(site, lang)}</body>\n</html>\n"
    )


def render_home(site: str) -> str:
    """The front page of a site: a list of its pages (no index-site links)."""
    items = [
        f'<li><a href="{{{{site:{site}}}}}{a.path}">{_e(a.title)}</a></li>'
        for a in (*ARTICLES, VIDEO)
        if a.site == site
    ]
    items += [
        f'<li><a href="{{{{site:photos}}}}{g.path}">{_e(g.title)}</a></li>'
        for g in GALLERIES.values()
        if site == "photos"
    ]
    if site == "index":
        items.append(f'<li><a href="{{{{site:index}}}}{INDEX_PATH}">You go, girl!</a></li>')
    body = '<ul class="latest">\n' + "\n".join(items) + "\n</ul>"
    return _simple_page(site, "en", SITE_NAMES[site], body)


def render_about(site: str) -> str:
    """A short "about" page for a site."""
    text = (
        f"<p>{_e(SITE_NAMES[site])} is an independent, volunteer-run publication covering "
        "civil society and human rights across Europe and beyond.</p>"
    )
    return _simple_page(site, "en", "About us", text)


def render_not_found(site: str, lang: str = "en") -> str:
    """A realistic 404 page (German for ``lang="de"``)."""
    if lang == "de":
        title = "Seite nicht gefunden"
        text = (
            "<p>Die von Ihnen aufgerufene Seite existiert leider nicht (mehr). Möglicherweise "
            "wurde sie verschoben oder gelöscht.</p>\n"
            f'<p><a href="{{{{site:{site}}}}}/">Zur Startseite</a></p>'
        )
    else:
        title = "Page not found"
        text = (
            "<p>Sorry, the page you are looking for does not exist or has been moved.</p>\n"
            f'<p><a href="{{{{site:{site}}}}}/">Go to the home page</a></p>'
        )
    return _simple_page(site, lang, f"404 – {title}" if lang != "de" else title, text)


def render_unavailable(site: str) -> str:
    """A 503 page (Hungarian + English)."""
    text = (
        "<p>A szolgáltatás átmenetileg nem érhető el. Kérjük, próbálja újra néhány másodperc "
        "múlva.</p>\n<p>The service is temporarily unavailable. Please try again in a few "
        "seconds.</p>"
    )
    return _simple_page(site, "hu", "503 Service Unavailable", text)


def render_meta_refresh(target: str, title: str) -> str:
    """A page whose only job is a ``<meta http-equiv="refresh">`` to ``target``."""
    return (
        '<!DOCTYPE html>\n<html lang="de">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="refresh" content="0; url={target}">\n'
        f"<title>Weiterleitung: {_e(title)}</title>\n"
        '<meta name="robots" content="noindex">\n</head>\n<body>\n'
        f'<p>Sie werden weitergeleitet … Falls nicht, <a href="{target}">klicken Sie hier</a>.'
        "</p>\n</body>\n</html>\n"
    )


def render_redirect_body() -> str:
    """The small HTML body nginx sends with a 301."""
    return (
        "<html>\r\n<head><title>301 Moved Permanently</title></head>\r\n<body>\r\n"
        "<center><h1>301 Moved Permanently</h1></center>\r\n"
        "<hr><center>nginx/1.18.0 (Ubuntu)</center>\r\n</body>\r\n</html>\r\n"
    )


def render_embed() -> str:
    """The embedded player page the video page puts in an ``<iframe>``."""
    poster = f"{{{{site:video}}}}{VIDEO_POSTER_PATH}"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>Interview with the organisers – ClipRoom player</title>\n"
        '<meta name="robots" content="noindex">\n'
        "<style>html,body{margin:0;height:100%;background:#000}"
        "#player{width:100%;height:100%;background-size:cover}</style>\n"
        "</head>\n<body>\n"
        f'<div id="player" data-video-id="kx7Qp2" style="background-image:url({poster})" '
        'role="img" aria-label="Interview with the organisers"></div>\n'
        "<script>\n"
        "  document.getElementById('player').addEventListener('click', function () {\n"
        "    this.dataset.state = 'loading';\n"
        "  });\n"
        "</script>\n</body>\n</html>\n"
    )


SITE_CSS = """\
/* Shared stylesheet of the replica sites. */
:root { --ink: #1d1d1f; --accent: #c8102e; --muted: #6b6b70; }
html { font: 17px/1.6 Georgia, "Times New Roman", serif; color: var(--ink); }
body { margin: 0; background: #fff url(/static/bg.png) repeat; }
.site-header { display: flex; align-items: center; gap: 2rem; padding: .75rem 2rem;
  border-bottom: 3px solid var(--accent); background: #fff; }
.site-header .brand { display: flex; align-items: center; gap: .5rem; color: inherit;
  text-decoration: none; font-weight: bold; }
.main-nav ul { display: flex; gap: 1.25rem; list-style: none; margin: 0; padding: 0; }
.main-nav a { color: var(--ink); text-decoration: none; }
main { max-width: 46rem; margin: 2rem auto; padding: 0 1rem; background: #fff; }
.kicker { text-transform: uppercase; letter-spacing: .08em; color: var(--accent);
  font: bold .8rem/1 Arial, sans-serif; }
.byline { color: var(--muted); font-size: .9rem; }
figure { margin: 1.5rem 0; }
figure img { max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: .85rem; }
.photo-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(14rem, 1fr));
  gap: 1rem; }
.pagination { display: flex; gap: .5rem; margin: 2rem 0; }
.pagination .current { font-weight: bold; }
.video-player video { width: 100%; height: auto; background: #000; }
.site-footer { border-top: 1px solid #ddd; padding: 1rem 2rem; color: var(--muted);
  font-size: .85rem; }
"""

APP_JS = """\
/* Replica site script: swaps lazy images in when they scroll into view. */
(function () {
  'use strict';
  function load(img) {
    if (img.dataset.src) {
      img.src = img.dataset.src;
      img.removeAttribute('data-src');
      img.classList.remove('lazy');
    }
  }
  document.addEventListener('DOMContentLoaded', function () {
    var lazy = [].slice.call(document.querySelectorAll('img.lazy'));
    if (!('IntersectionObserver' in window)) { lazy.forEach(load); return; }
    var io = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (entry.isIntersecting) { load(entry.target); io.unobserve(entry.target); }
      });
    }, { rootMargin: '200px' });
    lazy.forEach(function (img) { io.observe(img); });
  });
})();
"""


# --------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------

HTML_UTF8 = "text/html; charset=utf-8"
_LAST_MODIFIED = "Sat, 10 Oct 2020 21:00:00 GMT"
_STATIC_HEADERS = (
    ("Last-Modified", _LAST_MODIFIED),
    ("Cache-Control", "public, max-age=31536000, immutable"),
)


def _static(body: bytes | str, content_type: str) -> Resource:
    raw = body.encode("utf-8") if isinstance(body, str) else body
    etag = f'"{zlib.crc32(raw):08x}-{len(raw):x}"'
    return Resource(body, content_type, headers=(*_STATIC_HEADERS, ("ETag", etag)))


def _page_headers(site: str, hit: int, path: str) -> tuple[tuple[str, str], ...]:
    headers: list[tuple[str, str]] = [("Cache-Control", "max-age=300, must-revalidate")]
    if site == "news":
        session = hashlib.sha1(f"{path}#{hit}".encode()).hexdigest()[:24]
        headers += [
            ("Set-Cookie", f"sw_session={session}; Path=/; HttpOnly; SameSite=Lax"),
            ("Set-Cookie", "sw_consent=pending; Path=/; Max-Age=31536000; SameSite=Lax"),
        ]
    headers.append(("X-Content-Type-Options", "nosniff"))
    return tuple(headers)


def not_found(site: str, lang: str = "en") -> Resource:
    """A 404 response for ``site``."""
    return Resource(render_not_found(site, lang), HTML_UTF8, status=404)


def server_error(site: str) -> Resource:
    """A 500 response (used only if rendering itself fails)."""
    body = _simple_page(site, "en", "500 Internal Server Error", "<p>Something went wrong.</p>")
    return Resource(body, HTML_UTF8, status=500)


def _article_resource(a: Article, hit: int) -> Resource:
    if a.flaky and hit % 2 == 1:
        return Resource(
            render_unavailable(a.site),
            HTML_UTF8,
            status=503,
            headers=(("Retry-After", "1"), ("Cache-Control", "no-store")),
        )
    headers = _page_headers(a.site, hit, a.path)
    if a.framing == "gzip":
        headers += (("Vary", "Accept-Encoding"),)
    return Resource(
        render_article(a), a.content_type, encoding=a.charset, headers=headers, framing=a.framing
    )


def _index_page() -> Resource:
    try:
        text = INDEX_TEMPLATE.read_text(encoding="utf-8")
    except FileNotFoundError:
        return not_found("index")
    return Resource(text, HTML_UTF8, headers=(("Cache-Control", "max-age=60"),))


#: File extensions of page requisites that the index template may reference; each such
#: reference gets served (generated by extension) so that the index page is complete.
INDEX_ASSET_TYPES: dict[str, str] = {
    ".css": "text/css; charset=utf-8",
    ".js": "application/javascript; charset=utf-8",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
}

_ASSET_REF = re.compile(r"\{\{site:([a-z]+)\}\}(/[^\s\"'<>?#)]*)")
_index_assets_cache: dict[str, object] = {}


def index_assets() -> dict[tuple[str, str], tuple[int, int]]:
    """Page requisites referenced by ``pages/index.html``: ``(site, path)`` -> (width, height)
    (``(0, 0)`` unless an ``<img>`` tag declares its size). Paths carry no query string.
    Re-read whenever the template changes; empty while it does not exist."""
    try:
        mtime = INDEX_TEMPLATE.stat().st_mtime_ns
    except FileNotFoundError:
        return {}
    if _index_assets_cache.get("mtime") != mtime:
        text = INDEX_TEMPLATE.read_text(encoding="utf-8")
        found: dict[tuple[str, str], tuple[int, int]] = {}
        for match in _ASSET_REF.finditer(text):
            site, path = match.groups()
            suffix = Path(path).suffix.lower()
            if site not in SITES or suffix not in INDEX_ASSET_TYPES:
                continue
            tag = text[text.rfind("<", 0, match.start()) : text.find(">", match.end()) + 1]
            width = re.search(r'\swidth="(\d+)"', tag)
            height = re.search(r'\sheight="(\d+)"', tag)
            size = (int(width.group(1)), int(height.group(1))) if width and height else (0, 0)
            if found.get((site, path), (0, 0)) == (0, 0):
                found[(site, path)] = size
        _index_assets_cache.update(mtime=mtime, assets=found)
    assets = _index_assets_cache["assets"]
    assert isinstance(assets, dict)
    return assets


def _index_asset(site: str, path: str) -> Resource | None:
    size = index_assets().get((site, path))
    if size is None:
        return None
    suffix = Path(path).suffix.lower()
    content_type = INDEX_ASSET_TYPES[suffix]
    width, height = size
    body: bytes | str
    if suffix in (".jpg", ".jpeg"):
        body = make_jpeg(f"You Go Girl | {path}", width or 1024, height or 576, _shade(path))
    elif suffix == ".png":
        body = logo_png()
    elif suffix == ".gif":
        body = PLACEHOLDER_GIF
    elif suffix == ".css":
        body = f"/* Theme stylesheet: {path} */\n{SITE_CSS}"
    elif suffix == ".js":
        body = APP_JS
    else:
        body = (
            '<svg xmlns="http://www.w3.org/2000/svg" width="24" height="24" viewBox="0 0 24 24">'
            '<rect width="24" height="8" fill="#fff"/><rect y="8" width="24" height="8" '
            'fill="#c8102e"/><rect y="16" width="24" height="8" fill="#fff"/></svg>\n'
        )
    return _static(body, content_type)


def _jpeg_for(site: str, path: str) -> bytes | None:
    if site == "cdn" and path.startswith("/media/") and path.endswith(".jpg"):
        for a in ARTICLES:
            if a.image_path == path:
                label = f"{SITE_NAMES[a.site]} | lead image | {a.city} 2020-10-10 | {path}"
                return make_jpeg(label, 1200, 630, _shade(path))
        return None
    if site == "video" and path == VIDEO_POSTER_PATH:
        return make_jpeg(f"ClipRoom | poster | {path}", 1280, 720, _shade(path))
    match = re.fullmatch(r"/img/([a-z0-9-]+)/([a-z]+-\d\d)-([a-z0-9]+)\.jpg", path)
    if site == "photos" and match:
        gallery, slug, variant = match.groups()
        photo = PHOTOS_BY_SLUG.get((gallery, slug))
        if photo is None or variant not in IMAGE_VARIANTS:
            return None
        width, height = IMAGE_VARIANTS[variant]
        g = GALLERIES[gallery]
        label = (
            f"{SITE_NAMES['photos']} | {gallery} | {slug}-{variant}.jpg | {width}x{height} | "
            f"{photo.caption} | Photo: {g.author}"
        )
        return make_jpeg(label, width, height, photo.shade)
    return None


def _gallery_resource(g: GallerySpec, query: str, hit: int) -> Resource:
    values = parse_qs(query).get("page", ["1"])
    try:
        number = int(values[-1])
    except ValueError:
        number = 0
    if not 1 <= number <= g.num_pages:
        return not_found("photos")
    return Resource(
        render_gallery_page(g, number), HTML_UTF8, headers=_page_headers("photos", hit, g.path)
    )


def _routes() -> dict[tuple[str, str], Callable[[str, int], Resource]]:
    routes: dict[tuple[str, str], Callable[[str, int], Resource]] = {}
    for a in (*ARTICLES, VIDEO):
        routes[(a.site, a.path)] = lambda q, n, a=a: _article_resource(a, n)
    for g in GALLERIES.values():
        routes[(g.site, g.path)] = lambda q, n, g=g: _gallery_resource(g, q, n)
    routes[("news", "/ca/ottawa-rally")] = lambda q, n: Resource(
        render_redirect_body(),
        "text/html",
        status=301,
        headers=(("Location", "{{site:news}}/en/2020/10/11/ottawa-solidarity-rally"),),
    )
    munich = ARTICLES_BY_PATH[("news", "/de/2020/muenchen-kundgebung-bericht")]
    routes[("news", "/de/muenchen-kundgebung")] = lambda q, n: Resource(
        render_meta_refresh("{{site:news}}" + munich.path, munich.title),
        HTML_UTF8,
        headers=_page_headers("news", n, "/de/muenchen-kundgebung"),
    )
    routes[("news", "/de/hamburg-mahnwache")] = lambda q, n: not_found("news", "de")
    routes[(PDF_REPORT.site, PDF_REPORT.path)] = lambda q, n: _static(
        pdf_report(), "application/pdf"
    )
    routes[("video", VIDEO_MP4_PATH)] = lambda q, n: _static(
        make_mp4("ClipRoom copenhagen-rally"), "video/mp4"
    )
    routes[("video", VIDEO_EMBED_PATH)] = lambda q, n: Resource(
        render_embed(), HTML_UTF8, headers=(("X-Frame-Options", "ALLOWALL"),)
    )
    routes[("cdn", "/static/site.css")] = lambda q, n: _static(SITE_CSS, "text/css; charset=utf-8")
    routes[("cdn", "/static/app.js")] = lambda q, n: _static(
        APP_JS, "application/javascript; charset=utf-8"
    )
    routes[("cdn", "/static/logo.png")] = lambda q, n: _static(logo_png(), "image/png")
    routes[("cdn", "/static/bg.png")] = lambda q, n: _static(background_png(), "image/png")
    routes[("cdn", "/static/placeholder.gif")] = lambda q, n: _static(PLACEHOLDER_GIF, "image/gif")
    for path, make in social.routes().items():
        routes[(social.SITE, path)] = lambda q, n, make=make: Resource(*_social_parts(make(q)))
    routes[(social.SITE, social.LIST_PATH)] = lambda q, n: Resource(
        social.list_csv("{{site:social}}"), "text/csv; charset=utf-8"
    )
    routes[(social.SITE, social.CLIP_MP4_PATH)] = lambda q, n: _static(
        make_mp4("Pulse berlin-march"), "video/mp4"
    )
    routes[("index", INDEX_PATH)] = lambda q, n: _index_page()
    routes[("index", INDEX_PATH + "/")] = lambda q, n: _index_page()
    for site in SITES:
        if site == "cdn":
            continue
        routes.setdefault((site, "/"), lambda q, n, s=site: Resource(render_home(s), HTML_UTF8))
        routes.setdefault(
            (site, "/about/"), lambda q, n, s=site: Resource(render_about(s), HTML_UTF8)
        )
    return routes


def _social_parts(answer: tuple[int, str, bytes | str, str]) -> tuple[Any, ...]:
    status, content_type, body, framing = answer
    return body, content_type, status, "utf-8", (), framing


ROUTES = _routes()


def resolve(site: str, path: str, query: str = "", hit: int = 1) -> Resource:
    """The response for ``GET path?query`` on ``site``; ``hit`` is the 1-based request count
    of that path (used by the flaky page)."""
    route = ROUTES.get((site, path))
    if route is not None:
        return route(query, hit)
    if site == social.SITE and path.startswith("/img/") and path.endswith(".jpg"):
        return _static(make_jpeg(f"Pulse {path[5:-4]}", 480, 400, _shade(path)), "image/jpeg")
    jpeg = _jpeg_for(site, path)
    if jpeg is not None:
        return _static(jpeg, "image/jpeg")
    asset = _index_asset(site, path)
    if asset is not None:
        return asset
    if not path.endswith("/") and (site, path + "/") in ROUTES:
        location = f"{{{{site:{site}}}}}{path}/" + (f"?{query}" if query else "")
        return Resource(
            render_redirect_body(), "text/html", status=301, headers=(("Location", location),)
        )
    return not_found(site)
