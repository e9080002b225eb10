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
    FUZZY_LOOKUPS,
    LINK_KINDS,
    USER_AGENT,
    BadLink,
    SeedEntry,
    SeedError,
    SeedLink,
    kind_from_label,
    load_source,
    parse_csv,
    parse_index_html,
    web_url,
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


# --- hostile and sloppy sources -------------------------------------------------------------

# A page as sloppy as real ones get: unclosed tags, an unquoted attribute, a stray </div>,
# links that are no web page, relative links, an IDN host, spaces and unicode in URLs.
BROKEN_PAGE = """<html><head><title>Rallies</title><body><div class=entry-content>
<p>Latvia, Riga: <a href="../r/riga#top">link report</a> <a href="javascript:void(0)">share</a>
 <a href="mailto:press@example.org">mail us</a> <a href="TEL:+371 000">call</a><br>
Germany, Berlin: <a href="http://[::1/x">link report</a> <a href="//127.0.0.1:99999/p">photos</a>
<br>Poland, Warsaw: <a href=" http://Bücher.example/Straße der
 Freiheit/ü?q=ä ">link report</a>
<a href="http://xn--bcher-kva.example/Stra%C3%9Fe%20der%20Freiheit/%C3%BC?q=%C3%A4">again</a>
<br>Austria, Vienna: <a href="http://ex ample.org/">r</a> <a href="#comments">comments</a>
<p>Estonia, Tallinn: <a href='/gal'><b>photo gallery</a></b> <div><span>never closed
<p>Belgium: <a href=https://news.example/be>link report
</div></div><footer><p>Norway, Oslo: <a href="mailto:x@example.org">not in the content</a>
"""
BROKEN_BASE = "http://127.0.0.1:9/news/page/"
IDN_URL = "http://xn--bcher-kva.example/Stra%C3%9Fe%20der%20Freiheit/%C3%BC?q=%C3%A4"


def test_a_broken_page_keeps_its_good_links_and_names_each_bad_one() -> None:
    problems: list[str] = []
    got = parse_index_html(BROKEN_PAGE, BROKEN_BASE, problems=problems)
    assert [(e.country, e.city, [(x.kind, x.url) for x in e.links]) for e in got] == [
        ("Latvia", "Riga", [("report", "http://127.0.0.1:9/news/r/riga")]),  # relative: resolved
        ("Germany", "Berlin", []),  # "Country, City" with no good link is still a place
        ("Poland", "Warsaw", [("report", IDN_URL)]),  # the punycode twin is the same link
        ("Austria", "Vienna", []),
        ("Estonia", "Tallinn", [("photo_gallery", "http://127.0.0.1:9/gal")]),
        ("Belgium", None, [("report", "https://news.example/be")]),
    ]
    assert problems == [
        "link 'share' of 'Latvia, Riga' ('javascript:void(0)'): "
        "a javascript: link (a script), not an http(s) URL",
        "link 'mail us' of 'Latvia, Riga' ('mailto:press@example.org'): "
        "a mailto: link (an e-mail address), not an http(s) URL",
        "link 'call' of 'Latvia, Riga' ('TEL:+371 000'): "
        "a tel: link (a phone number), not an http(s) URL",
        "link 'link report' of 'Germany, Berlin' ('http://[::1/x'): "
        "a malformed URL (Invalid IPv6 URL)",
        "link 'photos' of 'Germany, Berlin' ('//127.0.0.1:99999/p'): "
        "a malformed URL (Port out of range 0-65535)",
        "link 'r' of 'Austria, Vienna' ('http://ex ample.org/'): "
        "an invalid host name 'ex ample.org'",
    ]  # the footer's mailto: is no rally line: not a problem; #comments is on the page


def test_the_replica_page_has_no_problems(page: str) -> None:
    problems: list[str] = []
    parse_index_html(page, PAGE_URL, problems=problems)
    assert problems == []


@pytest.mark.parametrize(
    ("href", "url"),
    [
        ("http://Bücher.example/", "http://xn--bcher-kva.example/"),
        ("HTTP://BÜCHER.EXAMPLE:80/a b/ü?q=ä ö#frag", "http://xn--bcher-kva.example/a%20b/%C3%BC?q=%C3%A4%20%C3%B6"),
        ("https://xn--bcher-kva.example:443/", "https://xn--bcher-kva.example/"),
        ("https://münchen.de:8443/straße", "https://xn--mnchen-3ya.de:8443/stra%C3%9Fe"),
        ("\n  http://example.org/a\tb/%7Euser  ", "http://example.org/ab/%7Euser"),
        ("http://[2001:DB8::1]:8080/x", "http://[2001:db8::1]:8080/x"),
    ],
)  # fmt: skip
def test_web_url_gives_one_canonical_form(href: str, url: str) -> None:
    assert web_url(href) == url
    assert web_url(url) == url  # canonical already: unchanged


def test_web_url_encodes_the_query_in_the_page_s_charset() -> None:
    assert web_url("/p?q=Минск", "http://127.0.0.1:9/", "cp1251") == (
        "http://127.0.0.1:9/p?q=%CC%E8%ED%F1%EA"
    )


@pytest.mark.parametrize(
    ("href", "base", "why"),
    [
        ("javascript:alert(1)", "", "a javascript: link (a script)"),
        ("mailto:a@example.org", "", "a mailto: link (an e-mail address)"),
        ("tel:+1", "", "a tel: link (a phone number)"),
        ("/relative/path", "", "a relative URL: give an absolute http(s) URL"),
        ("//example.org/x", "", "a relative URL"),
        ("page.html", "file:///saved/index.html", "a relative link, and the page gives no web"),
        ("http://", "", "a URL without a host name"),
        ("http://a..b/", "", "an invalid host name 'a..b'"),
        ("http://%41.example/", "", "an invalid host name"),
        ("http://example.org/" + "x" * 2100, "", "a URL longer than 2048 characters"),
        ("   ", "", "an empty link"),
    ],
)
def test_web_url_says_why_a_link_is_no_web_page(href: str, base: str, why: str) -> None:
    with pytest.raises(BadLink) as raised:
        web_url(href, base)
    assert str(raised.value).startswith(why)


def test_a_csv_s_urls_are_canonical_its_duplicates_counted_its_originals_kept() -> None:
    problems: list[str] = []
    duplicates: list[str] = []
    text = (
        "country,url,label\n"  # city and kind may be left out
        "Poland,http://Bücher.example/Straße der Freiheit/ü?q=ä,link report\n"
        f"Poland,{IDN_URL},the same link\n"
        "Poland,/relative/report,r\n"
        "Poland,mailto:press@example.org,r\n"
        "Poland,http://Bücher.example/Straße der Freiheit/ü?q=ä,again\n"
    )
    (entry,) = parse_csv(text, problems=problems, duplicates=duplicates)
    assert [(x.url, x.label, x.original) for x in entry.links] == [
        (IDN_URL, "link report", "http://Bücher.example/Straße der Freiheit/ü?q=ä")
    ]
    assert duplicates == ["line 3 (as line 2)", "line 6 (as line 2)"]
    assert problems == [
        "line 4: invalid URL '/relative/report': a relative URL: give an absolute http(s) URL",
        "line 5: invalid URL 'mailto:press@example.org': a mailto: link (an e-mail address), "
        "not an http(s) URL",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("country,city,kind,label\nFrance,,,\n", r"^line 1: expected the header .*\(no url"),
        ("country,url,url\nFrance,,\n", r"\(column 'url' twice\)$"),
        ("country,city,kind,lable,url\nFrance,,,,\n", r"\(unknown column 'lable'\)$"),
    ],
)  # fmt: skip
def test_a_csv_header_without_url_or_with_a_typo_is_refused(text: str, message: str) -> None:
    with pytest.raises(SeedError, match=message):
        parse_csv(text, problems=[])


def test_a_csv_s_huge_field_and_unclosed_quote_are_row_problems() -> None:
    problems: list[str] = []
    text = (HEADER + "France,Paris,report,r,https://x.example/1\n"
            f'France,Lille,report,"{"x" * 200_000}",https://x.example/2\n'
            "France,Metz,report,r,https://x.example/3\n"
            'France,Lyon,report,"r,https://x.example/4\n'  # swallows the rest of the file
            "France,Nice,report,r,https://x.example/5\n")  # fmt: skip
    got = parse_csv(text, problems=problems)
    assert [link.url for e in got for link in e.links] == [
        "https://x.example/1", "https://x.example/3"
    ]  # fmt: skip
    assert problems == [
        "line 3: malformed CSV (field larger than field limit (131072))",
        "lines 5-6: expected 5 fields, found 4 (an unclosed quote?)",
    ]


def test_guessing_misspelt_places_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each guess compares a name with the whole gazetteer: a source with thousands of
    unknown names gets FUZZY_LOOKUPS of them, and says so, instead of taking hours."""
    import difflib

    calls: list[str] = []
    close_matches = difflib.get_close_matches

    def counted(word: str, *args: object, **kwargs: object) -> list[str]:
        calls.append(word)
        return close_matches(word, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(difflib, "get_close_matches", counted)
    problems: list[str] = []
    lines = "".join(f"<p>Qzx{n}vil: <a href='/r/{n}'>r</a></p>" for n in range(1000))
    parse_index_html(f"<main><p>Germny, Berlin: <a href='/b'>r</a></p>{lines}</main>",
                     "http://127.0.0.1:9/", problems=problems)  # fmt: skip
    assert len(calls) <= FUZZY_LOOKUPS
    assert problems == [
        f"spelling guesses after {FUZZY_LOOKUPS} unknown place names: later places count "
        "only when spelt as in the gazetteer (an unusually long source)"
    ]
    calls.clear()
    problems.clear()
    rows = "".join(f"Germany,Qzx{n}dorf,,,\n" for n in range(1000))
    assert len(parse_csv(HEADER + rows, problems=problems)[0].city or "") > 0
    assert len(calls) <= FUZZY_LOOKUPS and len(problems) == 1


def test_a_prose_page_needs_no_guesses(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines without links count only with exact place names: a long text with colons
    costs no guess at all."""
    import difflib

    def refuse(*args: object, **kwargs: object) -> list[str]:
        raise AssertionError("a guess was made")

    monkeypatch.setattr(difflib, "get_close_matches", refuse)
    prose = "".join(f"<p>Note {n}: the march went on.</p>" for n in range(300))
    got = parse_index_html(f"<main>{prose}<p>Belgium, Brüssel:</p></main>", "http://127.0.0.1/")
    assert [(e.country, e.city) for e in got] == [("Belgium", "Brussels")]


def _import(home: Path, source: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from pipeline.cli import main

    code = main(["--home", str(home), "seeds", "import", source])
    out, err = capsys.readouterr()
    return code, out, err


def _catalog_urls(home: Path) -> list[str]:
    from sqlalchemy import select

    from pipeline.catalog import session_scope
    from pipeline.catalog.models import Link
    from pipeline.config import paths

    with session_scope(paths(home).database_url) as session:
        return sorted(session.scalars(select(Link.url)))


def test_seeds_import_of_a_broken_page_names_each_skipped_link(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Like a CSV's bad rows: one line per skipped link, the good ones imported, exit 1;
    the original of a rewritten URL is kept in the import's archived record."""
    import json

    from warcio.archiveiterator import ArchiveIterator

    source = tmp_path / "rallies.html"
    canonical = f'<link rel="canonical" href="{BROKEN_BASE}">'
    source.write_text(BROKEN_PAGE.replace("<title>", canonical + "<title>"), encoding="utf-8")
    home = tmp_path / "home"
    code, out, err = _import(home, str(source), capsys)
    assert code == 1, err
    lines = out.splitlines()
    skipped = [line for line in lines if line.startswith("skipped link ")]
    assert len(skipped) == 6 and "'mailto:press@example.org'" in skipped[1]
    assert "6 links skipped: correct them and import the page again." in lines
    assert f"1 duplicate link skipped (imported once): {IDN_URL}" in lines
    assert _catalog_urls(home) == sorted(
        ["http://127.0.0.1:9/news/r/riga", IDN_URL, "http://127.0.0.1:9/gal",
         "https://news.example/be"]
    )  # fmt: skip
    (warc,) = (home / "warcs").glob("*.warc.gz")
    with warc.open("rb") as stream:
        (entries,) = [json.loads(r.content_stream().read())["entries"]
                      for r in ArchiveIterator(stream) if r.rec_type == "metadata"]  # fmt: skip
    warsaw = next(e for e in entries if e["city"] == "Warsaw")
    assert warsaw["links"][0]["url"] == IDN_URL
    assert warsaw["links"][0]["original"] == "http://Bücher.example/Straße der\n Freiheit/ü?q=ä"


def test_a_page_whose_links_are_all_bad_names_the_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "bad.html"
    source.write_text("<p>Norway, Oslo: <a href='javascript:go()'>r</a></p>"
                      "<p>Oslo: <a href='mailto:a@example.org'>r</a></p>")  # fmt: skip
    code, out, err = _import(tmp_path / "home", str(source), capsys)
    # "Norway, Oslo:" is still a place (with no link yet); "Oslo: mail" is nothing.
    assert code == 1 and "skipped link 'r' of 'Oslo' ('mailto:a@example.org')" in out
    source.write_text("<p>Oslo: <a href='javascript:go()'>r</a></p>")
    code, out, err = _import(tmp_path / "home", str(source), capsys)
    assert code == 1
    assert err == (
        f"linkarchive: error: no rally entries found in {source} (skipped link 'r' of 'Oslo' "
        "('javascript:go()'): a javascript: link (a script), not an http(s) URL)\n"
    )


def test_a_50_mb_seed_file_is_refused_in_one_line_before_it_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sources beyond LINKARCHIVE_SEED_MAXSIZE (20 MiB) are refused by their size, before a
    byte is read (a 50 MB import would take minutes and a gigabyte of memory)."""
    for name in ("big.csv", "big.html"):
        big = tmp_path / name
        with big.open("wb") as file:
            file.write(HEADER.encode())
            file.truncate(50 * 1024 * 1024)  # a real 50 MiB file (sparse: quick to make)
        code, out, err = _import(tmp_path / "home", str(big), capsys)
        assert code == 1 and out == ""
        assert err == (
            f"linkarchive: error: {big} is 50 MiB, more than the seed source limit of 20 MiB "
            "(LINKARCHIVE_SEED_MAXSIZE sets it): not read\n"
        )
    assert _catalog_urls(tmp_path / "home") == []


def test_the_seed_size_limit_is_a_setting(
    tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "seeds.csv"
    source.write_text(GOOD_CSV, encoding="utf-8")
    server.routes["/seeds.csv"] = (200, "text/csv", GOOD_CSV.encode())
    monkeypatch.setenv("LINKARCHIVE_SEED_MAXSIZE", "100")
    with pytest.raises(SeedError, match=r"seeds\.csv is \d+ bytes, more than .* of 100 bytes"):
        load_source(str(source))
    with pytest.raises(SeedError, match=r"more than the seed source limit") as raised:
        load_source(f"{server.url}/seeds.csv")  # by its Content-Length, before reading
    assert str(raised.value).startswith(f"{server.url}/seeds.csv is ")
    monkeypatch.setenv("LINKARCHIVE_SEED_MAXSIZE", "1KiB")
    assert len(load_source(str(source)).entries) == 4
    assert len(load_source(f"{server.url}/seeds.csv").entries) == 4
    monkeypatch.setenv("LINKARCHIVE_SEED_MAXSIZE", "lots")
    with pytest.raises(SeedError, match=r"^LINKARCHIVE_SEED_MAXSIZE='lots': give a size"):
        load_source(str(source))


def test_a_large_csv_of_valid_rows_imports_every_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """30,000 rows (2.5 MB; one statement per few thousand links, not per link)."""
    rows = "".join(
        f"{country},{city},report,report {n},https://news{n % 7}.example/{n}\n"
        for n in range(30_000)
        for country, city in [[("Germany", "Berlin"), ("Japan", "Tokio")][n % 2]]
    )
    source = tmp_path / "large.csv"
    again = "".join(rows.splitlines(keepends=True)[:10])  # listed twice: imported once
    source.write_text(HEADER + rows + again, encoding="utf-8")
    code, out, err = _import(tmp_path / "home", str(source), capsys)
    assert code == 0, err
    assert "30000 new links (30000 links listed)" in out
    assert "10 duplicate rows skipped (imported once): line 30002 (as line 2), " in out
    assert len(_catalog_urls(tmp_path / "home")) == 30_000
