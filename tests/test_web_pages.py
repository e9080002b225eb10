"""The researcher's pages over a crawled catalog: search, link, countries, exports, citations."""

from __future__ import annotations

import csv
import io
import json
import re
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from webkit import client_as, copy_home, csrf_of, make_app, session_client

from pipeline.catalog import session_scope
from pipeline.catalog.fulltext import csv_cell
from pipeline.catalog.models import City, Link, PageMetadataRow
from pipeline.catalog.queries import status_summary

HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"


@pytest.fixture(scope="module")
def site(crawled: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The app over a copy of the crawled home, and the Berlin report's ids."""
    home = copy_home(crawled["home"], tmp_path_factory.mktemp("web") / "home")
    app = make_app(home)
    with session_scope(app.state.paths.database_url) as session:
        berlin = session.scalar(select(Link).join(City).where(City.name == "Berlin"))
        assert berlin is not None and berlin.last_capture_id is not None
        ids = {"link": berlin.id, "capture": berlin.last_capture_id, "url": berlin.url}
    return {"app": app, "home": home, "world": crawled["world"], **ids}


def links_in(html: str, css_class: str) -> list[str]:
    return [
        unescape(h) for h in re.findall(rf'<a class="{css_class}[^"]*"[^>]*href="([^"]*)"', html)
    ]


def facets_in(html: str) -> dict[tuple[str, str], tuple[str, int]]:
    """(facet, value) -> (href, count) of every facet link."""
    found = re.findall(
        r'<a class="facet[^"]*" data-facet="([^"]*)" data-value="([^"]*)"\s+href="([^"]*)">'
        r'[^<]*</a><span class="count">(\d+)</span>',
        html,
    )
    return {(unescape(f), unescape(v)): (unescape(h), int(c)) for f, v, h, c in found}


def total_in(html: str) -> int:
    found = re.search(r'<p id="total">(\d+) result', html)
    assert found, "no p#total"
    return int(found.group(1))


def test_researcher_searches_opens_the_link_and_exports_csv(site: dict[str, Any]) -> None:
    """The done-when flow: sign in, search, open the link, export the result set."""
    browser = session_client(site["app"], "researcher")
    page = browser.get(
        "/search", params={"q": "Blumen OR flowers", "city": "Berlin", "published": "2020-10"}
    )
    assert page.status_code == 200
    assert 'id="search-form"' in page.text and 'name="q" type="search"' in page.text
    assert total_in(page.text) == 1
    (result,) = links_in(page.text, "result-link")
    assert result == f"/links/{site['link']}"
    snippet = re.search(r'<p class="snippet">(.*?)</p>', page.text, re.S)
    assert snippet and re.search(r"<mark>(Blumen|flowers)</mark>", snippet.group(1))

    link_page = browser.get(result)
    assert link_page.status_code == 200
    assert 'id="captures"' in link_page.text and 'class="capture"' in link_page.text
    assert f'href="/captures/{site["capture"]}/view"' in link_page.text
    assert 'id="history"' in link_page.text and "Berlin" in link_page.text

    (export,) = re.findall(r'<a id="export-csv" href="([^"]*)"', page.text)
    export = unescape(export)
    assert parse_qs(urlsplit(export).query) == {
        "q": ["Blumen OR flowers"], "city": ["Berlin"], "published": ["2020-10"]
    }  # fmt: skip
    response = browser.get(export)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith("attachment;")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["city"], r["url"]) for r in rows] == [("Berlin", site["url"])]
    assert rows[0]["published"].startswith("2020-10-10")


def test_facets_add_one_filter_and_keep_the_others(site: dict[str, Any]) -> None:
    researcher = client_as(site["app"], "researcher")
    page = researcher.get("/search", params={"q": "Belarus", "kind": "report"})
    assert page.status_code == 200 and 'id="facets"' in page.text
    facets = facets_in(page.text)
    assert ("country", "Germany") in facets
    href, count = facets[("country", "Germany")]
    query = parse_qs(urlsplit(href).query)
    assert query == {"q": ["Belarus"], "kind": ["report"], "country": ["Germany"]}
    narrowed = researcher.get(href)
    assert total_in(narrowed.text) == count
    cities = {value for facet, value in facets_in(narrowed.text) if facet == "city"}
    assert cities and cities <= {"Berlin", "Munich", "Hamburg"}
    # The active filter can be removed without losing the others.
    removals = {
        unescape(facet): unescape(href)
        for facet, href in re.findall(
            r'<a class="remove-filter" data-facet="([^"]*)" href="([^"]*)"', narrowed.text
        )
    }
    assert set(removals) == {"country", "kind"}
    assert parse_qs(urlsplit(removals["country"]).query) == {"q": ["Belarus"], "kind": ["report"]}


def test_jsonl_export_is_the_whole_result_set(site: dict[str, Any]) -> None:
    researcher = client_as(site["app"], "researcher")
    page = researcher.get("/search", params={"country": "Germany"})
    response = researcher.get("/search.jsonl", params={"country": "Germany"})
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment;")
    rows = [json.loads(line) for line in response.text.splitlines()]
    assert len(rows) == total_in(page.text) >= 3
    assert {r["country"] for r in rows} == {"Germany"}
    assert {r["city"] for r in rows} >= {"Berlin", "Munich", "Hamburg"}


def test_link_page_shows_legal_forms_only_to_roles_that_may_use_them(
    site: dict[str, Any],
) -> None:
    path = f"/links/{site['link']}"
    researcher = client_as(site["app"], "researcher").get(path).text
    assert 'id="payload-form"' not in researcher and 'id="evidence-form"' not in researcher
    legal = session_client(site["app"], "legal")
    page = legal.get(path).text
    capture = site["capture"]
    assert f'id="payload-form" method="post" action="/captures/{capture}/payload"' in page
    assert f'id="evidence-form" method="post" action="/captures/{capture}/evidence"' in page
    token = csrf_of(legal)
    for form in re.findall(r'<form id="(?:payload|evidence)-form".*?</form>', page, re.S):
        assert f'name="csrf_token" value="{token}"' in form
        assert 'name="reason" required' in form
    assert 'name="requested_by"' in page


def test_link_page_shows_archived_images_of_a_gallery(site: dict[str, Any]) -> None:
    with session_scope(site["app"].state.paths.database_url) as session:
        tallinn = session.scalar(select(Link.id).join(City).where(City.name == "Tallinn"))
    page = client_as(site["app"], "researcher").get(f"/links/{tallinn}").text
    found = re.findall(r'<a href="([^"]*)"><img class="thumb" src="([^"]*)"', page)
    assert len(found) >= 12
    for href, source in found:
        full = unescape(href)  # the archived image; the thumbnail is a rendition of it
        assert re.fullmatch(r"/archived/web/\d{14}/http://127\.0\.0\.1:\d+/.+", full), full
        assert re.fullmatch(r"/archived/thumb/\d+", source), source


def test_countries_page_matches_the_status_summary(site: dict[str, Any]) -> None:
    page = client_as(site["app"], "researcher").get("/countries")
    assert page.status_code == 200
    with session_scope(site["app"].state.paths.database_url) as session:
        summary = status_summary(session)
    rows = re.findall(r'<tr class="place">(.*?)</tr>', page.text, re.S)
    assert len(rows) == len(summary)
    for html, row in zip(rows, summary, strict=True):
        cells = [unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", html, re.S)]
        assert cells[0] == row["country"] and cells[1] == (row["city"] or "—")
        assert cells[2:4] == [str(row["links"]), str(row["archived"])]
    chart = re.search(r'<svg class="chart".*?</svg>', page.text, re.S)
    assert chart and chart.group(0).count("<rect") >= len({r["country"] for r in summary})
    # Hamburg's page is gone: one failure, said at once, not yet a death.
    assert "<title>Germany: 1 failing</title>" in chart.group(0)


def test_citations_as_text(site: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Citations name the archive at LINKARCHIVE_PUBLIC_URL, never at whatever ``Host``
    a request claims (a forged one would end up in footnotes)."""
    monkeypatch.setenv("LINKARCHIVE_PUBLIC_URL", "https://archive.example.org/")
    researcher = client_as(site["app"], "researcher")
    capture = site["capture"]
    apa = researcher.get(
        f"/captures/{capture}/cite", params={"style": "apa"}, headers={"Host": "evil.example"}
    )
    assert apa.status_code == 200 and apa.headers["content-type"].startswith("text/plain")
    assert "Frauen in Weiß" in apa.text and site["url"] in apa.text
    assert "https://archive.example.org/archived/web/" in apa.text
    assert "evil.example" not in apa.text and "testserver" not in apa.text
    bibtex = researcher.get(f"/captures/{capture}/cite", params={"style": "bibtex"})
    assert bibtex.text.lstrip().startswith("@")
    assert researcher.get(f"/captures/{capture}/cite", params={"style": "mla9"}).status_code == 400
    assert researcher.get("/captures/99999999/cite").status_code == 404


def test_unknown_and_malformed_ids_give_error_pages(site: dict[str, Any]) -> None:
    researcher = client_as(site["app"], "researcher")
    for path, status in (("/links/99999999", 404), ("/links/abc", 404), ("/links/-1", 404)):
        response = researcher.get(path)
        assert response.status_code == status, path
        assert '<p class="error">' in response.text and "Traceback" not in response.text


def test_csv_cells_cannot_become_formulas() -> None:
    assert [csv_cell(v) for v in ("=1+1", "+1", "-1", "@SUM(A1)", "\t=x", "ok", None, 3)] == [
        "'=1+1", "'+1", "'-1", "'@SUM(A1)", "'\t=x", "ok", "", "3"
    ]  # fmt: skip


# --- a hostile archived title ----------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile(crawled: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A copy of the crawled home whose Berlin page has a hostile title and description."""
    from pipeline.catalog.fulltext import refresh_documents

    home = copy_home(crawled["home"], tmp_path_factory.mktemp("hostile") / "home")
    app = make_app(home)
    with session_scope(app.state.paths.database_url) as session:
        berlin = session.scalar(select(Link).join(City).where(City.name == "Berlin"))
        assert berlin is not None
        row = session.get(PageMetadataRow, berlin.last_capture_id)
        assert row is not None
        row.title = HOSTILE
        row.description = '=HYPERLINK("http://evil.example") Blumen'
        session.flush()
        refresh_documents(session)
        link_id = berlin.id
    return {"app": app, "link": link_id}


def assert_escaped(html: str) -> None:
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in html


def test_hostile_title_is_escaped_on_every_page(hostile: dict[str, Any]) -> None:
    researcher: TestClient = client_as(hostile["app"], "researcher")
    results = researcher.get("/search", params={"q": "Blumen", "city": "Berlin"})
    assert results.status_code == 200 and total_in(results.text) == 1
    assert_escaped(results.text)
    link = researcher.get(f"/links/{hostile['link']}")
    assert_escaped(link.text)
    assert "<script" not in results.text and "<script" not in link.text

    api = researcher.get("/api/v1/search", params={"q": "Blumen", "city": "Berlin"})
    assert api.headers["content-type"] == "application/json"
    assert api.json()["results"][0]["title"] == HOSTILE
    assert researcher.get(f"/api/v1/links/{hostile['link']}").json()["metadata"][0]["title"] == (
        HOSTILE
    )

    exported = researcher.get("/search.csv", params={"q": "Blumen", "city": "Berlin"})
    (row,) = csv.DictReader(io.StringIO(exported.text))
    assert row["title"] == HOSTILE and row["description"].startswith("'=HYPERLINK(")


def test_serve_runs_the_app_on_loopback(site: dict[str, Any], tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    import httpx
    from conftest import free_port

    port = free_port()
    linkarchive = Path(sys.executable).parent / "linkarchive"
    server = subprocess.Popen(
        [str(linkarchive), "--home", str(site["home"]), "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        response = None
        for _ in range(200):
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/countries")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert response is not None and response.status_code == 303
        assert response.headers["location"] == "/login?next=%2Fcountries"
        login = httpx.get(f"http://127.0.0.1:{port}/login")
        assert login.status_code == 200 and 'id="login-form"' in login.text
        assert "content-security-policy" in login.headers
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("bad", ["0", str(2**62 + 1), str(2**64), "9" * 40])
def test_ids_out_of_range_are_not_found_on_every_route(site: dict[str, Any], bad: str) -> None:
    """Ids the database cannot hold were a 500 (OverflowError); each is a 404 now, and
    the POST routes refuse without a server error too."""
    client = client_as(site["app"], "admin")
    for path in (f"/links/{bad}", f"/captures/{bad}/cite", f"/archived/{bad}/",
                 f"/captures/{bad}/view", f"/archived/thumb/{bad}", f"/api/v1/links/{bad}",
                 f"/api/v1/captures/{bad}", f"/api/v1/captures/{bad}/citation"):  # fmt: skip
        assert client.get(path).status_code == 404, path
    api = f"/api/v1/captures/{bad}"
    for path in (f"/captures/{bad}/payload", f"/captures/{bad}/evidence", f"{api}/payload",
                 f"{api}/evidence"):  # fmt: skip
        assert client.post(path, data={"reason": "test"}).status_code in (403, 404), path


def test_the_link_page_shows_each_metadata_once_and_a_check_once(
    crawled_twice: Path, prefect_server: None, tmp_path: Path
) -> None:
    """A page crawled twice and checked once: one metadata table naming its captures (not
    one per capture), and the check is one "check" event in the history, not a check and
    a crawl."""
    from flows.crawl import check_flow
    from pipeline.catalog.models import Capture, Media
    from pipeline.config import paths
    from pipeline.web.pages import link_details

    home = copy_home(crawled_twice, tmp_path / "home")
    database = paths(home).database_url
    with session_scope(database) as session:
        link_id = min(session.scalars(select(Media.link_id).where(Media.url.like("%.png"))))
    check_flow(link_ids=[link_id], home=str(home), recapture=False)
    with session_scope(database) as session:
        pages = session.scalars(
            select(Capture.id).where(Capture.link_id == link_id, Capture.role == "page")
        ).all()  # fmt: skip
        details = link_details(session, link_id)
    assert len(pages) >= 3  # two crawls and the check
    assert len(details["metadata"]) == 1  # revisits extracted nothing: no empty tables
    assert set(details["metadata"][0]["capture_ids"]) <= set(pages)
    events = [entry["what"] for entry in details["history"]]
    assert events.count("check") == 1 and events.count("crawl") == 2, events
    page = client_as(make_app(home), "researcher").get(f"/links/{link_id}").text
    assert page.count("Page metadata") == 1


def test_identical_metadata_of_several_captures_is_one_entry_naming_them() -> None:
    from pipeline.web.pages import _distinct_metadata

    def row(capture_id: int, title: str | None) -> PageMetadataRow:
        return PageMetadataRow(capture_id=capture_id, title=title, author="Ana")

    rows = [row(1, "Rally"), row(2, "Rally"), row(3, "Rally, updated"), row(4, "Rally"),
            PageMetadataRow(capture_id=5)]  # fmt: skip
    entries = _distinct_metadata(rows)
    assert [(e["title"], e["capture_ids"]) for e in entries] == [
        ("Rally", [4, 2, 1]),
        ("Rally, updated", [3]),
    ]
