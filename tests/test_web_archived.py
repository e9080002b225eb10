"""The archived page in a sandboxed frame, its resources, and payload/evidence downloads,
over a copy of the crawled replica world through the real app."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select, update
from webkit import anonymous, client_as, csrf_of, make_app, session_client

from archive import decoded_payload, read_record
from pipeline.catalog import session_scope
from pipeline.catalog.models import Capture, City, Link, PageMetadataRow, User, WarcFile
from pipeline.cli import main
from pipeline.config import paths
from pipeline.evidence.custody import ledger_lines, verify_lines
from pipeline.evidence.package import verify_package
from pipeline.retrieval import RetrievalError, check_warc_name, locate_warc
from pipeline.web.archived import (
    ARCHIVED_CSP,
    THUMB_SIDE,
    NotAnImage,
    _served_type,
    make_thumbnail,
)

CSP = (
    "sandbox; default-src 'none'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "font-src 'self'; media-src 'self'; frame-ancestors 'self'"
)


@pytest.fixture(scope="module")
def home(crawled_twice: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("archived") / "home"
    shutil.copytree(crawled_twice, copy)
    return copy


@pytest.fixture(scope="module")
def app(home: Path) -> FastAPI:
    return make_app(home)


def _db(home: Path) -> str:
    return paths(home).database_url


def capture_where(home: Path, *conditions: Any) -> Capture:
    with session_scope(_db(home)) as session:
        found = session.scalar(select(Capture).where(*conditions).order_by(Capture.id).limit(1))
        assert found is not None, conditions
        return found


def berlin(home: Path) -> Capture:
    with session_scope(_db(home)) as session:
        capture = session.scalar(
            select(Capture)
            .join(PageMetadataRow, PageMetadataRow.capture_id == Capture.id)
            .where(PageMetadataRow.title.like("Berlin:%"), Capture.role == "page")
        )
        assert capture is not None
        return capture


def ledger(home: Path, capture_id: int) -> list[dict[str, Any]]:
    with session_scope(_db(home)) as session:
        lines = ledger_lines(session, capture_id)
    assert verify_lines(lines) == []
    return [json.loads(line) for line in lines]


def soup_of(response: Any) -> BeautifulSoup:
    return BeautifulSoup(response.text, "lxml")


def stored_body(home: Path, url: str) -> tuple[bytes, Capture, bool]:
    """The decoded archived payload of the latest capture of ``url`` (a revisit's original),
    its capture, and whether it was content-encoded."""
    with session_scope(_db(home)) as session:
        capture = session.scalar(
            select(Capture).where(Capture.url == url).order_by(Capture.captured_at.desc())
        )
        assert capture is not None, url
        if capture.record_type == "revisit":
            capture = session.scalar(select(Capture).where(Capture.record_id == capture.refers_to))
        warc = paths(home).warcs / capture.warc_file
        record = read_record(warc, capture.warc_offset)
    return decoded_payload(record), capture, bool(record.http_header("Content-Encoding"))


def original_url(src: str) -> str:
    """``/archived/web/PASS/TS/URL`` -> URL."""
    assert src.startswith("/archived/web/"), src
    return src.split("/", 5)[5]


# --------------------------------------------------------------------------- viewing


def test_capture_view_has_the_sandboxed_frame(app: FastAPI, home: Path) -> None:
    capture = berlin(home)
    page = client_as(app, "researcher").get(f"/captures/{capture.id}/view")
    assert page.status_code == 200, page.text
    frame = soup_of(page).select_one("iframe#archived")
    assert frame is not None and frame.has_attr("sandbox") and not frame["sandbox"]  # no allow-*
    assert frame["src"] == f"/archived/{capture.id}/"
    facts = soup_of(page).select_one("#capture-facts").get_text()
    assert capture.record_id in facts and capture.payload_sha256 in facts and capture.url in facts
    assert soup_of(page).select_one(f'a[href="/links/{capture.link_id}"]') is not None
    # A researcher sees no download forms.
    assert soup_of(page).select_one("form#payload-form") is None


def test_berlin_report_renders_with_every_image_from_the_archive(app: FastAPI, home: Path) -> None:
    capture = berlin(home)
    response = client_as(app, "researcher").get(f"/archived/{capture.id}/")
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == CSP == ARCHIVED_CSP
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-disposition"] == "inline"
    assert "private" in response.headers["cache-control"]
    soup = soup_of(response)
    assert "Frauen in Weiß" in soup.h1.get_text()
    assert soup.find("script") is None
    images = [img["src"] for img in soup.find_all("img")]
    assert images and all(src.startswith("/archived/web/") for src in images)
    # The frame's document is sandboxed: its requests carry no cookies, only the view pass
    # in their path. An anonymous client stands for it.
    frame = anonymous(app)
    for src in set(images):
        got = frame.get(src)
        assert got.status_code == 200, src
        assert got.headers["content-type"].startswith("image/")
        assert got.headers["content-security-policy"] == CSP
        body, stored, encoded = stored_body(home, original_url(src))
        assert got.content == body
        if not encoded:
            assert hashlib.sha256(got.content).hexdigest() == stored.payload_sha256


def test_stylesheets_are_rewritten_and_their_images_resolve(app: FastAPI, home: Path) -> None:
    response = client_as(app, "researcher").get(f"/archived/{berlin(home).id}/")
    sheet = soup_of(response).find("link", rel="stylesheet")["href"]
    frame = anonymous(app)
    css = frame.get(sheet)
    assert css.status_code == 200 and css.headers["content-type"] == "text/css; charset=utf-8"
    urls = [part.split('")', 1)[0] for part in css.text.split('url("')[1:]]
    assert urls and all(u.startswith("/archived/web/") for u in urls)
    for url in urls:
        assert frame.get(url).status_code == 200, url


def test_a_gallery_page_shows_its_archived_images(app: FastAPI, home: Path) -> None:
    gallery = capture_where(home, Capture.url.like("%/gallery/tallinn-%/"), Capture.role == "page")
    response = client_as(app, "researcher").get(f"/archived/{gallery.id}/")
    assert response.status_code == 200
    images = [img["src"] for img in soup_of(response).find_all("img")]
    assert len([src for src in images if "/img/tallinn-" in src]) >= 4
    frame = anonymous(app)
    for src in images:
        got = frame.get(src)
        assert got.status_code == 200, src
        assert got.headers["content-type"].startswith("image/")
        assert got.content == stored_body(home, original_url(src))[0]


def test_links_in_the_frame_stay_in_the_archive(app: FastAPI, home: Path) -> None:
    response = client_as(app, "researcher").get(f"/archived/{berlin(home).id}/")
    hrefs = [a["href"] for a in soup_of(response).find_all("a", href=True)]
    assert hrefs and all(h.startswith(("/archived/web/", "#")) for h in hrefs)


def test_view_passes_are_checked(app: FastAPI, home: Path) -> None:
    viewer = client_as(app, "researcher")
    src = soup_of(viewer.get(f"/archived/{berlin(home).id}/")).find("img")["src"]
    frame = anonymous(app)
    assert frame.get(src).status_code == 200
    head, _, rest = src.removeprefix("/archived/web/").partition("/")
    user_id, expires, ref, mac = head.split(".")
    forged = [
        f"{user_id}.{int(expires) + 1}.{ref}.{mac}",
        f"{int(user_id) + 1}.{expires}.{ref}.{mac}",
        f"{user_id}.{expires}.{int(ref) + 1}.{mac}",
        f"{user_id}.{expires}.{ref}.{mac[:-2]}",
        f"{user_id}.1.{ref}.{mac}",
        f"{user_id}.{expires}.{mac}",
    ]
    for bad in forged:
        response = frame.get(f"/archived/web/{bad}/{rest}")
        assert response.status_code == 403, bad
        assert not response.headers["content-type"].startswith("image/")
    # Without a pass, the route wants a signed-in user.
    assert frame.get(f"/archived/web/{rest}").status_code == 303
    assert viewer.get(f"/archived/web/{rest}").status_code == 200
    # A removed user's passes stop working.
    with session_scope(_db(home)) as session:
        user = session.scalar(select(User).where(User.name == viewer.user_name))
        session.delete(user)
    assert frame.get(src).status_code == 403


def test_a_view_pass_dies_with_the_web_session_it_was_minted_in(app: FastAPI, home: Path) -> None:
    """Signing out ends the session's view passes at once (they used to live 12 hours)."""
    from webkit import csrf_of, session_client

    viewer = session_client(app, "researcher")
    src = soup_of(viewer.get(f"/archived/{berlin(home).id}/")).find("img")["src"]
    frame = anonymous(app)
    assert frame.get(src).status_code == 200
    signed_out = viewer.post("/logout", data={"csrf_token": csrf_of(viewer)})
    assert signed_out.status_code == 303
    assert frame.get(src).status_code == 403


def test_a_revisit_shows_its_original_payload(app: FastAPI, home: Path) -> None:
    revisit = capture_where(home, Capture.record_type == "revisit", Capture.url.like("%.png"))
    response = client_as(app, "researcher").get(f"/archived/{revisit.id}/")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.content == stored_body(home, revisit.url)[0]


def test_a_redirect_capture_leads_to_its_target_in_the_archive(app: FastAPI, home: Path) -> None:
    redirect = capture_where(home, Capture.http_status == 301)
    response = client_as(app, "researcher").get(f"/archived/{redirect.id}/")
    assert response.status_code == 302
    assert response.headers["location"].startswith("/archived/web/")
    followed = anonymous(app).get(response.headers["location"])
    assert followed.status_code == 200
    assert followed.headers["content-type"] == "text/html; charset=utf-8"


def test_non_html_captures_are_served_as_archived(app: FastAPI, home: Path) -> None:
    viewer = client_as(app, "researcher")
    image = capture_where(home, Capture.role == "image")
    view = soup_of(viewer.get(f"/captures/{image.id}/view"))
    assert view.select_one("iframe#archived") is None
    assert view.select_one("img#archived-image")["src"] == f"/archived/{image.id}/"
    got = viewer.get(f"/archived/{image.id}/")
    assert got.headers["content-type"] == "image/jpeg"
    assert got.content == stored_body(home, image.url)[0]
    pdf = capture_where(home, Capture.content_type == "application/pdf")
    view = soup_of(viewer.get(f"/captures/{pdf.id}/view"))
    assert view.select_one("a#archived-file")["href"] == f"/archived/{pdf.id}/"
    got = viewer.get(f"/archived/{pdf.id}/")
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["content-security-policy"] == CSP
    assert got.content.startswith(b"%PDF-")
    script = capture_where(home, Capture.url.like("%/app.js"), Capture.record_type == "response")
    got = viewer.get(f"/archived/{script.id}/")
    assert got.headers["content-type"].startswith("application/javascript")
    assert got.headers["x-content-type-options"] == "nosniff"


def test_the_windows_1251_page_is_shown_as_utf8(app: FastAPI, home: Path) -> None:
    moscow = capture_where(home, Capture.content_type.like("%windows-1251%"))
    response = client_as(app, "researcher").get(f"/archived/{moscow.id}/")
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    text = response.content.decode("utf-8")
    assert "Москв" in text or "москв" in text.lower()
    assert [m.get("charset") for m in soup_of(response).find_all("meta", charset=True)] == ["utf-8"]


def test_unarchived_and_hostile_addresses_read_nothing(app: FastAPI, home: Path) -> None:
    viewer = client_as(app, "researcher")
    page = berlin(home)
    response = viewer.get("/archived/web/2020/http://nowhere.example/x")
    assert response.status_code == 404
    assert response.headers["content-security-policy"] == CSP
    assert "nowhere.example" not in response.text
    hostile = [
        "/archived/web/2020/../../etc/passwd",
        "/archived/web/2020/%2e%2e/%2e%2e/etc/passwd",
        "/archived/web/2020/..%2f..%2f..%2fetc%2fpasswd",
        "/archived/web/2020/file:///etc/passwd",
        "/archived/web/../../../etc/passwd",
        "/archived/web/notatime/" + page.url,
        "/archived/web/2020/%2Fetc%2Fpasswd",
        "/archived/..%2f..%2fetc%2fpasswd/",
        "/archived/abc/",
        "/archived/-1/",
        "/archived/1e3/",
        "/archived/999999/",
        "/captures/abc/view",
        "/captures/999999/view",
    ]
    for path in hostile:
        response = viewer.get(path)
        assert response.status_code in (404, 422), (path, response.status_code)
        assert "root:" not in response.text
    # The same URL with or without a trailing slash, and an exact timestamp, is found.
    timestamp = page.captured_at.strftime("%Y%m%d%H%M%S")
    assert viewer.get(f"/archived/web/{timestamp}/{page.url}/").status_code == 200
    assert viewer.get(f"/archived/web/{timestamp}/{page.url}").status_code == 200


def test_a_query_string_is_part_of_the_archived_url(app: FastAPI, home: Path) -> None:
    viewer = client_as(app, "researcher")
    with session_scope(_db(home)) as session:  # the latest capture: the one 2030 is closest to
        second = session.scalars(
            select(Capture)
            .where(Capture.url.like("%/gallery/tallinn-%/?page=2"))
            .order_by(Capture.captured_at.desc())
        ).first()
    assert second is not None
    response = viewer.get(f"/archived/web/2030/{second.url}")
    assert response.status_code == 200
    assert response.content == viewer.get(f"/archived/{second.id}/").content
    other = viewer.get(f"/archived/web/2030/{second.url.replace('page=2', 'page=3')}")
    assert other.status_code == 200 and other.content != response.content


# --------------------------------------------------------------------------- downloads


def test_legal_downloads_the_exact_payload_and_custody_names_them(
    app: FastAPI, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capture = capture_where(home, Capture.url.like("%/da/kvinder-i-hvidt"))
    legal = session_client(app, "legal")
    before = ledger(home, capture.id)
    response = legal.post(
        f"/captures/{capture.id}/payload",
        data={"reason": "court filing 12/3", "csrf_token": csrf_of(legal)},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"] == 'attachment; filename="kvinder-i-hvidt.html"'
    assert response.headers["content-type"] == "application/octet-stream"
    target = tmp_path / "got.html"
    assert main(["--home", str(home), "get", "--capture", str(capture.id), "-o", str(target)]) == 0
    capsys.readouterr()
    assert response.content == target.read_bytes()
    assert response.headers["x-payload-sha256"] == hashlib.sha256(response.content).hexdigest()
    events = ledger(home, capture.id)[len(before) :]
    web, cli = events
    assert web["event"] == "retrieved" and web["actor"] == legal.user_name
    assert web["reason"] == "court filing 12/3"
    assert web["details"]["sha256"] == hashlib.sha256(response.content).hexdigest()
    assert web["details"]["output"] == "web download kvinder-i-hvidt.html"
    assert cli["details"]["output"] == str(target.resolve())


def test_payload_of_a_revisit_is_its_originals(app: FastAPI, home: Path) -> None:
    revisit = capture_where(home, Capture.record_type == "revisit", Capture.url.like("%.png"))
    legal = client_as(app, "legal")
    response = legal.post(f"/captures/{revisit.id}/payload", data={"reason": "r"})
    assert response.status_code == 200
    assert response.content == stored_body(home, revisit.url)[0]
    assert ledger(home, revisit.id)[-1]["actor"] == legal.user_name


def test_researchers_may_not_download(app: FastAPI, home: Path) -> None:
    capture = berlin(home)
    before = ledger(home, capture.id)
    researcher = client_as(app, "researcher")
    for what in ("payload", "evidence"):
        assert (
            researcher.post(f"/captures/{capture.id}/{what}", data={"reason": "r"}).status_code
            == 403
        )
        api = researcher.post(f"/api/v1/captures/{capture.id}/{what}", json={"reason": "r"})
        assert api.status_code == 403 and "detail" in api.json()
    assert anonymous(app).post(f"/api/v1/captures/{capture.id}/payload").status_code == 401
    assert ledger(home, capture.id) == before


def test_downloads_need_the_csrf_token_and_a_reason(app: FastAPI, home: Path) -> None:
    capture = berlin(home)
    before = ledger(home, capture.id)
    legal = session_client(app, "legal")
    for what in ("payload", "evidence"):
        refused = legal.post(f"/captures/{capture.id}/{what}", data={"reason": "r"})
        assert refused.status_code == 403
        wrong = legal.post(
            f"/captures/{capture.id}/{what}", data={"reason": "r", "csrf_token": "nope"}
        )
        assert wrong.status_code == 403
        token = csrf_of(legal)
        for reason in ("", "   ", "x" * 1001):
            bad = legal.post(
                f"/captures/{capture.id}/{what}", data={"reason": reason, "csrf_token": token}
            )
            assert bad.status_code == 422, (what, reason[:5])
            assert soup_of(bad).select_one("p.error") is not None
        missing = legal.post(f"/captures/{capture.id}/{what}", data={"csrf_token": token})
        assert missing.status_code == 422
        # A session using the API sends the token as a header.
        api = legal.post(f"/api/v1/captures/{capture.id}/{what}", json={"reason": "r"})
        assert api.status_code == 403
    assert ledger(home, capture.id) == before
    unknown = legal.post("/captures/999999/payload", data={"reason": "r", "csrf_token": token})
    assert unknown.status_code == 404


def test_evidence_download_verifies_and_its_custody_names_the_user(
    app: FastAPI, home: Path
) -> None:
    capture = berlin(home)
    legal = session_client(app, "legal")
    response = legal.post(
        f"/captures/{capture.id}/evidence",
        data={
            "reason": "asked by the court",
            "requested_by": "Counsel <c@example.org>",
            "csrf_token": csrf_of(legal),
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    name = f"evidence-capture-{capture.id}.wacz"
    assert response.headers["content-disposition"] == f'attachment; filename="{name}"'
    package = home.parent / name
    package.write_bytes(response.content)
    verdict = verify_package(package)
    assert verdict.problems == [], verdict.problems
    with zipfile.ZipFile(io.BytesIO(response.content)) as wacz:
        custody = wacz.read("evidence/custody.jsonl").decode().splitlines()
    exported = json.loads(custody[-1])
    assert exported["event"] == "exported" and exported["actor"] == legal.user_name
    assert exported["reason"] == "asked by the court"
    assert exported["details"] == {"package": name, "requested_by": "Counsel <c@example.org>"}
    assert ledger(home, capture.id)[-1] == exported
    assert not list((home / "jobs").glob("evidence-*"))  # the temporary package is gone


def test_the_json_api_downloads(app: FastAPI, home: Path) -> None:
    capture = capture_where(home, Capture.url.like("%/fr/paris-solidarite"))
    legal = client_as(app, "legal")
    payload = legal.post(f"/api/v1/captures/{capture.id}/payload", json={"reason": "api"})
    assert payload.status_code == 200
    assert payload.content == stored_body(home, capture.url)[0]
    package = legal.post(
        f"/api/v1/captures/{capture.id}/evidence", json={"reason": "api", "requested_by": "X"}
    )
    assert package.status_code == 200 and package.content[:2] == b"PK"
    events = ledger(home, capture.id)
    assert [e["event"] for e in events[-2:]] == ["retrieved", "exported"]
    assert all(e["actor"] == legal.user_name and e["reason"] == "api" for e in events[-2:])
    bad = legal.post(f"/api/v1/captures/{capture.id}/payload", json={"why": "no reason"})
    assert bad.status_code == 422 and "reason" in bad.json()["detail"]
    assert legal.post(f"/api/v1/captures/{capture.id}/payload", content=b"[").status_code == 400
    session = session_client(app, "legal")
    token = csrf_of(session)
    with_header = session.post(
        f"/api/v1/captures/{capture.id}/payload",
        json={"reason": "api"},
        headers={"X-CSRF-Token": token},
    )
    assert with_header.status_code == 200


# --------------------------------------------------------------------------- broken catalogs


@pytest.fixture
def broken(crawled: dict[str, Any], tmp_path: Path) -> tuple[FastAPI, Path, TestClient]:
    copy = tmp_path / "home"
    shutil.copytree(crawled["home"], copy)
    app = make_app(copy)
    return app, copy, session_client(app, "legal")


@pytest.mark.parametrize("name", ["../x.warc.gz", "/etc/passwd", "a/../../x.warc.gz", ".."])
def test_a_warc_name_outside_the_warc_folder_is_refused(
    broken: tuple[FastAPI, Path, TestClient], name: str
) -> None:
    app, home, legal = broken
    capture = berlin(home)
    # The file a careless join would read exists, next to the WARC folder.
    shutil.copy(paths(home).warcs / capture.warc_file, home / "x.warc.gz")
    with session_scope(_db(home)) as session:
        session.execute(update(Capture).where(Capture.id == capture.id).values(warc_file=name))
    before = ledger(home, capture.id)
    token = csrf_of(legal)
    assert legal.get(f"/archived/{capture.id}/").status_code == 500
    for what in ("payload", "evidence"):
        response = legal.post(
            f"/captures/{capture.id}/{what}", data={"reason": "r", "csrf_token": token}
        )
        assert response.status_code == 500
        assert "not a plain file name" in soup_of(response).select_one("p.error").get_text()
        assert "Traceback" not in response.text
    assert ledger(home, capture.id) == before
    assert not list((home / "jobs").glob("evidence-*"))


def test_a_missing_warc_file_is_one_line(broken: tuple[FastAPI, Path, TestClient]) -> None:
    app, home, legal = broken
    capture = berlin(home)
    with session_scope(_db(home)) as session:
        session.execute(
            update(Capture).where(Capture.id == capture.id).values(warc_file="gone.warc.gz")
        )
    response = legal.get(f"/archived/{capture.id}/")
    assert response.status_code == 500
    errors = soup_of(response).select("p.error")
    assert len(errors) == 1 and "missing" in errors[0].get_text()
    assert "Traceback" not in response.text
    payload = legal.post(
        f"/captures/{capture.id}/payload", data={"reason": "r", "csrf_token": csrf_of(legal)}
    )
    assert payload.status_code == 500


# --------------------------------------------------------------------------- locating files


@pytest.mark.parametrize("name", ["", ".", "..", "../x.warc.gz", "a/b.warc.gz", "a\\b", "x\x00"])
def test_only_plain_warc_names_pass(name: str) -> None:
    with pytest.raises(RetrievalError, match="not a plain file name"):
        check_warc_name(name)


def test_warc_files_are_found_in_the_home_or_refused(
    crawled: dict[str, Any], tmp_path: Path
) -> None:
    copy = tmp_path / "home"
    shutil.copytree(crawled["home"], copy)
    where = paths(copy)
    capture = berlin(copy)
    with session_scope(where.database_url) as session:
        stored = session.scalar(select(WarcFile.path).where(WarcFile.name == capture.warc_file))
        assert locate_warc(session, where, capture.warc_file, capture.id) == Path(stored)
        # A home moved elsewhere: the stored path is gone, the WARC folder has the file.
        session.execute(
            update(WarcFile)
            .where(WarcFile.name == capture.warc_file)
            .values(path="/gone/x.warc.gz")
        )
        assert (
            locate_warc(session, where, capture.warc_file, capture.id)
            == (where.warcs / capture.warc_file).resolve()
        )
        # A link in the WARC folder pointing out of it is not followed.
        outside = tmp_path / "outside.warc.gz"
        shutil.copy(where.warcs / capture.warc_file, outside)
        (where.warcs / "link.warc.gz").symlink_to(outside)
        with pytest.raises(RetrievalError, match="outside"):
            locate_warc(session, where, "link.warc.gz", capture.id)
        with pytest.raises(RetrievalError, match="missing"):
            locate_warc(session, where, "none.warc.gz", capture.id)


@pytest.mark.parametrize(
    ("archived", "served"),
    [
        ("image/jpeg", "image/jpeg"),
        ("text/plain, text/html", "application/octet-stream"),  # browsers take the last
        ("image/png extra", "application/octet-stream"),
        (None, "application/octet-stream"),
        ('TEXT/plain; Charset="windows-1251"', "text/plain; charset=windows-1251"),
        ("application/javascript; charset=utf-8", "application/javascript"),
    ],
)
def test_archived_content_types_are_served_strictly(archived: str | None, served: str) -> None:
    assert _served_type(archived) == served


# --------------------------------------------------------------------------- thumbnails


def tallinn_thumbs(app: FastAPI, home: Path, viewer: TestClient) -> list[tuple[str, str]]:
    """(full image href, thumbnail src) of every image on the Tallinn gallery's link page."""
    with session_scope(_db(home)) as session:
        link = session.scalar(select(Link.id).join(City).where(City.name == "Tallinn"))
    page = viewer.get(f"/links/{link}")
    assert page.status_code == 200
    thumbs = [(img.parent["href"], img["src"]) for img in soup_of(page).select("a > img.thumb")]
    assert len(thumbs) >= 12
    return thumbs


def warc_folder_state(home: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in paths(home).warcs.iterdir()}


def test_gallery_thumbnails_are_small_renditions(app: FastAPI, home: Path) -> None:
    viewer = client_as(app, "researcher")
    warcs = warc_folder_state(home)
    smaller = 0
    for href, src in tallinn_thumbs(app, home, viewer):
        assert re.fullmatch(r"/archived/thumb/\d+", src), src
        got = viewer.get(src)
        assert got.status_code == 200, src
        assert got.headers["content-type"] == "image/webp"
        assert got.headers["content-security-policy"] == CSP
        assert got.headers["x-content-type-options"] == "nosniff"
        assert got.headers["cache-control"].startswith("private")
        full = viewer.get(href)
        assert full.status_code == 200 and full.headers["content-type"].startswith("image/")
        assert full.content == stored_body(home, href.split("/", 4)[4])[0]
        with (
            Image.open(io.BytesIO(got.content)) as thumb,
            Image.open(io.BytesIO(full.content)) as orig,
        ):
            assert max(thumb.size) <= THUMB_SIDE
            assert abs(thumb.width / thumb.height - orig.width / orig.height) < 0.02
            if max(orig.size) > THUMB_SIDE:
                assert max(thumb.size) == THUMB_SIDE
                assert len(got.content) < len(full.content), (src, len(got.content))
                smaller += 1
    assert smaller >= 4
    assert warc_folder_state(home) == warcs  # the archive is only read


def test_a_thumbnail_is_cached_in_the_data_home(app: FastAPI, home: Path) -> None:
    viewer = client_as(app, "researcher")
    href, src = tallinn_thumbs(app, home, viewer)[0]
    body = stored_body(home, href.split("/", 4)[4])[0]  # /archived/web/TS/URL
    cached = home / "cache" / "thumbs" / f"{hashlib.sha256(body).hexdigest()}-{THUMB_SIDE}.webp"
    cached.unlink(missing_ok=True)
    first = viewer.get(src)
    assert first.status_code == 200 and cached.read_bytes() == first.content
    assert not cached.is_relative_to(paths(home).warcs)
    os.utime(cached, (1_000_000_000, 1_000_000_000))
    second = viewer.get(src)
    assert second.content == first.content
    assert cached.stat().st_mtime == 1_000_000_000  # read, not written again
    assert not [p for p in cached.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_revisit_gets_its_originals_thumbnail(app: FastAPI, home: Path) -> None:
    revisit = capture_where(home, Capture.record_type == "revisit", Capture.url.like("%.png"))
    got = client_as(app, "researcher").get(f"/archived/thumb/{revisit.id}")
    assert got.status_code == 200 and got.headers["content-type"] == "image/webp"
    with Image.open(io.BytesIO(got.content)) as thumb:
        assert max(thumb.size) <= THUMB_SIDE


def test_thumbnails_only_of_images_and_only_for_viewers(app: FastAPI, home: Path) -> None:
    viewer = client_as(app, "researcher")
    page = berlin(home)
    for path in (f"/archived/thumb/{page.id}", "/archived/thumb/999999"):
        got = viewer.get(path)
        assert got.status_code == 404, path
        assert got.headers["content-type"] == "text/plain; charset=utf-8"
        assert got.headers["content-security-policy"] == CSP
    image = capture_where(home, Capture.role == "image")
    assert viewer.get(f"/archived/thumb/{image.id}").status_code == 200
    refused = anonymous(app).get(f"/archived/thumb/{image.id}")
    assert refused.status_code == 303 and refused.headers["location"].startswith("/login")
    assert anonymous(app).get("/archived/thumb/abc").status_code in (303, 404)


def _jpeg(size: tuple[int, int], orientation: int | None = None) -> bytes:
    out = io.BytesIO()
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    Image.new("RGB", size, (200, 30, 30)).save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def test_make_thumbnail_keeps_aspect_and_applies_exif_orientation() -> None:
    with Image.open(io.BytesIO(make_thumbnail(_jpeg((1000, 500))))) as thumb:
        assert thumb.format == "WEBP" and thumb.size == (320, 160)
    with Image.open(io.BytesIO(make_thumbnail(_jpeg((1000, 500), orientation=6)))) as thumb:
        assert thumb.size == (160, 320)  # rotated upright
    with Image.open(io.BytesIO(make_thumbnail(_jpeg((100, 60))))) as thumb:
        assert thumb.size == (100, 60)  # never enlarged
    out = io.BytesIO()
    Image.new("RGBA", (640, 640), (0, 0, 0, 0)).save(out, "PNG")
    with Image.open(io.BytesIO(make_thumbnail(out.getvalue()))) as thumb:
        assert thumb.mode == "RGBA" and thumb.size == (320, 320)


def test_make_thumbnail_refuses_garbage_and_decompression_bombs() -> None:
    for garbage in (b"", b"not an image", _jpeg((400, 400))[:200]):
        with pytest.raises(NotAnImage):
            make_thumbnail(garbage)
    bomb = io.BytesIO()
    Image.new("1", (9000, 9000)).save(bomb, "PNG")  # 81 million pixels in a few kB
    assert len(bomb.getvalue()) < 100_000
    with pytest.raises(NotAnImage, match="too large"):
        make_thumbnail(bomb.getvalue())


def test_a_gzip_bomb_is_never_decoded_whole_by_the_views(tmp_path: Path) -> None:
    """An archived "image" of 200 KB on the wire that decodes to 300 MB: the archived view
    stops decoding at its limit and says so (413); the thumbnail stops at its own, answers
    415, and remembers the failure so later requests do not decode it again."""
    import zlib

    from archive import RecordFactory, RotatingWarcWriter
    from pipeline.indexer import index_files
    from pipeline.web import archived

    squeeze = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS + 16)
    zeros = b"\0" * (1 << 20)
    bomb = b"".join(squeeze.compress(zeros) for _ in range(300)) + squeeze.flush()
    assert len(bomb) < 400_000
    where = paths(tmp_path / "home").ensure()
    factory = RecordFactory()
    writer = RotatingWarcWriter(where.warcs, prefix="bomb", factory=factory, fsync=False)
    writer.write(factory.response(
        "http://127.0.0.1/bomb.png", 200, "OK", "HTTP/1.1",
        [("Content-Type", "image/png"), ("Content-Encoding", "gzip")], bomb,
    ))  # fmt: skip
    writer.close()
    with session_scope(where.database_url) as session:
        index_files(session, where.warcs.glob("*.warc.gz"), where.indexes)
        capture_id = session.scalar(select(Capture.id))
    client = client_as(make_app(where.home), "researcher")
    shown = client.get(f"/archived/{capture_id}/")
    assert shown.status_code == 413 and "too large" in shown.text
    thumb = client.get(f"/archived/thumb/{capture_id}")
    assert thumb.status_code == 415
    markers = list((where.home / "cache" / "thumbs").glob("*.failed"))
    assert len(markers) == 1
    assert client.get(f"/archived/thumb/{capture_id}").status_code == 415
    assert archived.VIEW_MAX_BYTES < 300 << 20 and archived.THUMB_MAX_BYTES < 300 << 20
