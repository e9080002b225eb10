"""The archivist's pages and API: seeds, crawls, checks and schedules as background jobs,
through the real app, real sign-in and real `linkarchive` subprocesses."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from webkit import anonymous, client_as, csrf_of, make_app, session_client

from pipeline.catalog import session_scope
from pipeline.catalog.models import Capture, Country, Link
from pipeline.config import paths

WAIT = 240.0


def wait_for_job(client: TestClient, job_id: str, wait: float = WAIT) -> dict[str, Any]:
    """Poll the API until the job is no longer running."""
    deadline = time.monotonic() + wait
    while True:
        answer = client.get(f"/api/v1/jobs/{job_id}")
        assert answer.status_code == 200, answer.text
        job = answer.json()
        if job["state"] != "running":
            return job
        assert time.monotonic() < deadline, f"job {job_id} still running:\n{job['log_tail']}"
        time.sleep(0.3)


def started_id(response: Any) -> str:
    assert response.status_code == 303, response.text
    found = re.fullmatch(r"/manage\?started=([0-9a-f-]+)", response.headers["location"])
    assert found, response.headers["location"]
    return found.group(1)


def links_of(home: Path, country: str | None = None) -> list[Link]:
    with session_scope(paths(home).database_url) as session:
        query = select(Link).join(Country)
        if country:
            query = query.where(Country.name == country)
        return list(session.scalars(query))


def test_an_archivist_imports_seeds_through_the_form(tmp_path: Path, world: Any) -> None:
    home = tmp_path / "home"
    app = make_app(home)
    browser = session_client(app, "archivist")
    page = browser.get("/manage")
    assert page.status_code == 200
    assert "No jobs yet." in page.text
    assert '<option value="Austria">' not in page.text  # nothing imported yet

    posted = browser.post(
        "/manage/seeds", data={"source": world.index_url, "csrf_token": csrf_of(browser, "/manage")}
    )
    job_id = started_id(posted)
    flashed = browser.get(posted.headers["location"])
    command = f"linkarchive seeds import -- {world.index_url}"
    assert f'<p class="flash">Started job {job_id}: {command}</p>' in flashed.text

    job = wait_for_job(browser, job_id)
    assert job["state"] == "succeeded", job["log_tail"]
    assert job["user"] == browser.user_name  # type: ignore[attr-defined]
    assert "Imported 22 entries" in job["log_tail"]
    assert len(links_of(home)) == 25

    page = browser.get("/manage")
    assert re.search(rf'<tr class="job" data-job-id="{job_id}" data-state="succeeded">', page.text)
    assert "Imported 22 entries" in page.text
    assert '<option value="Austria">' in page.text  # the selects come from the catalog
    detail = browser.get(f"/manage/jobs/{job_id}")
    assert detail.status_code == 200 and 'data-state="succeeded"' in detail.text


def test_forms_need_the_csrf_token(tmp_path: Path, world: Any) -> None:
    app = make_app(tmp_path / "home")
    browser = session_client(app, "archivist")
    for route in ("/manage/seeds", "/manage/crawls", "/manage/checks", "/manage/schedules"):
        refused = browser.post(route, data={"source": world.index_url})
        assert refused.status_code == 403, route
        refused = browser.post(route, data={"source": world.index_url, "csrf_token": "forged"})
        assert refused.status_code == 403, route
    assert "No jobs yet." in browser.get("/manage").text


def test_bad_input_shows_one_escaped_error_and_starts_nothing(tmp_path: Path) -> None:
    app = make_app(tmp_path / "home")
    browser = session_client(app, "archivist")
    token = csrf_of(browser, "/manage")
    refused = browser.post("/manage/seeds", data={"source": "/etc/passwd", "csrf_token": token})
    assert refused.status_code == 400
    assert re.search(r'<p class="error">.*must lie inside the data home', refused.text)

    hostile = "<script>alert(1)</script>"
    refused = browser.post("/manage/crawls", data={"country": hostile, "csrf_token": token})
    assert refused.status_code == 400
    assert "<script>" not in refused.text
    assert "unknown country &#39;&lt;script&gt;alert(1)&lt;/script&gt;&#39;" in refused.text
    assert "No jobs yet." in refused.text


def test_a_failing_job_shows_failed_with_its_escaped_log(tmp_path: Path, world: Any) -> None:
    app = make_app(tmp_path / "home")
    archivist = client_as(app, "archivist")
    missing = world.url("index", "/<b>gone</b>")
    started = archivist.post("/api/v1/seeds", json={"source": missing})
    assert started.status_code == 202, started.text
    job = wait_for_job(archivist, started.json()["id"])
    assert job["state"] == "failed" and job["exit_code"] == 1
    assert "HTTP 404" in job["log_tail"]

    page = archivist.get("/manage")
    assert re.search(rf'data-job-id="{job["id"]}" data-state="failed"', page.text)
    assert "<b>gone</b>" not in page.text
    assert "&lt;b&gt;gone&lt;/b&gt;" in page.text


def test_other_roles_may_not_manage(tmp_path: Path) -> None:
    app = make_app(tmp_path / "home")
    routes = [
        ("get", "/manage"),
        ("get", "/manage/jobs/20200101-000000000000-abcd"),
        ("post", "/manage/seeds"),
        ("post", "/manage/crawls"),
        ("post", "/manage/checks"),
        ("post", "/manage/schedules"),
        ("post", "/manage/schedules/weekly/delete"),
        ("post", "/manage/jobs/20200101-000000000000-abcd/cancel"),
        ("get", "/api/v1/jobs"),
        ("get", "/api/v1/jobs/20200101-000000000000-abcd"),
        ("post", "/api/v1/seeds"),
        ("post", "/api/v1/crawls"),
        ("post", "/api/v1/checks"),
    ]
    for role in ("researcher", "legal"):
        client = client_as(app, role)
        for method, route in routes:
            body = {"json": {"source": "http://127.0.0.1/"}} if route == "/api/v1/seeds" else {}
            if method == "post" and route.startswith("/api/") and not body:
                body = {"json": {}}
            answer = getattr(client, method)(route, **body)
            assert answer.status_code == 403, (role, route, answer.status_code)
    nobody = anonymous(app)
    assert nobody.get("/manage").status_code == 303
    assert nobody.get("/api/v1/jobs").status_code == 401
    assert nobody.post("/api/v1/crawls", json={}).status_code == 401
    assert not paths(tmp_path / "home").jobs.exists() or not list(
        paths(tmp_path / "home").jobs.glob("*.json")
    )


def test_schedules_without_a_prefect_server_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    app = make_app(tmp_path / "home")
    browser = session_client(app, "archivist")
    page = browser.get("/manage")
    message = "schedules need a Prefect server (PREFECT_API_URL)"
    assert f'<p id="schedules-note">{message}</p>' in page.text
    token = csrf_of(browser, "/manage")
    fields = {"cron": "0 3 * * 1", "what": "check", "csrf_token": token}
    refused = browser.post("/manage/schedules", data=fields)
    assert refused.status_code == 400
    assert f'<p class="error">{message}</p>' in refused.text
    refused = browser.post("/manage/schedules/weekly/delete", data={"csrf_token": token})
    assert refused.status_code == 400
    assert f'<p class="error">{message}</p>' in refused.text


def test_the_api_starts_jobs_and_refuses_a_second_crawl(tmp_path: Path, world: Any) -> None:
    home = tmp_path / "home"
    app = make_app(home)
    archivist = client_as(app, "archivist")
    assert archivist.post("/api/v1/seeds", json={"source": "x", "extra": 1}).status_code == 422
    refused = archivist.post("/api/v1/seeds", json={"source": "file:///etc/passwd"})
    assert refused.status_code == 400 and "http(s) URL" in refused.json()["detail"]

    seeds = archivist.post("/api/v1/seeds", json={"source": world.index_url})
    assert seeds.status_code == 202
    assert seeds.headers["location"] == f"/api/v1/jobs/{seeds.json()['id']}"
    assert wait_for_job(archivist, seeds.json()["id"])["state"] == "succeeded"

    refused = archivist.post("/api/v1/crawls", json={"country": "Atlantis"})
    assert refused.status_code == 400 and "unknown country 'Atlantis'" in refused.json()["detail"]
    odd = archivist.post("/api/v1/crawls", json={"country": "Austria", "browser": "sometimes"})
    assert odd.status_code == 422
    crawl = archivist.post(
        "/api/v1/crawls", json={"country": "Austria", "kind": "report", "browser": "always"}
    )
    assert crawl.status_code == 202, crawl.text
    assert crawl.json()["argv"] == ["crawl", "--country=Austria", "--kind=report",
                                    "--browser=always"]  # fmt: skip
    busy = archivist.post("/api/v1/checks", json={})
    assert busy.status_code == 409
    assert busy.json()["detail"].startswith(f"a crawl is already running (job {crawl.json()['id']}")

    listed = archivist.get("/api/v1/jobs").json()["jobs"]
    assert [j["id"] for j in listed] == [crawl.json()["id"], seeds.json()["id"]]
    assert listed[0]["state"] == "running" and listed[0]["kind"] == "crawl"

    # Stopped from the page, by someone signed in there.
    browser = session_client(app, "archivist")
    token = csrf_of(browser, "/manage")
    stopped = browser.post(f"/manage/jobs/{crawl.json()['id']}/cancel", data={"csrf_token": token})
    assert stopped.status_code == 303
    assert stopped.headers["location"] == f"/manage?cancelled={crawl.json()['id']}"
    job = wait_for_job(archivist, crawl.json()["id"])
    assert job["state"] == "cancelled" and job["cancelled_by"] == browser.user_name  # type: ignore[attr-defined]
    assert archivist.get("/api/v1/jobs/nope").status_code == 404


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_a_crawl_started_from_the_web_archives_the_selection(tmp_path: Path, world: Any) -> None:
    """The job runs the real flow (Prefect's temporary server, Scrapy) over one country."""
    home = tmp_path / "home"
    app = make_app(home)
    browser = session_client(app, "archivist")
    token = csrf_of(browser, "/manage")
    seeds = started_id(
        browser.post("/manage/seeds", data={"source": world.index_url, "csrf_token": token})
    )
    assert wait_for_job(browser, seeds)["state"] == "succeeded"
    (link,) = links_of(home, "Austria")

    crawl = started_id(
        browser.post(
            "/manage/crawls",
            data={"country": "Austria", "city": "", "kind": "", "csrf_token": token},
        )
    )
    job = wait_for_job(browser, crawl, wait=540)
    assert job["state"] == "succeeded", job["log_tail"]
    assert ": 1 of 1 links" in job["log_tail"]
    with session_scope(paths(home).database_url) as session:
        captures = session.scalar(select(func.count(Capture.id)).where(Capture.link_id == link.id))
        others = session.scalar(select(func.count(Capture.id)).where(Capture.link_id != link.id))
    assert captures and captures > 0
    assert others == 0  # only the selection was crawled


@pytest.fixture
def prefect_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`prefect server start --host 127.0.0.1`, set as PREFECT_API_URL for the app's jobs."""
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-server")}
    env.pop("PREFECT_API_URL", None)
    prefect = Path(sys.executable).parent / "prefect"
    server = subprocess.Popen(
        [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):  # noqa: S310 - loopback
                break
        except OSError:
            assert time.monotonic() < deadline, "the Prefect server did not start"
            time.sleep(0.5)
    monkeypatch.setenv("PREFECT_API_URL", url)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-client"))
    yield url
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(30)


@pytest.mark.e2e
def test_schedules_are_added_listed_and_removed_from_the_page(
    tmp_path: Path, prefect_api: str
) -> None:
    app = make_app(tmp_path / "home")
    browser = session_client(app, "archivist")
    assert '<p id="schedules-note">No schedules yet.</p>' in browser.get("/manage").text
    token = csrf_of(browser, "/manage")
    fields = {"cron": "0 3 * * 1", "what": "check", "name": "weekly web", "csrf_token": token}
    added = started_id(browser.post("/manage/schedules", data=fields))
    job = wait_for_job(browser, added)
    assert job["state"] == "succeeded", job["log_tail"]
    assert job["argv"] == ["schedule", "add", "--cron=0 3 * * 1", "--check", "--name=weekly web"]

    page = browser.get("/manage").text
    assert re.search(r'<tr class="schedule">\s*<td>weekly web</td>', page)
    assert 'action="/manage/schedules/weekly%20web/delete"' in page
    removed = browser.post("/manage/schedules/weekly%20web/delete", data={"csrf_token": token})
    job = wait_for_job(browser, started_id(removed))
    assert job["state"] == "succeeded", job["log_tail"]
    assert "Removed schedule weekly web." in job["log_tail"]
    assert '<p id="schedules-note">No schedules yet.</p>' in browser.get("/manage").text


def test_a_running_jobs_page_follows_it_by_itself(tmp_path: Path) -> None:
    """A job's page reloads itself while the job runs (the CSP allows no script: a meta
    refresh), and stops once it has ended."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    release = threading.Event()

    class Slow(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            release.wait(60)
            body = b"country,city,kind,label,url\nGermany,Berlin,report,R,http://127.0.0.1/x\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        archivist = client_as(make_app(tmp_path / "home"), "archivist")
        source = f"http://127.0.0.1:{server.server_address[1]}/seeds.csv"
        started = archivist.post("/api/v1/seeds", json={"source": source})
        assert started.status_code == 202, started.text
        job_id = started.json()["id"]
        running = archivist.get(f"/manage/jobs/{job_id}").text
        assert 'data-state="running"' in running
        assert '<meta http-equiv="refresh"' in running
        release.set()
        assert wait_for_job(archivist, job_id)["state"] == "succeeded"
        ended = archivist.get(f"/manage/jobs/{job_id}").text
        assert 'http-equiv="refresh"' not in ended
    finally:
        release.set()
        server.shutdown()
