"""Tests of the offline replica world: real servers on 127.0.0.1, checked on the wire."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import re
import socket
import struct
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from html.parser import HTMLParser
from io import BytesIO
from urllib.parse import urlsplit

import pytest

from pipeline.replica import ReplicaWorld
from pipeline.replica import content as c

# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world() -> Iterator[ReplicaWorld]:
    with ReplicaWorld() as w:
        yield w


def raw_get(
    world: ReplicaWorld, site: str, path: str, extra: str = ""
) -> tuple[str, list[tuple[str, str]], bytes]:
    """GET over a raw socket with ``Connection: close``; returns (status line, headers, raw
    body exactly as framed on the wire)."""
    host, port = urlsplit(world.base_urls[site]).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}Connection: close\r\n\r\n"
        sock.sendall(request.encode("ascii"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:]]
    return lines[0], headers, body  # type: ignore[return-value]


def header(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name.lower()]


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    """GET with urllib (follows HTTP redirects); never raises on HTTP errors."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers.items()), err.read()


def get_ok(url: str) -> bytes:
    """GET, retrying once (the flaky page answers 503 every other time)."""
    status, headers, body = fetch(url)
    if status == 503:
        status, headers, body = fetch(url)
    assert status == 200, url
    if headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return body


class _Collector(HTMLParser):
    """Collects tags (name, attrs) and JSON-LD script bodies."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.jsonld: list[object] = []
        self._in_ld = False
        self._buf = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.tags.append((tag, attributes))
        if tag == "script" and attributes.get("type") == "application/ld+json":
            self._in_ld, self._buf = True, ""

    def handle_data(self, data: str) -> None:
        if self._in_ld:
            self._buf += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._in_ld:
            self.jsonld.append(json.loads(self._buf))
            self._in_ld = False

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [
            a
            for t, a in self.tags
            if t == tag
            and all(a.get(k.rstrip("_").replace("_", "-")) == v for k, v in attrs.items())
        ]

    def meta(self, key: str) -> str | None:
        for _, a in self.tags:
            if _ == "meta" and (a.get("name") == key or a.get("property") == key):
                return a.get("content")
        return None


def parse(text: str) -> _Collector:
    collector = _Collector()
    collector.feed(text)
    collector.close()
    return collector


def decode_jpeg(data: bytes) -> tuple[int, int, str]:
    """Walk a baseline greyscale JPEG, Huffman-decode its whole scan, and return
    (width, height, COM text). Fails on any structural or entropy-coding error."""
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
    pos, tables, width, height, comment = 2, {}, 0, 0, ""
    while True:
        assert data[pos] == 0xFF, f"bad marker at {pos}"
        marker = data[pos + 1]
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        seg = data[pos + 4 : pos + 2 + length]
        if marker == 0xFE:
            comment = seg.decode("utf-8")
        elif marker == 0xC0:
            precision, height, width, ncomp = struct.unpack(">BHHB", seg[:6])
            assert precision == 8 and ncomp == 1
        elif marker == 0xC4:
            i = 0
            while i < len(seg):
                cls_id, counts = seg[i], seg[i + 1 : i + 17]
                values = seg[i + 17 : i + 17 + sum(counts)]
                table, code, k = {}, 0, 0
                for size in range(1, 17):
                    for _ in range(counts[size - 1]):
                        table[format(code, f"0{size}b")] = values[k]
                        code, k = code + 1, k + 1
                    code <<= 1
                tables[cls_id] = table
                i += 17 + sum(counts)
        pos += 2 + length
        if marker == 0xDA:
            break
    scan = data[pos:-2]
    assert re.search(rb"\xff[^\x00]", scan) is None, "unstuffed 0xFF in scan"
    scan = scan.replace(b"\xff\x00", b"\xff")
    bits = format(int.from_bytes(scan, "big"), f"0{len(scan) * 8}b")
    at = 0

    def symbol(table: dict[str, int]) -> int:
        nonlocal at
        for size in range(1, 17):
            code = bits[at : at + size]
            if code in table:
                at += size
                return table[code]
        raise AssertionError("invalid Huffman code")

    for _ in range(((width + 7) // 8) * ((height + 7) // 8)):
        category = symbol(tables[0x00])  # DC category, then its extra bits
        at += category
        k = 1
        while k < 64:
            value = symbol(tables[0x10])
            if value == 0:
                break
            k += (value >> 4) + 1
            at += value & 0x0F
    rest = bits[at:]
    assert len(rest) < 8 and set(rest) <= {"1"}, "trailing garbage in scan"
    return width, height, comment


# --------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------


def test_world_api(world: ReplicaWorld) -> None:
    assert ReplicaWorld.SITES == ("index", "news", "blog", "photos", "video", "cdn", "social")
    assert set(world.base_urls) == set(world.SITES)
    ports = {urlsplit(u).port for u in world.base_urls.values()}
    assert len(ports) == len(world.SITES)
    for url in world.base_urls.values():
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
    assert world.index_url == world.base_urls["index"] + "/ru/news/you-go-girl"
    assert world.url("news", "/x") == world.base_urls["news"] + "/x"
    with pytest.raises(KeyError):
        world.url("nope", "/")


def test_index_page_substituted(world: ReplicaWorld) -> None:
    if not c.INDEX_TEMPLATE.exists():
        pytest.skip("pipeline/replica/pages/index.html not written yet")
    template = c.INDEX_TEMPLATE.read_text(encoding="utf-8")
    names = set(c.SITE_PLACEHOLDER.findall(template))
    for path in (c.INDEX_PATH, c.INDEX_PATH + "/"):
        status, headers, body = fetch(world.url("index", path))
        assert status == 200
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        text = body.decode("utf-8")
        assert "{{site:" not in text
        for name in names:
            assert world.base_urls[name] in text
        assert text == c.substitute_sites(template, world.base_urls)


def test_index_page_links_and_requisites(world: ReplicaWorld) -> None:
    if not c.INDEX_TEMPLATE.exists():
        pytest.skip("pipeline/replica/pages/index.html not written yet")
    template = c.INDEX_TEMPLATE.read_text(encoding="utf-8")
    refs = {
        (site, path.replace("&amp;", "&"))
        for site, path in re.findall(r"\{\{site:([a-z]+)\}\}(/[^\s\"'<>#]*)", template)
    }
    for link in c.LINKS:
        assert (link.site, link.path) in refs, link.path
    assets = c.index_assets()
    assert assets, "the index page references no page requisites?"
    for (site, path), (width, height) in assets.items():
        status, headers, body = fetch(world.url(site, path))
        assert status == 200, path
        assert headers["Content-Type"] == c.INDEX_ASSET_TYPES[path[path.rfind(".") :].lower()]
        if headers["Content-Type"] == "image/jpeg" and width:
            assert decode_jpeg(body)[:2] == (width, height)
    expected = {(link.site, link.path): link.status for link in c.LINKS}
    for site, path in sorted(refs):
        if site == "index":
            continue
        status = fetch(world.url(site, path))[0]
        if status == 503:  # the flaky page
            status = fetch(world.url(site, path))[0]
        assert status == expected.get((site, path.split("?")[0]), 200), path


@pytest.mark.parametrize("link", c.LINKS, ids=lambda link: f"{link.site}{link.path}")
def test_manifest_link_served_as_declared(world: ReplicaWorld, link: c.LinkSpec) -> None:
    status, headers, body = fetch(world.url(link.site, link.final_path))
    if link.kind == "flaky" and status == 503:
        status, headers, body = fetch(world.url(link.site, link.final_path))
    assert status == link.status
    if link.status != 200:
        return
    assert headers["Content-Type"] == link.content_type
    if link.kind == "pdf":
        assert body.startswith(b"%PDF-")
        return
    if headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    charset = link.content_type.partition("charset=")[2] or "windows-1257"
    text = body.decode(charset)
    assert "{{site:" not in text
    cdn = world.base_urls["cdn"]
    assert f'href="{cdn}/static/site.css"' in text
    assert f'src="{cdn}/static/app.js"' in text
    assert f'src="{cdn}/static/logo.png"' in text
    doc = parse(text)
    assert doc.find("html")[0]["lang"] == link.lang
    title = re.search(r"<title>(.*?)</title>", text).group(1)  # type: ignore[union-attr]
    assert link.title in title.replace("&amp;", "&")
    md = link.metadata
    if "og" in md:
        assert doc.meta("og:title") == link.title
        assert doc.meta("og:description") == link.description
    else:
        assert doc.meta("og:title") is None
    if "meta" in md:
        assert doc.meta("description") == link.description
    if "meta" in md or "meta-author" in md:
        assert doc.meta("author") == link.author
    if "article-time" in md:
        assert doc.meta("article:published_time") == link.published
    if "time" in md:
        assert doc.find("time", datetime=link.published)
    if "canonical" in md:
        assert doc.find("link", rel="canonical")[0]["href"] == world.url(link.site, link.path)
    if "jsonld" in md or "jsonld-graph" in md:
        (ld,) = doc.jsonld
        items = ld["@graph"] if "jsonld-graph" in md else [ld]  # type: ignore[index]
        article = next(i for i in items if i["@type"] == "NewsArticle")
        assert article["headline"] == link.title
        assert article["description"] == link.description
        assert article["author"]["name"] == link.author
        assert article["datePublished"] == link.published
        assert article["inLanguage"] == link.lang
        if "jsonld-graph" in md:
            assert {i["@type"] for i in items} == {"WebPage", "NewsArticle"}
    else:
        assert not doc.jsonld


def test_portuguese_jsonld_fields(world: ReplicaWorld) -> None:
    doc = parse(get_ok(world.url("news", "/pt/mulheres-da-bielorrussia")).decode("utf-8"))
    (ld,) = doc.jsonld
    assert ld["@type"] == "NewsArticle"  # type: ignore[index]
    assert ld["datePublished"] == "2020-10-10T18:00:00Z"  # type: ignore[index]
    assert ld["inLanguage"] == "pt-BR"  # type: ignore[index]
    assert ld["publisher"]["name"] == "Solidarity Wire"  # type: ignore[index]
    assert ld["image"][0].startswith(world.base_urls["cdn"])  # type: ignore[index]
    assert doc.meta("og:title") is None and doc.meta("description") is None


def test_gzip_on_the_wire(world: ReplicaWorld) -> None:
    for extra in ("", "Accept-Encoding: identity\r\n", "Accept-Encoding: gzip\r\n"):
        status, headers, body = raw_get(world, "news", "/da/kvinder-i-hvidt", extra)
        assert status == "HTTP/1.1 200 OK"
        assert header(headers, "Content-Encoding") == ["gzip"]
        assert header(headers, "Content-Length") == [str(len(body))]
        assert not header(headers, "Transfer-Encoding")
        assert body[:2] == b"\x1f\x8b"
        text = gzip.decompress(body).decode("utf-8")
        assert "Rådhuspladsen" in text and '<html lang="da">' in text


def test_chunked_on_the_wire(world: ReplicaWorld) -> None:
    status, headers, body = raw_get(world, "blog", "/de/berlin-demo")
    assert status == "HTTP/1.1 200 OK"
    assert header(headers, "Transfer-Encoding") == ["chunked"]
    assert not header(headers, "Content-Length")
    chunks, rest = [], body
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            assert rest == b"\r\n"
            break
        chunks.append(rest[:size])
        assert rest[size : size + 2] == b"\r\n"
        rest = rest[size + 2 :]
    assert len(chunks) >= 3
    text = b"".join(chunks).decode("utf-8")
    assert "Brandenburger Tor" in text and text.rstrip().endswith("</html>")
    # http.client sees the same framing.
    conn = http.client.HTTPConnection(urlsplit(world.base_urls["blog"]).netloc, timeout=10)
    conn.request("GET", "/de/berlin-demo")
    resp = conn.getresponse()
    assert resp.chunked and resp.getheader("Content-Length") is None
    assert resp.read().decode("utf-8") == text
    conn.close()


def test_keep_alive_and_sent_bytes(world: ReplicaWorld) -> None:
    conn = http.client.HTTPConnection(urlsplit(world.base_urls["news"]).netloc, timeout=10)
    before = world.hits("news", "/it/roma-presidio")
    conn.request("GET", "/it/roma-presidio")
    resp = conn.getresponse()
    body = resp.read()
    sock = conn.sock
    assert resp.status == 200 and not resp.will_close
    assert len(resp.headers.get_all("Set-Cookie") or []) == 2
    assert resp.getheader("Server") and resp.getheader("Date")
    assert int(resp.getheader("Content-Length")) == len(body)
    conn.request("GET", "/it/roma-presidio?utm_source=test")
    assert conn.getresponse().read() == body
    assert conn.sock is sock  # the same connection was reused
    conn.close()
    assert world.hits("news", "/it/roma-presidio") == before + 2
    assert world.hits("news", "/it/roma-presidio?x=1") == before + 2
    sent = world.sent("news", "/it/roma-presidio")
    assert len(sent) == before + 2
    assert sent[-1].startswith(b"HTTP/1.1 200 OK\r\n") and sent[-1].endswith(body)


def test_301_redirect(world: ReplicaWorld) -> None:
    conn = http.client.HTTPConnection(urlsplit(world.base_urls["news"]).netloc, timeout=10)
    conn.request("GET", "/ca/ottawa-rally")
    resp = conn.getresponse()
    resp.read()
    conn.close()
    target = world.url("news", "/en/2020/10/11/ottawa-solidarity-rally")
    assert resp.status == 301 and resp.getheader("Location") == target
    status, _, body = fetch(world.url("news", "/ca/ottawa-rally"))
    doc = parse(body.decode("utf-8"))
    assert status == 200
    assert doc.meta("article:published_time").startswith("2020-10-11")  # type: ignore[union-attr]
    assert doc.meta("og:site_name") == "Solidarity Wire"
    assert doc.meta("og:image").startswith(world.base_urls["cdn"])  # type: ignore[union-attr]
    assert doc.meta("author") == "Sarah Thompson"


def test_meta_refresh(world: ReplicaWorld) -> None:
    status, _, body = fetch(world.url("news", "/de/muenchen-kundgebung"))
    assert status == 200
    doc = parse(body.decode("utf-8"))
    (refresh,) = doc.find("meta", http_equiv="refresh")
    target = world.url("news", "/de/2020/muenchen-kundgebung-bericht")
    assert refresh["content"] == f"0; url={target}"
    status, _, body = fetch(target)
    assert status == 200
    assert parse(body.decode("utf-8")).meta(
        "og:title",
    ) == ("München: Kundgebung für die Frauen in Belarus auf dem Marienplatz")


def test_404_pages(world: ReplicaWorld) -> None:
    status, headers, body = fetch(world.url("news", "/de/hamburg-mahnwache"))
    assert status == 404
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    text = body.decode("utf-8")
    assert "Seite nicht gefunden" in text and "<html" in text
    for site in world.SITES:
        status, headers, body = fetch(world.url(site, "/no/such/page.html?x=1"))
        assert status == 404, site
        assert int(headers["Content-Length"]) == len(body)


def test_flaky_503_then_200() -> None:
    with ReplicaWorld() as w:
        url = w.url("news", "/hu/budapest-szolidaritas")
        statuses = []
        for _ in range(4):
            status, headers, body = fetch(url)
            statuses.append(status)
            if status == 503:
                assert headers["Retry-After"] == "1"
                assert b"<html" in body
            else:
                assert "Budapesten" in body.decode("utf-8")
        assert statuses == [503, 200, 503, 200]
        assert w.hits("news", "/hu/budapest-szolidaritas") == 4
        w.reset()
        assert w.hits("news", "/hu/budapest-szolidaritas") == 0
        assert fetch(url)[0] == 503


def test_windows_1251(world: ReplicaWorld) -> None:
    status, headers, body = raw_get(world, "news", "/ru/moskva-solidarnost")
    assert header(headers, "Content-Type") == ["text/html; charset=windows-1251"]
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    text = body.decode("windows-1251")
    assert '<meta charset="windows-1251">' in text
    assert "В Москве прошла акция солидарности с женщинами Беларуси" in text
    doc = parse(text)
    assert doc.meta("author") == "Анна Смирнова"
    assert doc.meta(
        "og:description",
    ).startswith("В субботу")  # type: ignore[union-attr]


def test_windows_1257(world: ReplicaWorld) -> None:
    status, headers, body = raw_get(world, "news", "/lt/vilnius-2")
    assert header(headers, "Content-Type") == ["text/html"]
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    assert b"charset=windows-1257" in body
    text = body.decode("windows-1257")
    assert '<meta http-equiv="Content-Type" content="text/html; charset=windows-1257">' in text
    assert "<meta charset" not in text
    for letter in "ąčęėįšųūž":
        assert letter in text, letter
    assert "Eglė Petrauskaitė" in text


def test_galleries_markup(world: ReplicaWorld) -> None:
    assert set(c.GALLERIES) == {"tallinn-2020-10-10", "london-2020-10-10"}
    tallinn = c.GALLERIES["tallinn-2020-10-10"]
    assert tallinn.num_pages == 3 and all(len(p.photos) == 4 for p in tallinn.pages)
    london = c.GALLERIES["london-2020-10-10"]
    assert london.num_pages == 2 and all(len(p.photos) == 3 for p in london.pages)
    photos = world.base_urls["photos"]
    for gallery in c.GALLERIES.values():
        for page in gallery.pages:
            text = get_ok(world.url("photos", page.path)).decode("utf-8")
            doc = parse(text)
            assert doc.find("nav", class_="pagination")
            nxt = doc.find("a", rel="next")
            if page.number < gallery.num_pages:
                assert nxt[0]["href"] == photos + gallery.pages[page.number].path
            else:
                assert not nxt
            hrefs = {a.get("href") for t, a in doc.tags if t == "a"}
            assert {photos + other.path for other in gallery.pages if other is not page} <= hrefs
            # Full-size image of each photo, derived from the markup as a crawler must.
            full = []
            for _, attrs in doc.tags:
                if "srcset" in attrs:
                    candidates = [x.strip().rsplit(" ", 1) for x in attrs["srcset"].split(",")]
                    full.append(max(candidates, key=lambda cand: int(cand[1][:-1]))[0])
                elif "data-src" in attrs:
                    assert attrs["src"] == world.url("cdn", "/static/placeholder.gif")
                    full.append(attrs["data-src"])
                elif attrs.get("class") == "original":
                    full.append(attrs["href"])
            assert full == [photos + p for p in page.full_size_paths]
            body = text.partition("<body")[2]  # og:image in <head> is the gallery's first photo
            referenced = set(re.findall(re.escape(photos) + r"(/img/[^\s\"]+\.jpg)", body))
            assert referenced == {p for ph in page.photos for p in ph.referenced_paths}
    styles = [[ph.style for ph in p.photos] for p in tallinn.pages]
    assert styles == [["srcset"] * 4, ["lazy"] * 4, ["linked"] * 4]
    assert len({ph.style for ph in london.photos}) == 3
    assert fetch(world.url("photos", tallinn.path + "?page=4"))[0] == 404
    assert fetch(world.url("photos", tallinn.path + "?page=1"))[0] == 200


def test_gallery_images_are_distinct_jpegs(world: ReplicaWorld) -> None:
    digests: set[str] = set()
    paths = [p for g in c.GALLERIES.values() for p in g.image_paths]
    for path in paths:
        status, headers, body = fetch(world.url("photos", path))
        assert status == 200, path
        assert headers["Content-Type"] == "image/jpeg"
        assert int(headers["Content-Length"]) == len(body)
        width, height, comment = decode_jpeg(body)
        variant = path.rsplit("-", 1)[1].removesuffix(".jpg")
        assert (width, height) == c.IMAGE_VARIANTS[variant]
        assert path.rsplit("/", 1)[1] in comment
        digests.add(hashlib.sha256(body).hexdigest())
    assert len(digests) == len(paths) == len(set(paths))
    full = [p for g in c.GALLERIES.values() for p in g.full_size_paths]
    assert len(full) == 18 and set(full) <= set(paths)


def test_other_jpegs(world: ReplicaWorld) -> None:
    for link in c.LINKS:
        article = c.ARTICLES_BY_PATH.get((link.site, link.final_path))
        if article is None:
            continue
        status, headers, body = fetch(world.url("cdn", article.image_path))
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        assert decode_jpeg(body)[:2] == (1200, 630)
    status, headers, body = fetch(world.url("video", c.VIDEO_POSTER_PATH))
    assert decode_jpeg(body)[:2] == (1280, 720)


def test_pdf_parses(world: ReplicaWorld) -> None:
    from pypdf import PdfReader

    status, headers, body = fetch(world.url("news", "/reports/vilnius-2020-10-10.pdf"))
    assert status == 200 and headers["Content-Type"] == "application/pdf"
    reader = PdfReader(BytesIO(body), strict=True)
    info = reader.metadata
    assert info is not None
    assert info.title == c.PDF_REPORT.title == "Moterų solidarumo akcija Vilniuje, 2020-10-10"
    assert info.author == "Eglė Petrauskaitė"
    assert info.creation_date is not None
    assert info.creation_date.strftime("%Y-%m-%d") == "2020-10-10"
    assert len(reader.pages) == 1
    assert "Vilnius" in reader.pages[0].extract_text()


def test_video_page(world: ReplicaWorld) -> None:
    video = world.base_urls["video"]
    doc = parse(get_ok(world.url("video", "/watch/copenhagen-rally")).decode("utf-8"))
    (vid,) = doc.find("video")
    assert "controls" in vid and vid["poster"] == video + c.VIDEO_POSTER_PATH
    (source,) = doc.find("source")
    assert source == {"src": video + "/media/copenhagen-rally.mp4", "type": "video/mp4"}
    assert doc.meta("og:video") == source["src"]
    (iframe,) = doc.find("iframe")
    assert iframe["src"].startswith(video + "/embed/")
    status, headers, body = fetch(iframe["src"])
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"<html" in body
    status, headers, body = fetch(source["src"])
    assert status == 200 and headers["Content-Type"] == "video/mp4"
    assert body[4:8] == b"ftyp" and b"moov" in body and b"mdat" in body
    (size,) = struct.unpack(">I", body[:4])
    assert body[size + 4 : size + 8] == b"moov"


def test_cdn_assets(world: ReplicaWorld) -> None:
    status, headers, css = fetch(world.url("cdn", "/static/site.css"))
    assert status == 200 and headers["Content-Type"].startswith("text/css")
    assert b"url(/static/bg.png)" in css
    status, headers, js = fetch(world.url("cdn", "/static/app.js"))
    assert headers["Content-Type"].startswith("application/javascript")
    assert b"data-src" in js or b"dataset.src" in js
    for path in ("/static/logo.png", "/static/bg.png"):
        status, headers, png = fetch(world.url("cdn", path))
        assert status == 200 and headers["Content-Type"] == "image/png"
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        pos, kinds = 8, []
        while pos < len(png):
            (length,) = struct.unpack(">I", png[pos : pos + 4])
            kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
            (crc,) = struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])
            assert zlib.crc32(kind + data) == crc
            kinds.append(kind)
            if kind == b"IHDR":
                width, height = struct.unpack(">II", data[:8])
            if kind == b"IDAT":
                assert len(zlib.decompress(data)) == height * (width * 4 + 1)
            pos += 12 + length
        assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    status, headers, gif = fetch(world.url("cdn", "/static/placeholder.gif"))
    assert headers["Content-Type"] == "image/gif" and gif[:6] == b"GIF89a"
    assert struct.unpack("<HH", gif[6:10]) == (1, 1) and gif.endswith(b";")


def test_head_request(world: ReplicaWorld) -> None:
    conn = http.client.HTTPConnection(urlsplit(world.base_urls["news"]).netloc, timeout=10)
    conn.request("HEAD", "/fr/paris-solidarite")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == b""
    length = int(resp.getheader("Content-Length"))
    conn.request("GET", "/fr/paris-solidarite")
    assert len(conn.getresponse().read()) == length
    conn.close()


def test_two_worlds_at_once() -> None:
    with ReplicaWorld() as one, ReplicaWorld() as two:
        assert not set(one.base_urls.values()) & set(two.base_urls.values())
        for w in (one, two):
            text = get_ok(w.url("news", "/en/usa-rallies")).decode("utf-8")
            assert f'href="{w.base_urls["news"]}/en/usa-rallies"' in text
            assert w.hits("news", "/en/usa-rallies") == 1
        port = urlsplit(one.base_urls["news"]).port
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()  # type: ignore[arg-type]


def test_stop_closes_idle_keep_alive_connections() -> None:
    w = ReplicaWorld().start()
    conn = http.client.HTTPConnection(urlsplit(w.base_urls["cdn"]).netloc, timeout=10)
    conn.request("GET", "/static/app.js")
    conn.getresponse().read()
    w.stop()
    assert not w.running
    with pytest.raises((OSError, http.client.HTTPException)):
        conn.request("GET", "/static/app.js")
        conn.getresponse().read()
    conn.close()
    w.start()  # a stopped world can be started again, on fresh ports
    try:
        assert fetch(w.url("cdn", "/static/site.css"))[0] == 200
    finally:
        w.stop()
