"""Helpers for the web app's tests: the real app, real users, real sign-in.

    from webkit import add_user, client_as, copy_home, csrf_of, login, make_app

    app = make_app(copy_home(crawled["home"], tmp_path / "home"))  # or an empty home
    researcher = client_as(app, "researcher")          # Authorization: Bearer
    browser = session_client(app, "legal")             # signed in through the form
    browser.post("/captures/1/evidence", data={"reason": "x", "csrf_token": csrf_of(browser)})

Clients do not follow redirects (tests see the 303s); pass ``follow_redirects=True`` to a
request to follow them.
"""

from __future__ import annotations

import itertools
import re
import shutil
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from pipeline.catalog import session_scope
from pipeline.config import paths
from pipeline.users import add_user as _add_user
from pipeline.web.app import create_app

ROLES = ("researcher", "legal", "archivist", "admin")
_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')
_names = itertools.count(1)


def make_app(home: Path | str) -> FastAPI:
    """The real app over a data home."""
    return create_app(paths(home).ensure())


def copy_home(source: Path | str, target: Path) -> Path:
    """A copy of a data home (e.g. ``crawled["home"]``) for a test that changes its catalog.

    The catalog's WARC paths stay valid: they are absolute and only ever read."""
    shutil.copytree(source, target)
    return target


def add_user(home: Path | str, name: str, role: str) -> str:
    """Create a user in the home's catalog; returns the token."""
    with session_scope(paths(home).ensure().database_url) as session:
        return _add_user(session, name, role)[1]


def _user(app: FastAPI, role: str, name: str | None) -> tuple[str, str]:
    name = name or f"{role}{next(_names)}"
    return name, add_user(app.state.paths.home, name, role)


def client_as(app: FastAPI, role: str, name: str | None = None) -> TestClient:
    """A client acting as a new user of ``role`` with a Bearer token (no CSRF needed).

    The user's name is in ``client.user_name`` and token in ``client.token``.
    """
    name, token = _user(app, role, name)
    client = TestClient(app, follow_redirects=False)
    client.headers["Authorization"] = f"Bearer {token}"
    client.user_name, client.token = name, token  # type: ignore[attr-defined]
    return client


def anonymous(app: FastAPI) -> TestClient:
    """A client nobody signed in to."""
    return TestClient(app, follow_redirects=False)


def login(client: TestClient, name: str, token: str, next: str = "") -> httpx.Response:  # noqa: A002
    """Sign in through the real form: GET /login for the form's CSRF token, then POST."""
    page = client.get("/login")
    assert page.status_code == 200, page.text
    fields = {"name": name, "token": token, "csrf_token": _csrf_in(page.text), "next": next}
    return client.post("/login", data=fields, follow_redirects=False)


def session_client(app: FastAPI, role: str, name: str | None = None) -> TestClient:
    """A client signed in through the login form (cookie session: POSTs need CSRF).

    The user's name is in ``client.user_name`` and token in ``client.token``.
    """
    name, token = _user(app, role, name)
    client = TestClient(app, follow_redirects=False)
    response = login(client, name, token)
    assert response.status_code == 303, response.text
    client.user_name, client.token = name, token  # type: ignore[attr-defined]
    return client


def _csrf_in(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no csrf_token field in the page"
    return found.group(1)


def csrf_of(client: TestClient, page: str = "/countries") -> str:
    """The session's CSRF token, read from a page's logout form."""
    response = client.get(page)
    assert response.status_code == 200, response.text
    return _csrf_in(response.text)
