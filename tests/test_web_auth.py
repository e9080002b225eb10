"""Users, sign-in, sessions, CSRF and security headers of the web app (real app, real DB)."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from webkit import add_user, anonymous, client_as, csrf_of, login, make_app, session_client

from pipeline.catalog import session_scope
from pipeline.catalog.models import User, WebSession
from pipeline.cli import main
from pipeline.config import paths

APP_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    return make_app(tmp_path / "home")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def token_of(out: str) -> str:
    (line,) = [line for line in out.splitlines() if "shown once" in line]
    return line.split()[-1]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- the users commands -------------------------------------------------------------------


def test_users_add_prints_the_token_once_and_stores_only_its_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = str(tmp_path / "home")
    code, out, err = run(capsys, "--home", home, "users", "add", "alice", "--role", "legal")
    assert code == 0, err
    token = token_of(out)
    assert len(token) >= 40
    with session_scope(paths(home).database_url) as session:
        (user,) = session.query(User).all()
        assert (user.name, user.role, user.token_sha256) == ("alice", "legal", sha256(token))
    database = (tmp_path / "home" / "catalog.sqlite").read_bytes()
    assert token.encode() not in database

    code, out, err = run(capsys, "--home", home, "users", "list", "--format", "json")
    assert code == 0 and token not in out and user.token_sha256 not in out
    assert '"name": "alice"' in out and '"role": "legal"' in out and '"last_login": null' in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "alice", "--role", "admin"], "a user named 'alice' exists already"),
        (["add", "bad name", "--role", "admin"], "bad user name 'bad name'"),
        (["add", "x" * 65, "--role", "admin"], "bad user name"),
        (["add", "<script>", "--role", "admin"], "bad user name '<script>'"),
        (["add", "bob", "--role", "king"], "'king' is not one of"),
        (["remove", "nobody"], "no user named 'nobody'"),
        (["token", "nobody"], "no user named 'nobody'"),
    ],
)
def test_users_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    home = str(tmp_path / "home")
    assert run(capsys, "--home", home, "users", "add", "alice", "--role", "researcher")[0] == 0
    code, out, err = run(capsys, "--home", home, "users", *args)
    assert code != 0
    assert err.startswith("linkarchive: error: ") and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_users_token_rotation_and_removal_end_access(
    app: FastAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    home = str(app.state.paths.home)
    token = add_user(home, "carol", "researcher")
    browser = anonymous(app)
    assert login(browser, "carol", token).status_code == 303
    assert browser.get("/countries").status_code == 200
    bearer = {"Authorization": f"Bearer {token}"}
    assert anonymous(app).get("/api/v1/status", headers=bearer).status_code == 200

    code, out, err = run(capsys, "--home", home, "users", "token", "carol")
    assert code == 0, err
    new = token_of(out)
    assert new != token
    assert anonymous(app).get("/api/v1/status", headers=bearer).status_code == 401
    assert browser.get("/countries").status_code == 303  # the session ended with the old token
    renewed = {"Authorization": f"Bearer {new}"}
    assert anonymous(app).get("/api/v1/status", headers=renewed).status_code == 200

    assert run(capsys, "--home", home, "users", "remove", "carol")[0] == 0
    assert anonymous(app).get("/api/v1/status", headers=renewed).status_code == 401
    assert run(capsys, "--home", home, "users", "list", "--format", "json")[1].strip() == "[]"


# --- signing in and out --------------------------------------------------------------------


def test_login_creates_a_hashed_server_side_session_and_logout_deletes_it(app: FastAPI) -> None:
    token = add_user(app.state.paths.home, "dora", "archivist")
    browser = anonymous(app)
    response = login(browser, "dora", token)
    assert response.status_code == 303 and response.headers["location"] == "/search"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("linkarchive_session=")
    )
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/"} <= attributes
    session_id = browser.cookies["linkarchive_session"]
    with session_scope(app.state.paths.database_url) as session:
        (web,) = session.query(WebSession).all()
        assert web.id_sha256 == sha256(session_id) and web.user.name == "dora"
        assert 11.9 * 3600 < (web.expires_at - web.created_at).total_seconds() <= 12 * 3600
        assert session.query(User).one().last_login_at is not None
    assert session_id.encode() not in Path(app.state.paths.home, "catalog.sqlite").read_bytes()

    page = browser.get("/countries")
    assert page.status_code == 200 and "dora" in page.text and 'id="logout-form"' in page.text
    # Signing out without the CSRF token is refused, and the session lives on.
    assert browser.post("/logout").status_code == 403
    assert browser.get("/countries").status_code == 200
    out = browser.post("/logout", data={"csrf_token": csrf_of(browser)})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    with session_scope(app.state.paths.database_url) as session:
        assert session.query(WebSession).count() == 0
    # The old cookie, replayed, no longer works.
    replay = anonymous(app)
    replay.cookies.set("linkarchive_session", session_id)
    assert replay.get("/countries").status_code == 303


@pytest.mark.parametrize(
    ("name", "token"), [("erin", "wrong-token"), ("nobody", "wrong-token"), ("erin", "")]
)
def test_failed_login_is_401_with_a_generic_message(app: FastAPI, name: str, token: str) -> None:
    add_user(app.state.paths.home, "erin", "researcher")
    browser = anonymous(app)
    response = login(browser, name, token)
    assert response.status_code == 401
    assert "Wrong name or token." in response.text and 'id="login-form"' in response.text
    assert "linkarchive_session" not in browser.cookies
    assert browser.get("/countries").status_code == 303


def test_login_form_needs_its_csrf_cookie(app: FastAPI) -> None:
    token = add_user(app.state.paths.home, "fay", "researcher")
    fields = {"name": "fay", "token": token, "csrf_token": "forged-value-of-some-length-000000000"}
    response = anonymous(app).post("/login", data=fields)
    assert response.status_code == 403 and "linkarchive_session" not in response.headers.get(
        "set-cookie", ""
    )


@pytest.mark.parametrize(
    ("target", "landing"),
    [
        ("/links/3?x=1", "/links/3?x=1"),
        ("//evil.example/", "/search"),
        ("https://evil.example/", "/search"),
        ("/\\evil.example", "/search"),
        ("http:/evil.example", "/search"),
        ("/%0d%0aSet-Cookie:x=1", "/%0d%0aSet-Cookie:x=1"),
        ("javascript:alert(1)", "/search"),
    ],
)
def test_login_next_goes_only_to_local_paths(app: FastAPI, target: str, landing: str) -> None:
    token = add_user(app.state.paths.home, "gus", "researcher")
    response = login(anonymous(app), "gus", token, next=target)
    assert response.status_code == 303 and response.headers["location"] == landing


def test_anonymous_visitors_get_the_login_page_and_nothing_else(app: FastAPI) -> None:
    visitor = anonymous(app)
    for path in ("/", "/search?q=Berlin&city=Berlin", "/links/1", "/countries", "/admin/users",
                 "/no/such/page", "/api/docs", "/search.csv"):  # fmt: skip
        response = visitor.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=%2F"), path
    for path in ("/api/v1/search?q=x", "/api/v1/links/1", "/api/v1/status", "/api/v1/users",
                 "/api/v1/nothing", "/api/openapi.json"):  # fmt: skip
        response = visitor.get(path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["detail"].startswith("sign in")
    assert visitor.post("/admin/users", data={"name": "x", "role": "admin"}).status_code == 303
    assert visitor.post("/api/v1/users", json={"name": "x", "role": "admin"}).status_code == 401
    assert (
        visitor.get("/api/v1/status", headers={"Authorization": "Bearer nope"}).status_code == 401
    )
    assert visitor.get("/login").status_code == 200
    css = visitor.get("/static/app.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]

    # After signing in, the visitor lands where they were going.
    token = add_user(app.state.paths.home, "hal", "researcher")
    target = visitor.get("/countries").headers["location"].split("next=", 1)[1]
    page = visitor.get(f"/login?next={target}")
    assert 'name="next" value="/countries"' in page.text
    assert login(visitor, "hal", token, next="/countries").headers["location"] == "/countries"


# --- CSRF ----------------------------------------------------------------------------------


def test_csrf_is_required_on_session_posts_and_not_on_bearer_ones(app: FastAPI) -> None:
    admin = session_client(app, "admin", "root")
    form = {"name": "ivy", "role": "researcher"}
    assert admin.post("/admin/users", data=form).status_code == 403
    assert admin.post("/admin/users", data={**form, "csrf_token": "wrong"}).status_code == 403
    assert admin.post("/admin/users", data=form, headers={"X-CSRF-Token": ""}).status_code == 403
    assert admin.post("/api/v1/users", json={"name": "ivy", "role": "legal"}).status_code == 403
    with session_scope(app.state.paths.database_url) as session:
        assert [u.name for u in session.query(User)] == ["root"]

    token = csrf_of(admin)
    made = admin.post("/admin/users", data={**form, "csrf_token": token})
    assert made.status_code == 201 and 'id="new-token"' in made.text
    by_header = admin.post(
        "/api/v1/users", json={"name": "jay", "role": "legal"}, headers={"X-CSRF-Token": token}
    )
    assert by_header.status_code == 201 and by_header.json()["role"] == "legal"

    # Another session's token is no good.
    other = session_client(app, "admin", "root2")
    refused = other.post("/admin/users", data={"name": "kim", "role": "legal", "csrf_token": token})
    assert refused.status_code == 403

    # Bearer requests carry no ambient credential: no CSRF token needed.
    bearer = client_as(app, "admin")
    assert bearer.post("/api/v1/users", json={"name": "lea", "role": "legal"}).status_code == 201
    assert bearer.post("/admin/users", data={"name": "max", "role": "legal"}).status_code == 201
    with session_scope(app.state.paths.database_url) as session:
        names = {u.name for u in session.query(User)}
    assert {"ivy", "jay", "lea", "max"} <= names and "kim" not in names


def test_new_token_from_the_admin_page_signs_in(app: FastAPI) -> None:
    admin = session_client(app, "admin", "root")
    made = admin.post(
        "/admin/users", data={"name": "nia", "role": "legal", "csrf_token": csrf_of(admin)}
    )
    token = made.text.split('id="new-token" class="token">', 1)[1].split("<", 1)[0].strip()
    browser = anonymous(app)
    assert login(browser, "nia", token).status_code == 303
    assert "nia" in browser.get("/countries").text
    listed = admin.get("/admin/users")
    assert 'data-name="nia"' in listed.text and token not in listed.text


def test_admin_page_validates_and_refuses_removing_yourself(app: FastAPI) -> None:
    admin = session_client(app, "admin", "root")
    csrf = csrf_of(admin)
    bad = admin.post("/admin/users", data={"name": "a b", "role": "admin", "csrf_token": csrf})
    assert bad.status_code == 400 and 'class="error"' in bad.text and "bad user name" in bad.text
    role = admin.post("/admin/users", data={"name": "ok", "role": "root", "csrf_token": csrf})
    assert role.status_code == 400 and "unknown role" in role.text
    self_delete = admin.post("/admin/users/root/delete", data={"csrf_token": csrf})
    assert self_delete.status_code == 400 and "cannot remove yourself" in self_delete.text
    add_user(app.state.paths.home, "olga", "legal")
    removed = admin.post("/admin/users/olga/delete", data={"csrf_token": csrf})
    assert removed.status_code == 303
    page = admin.get(removed.headers["location"])
    assert 'class="flash"' in page.text and 'data-name="olga"' not in page.text
    assert admin.post("/admin/users/olga/delete", data={"csrf_token": csrf}).status_code == 404


def test_expired_sessions_are_refused(app: FastAPI) -> None:
    browser = session_client(app, "researcher", "pat")
    assert browser.get("/countries").status_code == 200
    database = Path(app.state.paths.home, "catalog.sqlite")
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE web_sessions SET expires_at = '2001-01-01 00:00:00'")
    response = browser.get("/countries")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


# --- headers and errors --------------------------------------------------------------------


def test_security_headers_on_every_kind_of_response(app: FastAPI) -> None:
    researcher = client_as(app, "researcher")
    responses = {
        "login": anonymous(app).get("/login"),
        "redirect": anonymous(app).get("/countries"),
        "page": researcher.get("/countries"),
        "json": researcher.get("/api/v1/status"),
        "401": anonymous(app).get("/api/v1/status"),
        "403": researcher.get("/admin/users"),
        "404": researcher.get("/links/424242"),
        "422": researcher.get("/search?page=0"),
        "static": anonymous(app).get("/static/app.css"),
    }
    for kind, response in responses.items():
        assert response.headers["content-security-policy"] == APP_CSP, kind
        assert response.headers["x-content-type-options"] == "nosniff", kind
        assert response.headers["referrer-policy"] == "no-referrer", kind
    for kind in ("403", "404", "422"):
        body = responses[kind].text
        assert 'class="error"' in body and "Traceback" not in body and "<script" not in body
    assert responses["404"].status_code == 404 and "nav" in responses["404"].text
    assert responses["422"].status_code == 422
    assert "<script" not in responses["page"].text and "<script" not in responses["login"].text


@pytest.mark.postgres
def test_users_and_sessions_on_postgresql(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINKARCHIVE_DATABASE_URL", postgres_url)
    app = make_app(tmp_path / "home")
    assert app.state.paths.database_url == postgres_url
    admin = session_client(app, "admin", "pg-admin")
    made = admin.post(
        "/admin/users", data={"name": "pg-legal", "role": "legal", "csrf_token": csrf_of(admin)}
    )
    assert made.status_code == 201
    token = made.text.split('id="new-token" class="token">', 1)[1].split("<", 1)[0].strip()
    legal = anonymous(app)
    assert login(legal, "pg-legal", token).status_code == 303
    assert legal.get("/admin/users").status_code == 403
    assert legal.post("/logout", data={"csrf_token": csrf_of(legal)}).status_code == 303
    assert legal.get("/countries").status_code == 303
    with session_scope(postgres_url) as session:
        names = {u.name for u in session.query(User)}
        assert {"pg-admin", "pg-legal"} <= names
        assert session.query(WebSession).join(User).filter(User.name == "pg-legal").count() == 0


def test_an_internal_error_is_a_plain_500_without_details(app: FastAPI) -> None:
    researcher = client_as(app, "researcher")
    with sqlite3.connect(Path(app.state.paths.home, "catalog.sqlite")) as connection:
        connection.execute("ALTER TABLE countries RENAME TO countries_gone")
    page = researcher.get("/countries")
    assert page.status_code == 500 and '<p class="error">' in page.text
    assert page.headers["content-security-policy"] == APP_CSP
    api = researcher.get("/api/v1/status")
    assert api.status_code == 500 and api.json() == {"detail": "internal error"}
    for body in (page.text, api.text):
        assert "Traceback" not in body and "countries" not in body.replace("/countries", "")


def test_a_huge_or_unsized_body_is_refused_before_it_is_read(app: FastAPI) -> None:
    """An anonymous POST announcing 300 MB gets its 413 at once, from a real server, with
    the body never sent (had the server read it, the answer would wait for it); a chunked
    body of unknown length gets a 411."""
    import socket

    with _served(app) as port:
        for head, statuses in (
            (b"Content-Length: 300000000\r\nContent-Type: application/x-www-form-urlencoded",
             (413,)),
            (b"Content-Length: 12abc", (400, 413)),  # uvicorn refuses it first
            (b"Transfer-Encoding: chunked\r\nContent-Type: application/json", (411,)),
        ):  # fmt: skip
            for path in (b"/login", b"/api/v1/seeds"):
                with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                    sock.sendall(b"POST " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + head
                                 + b"\r\n\r\nname=x")  # fmt: skip
                    answer = sock.recv(200)
                assert int(answer[9:12]) in statuses, (path, head, answer)


@contextmanager
def _served(app: FastAPI, **options: Any) -> Iterator[int]:
    """``app`` under a real uvicorn on 127.0.0.1 (``options`` as `linkarchive serve` passes
    them); its port."""
    import threading
    import time

    import uvicorn
    from conftest import free_port

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.mark.parametrize("trusted", [False, True])
def test_cookies_are_secure_behind_a_tls_proxy_only_when_its_headers_are_trusted(
    app: FastAPI, trusted: bool
) -> None:
    """`linkarchive serve --proxy-headers`: a proxy's X-Forwarded-Proto makes the session
    and sign-in cookies Secure; without the flag, the header is ignored."""
    import httpx

    options = {"proxy_headers": trusted, "forwarded_allow_ips": "127.0.0.1" if trusted else None}
    with _served(app, **options) as port:
        page = httpx.get(f"http://127.0.0.1:{port}/login", headers={"X-Forwarded-Proto": "https"})
    cookie = page.headers["set-cookie"]
    assert cookie.startswith("linkarchive_login_csrf=")
    assert ("secure" in cookie.lower()) is trusted


def test_failed_sign_ins_are_limited_per_name_and_per_address(app: FastAPI) -> None:
    """After 5 wrong tokens for one name, that name is refused (429, Retry-After) even
    with its right token; after 20 failures from one address, every name is refused from
    it."""
    token = add_user(app.state.paths.home, "gus", "researcher")
    browser = anonymous(app)
    for _ in range(5):
        assert login(browser, "gus", "wrong-token").status_code == 401
    refused = login(browser, "gus", token)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "Too many failed sign-ins" in refused.text
    assert "linkarchive_session" not in browser.cookies
    for i in range(15):  # other names from the same address: 20 failures in all
        assert login(anonymous(app), f"guess{i}", "wrong-token").status_code == 401
    ida_token = add_user(app.state.paths.home, "ida", "researcher")
    assert login(anonymous(app), "ida", ida_token).status_code == 429


def test_the_sign_in_throttle_forgets_after_its_window_and_bounds_its_memory() -> None:
    from pipeline.web.auth import Throttle

    now = [1000.0]
    throttle = Throttle(limit=2, window=60, keys=3, clock=lambda: now[0])
    throttle.failed("a"), throttle.failed("a")
    assert throttle.retry_after("a") == 60
    now[0] += 59.5
    assert throttle.retry_after("a") == 1
    now[0] += 1
    assert throttle.retry_after("a") == 0
    throttle.failed("b"), throttle.failed("b")
    throttle.succeeded("b")
    assert throttle.retry_after("b") == 0
    for key in ("c", "d", "e", "f"):
        throttle.failed(key)
    assert len(throttle._failures) == 3
