"""Seed parsing: the replica index page, CSV files and load_source (127.0.0.1 only)."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from pipeline.seeds import (
    DEFAULT_SOURCE,
    LINK_KINDS,
    USER_AGENT,
    SeedEntry,
    SeedError,
    SeedLink,
    kind_from_label,
    load_source,
    parse_csv,
    parse_index_html,
)

REPLICA = Path(__file__).resolve().parents[1] / "pipeline" / "replica" / "pages" / "index.html"
SEED_TEXT = Path("/work/shared/seeds/000_1f0e02a549fc5fe3.txt")
SITES = {
    "index": "http://127.0.0.1:8001",
    "news": "http://127.0.0.1:8002",
    "blog": "http://127.0.0.1:8003",
    "photos": "http://127.0.0.1:8004",
    "video": "http://127.0.0.1:8005",
    "cdn": "http://127.0.0.1:8006",
}
INDEX, NEWS, BLOG, PHOTOS, VIDEO = (SITES[k] for k in ("index", "news", "blog", "photos", "video"))
PAGE_URL = f"{INDEX}/ru/news/you-go-girl"


def render(template: str, sites: dict[str, str] = SITES) -> str:
    def substitute(match: re.Match[str]) -> str:
        return sites[match.group(1)]

    return re.sub(r"\{\{site:(\w+)\}\}", substitute, template)


@pytest.fixture(scope="module")
def page() -> str:
    return render(REPLICA.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def entries(page: str) -> list[SeedEntry]:
    return parse_index_html(page, PAGE_URL)


def by_place(entries: list[SeedEntry]) -> dict[tuple[str, str | None], SeedEntry]:
    return {(e.country, e.city): e for e in entries}


R = "link report"
# (country, code, country_original, city, city_original, [(kind, label, url), ...]) in page order.
EXPECTED = [
    ("Austria", "AT", "Austria", "Vienna", "Vienna",
     [("report", "belarus-diaspora.at", f"{BLOG}/de/2020/10/frauen-fuer-frauen/")]),
    ("Belgium", "BE", "Belgium", "Brussels", "Brüssel", []),
    ("Brazil", "BR", "Brazil", None, None,
     [("report", R, f"{NEWS}/pt/mulheres-da-bielorrussia")]),
    ("Canada", "CA", "Canada", "Ottawa", "Ottawa", [("report", R, f"{NEWS}/ca/ottawa-rally")]),
    ("Denmark", "DK", "Denmark", "Copenhagen", "Kopenhagen",
     [("report", R, f"{NEWS}/da/kvinder-i-hvidt"),
      ("video", "link report video", f"{VIDEO}/watch/copenhagen-rally")]),
    ("Estonia", "EE", "Estonia", "Tallinn", "Tallin",
     [("photo_gallery", "link photo gallery", f"{PHOTOS}/gallery/tallinn-2020-10-10/")]),
    ("France", "FR", "France", "Paris", "Paris", [("report", R, f"{NEWS}/fr/paris-solidarite")]),
    ("Germany", "DE", "Germany", "Berlin", "Berlin", [("report", R, f"{BLOG}/de/berlin-demo")]),
    ("Germany", "DE", "Germany", "Munich", "München",
     [("report", R, f"{NEWS}/de/muenchen-kundgebung")]),
    ("Germany", "DE", "Germany", "Hamburg", "Hamburg",
     [("report", R, f"{NEWS}/de/hamburg-mahnwache")]),
    ("Hungary", "HU", "Hungary", "Budapest", "Budapest",
     [("report", R, f"{NEWS}/hu/budapest-szolidaritas")]),
    ("Ireland", "IE", "Ireland", None, None,
     [("report", R, f"{NEWS}/en/ireland-stands-with-belarus")]),
    ("Italy", "IT", "Italy", "Rome", "Rome", [("report", R, f"{NEWS}/it/roma-presidio")]),
    ("Italy", "IT", "Italy", "Sicily", "Sicily (Nealel, Messina)",
     [("report", R, f"{BLOG}/it/sicilia-messina")]),
    ("Japan", "JP", "Japan", "Tokyo", "Tokio", [("report", R, f"{BLOG}/ja/tokyo-solidarity")]),
    ("Latvia", "LV", "Latvia", "Riga", "Riga", [("report", R, f"{NEWS}/lv/riga-solidaritate")]),
    ("Lithuania", "LT", "Lithuania", "Vilnius", "Vilnius",
     [("report", "link report 1", f"{NEWS}/lt/vilnius-1"),
      ("report", "link report 2", f"{NEWS}/lt/vilnius-2"),
      ("report", "link report 3", f"{NEWS}/reports/vilnius-2020-10-10.pdf")]),
    ("Norway", "NO", "Norway", "Oslo", "Oslo", [("report", R, f"{NEWS}/no/oslo-solidaritet")]),
    ("Russia", "RU", "Russian Federation", "Moscow", "Moscow",
     [("report", R, f"{NEWS}/ru/moskva-solidarnost")]),
    ("Switzerland", "CH", "Switzerland", None, None,
     [("report", R, f"{BLOG}/de/schweiz-solidaritaet")]),
    ("United Kingdom", "GB", "United Kingdom", "London", "London",
     [("report", R, f"{NEWS}/en/london-women-in-white"),
      ("photo_gallery", "photo gallery", f"{PHOTOS}/gallery/london-2020-10-10/")]),
    ("United States", "US", "USA", None, None, [("report", R, f"{NEWS}/en/usa-rallies")]),
]  # fmt: skip


# --- the replica page ---------------------------------------------------------------------


def test_every_entry_in_page_order(entries: list[SeedEntry]) -> None:
    got = [
        (
            e.country,
            e.country_code,
            e.country_original,
            e.city,
            e.city_original,
            [(link.kind, link.label, link.url) for link in e.links],
        )
        for e in entries
    ]
    assert got == EXPECTED
    assert len(entries) == 22


def test_types_of_parsed_entries(entries: list[SeedEntry]) -> None:
    for entry in entries:
        assert isinstance(entry, SeedEntry)
        assert all(isinstance(link, SeedLink) and link.kind in LINK_KINDS for link in entry.links)


def test_city_only_lines_get_their_country(entries: list[SeedEntry]) -> None:
    germany = [(e.city, e.city_original) for e in entries if e.country_code == "DE"]
    assert germany == [("Berlin", "Berlin"), ("Munich", "München"), ("Hamburg", "Hamburg")]
    italy = [(e.city, e.city_original) for e in entries if e.country == "Italy"]
    assert italy == [("Rome", "Rome"), ("Sicily", "Sicily (Nealel, Messina)")]


@pytest.mark.parametrize(
    ("original", "canonical", "country"),
    [
        ("Tallin", "Tallinn", "Estonia"),
        ("Kopenhagen", "Copenhagen", "Denmark"),
        ("Tokio", "Tokyo", "Japan"),
        ("Brüssel", "Brussels", "Belgium"),
        ("München", "Munich", "Germany"),
    ],
)
def test_spelling_variants_are_normalised(
    entries: list[SeedEntry], original: str, canonical: str, country: str
) -> None:
    entry = by_place(entries)[(country, canonical)]
    assert entry.city_original == original


def test_entry_without_links_is_kept(entries: list[SeedEntry]) -> None:
    belgium = by_place(entries)[("Belgium", "Brussels")]
    assert belgium.links == []


def test_repeated_entries_are_merged(entries: list[SeedEntry]) -> None:
    places = [(e.country, e.city) for e in entries]
    assert places.count(("Norway", "Oslo")) == 1
    assert places.count(("Russia", "Moscow")) == 1
    assert [link.url for link in by_place(entries)[("Norway", "Oslo")].links] == [
        f"{NEWS}/no/oslo-solidaritet"
    ]
    moscow = by_place(entries)[("Russia", "Moscow")]
    assert [link.url for link in moscow.links] == [f"{NEWS}/ru/moskva-solidarnost"]
    assert moscow.country_original == "Russian Federation"


def test_vilnius_has_three_numbered_reports(entries: list[SeedEntry]) -> None:
    vilnius = by_place(entries)[("Lithuania", "Vilnius")]
    assert [link.label for link in vilnius.links] == [
        "link report 1",
        "link report 2",
        "link report 3",
    ]
    assert vilnius.links[2].url.endswith(".pdf")


def test_link_kinds(entries: list[SeedEntry]) -> None:
    places = by_place(entries)
    assert [link.kind for link in places[("Estonia", "Tallinn")].links] == ["photo_gallery"]
    assert [link.kind for link in places[("Denmark", "Copenhagen")].links] == ["report", "video"]
    assert [link.kind for link in places[("United Kingdom", "London")].links] == [
        "report",
        "photo_gallery",
    ]


def test_bare_domain_anchor_is_a_report(entries: list[SeedEntry]) -> None:
    (link,) = by_place(entries)[("Austria", "Vienna")].links
    assert link == SeedLink(
        "report", "belarus-diaspora.at", f"{BLOG}/de/2020/10/frauen-fuer-frauen/"
    )


def test_country_only_entries(entries: list[SeedEntry]) -> None:
    country_only = [(e.country, e.country_original) for e in entries if e.city is None]
    assert country_only == [
        ("Brazil", "Brazil"),
        ("Ireland", "Ireland"),
        ("Switzerland", "Switzerland"),
        ("United States", "USA"),
    ]
    assert all(e.city_original is None for e in entries if e.city is None)


def test_only_rally_links_are_taken(page: str, entries: list[SeedEntry]) -> None:
    soup = BeautifulSoup(page, "lxml")
    on_page = {a["href"] for a in soup.find_all("a", href=True)}
    excluded = {
        f"{INDEX}/ru/news/",  # navigation
        f"{INDEX}/en/news/you-go-girl",  # language switcher
        f"{INDEX}/tag/belarus/",  # post tags
        f"{INDEX}/tag/freebelaruswomen/",  # hashtag in the article
        f"{INDEX}/tag/womeninwhite/",
        f"{INDEX}/donate/?campaign=you-go-girl",  # donation block in the article
        f"{INDEX}/share/facebook?u={INDEX}/ru/news/you-go-girl",  # social share
        f"{INDEX}/ru/news/open-letter",  # open letter heading
        f"{INDEX}/ru/news/saturday-marches/",  # link in the intro sentence ending in ':'
        f"{INDEX}/ru/news/belarus-update",  # sidebar "Belarus: ..."
        f"{INDEX}/ru/news/berlin-exhibition",  # sidebar "Germany, Berlin: ..."
        f"{INDEX}/ru/news/chain-of-solidarity",  # related posts "Lithuania, Vilnius: ..."
        f"{INDEX}/ru/news/womens-march-october-17",  # related posts "Minsk: ..."
        f"{INDEX}/ru/about/",  # footer "Vienna, Austria: ..."
    }
    assert excluded <= on_page  # the traps are really on the page
    taken = {link.url for e in entries for link in e.links}
    assert not taken & excluded
    assert not any(url.startswith(INDEX) for url in taken)
    expected = {url for *_, links in EXPECTED for _, _, url in links}
    assert taken == expected
    assert len(expected) == 25


def test_bytes_input_is_decoded_from_the_page_charset(page: str) -> None:
    assert parse_index_html(page.encode("utf-8"), PAGE_URL) == parse_index_html(page, PAGE_URL)
    cp1251 = (
        '<html><head><meta charset="windows-1251"></head><body><div class="entry-content">'
        '<p>Германия, Мюнхен: <a href="/r/1">фотоотчёт</a></p>'
        "<p>Kopenhagen: <a href='/r/2'>link report</a></p></div></body></html>"
    ).encode("cp1251")
    got = parse_index_html(cp1251, "http://127.0.0.1:9/ru/page")
    assert [(e.country, e.country_original, e.city, e.city_original) for e in got] == [
        ("Germany", "Германия", "Munich", "Мюнхен"),
        ("Denmark", "Denmark", "Copenhagen", "Kopenhagen"),
    ]
    assert got[0].links == [SeedLink("photo_gallery", "фотоотчёт", "http://127.0.0.1:9/r/1")]


def test_the_replica_is_a_template_with_local_links_only() -> None:
    template = REPLICA.read_text(encoding="utf-8")
    names = set(re.findall(r"\{\{site:(\w+)\}\}", template))
    assert names <= set(SITES)
    assert {"index", "news", "blog", "photos", "video"} <= names
    soup = BeautifulSoup(render(template), "lxml")
    urls = [t.get("href") or t.get("src") for t in soup.find_all(["a", "link", "img", "script"])]
    urls += [m["content"] for m in soup.find_all("meta", content=re.compile("^https?:"))]
    for url in filter(None, urls):
        assert url.startswith("http://127.0.0.1:") or url.startswith("#"), url


@pytest.mark.skipif(not SEED_TEXT.exists(), reason="the real page's text is not available")
def test_the_replica_has_every_line_of_the_real_page() -> None:
    text = BeautifulSoup(REPLICA.read_text(encoding="utf-8"), "lxml").get_text()
    flat = " ".join(text.split())
    for line in SEED_TEXT.read_text(encoding="utf-8").splitlines():
        line = " ".join(line.split()).replace("'", "’")
        if line:
            assert line in flat.replace("'", "’"), line


# --- parsing rules on small pages ---------------------------------------------------------


def parse(body: str, base: str = "http://127.0.0.1:9/news/page") -> list[SeedEntry]:
    return parse_index_html(f"<html><body><main>{body}</main></body></html>", base)


def test_lines_split_at_br() -> None:
    got = parse(
        "<p>Poland, Warsaw: <a href='https://127.0.0.1/w'>link report</a><br>"
        "Kyiv: <a href='https://127.0.0.1/k'>link report video</a></p>"
    )
    assert [(e.country, e.city, [x.kind for x in e.links]) for e in got] == [
        ("Poland", "Warsaw", ["report"]),
        ("Ukraine", "Kyiv", ["video"]),
    ]


def test_urls_resolved_and_filtered() -> None:
    got = parse(
        "<p>Latvia, Riga: <a href='../r/riga#top'>link report</a> "
        "<a href='mailto:x@example.org'>mail</a> <a href='javascript:void(0)'>js</a> "
        "<a href='#comments'>comments</a> <a href='//127.0.0.1:7/p'>photo gallery</a> "
        "<a href='../r/riga'>link report again</a></p>"
    )
    assert got[0].links == [
        SeedLink("report", "link report", "http://127.0.0.1:9/r/riga"),
        SeedLink("photo_gallery", "photo gallery", "http://127.0.0.1:7/p"),
    ]


def test_base_href_is_honoured() -> None:
    html = (
        "<html><head><base href='http://127.0.0.1:5/site/'></head><body>"
        "<p>Oslo: <a href='oslo'>link report</a></p></body></html>"
    )
    (entry,) = parse_index_html(html, "http://127.0.0.1:9/other/")
    assert entry.links[0].url == "http://127.0.0.1:5/site/oslo"


def test_prose_with_colons_is_not_an_entry() -> None:
    got = parse(
        "<p>On October 10, 2020 more than 20 countries around the world supported the weekly "
        "Saturday <a href='/x'>women's rallies in Belarus</a>:</p>"
        "<p>Date: 10 October 2020</p>"  # "Date" is a city in Japan
        "<p>Independence: <b>now</b></p>"  # a city in the USA, not followed by a link
        "<p>Belarus: the last dictatorship in Europe.</p>"
        "<p>PS: <a href='/ps'>read more</a></p>"  # not the ISO code of Palestine
        "<p>More photos: <a href='/photos'>gallery</a></p>"
        "<h2>Women of the world!</h2>"
    )
    assert got == []


def test_place_forms() -> None:
    got = parse(
        "<ul><li>Vienna, Austria: <a href='/a'>r</a></li>"  # City, Country
        "<li>Germny, Berlin: <a href='/b'>r</a></li>"  # misspelt country, with a link
        "<li>Italy, Kleinstadt:</li>"  # unknown town of a known country, no link yet
        "<li><strong>USA (New York, Boston)</strong>: <a href='/u'>r</a></li>"
        "<li>Brazil:</li></ul>"
    )
    assert [(e.country, e.country_original, e.city, e.city_original) for e in got] == [
        ("Austria", "Austria", "Vienna", "Vienna"),
        ("Germany", "Germny", "Berlin", "Berlin"),
        ("Italy", "Italy", "Kleinstadt", "Kleinstadt"),
        ("United States", "USA (New York, Boston)", None, None),
        ("Brazil", "Brazil", None, None),
    ]


def test_content_root_beats_sidebar_but_body_is_the_fallback() -> None:
    html = (
        "<body><div class='entry-content'><p>Riga: <a href='http://127.0.0.1/r'>r</a></p></div>"
        "<div class='widget'><p>Oslo: <a href='http://127.0.0.1/o'>r</a></p></div></body>"
    )
    assert [e.city for e in parse_index_html(html, "http://127.0.0.1/")] == ["Riga"]
    bare = "<body><div><p>Oslo: <a href='http://127.0.0.1/o'>r</a></p></div></body>"
    assert [e.city for e in parse_index_html(bare, "http://127.0.0.1/")] == ["Oslo"]


@pytest.mark.parametrize(
    ("label", "kind"),
    [
        ("link report", "report"),
        ("link report 2", "report"),
        ("belarus-diaspora.at", "report"),
        ("link photo gallery", "photo_gallery"),
        ("photo gallery", "photo_gallery"),
        ("Fotogalerie", "photo_gallery"),
        ("Фото", "photo_gallery"),
        ("link report video", "video"),
        ("Видео", "video"),
        ("Vídeo", "video"),
        ("info to read", "report"),  # "foto" only at the start of a word
    ],
)
def test_kind_from_label(label: str, kind: str) -> None:
    assert kind_from_label(label) == kind


# --- CSV ----------------------------------------------------------------------------------

GOOD_CSV = """\ufeffcountry,city,kind,label,url
Denmark,Kopenhagen,report,link report,https://news.example/da/1
Denmark,Kopenhagen,video,link report video,https://video.example/watch/1#t=10
Russian Federation,Moscow,,photo gallery,https://photos.example/moscow
Belgium,Brüssel,,,

Germany,,report,,https://news.example/de/1
Denmark,Kopenhagen,report,again,https://news.example/da/1
"""


def test_parse_csv() -> None:
    got = parse_csv(GOOD_CSV)
    assert [(e.country, e.country_original, e.city, e.city_original) for e in got] == [
        ("Denmark", "Denmark", "Copenhagen", "Kopenhagen"),
        ("Russia", "Russian Federation", "Moscow", "Moscow"),
        ("Belgium", "Belgium", "Brussels", "Brüssel"),
        ("Germany", "Germany", None, None),
    ]
    assert got[0].links == [
        SeedLink("report", "link report", "https://news.example/da/1"),
        SeedLink("video", "link report video", "https://video.example/watch/1"),
    ]
    assert got[1].links == [
        SeedLink("photo_gallery", "photo gallery", "https://photos.example/moscow")
    ]
    assert got[2].links == []
    assert got[3].links == [SeedLink("report", "report", "https://news.example/de/1")]


def test_parse_csv_header_in_any_order_and_case() -> None:
    got = parse_csv("URL,Label,Kind,City,Country\nhttps://x.example/1,photos,,Tokio,Japan\n")
    assert got == [
        SeedEntry(
            "Japan", "JP", "Japan", "Tokyo", "Tokio",
            [SeedLink("photo_gallery", "photos", "https://x.example/1")],
        )
    ]  # fmt: skip


HEADER = "country,city,kind,label,url\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (HEADER + "France,Paris,report,r,ftp://x.example/1\n", r"^line 2: invalid URL 'ftp:"),
        (HEADER + "France,Paris,report,r,not a url\n", r"^line 2: invalid URL"),
        (HEADER + "France,Paris,report,r,/relative/path\n", r"^line 2: invalid URL"),
        (
            HEADER
            + "France,Paris,report,r,https://x.example/1\nFrance,Paris,audio,r,https://x/2\n",
            r"^line 3: unknown kind 'audio' \(use one of report, photo_gallery, video\)",
        ),
        (
            HEADER + "Atlantis,,report,r,https://x.example/1\n",
            r"^line 2: unknown country 'Atlantis'$",
        ),
        (HEADER + "Germny,,report,r,https://x.example/1\n", r"did you mean Germany\?"),
        (HEADER + ",Paris,report,r,https://x.example/1\n", r"^line 2: the country is missing"),
        (HEADER + "France,Paris,report\n", r"^line 2: expected 5 fields, found 3"),
        (HEADER + "France,Paris,report,r,\n", r"^line 2: a url is required"),
        ("country,town,kind,label,url\nFrance,Paris,,,\n", r"^line 1: expected the header"),
        ("", r"^line 1: empty file"),
        (HEADER + '"France,Paris\n', r"^line \d+: "),
    ],
)
def test_parse_csv_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(SeedError, match=message) as raised:
        parse_csv(text)
    assert "\n" not in str(raised.value)


# --- load_source ---------------------------------------------------------------------------


def test_default_source_and_user_agent() -> None:
    assert DEFAULT_SOURCE == "https://belaruswomen.org/ru/news/you-go-girl"
    assert USER_AGENT == "linkarchive/0.1 (+https://github.com/linkarchive)"


def test_load_html_file(tmp_path: Path, page: str, entries: list[SeedEntry]) -> None:
    path = tmp_path / "saved page.HTM"
    path.write_text(page, encoding="utf-8")
    loaded = load_source(str(path))
    identifier, got = loaded.location, loaded.entries
    assert identifier == str(path.resolve())
    assert got == entries  # relative links would resolve against the page's canonical URL


def test_load_relative_csv_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "seeds.csv").write_text(GOOD_CSV, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    loaded = load_source("seeds.csv")
    identifier, got = loaded.location, loaded.entries
    assert identifier == str(tmp_path.resolve() / "seeds.csv")
    assert [e.country for e in got] == ["Denmark", "Russia", "Belgium", "Germany"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.html", None, r"seed file not found: .*missing\.html"),
        ("seeds.txt", "Norway, Oslo: link", r"unsupported file type '\.txt'"),
        ("empty.html", "<html><body><p>Women of the world!</p></body></html>", "no rally entries"),
        ("empty.csv", HEADER, "no rally entries"),
        ("latin1.csv", None, "not a UTF-8 text file"),
    ],
)
def test_load_file_errors(tmp_path: Path, name: str, content: str | None, message: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    elif name == "latin1.csv":
        path.write_bytes((HEADER + "Österreich,Wien,,,\n").encode("latin-1"))
    with pytest.raises(SeedError, match=message):
        load_source(str(path))


def test_load_directory_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "seeds.html"
    folder.mkdir()
    with pytest.raises(SeedError, match="not a file"):
        load_source(str(folder))


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("", "no seed source"),
        ("ftp://127.0.0.1/seeds.html", "unsupported source"),
        ("http://", "invalid URL"),
    ],
)
def test_bad_sources(source: str, message: str) -> None:
    with pytest.raises(SeedError, match=message):
        load_source(source)


@dataclass
class Server:
    url: str
    routes: dict[str, tuple[int, str, bytes]]
    requests: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    for name in (
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    routes: dict[str, tuple[int, str, bytes]] = {}
    requests: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            requests.append({"path": self.path, **dict(self.headers.items())})
            status, content_type, body = routes.get(self.path, (404, "text/plain", b"not found"))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", routes, requests)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_fetch_index_page(server: Server, page: str, entries: list[SeedEntry]) -> None:
    server.routes["/ru/news/you-go-girl"] = (200, "text/html; charset=UTF-8", page.encode())
    url = f"{server.url}/ru/news/you-go-girl"
    loaded = load_source(url)
    identifier, got = loaded.location, loaded.entries
    assert identifier == url
    assert got == entries
    assert server.requests[0]["User-Agent"] == USER_AGENT


def test_fetch_resolves_relative_links_against_the_page(server: Server) -> None:
    html = "<html><body><article><p>Riga: <a href='../r/1'>link report</a></p></article></body>"
    server.routes["/news/riga/"] = (200, "text/html", html.encode())
    (entry,) = load_source(f"{server.url}/news/riga/").entries
    assert entry.links[0].url == f"{server.url}/news/r/1"


def test_fetch_uses_the_http_charset(server: Server) -> None:
    html = "<html><body><p>Германия, Мюнхен: <a href='/x'>отчёт</a></p></body></html>"
    server.routes["/cp1251"] = (200, "text/html; charset=windows-1251", html.encode("cp1251"))
    (entry,) = load_source(f"{server.url}/cp1251").entries
    assert (entry.country_original, entry.city, entry.city_original) == (
        "Германия",
        "Munich",
        "Мюнхен",
    )


def test_fetch_csv(server: Server) -> None:
    server.routes["/seeds"] = (200, "text/csv; charset=utf-8", GOOD_CSV.encode("utf-8"))
    got = load_source(f"{server.url}/seeds").entries
    assert [e.city for e in got] == ["Copenhagen", "Moscow", "Brussels", None]


def test_fetch_http_error(server: Server) -> None:
    with pytest.raises(SeedError, match=r"HTTP 404") as raised:
        load_source(f"{server.url}/nowhere")
    assert f"{server.url}/nowhere" in str(raised.value)


def test_fetch_page_without_entries(server: Server) -> None:
    server.routes["/blank"] = (200, "text/html", b"<html><body><p>Nothing: here</p></body></html>")
    with pytest.raises(SeedError, match=r"no rally entries found in http://127\.0\.0\.1"):
        load_source(f"{server.url}/blank")


def test_fetch_wrong_content_type(server: Server) -> None:
    server.routes["/image"] = (200, "image/png", b"\x89PNG")
    with pytest.raises(SeedError, match="expected an HTML page or a CSV file, got image/png"):
        load_source(f"{server.url}/image")


def test_unreachable_url() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SeedError, match=rf"cannot reach http://127\.0\.0\.1:{port}/"):
        load_source(f"http://127.0.0.1:{port}/index.html")


def test_a_csv_s_bad_rows_are_named_and_its_good_rows_imported(tmp_path: Path) -> None:
    """`seeds import` of a CSV with bad rows: every bad row named with its line (not just
    the first), every good row imported, exit status 1; all rows bad: nothing, exit 1."""
    import subprocess
    import sys

    from sqlalchemy import select

    from pipeline.catalog import session_scope
    from pipeline.catalog.models import Link
    from pipeline.config import paths

    text = (HEADER + "France,Paris,report,r,https://x.example/1\n"
            "Atlantis,,report,r,https://x.example/2\n"
            "France,Lyon,audio,r,https://x.example/3\n"
            "Germany,Berlin,photo_gallery,Fotos,https://x.example/4\n"
            "France,Paris,report\n"
            "Germany,Munich,report,r,javascript:alert(1)\n")  # fmt: skip
    seeds = tmp_path / "seeds.csv"
    seeds.write_text(text)
    home = tmp_path / "home"
    linkarchive = str(Path(sys.executable).with_name("linkarchive"))
    done = subprocess.run([linkarchive, "--home", str(home), "seeds", "import", str(seeds)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    skipped = [line for line in done.stdout.splitlines() if line.startswith("skipped line")]
    assert [line.split(":")[0] for line in skipped] == [
        "skipped line 3", "skipped line 4", "skipped line 6", "skipped line 7"
    ]  # fmt: skip
    assert "4 rows skipped" in done.stdout and "Traceback" not in done.stderr
    with session_scope(paths(home).database_url) as session:
        urls = sorted(session.scalars(select(Link.url)))
    assert urls == ["https://x.example/1", "https://x.example/4"]
    seeds.write_text(HEADER + "Atlantis,,report,r,https://x.example/2\nMars,,report,r,x\n")
    done = subprocess.run([linkarchive, "--home", str(home), "seeds", "import", str(seeds)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("linkarchive: error: no valid row: line 2: unknown country")
    assert "(and 1 more bad rows)" in done.stderr
