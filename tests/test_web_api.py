"""Who may do what (every role, every route), and the JSON API over a crawled catalog."""

from __future__ import annotations

import re
from html import unescape
from itertools import count
from typing import Any

import pytest
from sqlalchemy import select
from webkit import anonymous, client_as, copy_home, make_app

from pipeline.catalog import session_scope
from pipeline.catalog.models import City, Link
from pipeline.catalog.queries import status_summary

ROLES = ("researcher", "legal", "archivist", "admin")
ALL = (200, 200, 200, 200)
ADMIN_ONLY = (403, 403, 403, 200)
LEGAL_UP = (403, 200, 200, 200)
ARCHIVIST_UP = (403, 403, 200, 200)
# method, path, expected status for (researcher, legal, archivist, admin): docs/WEB.md's table.
MATRIX: list[tuple[str, str, tuple[int, ...]]] = [
    ("GET", "/", (303, 303, 303, 303)),
    ("GET", "/search?q=Blumen", ALL),
    ("GET", "/search.csv?city=Berlin", ALL),
    ("GET", "/search.jsonl?city=Berlin", ALL),
    ("GET", "/links/{link}", ALL),
    ("GET", "/captures/{capture}/cite?style=apa", ALL),
    ("GET", "/countries", ALL),
    ("GET", "/admin/users", ADMIN_ONLY),
    ("POST", "/admin/users", (403, 403, 403, 201)),
    ("POST", "/admin/users/nobody/delete", (403, 403, 403, 404)),
    ("GET", "/api/docs", ALL),
    ("GET", "/api/openapi.json", ALL),
    ("GET", "/api/v1/search?q=Blumen", ALL),
    ("GET", "/api/v1/links/{link}", ALL),
    ("GET", "/api/v1/captures/{capture}", ALL),
    ("GET", "/api/v1/captures/{capture}/citation?style=apa", ALL),
    ("GET", "/api/v1/status", ALL),
    ("GET", "/api/v1/users", ADMIN_ONLY),
    ("POST", "/api/v1/users", (403, 403, 403, 201)),
    ("GET", "/captures/{capture}/view", ALL),
    ("GET", "/archived/{capture}/", ALL),
    ("GET", "/archived/web/20301231000000/{url}", ALL),
    ("POST", "/captures/{capture}/payload", LEGAL_UP),
    ("POST", "/captures/{capture}/evidence", LEGAL_UP),
    ("POST", "/api/v1/captures/{capture}/payload", LEGAL_UP),
    ("POST", "/api/v1/captures/{capture}/evidence", LEGAL_UP),
    ("GET", "/manage", ARCHIVIST_UP),
    ("GET", "/api/v1/jobs", ARCHIVIST_UP),
    # A country not in the catalog: refused as bad input, after the permission check.
    ("POST", "/manage/crawls", (403, 403, 400, 400)),
    ("POST", "/api/v1/crawls", (403, 403, 400, 400)),
    ("POST", "/api/v1/checks", (403, 403, 400, 400)),
]
# What each POST sends (users are added by the rest).
BODIES = {
    "/payload": {"reason": "role matrix"},
    "/evidence": {"reason": "role matrix", "requested_by": "Counsel"},
    "/crawls": {"country": "Atlantis"},
    "/checks": {"country": "Atlantis"},
}
_new_names = count(1)


@pytest.fixture(scope="module")
def site(crawled: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = copy_home(crawled["home"], tmp_path_factory.mktemp("api") / "home")
    app = make_app(home)
    with session_scope(app.state.paths.database_url) as session:
        berlin = session.scalar(select(Link).join(City).where(City.name == "Berlin"))
        assert berlin is not None
        ids = {"link": berlin.id, "capture": berlin.last_capture_id, "url": berlin.url}
    return {"app": app, **ids}


def call(client: Any, method: str, path: str, site: dict[str, Any]) -> Any:
    path = path.format(link=site["link"], capture=site["capture"], url=site["url"])
    if method == "GET":
        return client.get(path)
    body = next(
        (fields for end, fields in BODIES.items() if path.endswith(end)),
        {"name": f"made{next(_new_names)}", "role": "researcher"},
    )
    if path.startswith("/api/"):
        return client.post(path, json=body)
    return client.post(path, data=body)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path", "expected"), MATRIX)
def test_every_route_for_every_role(
    site: dict[str, Any], role: str, method: str, path: str, expected: tuple[int, ...]
) -> None:
    response = call(client_as(site["app"], role), method, path, site)
    assert response.status_code == expected[ROLES.index(role)], response.text[:300]
    if response.status_code == 403:
        if path.startswith("/api/v1/"):
            assert "may not" in response.json()["detail"]
        else:
            assert '<p class="error">' in response.text


@pytest.mark.parametrize(("method", "path", "_expected"), MATRIX)
def test_every_route_refuses_anonymous_visitors(
    site: dict[str, Any], method: str, path: str, _expected: tuple[int, ...]
) -> None:
    response = call(anonymous(site["app"]), method, path, site)
    if path.startswith("/api/") and path != "/api/docs":
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    else:
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=")


def test_api_search(site: dict[str, Any]) -> None:
    api = client_as(site["app"], "researcher")
    params = {"q": "Blumen OR flowers", "city": "Berlin", "published": "2020-10"}
    body = api.get("/api/v1/search", params=params).json()
    assert set(body) == {"query", "total", "results", "facets"}
    assert body["query"] == "Blumen OR flowers"  # as given: no expand
    assert body["total"] == 1
    (row,) = body["results"]
    assert (row["link_id"], row["url"], row["city"]) == (site["link"], site["url"], "Berlin")
    assert re.search(r"«(Blumen|flowers)»", row["snippet"]) and "\x02" not in row["snippet"]
    assert ["Berlin", 1] in body["facets"]["city"]

    everything = api.get("/api/v1/search", params={"limit": 500}).json()
    assert everything["total"] == len(everything["results"]) >= 10
    second = api.get("/api/v1/search", params={"limit": 1, "offset": 1}).json()
    assert second["results"] == everything["results"][1:2]
    too_many = api.get("/api/v1/search", params={"limit": 501})
    assert too_many.status_code == 422 and too_many.json()["detail"].startswith("bad request")
    bad_month = api.get("/api/v1/search", params={"published": "2020-13"})
    assert bad_month.status_code == 400 and "detail" in bad_month.json()


def test_api_link_capture_citation_and_status(site: dict[str, Any]) -> None:
    api = client_as(site["app"], "researcher")
    link = api.get(f"/api/v1/links/{site['link']}").json()
    assert (link["country"], link["city"], link["url"]) == ("Germany", "Berlin", site["url"])
    page = next(c for c in link["captures"] if c["id"] == site["capture"])
    assert page["role"] == "page" and len(page["payload_sha256"]) == 64
    assert link["history"] and link["history"][0]["status"] in ("alive", "redirected")

    capture = api.get(f"/api/v1/captures/{site['capture']}").json()
    assert capture["url"] == site["url"] and capture["warc_file"].endswith(".warc.gz")
    assert capture["metadata"]["title"] == "Berlin: Frauen in Weiß für ein freies Belarus"
    assert capture["metadata"]["published"] == "2020-10-10"

    cited = api.get(f"/api/v1/captures/{site['capture']}/citation", params={"style": "chicago"})
    assert cited.json()["style"] == "chicago" and site["url"] in cited.json()["citation"]
    assert api.get(f"/api/v1/captures/{site['capture']}/citation?style=nope").status_code == 400

    with session_scope(site["app"].state.paths.database_url) as session:
        assert api.get("/api/v1/status").json() == status_summary(session)
    for path in ("/api/v1/links/99999999", "/api/v1/captures/99999999"):
        missing = api.get(path)
        assert missing.status_code == 404 and missing.json()["detail"].startswith("There is no")


def test_api_users_never_show_tokens(site: dict[str, Any]) -> None:
    admin = client_as(site["app"], "admin", "chief")
    made = admin.post("/api/v1/users", json={"name": "newbie", "role": "legal"})
    assert made.status_code == 201
    token = made.json()["token"]
    listed = admin.get("/api/v1/users")
    assert {"name": "newbie", "role": "legal"}.items() <= next(
        u for u in listed.json() if u["name"] == "newbie"
    ).items()
    assert token not in listed.text and "token" not in listed.text
    newbie = anonymous(site["app"])
    assert newbie.get("/api/v1/status", headers={"Authorization": f"Bearer {token}"}).is_success
    duplicate = admin.post("/api/v1/users", json={"name": "newbie", "role": "legal"})
    assert duplicate.status_code == 400 and "exists already" in duplicate.json()["detail"]
    assert admin.post("/api/v1/users", json={"name": "x"}).status_code == 422


def test_api_docs_page_lists_every_operation(site: dict[str, Any]) -> None:
    researcher = client_as(site["app"], "researcher")
    schema = researcher.get("/api/openapi.json").json()
    assert "/api/v1/search" in schema["paths"] and "/login" not in schema["paths"]
    page = researcher.get("/api/docs")
    assert page.status_code == 200 and "<script" not in page.text
    listed = {
        (m, unescape(p))
        for m, p in re.findall(r'data-method="([A-Z]+)" data-path="([^"]*)"', page.text)
    }
    expected = {
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert listed == expected and len(expected) >= 7
    search_row = re.search(r'data-path="/api/v1/search">.*?</tr>', page.text, re.S)
    assert search_row is not None
    for parameter in ("q", "country", "city", "published", "limit", "offset"):
        assert f"<code>{parameter}</code>" in search_row.group(0)
