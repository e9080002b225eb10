"""End to end in a real browser: Debian's Chromium, driven by Playwright, uses the web app
served by `linkarchive serve` over a copy of the crawled replica world.

Each step is saved as a screenshot under test-artifacts/browser/ (a CI artefact); a failing
test leaves one more, named `failed`. Every request the browser makes is recorded: none may
leave 127.0.0.1, and the archived views must be served by the app itself.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from browserkit import (
    ARTIFACTS,
    ATTRIBUTE_BREAKOUT,
    CANARY,
    CHROMIUM,
    CHROMIUM_ARGS,
    SCRIPT_TAG,
    AppServer,
    HostileSite,
    Requests,
    Shots,
    add_user,
)
from conftest import free_port
from playwright.sync_api import APIResponse, Browser, Page, expect, sync_playwright
from playwright.sync_api import Error as PlaywrightError
from sqlalchemy import select

from pipeline.catalog import session_scope
from pipeline.catalog.models import Link
from pipeline.config import paths

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (`.ci/run` installs chromium)"
    ),
]

USERS = {"researcher": "rita-research", "legal": "lena-legal", "archivist": "arno-archive"}
BERLIN_TITLE = "Berlin: Frauen in Weiß für ein freies Belarus"


@dataclass
class App:
    """The running web app and what the tests need to know about its catalog."""

    url: str
    home: Path
    tokens: dict[str, str]
    berlin_url: str
    berlin_id: int
    hostile_url: str


@dataclass
class Tab:
    """One browser context and its page, with its requests, dialogs and screenshots."""

    page: Page
    requests: Requests
    shot: Shots
    dialogs: list[str] = field(default_factory=list)


# Module scope, not session: a live sync Playwright keeps an asyncio loop running in this
# thread, which breaks every later asyncio.run() (Prefect's flows) in the rest of the suite.
@pytest.fixture(scope="module")
def app(
    crawled: dict[str, Any], prefect_server: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[App]:
    """A copy of the crawled home plus one hostile capture, three users, and the app."""
    from flows.crawl import crawl_flow

    root = tmp_path_factory.mktemp("browser")
    home = root / "home"
    shutil.copytree(crawled["home"], home)
    with HostileSite() as hostile:
        seeds = root / "hostile.csv"
        seeds.write_text(
            f"country,city,kind,label,url\nIceland,Reykjavik,report,hostile,{hostile.url}\n",
            encoding="utf-8",
        )
        # Only the new link (the only one in Iceland) is crawled; the site is gone afterwards.
        result = crawl_flow(source=str(seeds), country="Iceland", home=str(home))
        assert result["status"] == "finished" and result["links_done"] == 1, result
    world = crawled["world"]
    berlin_url = world.url("blog", "/de/berlin-demo")
    with session_scope(paths(home).database_url) as session:
        berlin_id = session.scalars(select(Link.id).where(Link.url == berlin_url)).one()
    tokens = {role: add_user(home, name, role) for role, name in USERS.items()}
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    with AppServer(home, free_port(), root / "serve.log") as server:
        yield App(server.url, home, tokens, berlin_url, berlin_id, hostile.url)


@pytest.fixture(scope="module")
def browser(app: App) -> Iterator[Browser]:
    """Debian's Chromium, headless, for this module; started after the app's crawl (above)."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def tab(app: App, browser: Browser, request: pytest.FixtureRequest) -> Iterator[Tab]:
    """A fresh browser context (no cookies) on the app; a screenshot if the test fails."""
    context = browser.new_context(
        base_url=app.url, accept_downloads=True, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(15_000)
    requests = Requests(context)
    page = context.new_page()
    current = Tab(page, requests, Shots(request.node.name))
    page.on("dialog", lambda dialog: (current.dialogs.append(dialog.message), dialog.dismiss()))
    failed_before = request.session.testsfailed
    yield current
    if request.session.testsfailed > failed_before:  # the call phase is reported by now
        with contextlib.suppress(Exception):  # a lost screenshot must not hide the failure
            current.shot(page, "failed")
    context.close()


def login(page: Page, app: App, role: str) -> None:
    """Sign in through the login form as the user of ``role``."""
    page.goto("/login")
    page.fill("input[name=name]", USERS[role])
    page.fill("input[name=token]", app.tokens[role])
    page.locator("form:has(input[name=token]) [type=submit]").click()
    page.wait_for_load_state()
    expect(page.locator("nav#nav form#logout-form")).to_be_attached()


def search(page: Page, query: str) -> None:
    """Run a query through the search form."""
    if urlsplit(page.url).path != "/search":
        page.goto("/search")
    page.fill("form#search-form input[name=q]", query)
    page.press("form#search-form input[name=q]", "Enter")
    page.wait_for_load_state()


def images_loaded(page_or_frame: Any, selector: str) -> list[tuple[str, int]]:
    """(src, naturalWidth) of every image matching ``selector``, once each has settled."""
    images = page_or_frame.locator(selector)
    for index in range(images.count()):
        images.nth(index).scroll_into_view_if_needed()
    page_or_frame.wait_for_function(
        "s => [...document.querySelectorAll(s)].every(i => i.complete)", arg=selector
    )
    return images.evaluate_all("all => all.map(i => [i.currentSrc || i.src, i.naturalWidth])")


def assert_app_only(tab: Tab, app: App) -> None:
    """Every http(s) request went to the app itself (so never off 127.0.0.1)."""
    origin = urlsplit(app.url).netloc
    stray = [url for url in tab.requests.web() if urlsplit(url).netloc != origin]
    assert not stray, f"requests that did not go to the app: {stray}"


def view_page_capture(page: Page) -> None:
    """On a link page, open the view of the capture of the page itself (not a requisite)."""
    row = page.locator("tr.capture", has=page.locator("td", has_text=re.compile(r"^\s*page")))
    row.locator("a.view-capture").first.click()
    page.wait_for_load_state()


def post_evidence(page: Page, action: str) -> APIResponse:
    """POST an evidence request straight from the page's session, with its CSRF token."""
    token = page.locator("form#logout-form input[name=csrf_token]").get_attribute("value")
    return page.request.post(
        action,
        form={"reason": "direct request", "requested_by": "", "csrf_token": token or ""},
        max_redirects=0,
    )


def test_login_with_the_form_and_a_wrong_token_gets_no_session(tab: Tab, app: App) -> None:
    page = tab.page
    page.goto("/login")
    tab.shot(page, "login-form")
    page.fill("input[name=name]", USERS["researcher"])
    page.fill("input[name=token]", "not-the-token")
    page.locator("form:has(input[name=token]) [type=submit]").click()
    page.wait_for_load_state()
    expect(page.locator("p.error")).to_be_visible()
    tab.shot(page, "wrong-token")
    refused = {c["name"]: c["value"] for c in page.context.cookies()}
    page.goto("/search")
    assert urlsplit(page.url).path == "/login"  # still anonymous

    login(page, app, "researcher")
    assert urlsplit(page.url).path == "/search"
    # Signing in set a session cookie that the refused attempt had not.
    session = [c for c in page.context.cookies() if refused.get(c["name"]) != c["value"]]
    assert session and all(c["httpOnly"] and c["sameSite"] == "Strict" for c in session), session
    expect(page.locator("nav#nav")).to_contain_text(USERS["researcher"])
    tab.shot(page, "signed-in")


def test_search_highlights_and_facets_narrow_to_the_berlin_report(tab: Tab, app: App) -> None:
    page = tab.page
    login(page, app, "researcher")
    search(page, "Blumen OR flowers")
    results = page.locator("ol#results > li.result")
    expect(results.first).to_be_visible()
    assert results.count() > 1
    marks = [m.lower() for m in page.locator("ol#results .snippet mark").all_inner_texts()]
    assert marks and set(marks) <= {"blumen", "flowers"}, marks
    tab.shot(page, "results")

    page.locator("a.facet[data-facet=city][data-value=Berlin]").click()
    page.wait_for_load_state()
    tab.shot(page, "city-berlin")
    page.locator('a.facet[data-facet=published][data-value="2020-10"]').click()
    page.wait_for_load_state()
    tab.shot(page, "published-2020-10")

    query = parse_qs(urlsplit(page.url).query)
    assert query["city"] == ["Berlin"] and query["published"] == ["2020-10"]
    assert query["q"] == ["Blumen OR flowers"]
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text(BERLIN_TITLE)
    expect(results.first.locator(".url")).to_have_text(app.berlin_url)
    assert results.first.locator(".snippet mark").all_inner_texts() == ["Blumen"]
    assert page.locator("a.result-link").get_attribute("href") == f"/links/{app.berlin_id}"


def test_link_page_shows_captures_and_loaded_thumbnails(tab: Tab, app: App) -> None:
    page = tab.page
    login(page, app, "researcher")
    page.goto("/search?q=Blumen&city=Berlin")
    page.locator("a.result-link").first.click()
    page.wait_for_load_state()
    assert urlsplit(page.url).path == f"/links/{app.berlin_id}"
    expect(page.locator("table#captures tr.capture").first).to_be_visible()
    expect(page.locator("body")).to_contain_text(app.berlin_url)
    thumbs = images_loaded(page, "img.thumb")
    tab.shot(page, "link-page")
    assert thumbs, "the Berlin report has archived images: expected img.thumb"
    assert all(width > 0 for _, width in thumbs), thumbs
    assert_app_only(tab, app)


def test_archived_view_is_sandboxed_and_served_from_the_archive(tab: Tab, app: App) -> None:
    page = tab.page
    login(page, app, "researcher")
    page.goto(f"/links/{app.berlin_id}")
    view_page_capture(page)
    frame_element = page.locator("iframe#archived")
    expect(frame_element).to_be_visible()
    sandbox = frame_element.get_attribute("sandbox")
    assert sandbox is not None and "allow-scripts" not in sandbox, sandbox
    frame = frame_element.element_handle().content_frame()
    assert frame is not None
    frame.wait_for_load_state()
    expect(frame.locator("body")).to_contain_text("Brandenburger Tor")
    images = images_loaded(frame, "img")
    tab.shot(page, "archived-view")
    assert images, "the archived Berlin report shows its images"
    for src, width in images:
        assert urlsplit(src).path.startswith("/archived/web/"), src
        assert width > 0, src
    assert_app_only(tab, app)


def test_export_csv_of_the_berlin_search(tab: Tab, app: App, tmp_path: Path) -> None:
    page = tab.page
    login(page, app, "researcher")
    page.goto("/search?q=Blumen+OR+flowers&city=Berlin&published=2020-10")
    tab.shot(page, "berlin-search")
    with page.expect_download() as started:
        page.locator("a#export-csv").click()
    target = tmp_path / "export.csv"
    started.value.save_as(target)
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8-sig"))))
    assert rows, target.read_text()
    assert any(app.berlin_url in row.values() for row in rows), rows


def test_legal_exports_an_evidence_package_that_verifies(
    tab: Tab, app: App, tmp_path: Path
) -> None:
    from pipeline.evidence.package import CUSTODY, verify_package

    page = tab.page
    login(page, app, "legal")
    page.goto(f"/links/{app.berlin_id}")
    form = page.locator("form#evidence-form").first
    expect(form).to_be_visible()
    form.locator("[name=reason]").fill("court request 2024/17 (browser test)")
    tab.shot(page, "evidence-form")
    with page.expect_download() as started:
        form.locator("[type=submit]").click()
    download = started.value
    assert download.suggested_filename.endswith(".wacz"), download.suggested_filename
    package = tmp_path / download.suggested_filename
    download.save_as(package)

    verdict = verify_package(
        package, public_key=paths(app.home).home / "keys" / "evidence-key.pub.pem"
    )
    assert not verdict.problems, verdict.problems
    with zipfile.ZipFile(package) as archive:
        last = json.loads(archive.read(CUSTODY).decode().splitlines()[-1])
    assert last["event"] == "exported", last
    assert USERS["legal"] in json.dumps(last), last
    assert "court request 2024/17" in json.dumps(last), last
    assert [p for p in verdict.facts["pages"] if p.startswith(f"{app.berlin_url} at ")]

    # The direct POST that a researcher is refused (below) works for legal.
    action = form.get_attribute("action") or ""
    answer = post_evidence(page, action)
    assert answer.status == 200 and answer.body()[:2] == b"PK", answer.status


def test_researcher_gets_no_evidence_form_and_a_direct_post_is_refused(tab: Tab, app: App) -> None:
    page = tab.page
    login(page, app, "researcher")
    page.goto(f"/links/{app.berlin_id}")
    expect(page.locator("table#captures")).to_be_visible()
    expect(page.locator("form#evidence-form")).to_have_count(0)
    expect(page.locator("form#payload-form")).to_have_count(0)
    tab.shot(page, "no-evidence-form")
    href = page.locator("a.view-capture").first.get_attribute("href") or ""
    capture_id = re.fullmatch(r"/captures/(\d+)/view", href)
    assert capture_id, href
    answer = post_evidence(page, f"/captures/{capture_id[1]}/evidence")
    assert answer.status == 403, (answer.status, answer.text()[:300])


def test_stored_xss_in_a_capture_stays_inert(tab: Tab, app: App) -> None:
    page = tab.page
    login(page, app, "researcher")
    search(page, CANARY)
    results = page.locator("ol#results > li.result")
    expect(results).to_have_count(1)
    tab.shot(page, "hostile-results")
    # The planted markup is shown as text, literally.
    assert "<script>" in page.locator("ol#results").inner_text()

    def unharmed(where: Any) -> None:
        assert where.evaluate("typeof window.__pwned") == "undefined"
        # No markup of the capture became elements of the app page.
        assert where.locator("script, [onerror], img[src=x]").count() == 0

    unharmed(page)
    page.locator("a.result-link").first.click()
    page.wait_for_load_state()
    tab.shot(page, "hostile-link")
    unharmed(page)
    shown = page.locator("body").inner_text()
    assert SCRIPT_TAG in shown and ATTRIBUTE_BREAKOUT in shown  # description and title

    view_page_capture(page)
    frame_element = page.locator("iframe#archived")
    expect(frame_element).to_be_visible()
    assert frame_element.get_attribute("sandbox") is not None
    frame = frame_element.element_handle().content_frame()
    assert frame is not None
    frame.wait_for_load_state()
    expect(frame.locator("body")).to_contain_text(CANARY)
    tab.shot(page, "hostile-view")
    unharmed(page)
    expect(page.locator("nav#nav")).to_be_visible()  # the app page was not replaced
    assert "PWNED" not in page.locator("body").inner_text()
    # Inside the frame: no script ran (nothing it would have added is there).
    expect(frame.locator("#pwned")).to_have_count(0)
    expect(frame.locator("#leak")).to_have_count(0)
    try:
        pwned = frame.evaluate("typeof window.__pwned")
    except PlaywrightError:  # the sandbox may refuse our evaluation too: nothing ran then
        pwned = "undefined"
    assert pwned == "undefined"
    # The archived document itself is served sandboxed: an opaque origin without scripts.
    policy = page.request.get(frame.url).headers["content-security-policy"]
    assert re.match(r"sandbox\s*;", policy) and "script-src" not in policy, policy
    assert not tab.dialogs, tab.dialogs
    assert not [u for u in tab.requests.web() if urlsplit(u).path.startswith("/api/")]
    assert_app_only(tab, app)


def test_anonymous_is_sent_to_login_and_only_archivists_see_manage(
    tab: Tab, app: App, browser: Browser
) -> None:
    page = tab.page
    page.goto("/search?q=Blumen")
    assert urlsplit(page.url).path == "/login"
    tab.shot(page, "anonymous")

    login(page, app, "archivist")
    expect(page.locator('nav#nav a[href="/manage"]')).to_have_count(1)
    tab.shot(page, "archivist-nav")
    page.locator('nav#nav a[href="/manage"]').click()
    page.wait_for_load_state()
    assert urlsplit(page.url).path == "/manage"
    tab.shot(page, "manage")

    other = browser.new_context(base_url=app.url)
    try:
        Requests(other)
        researcher = other.new_page()
        login(researcher, app, "researcher")
        expect(researcher.locator('nav#nav a[href="/manage"]')).to_have_count(0)
        tab.shot(researcher, "researcher-nav")
        answer = researcher.goto("/manage")
        assert answer is not None and answer.status == 403
    finally:
        other.close()


def test_japanese_text_renders_as_glyphs_not_empty_boxes(browser: Browser) -> None:
    """Screenshots of Japanese titles show the characters: a CJK font is installed
    (`.ci/run` installs fonts-noto-cjk). Without one every character is the same empty
    box, so two orders of the same characters would look alike."""
    page = browser.new_page()

    def shot(text: str) -> bytes:
        page.set_content(f"<meta charset=utf-8><p style='font-size:48px'>{text}</p>")
        return page.screenshot()

    try:
        assert shot("東京で連帯") != shot("連帯で東京")
    finally:
        page.close()
