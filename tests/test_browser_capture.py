"""Browser capture end to end: the real crawl flow renders the replica world's social
platform ("Pulse") in Debian's Chromium through the recording proxy.

The pages are app shells filled by scripts from JSON endpoints, an endless feed, a clip
whose video source a script sets, and a post behind a log-in wall (pipeline/replica/social.py
knows what their scripts draw). Checked against what the replica servers wrote, and against
the screenshot's pixels.
"""

from __future__ import annotations

import html
import io
import json
import os
import re
import shutil
import signal
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import replay_server
from PIL import Image
from sqlalchemy import select
from test_wacz import wacz_validate

from archive import iter_records, read_record
from pipeline.catalog import session_scope
from pipeline.catalog.fulltext import SearchQuery, search
from pipeline.catalog.models import Capture, CrawlOutcome, Link, Media, PageMetadataRow
from pipeline.config import paths
from pipeline.replay import find_wayback
from pipeline.replica import social

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (`.ci/run` installs chromium)"
    ),
]


@pytest.fixture(scope="module")
def pulse(world: Any, prefect_server: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data home into which the flow archived Pulse's curated list (``--browser auto``)."""
    from flows.crawl import crawl_flow

    home = tmp_path_factory.mktemp("pulse")
    result = crawl_flow(source=world.url(social.SITE, social.LIST_PATH), home=str(home))
    assert result["links_done"] == len(social.CSV_ROWS)
    return home


def _link(session: Any, world: Any, path: str) -> Link:
    url = world.url(social.SITE, path)
    return session.scalars(select(Link).where(Link.url == url)).one()


def _captures(session: Any, link: Link, **where: Any) -> list[Capture]:
    query = select(Capture).where(Capture.link_id == link.id)
    for name, value in where.items():
        query = query.where(getattr(Capture, name) == value)
    return list(session.scalars(query.order_by(Capture.id)))


def _record(home: Path, capture: Capture) -> Any:
    where = Path(capture.warc_file)
    return read_record(where if where.is_absolute() else paths(home).warcs / where,
                       capture.warc_offset)  # fmt: skip


def test_the_scripts_json_is_archived_as_the_server_wrote_it(pulse: Path, world: Any) -> None:
    with session_scope(paths(pulse).database_url) as session:
        link = _link(session, world, social.POST_PATH)
        [api] = [c for c in _captures(session, link) if "/api/post" in c.url]
        record = _record(pulse, api)
    assert record.rec_type == "response" and api.http_status == 200
    # gzip inside chunked framing, stored exactly as one of the replica's responses
    assert record.block in world.sent(social.SITE, "/api/post")
    assert b"Transfer-Encoding: chunked" in record.block
    assert b"Content-Encoding: gzip" in record.block
    # ... with its request as the proxy sent it: origin form, no Via, no proxy headers
    requests = [
        r for _, r in iter_records(paths(pulse).warcs / Path(api.warc_file).name)
        if r.rec_type == "request" and r.get("WARC-Concurrent-To") == api.record_id
    ]  # fmt: skip
    [request] = requests
    assert request.block.startswith(b"GET /api/post?slug=warsaw-vigil HTTP/1.1\r\n")
    assert b"\r\nVia:" not in request.block and b"Proxy-Connection" not in request.block


def test_rendered_text_is_searchable_and_gives_the_metadata(pulse: Path, world: Any) -> None:
    with session_scope(paths(pulse).database_url) as session:
        link = _link(session, world, social.POST_PATH)
        assert link.status == "alive"
        [page] = _captures(session, link, role="page")
        assert link.last_capture_id == page.id
        meta = session.get(PageMetadataRow, page.id)
        assert meta is not None
        assert meta.title == social.POST["title"]  # the plain fetch's title was "Loading…"
        assert meta.author == social.POST["author"]
        assert str(meta.published) == social.POST["published"]
        rows = search(session, SearchQuery(text='"Castle Square"'), facets=False).rows
        assert [row["link_id"] for row in rows] == [link.id]
        [plain] = _captures(session, link, role="plain_page")  # kept beside the render
        assert b"Loading" in _record(pulse, plain).payload


def test_the_screenshot_shows_what_the_script_drew(pulse: Path, world: Any) -> None:
    with session_scope(paths(pulse).database_url) as session:
        link = _link(session, world, social.POST_PATH)
        [page] = _captures(session, link, role="page")
        [shot] = _captures(session, link, role="screenshot")
        [dom] = _captures(session, link, role="dom")
        [text] = _captures(session, link, role="text")
        records = {name: _record(pulse, c) for name, c in
                   (("shot", shot), ("dom", dom), ("text", text))}  # fmt: skip
    url = world.url(social.SITE, social.POST_PATH)
    assert records["shot"].rec_type == "resource"
    assert records["shot"].target_uri == f"urn:view:{url}"
    assert records["dom"].target_uri == f"urn:dom:{url}"
    assert records["text"].target_uri == f"urn:text:{url}"
    for record in records.values():
        assert record.get("WARC-Concurrent-To") == page.record_id
    assert social.POST["text"][:40].encode() in records["dom"].payload
    assert social.POST["text"][:40].encode() in records["text"].payload
    image = Image.open(io.BytesIO(records["shot"].payload)).convert("RGB")
    m = social.MARKER
    inside = image.getpixel((m["left"] + m["width"] // 2, m["top"] + m["height"] // 2))
    corner = image.getpixel((m["left"] + 3, m["top"] + 3))
    outside = image.getpixel((m["left"] + m["width"] + 20, m["top"] + m["height"] // 2))
    assert inside == corner == m["rgb"]
    assert outside != m["rgb"]


def test_the_browser_metadata_record_names_browser_viewport_and_behaviours(
    pulse: Path, world: Any
) -> None:
    url = world.url(social.SITE, social.FEED_PATH)
    infos = []
    for path in sorted(paths(pulse).warcs.glob("*.warc.gz")):
        for _, record in iter_records(path):
            if record.rec_type == "metadata" and record.target_uri == url:
                payload = json.loads(record.payload)
                if payload.get("format") == "linkarchive/browser-capture":
                    infos.append(payload)
    [info] = infos
    assert info["browser"] == "Chromium" and info["version"]
    assert info["viewport"] == {"width": 1280, "height": 900}
    assert "HeadlessChrome" not in info["user_agent"] and "Chrome/" in info["user_agent"]
    assert {"wait-network-quiet", "scroll"} <= set(info["behaviours"])
    assert info["error"] is None and info["records"]["screenshot"]


def test_an_endless_feed_is_scrolled_to_its_last_page(pulse: Path, world: Any) -> None:
    last = social.feed_item(social.FEED_PAGES, social.FEED_ITEMS)
    with session_scope(paths(pulse).database_url) as session:
        link = _link(session, world, social.FEED_PATH)
        urls = {c.url: c for c in _captures(session, link)}
        page = world.url(social.SITE, f"/api/feed?page={social.FEED_PAGES}")
        assert urls[page].http_status == 200
        image = urls[world.url(social.SITE, last["image"])]
        assert image.http_status == 200 and image.content_type == "image/jpeg"
        media = session.scalars(select(Media.url).where(Media.link_id == link.id)).all()
        assert len(media) == social.FEED_PAGES * social.FEED_ITEMS
        rows = search(session, SearchQuery(text='"reached the TV tower"'), facets=False).rows
        assert [row["link_id"] for row in rows] == [link.id]


def test_a_video_set_by_a_script_and_text_behind_see_more_are_archived(
    pulse: Path, world: Any
) -> None:
    with session_scope(paths(pulse).database_url) as session:
        link = _link(session, world, social.CLIP_PATH)
        video = world.url(social.SITE, social.CLIP_MP4_PATH)
        whole = [c for c in _captures(session, link) if c.url == video and c.http_status == 200]
        assert whole and whole[0].content_type == "video/mp4"
        kinds = session.scalars(select(Media.kind).where(Media.link_id == link.id)).all()
        assert "video" in kinds
        rows = search(session, SearchQuery(text='"Brandenburg Gate"'), facets=False).rows
        assert [row["link_id"] for row in rows] == [link.id]  # only there after "See more"


def test_a_log_in_wall_is_blocked_not_alive(pulse: Path, world: Any) -> None:
    with session_scope(paths(pulse).database_url) as session:
        link = _link(session, world, social.WALL_PATH)
        assert link.status == "blocked"
        outcome = session.scalars(select(CrawlOutcome).where(CrawlOutcome.link_id == link.id)).one()
        assert outcome.error == "log-in wall" and outcome.http_status == 200
        assert _captures(session, link, role="screenshot")  # archived as it was seen


def test_static_pages_in_auto_mode_are_captured_without_a_browser(
    crawled: dict[str, Any],
) -> None:
    with session_scope(paths(crawled["home"]).database_url) as session:
        roles = set(session.scalars(select(Capture.role).distinct()))
        pages = session.scalar(select(Capture.id).where(Capture.role == "page").limit(1))
    assert pages is not None
    assert not roles & {"screenshot", "dom", "text", "plain_page"}


def _reply(handler: BaseHTTPRequestHandler, body: bytes, kind: str) -> None:
    """Answer with ``body`` (200), or 404 when there is none, framed by Content-Length."""
    handler.send_response(200 if body else 404)
    handler.send_header("Content-Type", kind)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


# --- a Chromium killed mid-page --------------------------------------------------------------
class _HangSite:
    """Two app shells: /hang's script waits on /api/slow, which answers only when released;
    /ok's script gets its text at once."""

    def __init__(self) -> None:
        self.slow_asked = threading.Event()
        self.release = threading.Event()
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/api/slow":
                    site.slow_asked.set()
                    site.release.wait(60)
                    body, kind = b'{"text": "late"}', "application/json"
                elif self.path == "/api/ok":
                    body, kind = (
                        b'{"text": "Tallinn candles for the prisoners"}',
                        "application/json",
                    )
                elif self.path == "/endless":  # grows for ever, as some feeds do
                    body = (
                        b"<!DOCTYPE html><title>Endless</title><p>Tartu vigil, live</p><script>"
                        b"setInterval(() => { const p = document.createElement('p');"
                        b" p.style.height = '300px'; p.textContent = 'more';"
                        b" document.body.append(p) }, 100)</script>"
                    )
                    kind = "text/html; charset=utf-8"
                elif self.path in ("/hang", "/ok"):
                    api = "/api/slow" if self.path == "/hang" else "/api/ok"
                    body = (
                        "<!DOCTYPE html><title>Loading</title><div id=r>Loading</div><script>"
                        f"fetch('{api}').then(r => r.json()).then(d => "
                        "{document.getElementById('r').textContent = d.text})</script>"
                    ).encode()
                    kind = "text/html; charset=utf-8"
                else:
                    body, kind = b"", "text/plain"
                _reply(self, body, kind)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _chromium_pids_under(root: int) -> list[int]:
    """Chromium processes descended from ``root`` (the crawl's subprocesses' browsers)."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
        names[int(entry.name)] = name
    found = []
    for pid, name in names.items():
        if "chrom" not in name:
            continue
        ancestor = parents.get(pid, 0)
        while ancestor > 1 and ancestor != root:
            ancestor = parents.get(ancestor, 0)
        if ancestor == root:
            found.append(pid)
    return found


@pytest.fixture
def hang_site() -> Iterator[_HangSite]:
    site = _HangSite()
    yield site
    site.release.set()
    site.server.shutdown()
    site.server.server_close()


def test_a_killed_chromium_costs_one_link_and_the_crawl_goes_on(
    hang_site: _HangSite, prefect_server: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.crawl import crawl_flow

    monkeypatch.setenv("LINKARCHIVE_BROWSER_PAGES", "1")  # /ok waits for the browser
    monkeypatch.setenv("LINKARCHIVE_CRAWL_PROCESSES", "1")
    # An archivist's logged-in session for the host: its cookie goes with the browser's
    # requests; the state file itself (its local storage here) never reaches a WARC file.
    states = tmp_path / "states"
    states.mkdir()
    (states / "127.0.0.1.json").write_text(json.dumps({
        "cookies": [{"name": "session", "value": "archivist-7f3a", "domain": "127.0.0.1",
                     "path": "/", "expires": -1, "httpOnly": True, "secure": False,
                     "sameSite": "Lax"}],
        "origins": [{"origin": hang_site.url, "localStorage": [
            {"name": "device", "value": "state-file-only-e91c"}]}],
    }))  # fmt: skip
    monkeypatch.setenv("LINKARCHIVE_BROWSER_STATE_DIR", str(states))
    seeds = tmp_path / "seeds.csv"
    seeds.write_text(
        "country,city,kind,label,url\n"
        f"Estonia,Tallinn,report,hang,{hang_site.url}/hang\n"
        f"Estonia,Tallinn,report,ok,{hang_site.url}/ok\n",
        encoding="utf-8",
    )
    killed: list[int] = []

    def killer() -> None:
        if not hang_site.slow_asked.wait(120):
            return
        time.sleep(0.5)
        for pid in _chromium_pids_under(os.getpid()):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    result = crawl_flow(source=str(seeds), home=str(tmp_path / "home"))
    thread.join(5)
    assert killed, "no Chromium was found to kill"
    assert result["status"] == "finished" and result["links_done"] == 2
    with session_scope(paths(tmp_path / "home").database_url) as session:
        status = {link.label: link for link in session.scalars(select(Link))}
        hang, ok = status["hang"], status["ok"]
        assert hang.status == "error"
        outcome = session.scalars(select(CrawlOutcome).where(CrawlOutcome.link_id == hang.id)).one()
        assert outcome.error and outcome.error.startswith("browser:")
        assert ok.status == "alive"  # rendered by a relaunched Chromium
        rows = search(session, SearchQuery(text="Tallinn candles"), facets=False).rows
        assert [row["link_id"] for row in rows] == [ok.id]
    warcs = b"".join(
        r.block
        for p in paths(tmp_path / "home").warcs.glob("*.warc.gz")
        for _, r in iter_records(p)
    )
    assert b"\r\nCookie: session=archivist-7f3a\r\n" in warcs
    assert b"state-file-only-e91c" not in warcs


# --- seeing it: the web app, evidence packages, WACZ ----------------------------------------
def test_the_web_app_shows_the_screenshot_first_and_thumbnails_in_results(
    pulse: Path, world: Any, tmp_path: Path
) -> None:
    from webkit import client_as, copy_home, make_app

    app = make_app(copy_home(pulse, tmp_path / "home"))
    client = client_as(app, "researcher")
    with session_scope(app.state.paths.database_url) as session:
        link = _link(session, world, social.POST_PATH)
        [shot] = _captures(session, link, role="screenshot")
        png = _record(pulse, shot).payload
    page = client.get(f"/links/{link.id}").text
    figure = page.index('id="screenshot"')
    assert figure < page.index("Page metadata") and figure < page.index("<h2>Captures")
    assert f'src="/archived/{shot.id}/"' in page
    served = client.get(f"/archived/{shot.id}/")
    assert served.status_code == 200 and served.content == png
    assert served.headers["content-type"] == "image/png"
    [dom] = [c for c in _captures_of(app, link.id) if c.role == "dom"]
    assert f'id="rendered-dom" href="/captures/{dom.id}/view"' in page
    rendered = client.get(f"/archived/{dom.id}/").text  # the DOM, its links into the archive
    assert "Castle Square" in rendered and "<script" not in rendered
    image = re.search(r'<img[^>]* src="([^"]+)"', rendered)
    assert image and image.group(1).endswith(social.POST["image"])
    assert client.get(html.unescape(image.group(1))).headers["content-type"] == "image/jpeg"
    results = client.get("/search", params={"q": '"Castle Square"'}).text
    assert f'class="shot-thumb" src="/archived/thumb/{shot.id}"' in results
    thumb = client.get(f"/archived/thumb/{shot.id}")
    assert thumb.status_code == 200
    assert Image.open(io.BytesIO(thumb.content)).size[0] <= 320


def _captures_of(app: Any, link_id: int) -> list[Capture]:
    with session_scope(app.state.paths.database_url) as session:
        return list(session.scalars(select(Capture).where(Capture.link_id == link_id)))


def test_evidence_package_holds_the_screenshot_and_names_it(
    pulse: Path, world: Any, tmp_path: Path
) -> None:
    from pipeline.catalog.queries import resolve_capture
    from pipeline.evidence.package import export_evidence, verify_package

    home = tmp_path / "home"
    shutil.copytree(pulse, home)
    where = paths(home)
    with session_scope(where.database_url) as session:
        link = _link(session, world, social.POST_PATH)
        capture = resolve_capture(session, str(link.id))
        [shot] = _captures(session, link, role="screenshot")
        exported = export_evidence(session, where, capture, reason="test", requested_by="t",
                                   output=tmp_path / "post.wacz")  # fmt: skip
    with zipfile.ZipFile(exported.path) as package:
        summary = package.read("evidence/summary.html").decode()
        pages = package.read("pages/pages.jsonl").decode()
        warcs = [n for n in package.namelist() if n.startswith("archive/")]
        records = []
        for name in warcs:
            (tmp_path / "x.warc.gz").write_bytes(package.read(name))
            records += [r for _, r in iter_records(tmp_path / "x.warc.gz")]
    assert "<h2>Browser capture</h2>" in summary
    assert html.escape(shot.record_id) in summary
    assert html.escape(f"urn:view:{world.url(social.SITE, social.POST_PATH)}") in summary
    targets = {r.target_uri for r in records}
    assert f"urn:view:{world.url(social.SITE, social.POST_PATH)}" in targets
    assert any(
        r.rec_type == "metadata" and b"linkarchive/browser-capture" in r.payload for r in records
    )
    assert world.url(social.SITE, social.POST_PATH) in pages
    assert not verify_package(exported.path).problems
    wacz_validate(exported.path)  # the field's validator accepts urn: resource records


@pytest.mark.skipif(
    find_wayback() is None and not os.environ.get("CI"),
    reason="pywb not installed (pip install -e '.[replay]' or set LINKARCHIVE_WAYBACK)",
)
def test_pywb_replays_the_post_with_the_data_its_script_fetched(pulse: Path, world: Any) -> None:
    from playwright.sync_api import sync_playwright

    with replay_server(pulse) as (port, urls):
        [post] = [u for u in urls if u.endswith(social.POST_PATH)]
        replay_base = f"http://127.0.0.1:{port}/"
        requested: list[str] = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=["--disable-background-networking"]
            )
            page = browser.new_page()
            page.on("request", lambda request: requested.append(request.url))
            page.goto(post)  # pywb's frame, the page in an iframe (mp_), wombat inside
            page.wait_for_function(
                "() => [...document.querySelectorAll('iframe')].some(f => f.contentDocument"
                " && f.contentDocument.body && f.contentDocument.body.innerText"
                ".includes('Castle Square'))",
                timeout=30_000,
            )
            [frame] = [f for f in page.frames if "mp_/" in f.url]
            title = frame.title()
            browser.close()
        assert title == social.POST["title"]
        # Everything came from the archive: nothing reached the live replica site.
        leaked = [u for u in requested if u.startswith("http") and not u.startswith(replay_base)]
        assert not leaked


# --- video: yt-dlp through the recording proxy -------------------------------------------------
SMALL_MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8
LONG_MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 400  # over the limit below


class _VideoSite:
    """Two watch pages, each naming its MP4 in og:video only (as platforms do: the plain
    crawl finds no media to fetch)."""

    def __init__(self) -> None:
        files = {"/v/rally.mp4": SMALL_MP4, "/v/long.mp4": LONG_MP4}

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:  # noqa: N802
                if self.path.startswith("/watch/"):
                    name = self.path.rsplit("/", 1)[1]
                    body = (
                        f'<html><head><title>Clip {name}</title><meta property="og:title" '
                        f'content="Clip {name}"><meta property="og:video" '
                        f'content="http://{self.headers["Host"]}/v/{name}.mp4">'
                        '<meta property="og:video:type" content="video/mp4">'
                        f"</head><body><h1>Clip {name}</h1>"
                        + "<p>The march went from the station to the square.</p>" * 8
                        + "</body></html>"
                    ).encode()
                    kind = "text/html; charset=utf-8"
                else:
                    body, kind = files.get(self.path, b""), "video/mp4"
                _reply(self, body, kind)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_videos_on_video_hosts_are_fetched_by_yt_dlp_within_limits(
    prefect_server: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.crawl import crawl_flow

    site = _VideoSite()
    monkeypatch.setenv("LINKARCHIVE_VIDEO_HOSTS", "127.0.0.1")
    monkeypatch.setenv("LINKARCHIVE_VIDEO_MAX_BYTES", str(len(SMALL_MP4) * 4))
    seeds = tmp_path / "seeds.csv"
    seeds.write_text(
        "country,city,kind,label,url\n"
        f"Germany,Leipzig,video,rally,{site.url}/watch/rally\n"
        f"Germany,Leipzig,video,long,{site.url}/watch/long\n",
        encoding="utf-8",
    )
    try:
        crawl_flow(source=str(seeds), home=str(tmp_path / "home"), browser="never")
    finally:
        site.server.shutdown()
        site.server.server_close()
    where = paths(tmp_path / "home")
    infos = {}
    for path in sorted(where.warcs.glob("*.warc.gz")):
        for _, record in iter_records(path):
            if record.rec_type == "metadata" and b'"linkarchive/video"' in record.payload:
                infos[record.target_uri] = json.loads(record.payload)
    rally = infos[f"{site.url}/watch/rally"]
    assert rally["error"] is None and rally["downloader"] == "yt-dlp"
    assert rally["info"]["url"] == f"{site.url}/v/rally.mp4"
    assert "video" not in rally["records"]  # it came whole in one response: stored once
    long = infos[f"{site.url}/watch/long"]
    with session_scope(where.database_url) as session:
        links = {link.label: link for link in session.scalars(select(Link))}

        def fetched_by_yt_dlp(info: dict[str, Any], name: str) -> list[Capture]:
            return list(session.scalars(select(Capture).where(
                Capture.record_id.in_(info["exchanges"]), Capture.url.like(f"%/v/{name}")
            )))  # fmt: skip

        [rally_mp4] = fetched_by_yt_dlp(rally, "rally.mp4")
        assert rally_mp4.http_status == 200 and rally_mp4.size == len(SMALL_MP4)
        assert rally_mp4.link_id == links["rally"].id and rally_mp4.role == "media"
        kinds = session.scalars(select(Media.kind).where(Media.link_id == links["rally"].id))
        assert "video" in set(kinds)
        # over LINKARCHIVE_VIDEO_MAX_BYTES: neither kept by yt-dlp nor archived whole
        assert "video" not in long["records"]
        assert all(c.size < len(LONG_MP4) for c in fetched_by_yt_dlp(long, "long.mp4"))
        assert links["rally"].status == links["long"].status == "alive"


def test_a_video_fetched_in_pieces_is_stored_whole_as_a_resource(tmp_path: Path) -> None:
    from archive import RecordFactory, RotatingWarcWriter
    from spiders.browser.video import VideoFetcher, VideoResult
    from spiders.warcstore import WarcStore

    factory = RecordFactory()
    writer = RotatingWarcWriter(tmp_path / "warcs", prefix="t", factory=factory, fsync=False)
    store = WarcStore(writer, factory)
    fetcher = VideoFetcher(store, None, max_bytes=1 << 20, max_seconds=60, spool_dir=None)
    video = tmp_path / "video-abc.mp4"
    video.write_bytes(LONG_MP4)
    page = "https://video.example/watch?v=abc"
    # yt-dlp's media URL was fetched in ranges (206s), so no single response holds the file
    result = VideoResult(page, info={"url": "https://cdn.example/abc.mp4", "title": "Clip"},
                         files=[video])  # fmt: skip
    fetcher._write(result, refers_to="<urn:uuid:11111111-2222-4333-8444-555555555555>")
    writer.close()
    records = {r.target_uri: r for f in (tmp_path / "warcs").glob("*.warc.gz")
               for _, r in iter_records(f)}  # fmt: skip
    stored = records[f"urn:video:{page}"]
    assert stored.rec_type == "resource" and stored.payload == LONG_MP4
    assert stored.content_type == "video/mp4"
    assert stored.get("WARC-Concurrent-To") == "<urn:uuid:11111111-2222-4333-8444-555555555555>"
    info = json.loads(records[page].payload)
    assert info["records"]["video"] == stored.record_id and info["info"]["title"] == "Clip"


class _SlowShells:
    """App shells on 127.0.0.1 and 127.0.0.2 whose script's data takes 3 s; counts the
    data requests in flight, per host and in all."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.most_overall = 0
        shells = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:  # noqa: N802
                host = self.server.server_address[0]
                if self.path.startswith("/api/"):
                    with shells.lock:
                        shells.in_flight[host] = shells.in_flight.get(host, 0) + 1
                        shells.most[host] = max(shells.most.get(host, 0), shells.in_flight[host])
                        shells.most_overall = max(shells.most_overall,
                                                  sum(shells.in_flight.values()))  # fmt: skip
                    time.sleep(3.0)  # long enough for the other host's page to start
                    with shells.lock:
                        shells.in_flight[host] -= 1
                    body, kind = b'{"text": "Candles in the window"}', "application/json"
                elif self.path.startswith("/post/"):
                    body = (
                        "<!DOCTYPE html><title>Loading</title><div id=r>Loading</div><script>"
                        f"fetch('/api{self.path}').then(r => r.json()).then(d => "
                        "{document.getElementById('r').textContent = d.text})</script>"
                    ).encode()
                    kind = "text/html; charset=utf-8"
                else:
                    body, kind = b"", "text/plain"
                _reply(self, body, kind)

        self.servers = []
        for host in ("127.0.0.1", "127.0.0.2"):
            server = ThreadingHTTPServer((host, 0), Handler)
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self.servers.append(server)
        self.urls = [f"http://{s.server_address[0]}:{s.server_address[1]}" for s in self.servers]


def test_a_host_gets_one_browser_page_at_a_time_while_other_hosts_go_on(
    prefect_server: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.crawl import crawl_flow

    shells = _SlowShells()
    monkeypatch.setenv("LINKARCHIVE_ALLOWED_HOSTS", "127.0.0.1,127.0.0.2")
    monkeypatch.setenv("LINKARCHIVE_CRAWL_PROCESSES", "1")  # both hosts in one process
    rows = [f"Ukraine,Kyiv,report,{i},{base}/post/{i}" for base in shells.urls for i in "abc"]
    seeds = tmp_path / "seeds.csv"
    seeds.write_text("country,city,kind,label,url\n" + "\n".join(rows) + "\n", encoding="utf-8")
    try:
        result = crawl_flow(source=str(seeds), home=str(tmp_path / "home"))
    finally:
        for server in shells.servers:
            server.shutdown()
            server.server_close()
    assert result["links_done"] == 6
    assert shells.most == {"127.0.0.1": 1, "127.0.0.2": 1}  # one page per host at a time
    assert shells.most_overall == 2  # while the two hosts were rendered side by side


@pytest.mark.parametrize(("mode", "status"), [("auto", "alive"), ("always", "error")])
def test_without_chromium_auto_keeps_the_plain_capture_and_always_says_why(
    mode: str,
    status: str,
    hang_site: _HangSite,
    prefect_server: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.crawl import crawl_flow

    monkeypatch.setenv("LINKARCHIVE_BROWSER_EXECUTABLE", str(tmp_path / "no-chromium"))
    seeds = tmp_path / "seeds.csv"
    seeds.write_text(f"country,city,kind,label,url\nEstonia,Tartu,report,ok,{hang_site.url}/ok\n")
    result = crawl_flow(source=str(seeds), home=str(tmp_path / "home"), browser=mode)
    assert result["links_done"] == 1
    with session_scope(paths(tmp_path / "home").database_url) as session:
        link = session.scalars(select(Link)).one()
        outcome = session.scalars(select(CrawlOutcome)).one()
        roles = set(session.scalars(select(Capture.role).where(Capture.link_id == link.id)))
    assert link.status == status
    assert "screenshot" not in roles
    if mode == "always":
        assert outcome.error == f"browser: no Chromium at {tmp_path / 'no-chromium'}"
        assert roles == {"plain_page"}
    else:
        assert outcome.error is None and roles == {"page"}


def test_a_page_that_never_stops_growing_still_gets_its_snapshot(
    hang_site: _HangSite, prefect_server: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.crawl import crawl_flow

    monkeypatch.setenv("LINKARCHIVE_BROWSER_PAGE_SECONDS", "4")  # scrolling alone would take 20
    monkeypatch.setenv("LINKARCHIVE_BROWSER_MAX_HEIGHT", "1000000")
    seeds = tmp_path / "seeds.csv"
    seeds.write_text(
        f"country,city,kind,label,url\nEstonia,Tartu,report,x,{hang_site.url}/endless\n"
    )
    crawl_flow(source=str(seeds), home=str(tmp_path / "home"), browser="always")
    with session_scope(paths(tmp_path / "home").database_url) as session:
        link = session.scalars(select(Link)).one()
        [shot] = _captures(session, link, role="screenshot")
        assert link.status == "alive"
    info = next(
        json.loads(r.payload)
        for p in paths(tmp_path / "home").warcs.glob("*.warc.gz")
        for _, r in iter_records(p)
        if r.rec_type == "metadata" and b"linkarchive/browser-capture" in r.payload
    )
    assert "page-time-spent" in info["behaviours"] and info["error"] is None
    assert Image.open(io.BytesIO(_record(tmp_path / "home", shot).payload)).size[1] > 900
