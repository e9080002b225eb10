"""What held up under attack stays held: every route of the web app has a least role and
refuses anyone below it, anonymous visitors included; the code runs no shell and builds no
SQL from strings.

The table below must name every route the app serves: a new route fails
``test_every_route_has_a_least_role`` until its least role is written down here (and in
docs/WEB.md's table). The role matrix over a crawled catalog is in tests/test_web_api.py;
sessions, CSRF, redirects, throttling and headers in tests/test_web_auth.py.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from webkit import ROLES, anonymous, client_as, make_app

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = {("GET", "/static"), ("GET", "/login"), ("POST", "/login"), ("POST", "/logout")}
# (method, path) -> the least role that may use it.
LEAST_ROLE = {
    ("GET", "/"): "researcher",
    ("GET", "/search"): "researcher",
    ("GET", "/search.csv"): "researcher",
    ("GET", "/search.jsonl"): "researcher",
    ("GET", "/links/{link_id}"): "researcher",
    ("GET", "/captures/{capture_id}/cite"): "researcher",
    ("GET", "/countries"): "researcher",
    ("GET", "/api/v1/search"): "researcher",
    ("GET", "/api/v1/links/{link_id}"): "researcher",
    ("GET", "/api/v1/captures/{capture_id}"): "researcher",
    ("GET", "/api/v1/captures/{capture_id}/citation"): "researcher",
    ("GET", "/api/v1/status"): "researcher",
    ("GET", "/api/openapi.json"): "researcher",
    ("GET", "/api/docs"): "researcher",
    ("GET", "/archived/web/{rest:path}"): "researcher",
    ("GET", "/archived/{capture_id:int}/"): "researcher",
    ("GET", "/captures/{capture_id:int}/view"): "researcher",
    ("GET", "/archived/thumb/{capture_id:int}"): "researcher",
    ("POST", "/captures/{capture_id:int}/payload"): "legal",
    ("POST", "/captures/{capture_id:int}/evidence"): "legal",
    ("POST", "/api/v1/captures/{capture_id:int}/payload"): "legal",
    ("POST", "/api/v1/captures/{capture_id:int}/evidence"): "legal",
    ("GET", "/manage"): "archivist",
    ("GET", "/manage/jobs/{job_id}"): "archivist",
    ("POST", "/manage/seeds"): "archivist",
    ("POST", "/manage/crawls"): "archivist",
    ("POST", "/manage/checks"): "archivist",
    ("POST", "/manage/schedules"): "archivist",
    ("POST", "/manage/schedules/{name}/delete"): "archivist",
    ("POST", "/manage/jobs/{job_id}/cancel"): "archivist",
    ("POST", "/api/v1/crawls"): "archivist",
    ("POST", "/api/v1/checks"): "archivist",
    ("POST", "/api/v1/seeds"): "archivist",
    ("GET", "/api/v1/jobs"): "archivist",
    ("GET", "/api/v1/jobs/{job_id}"): "archivist",
    ("GET", "/admin/users"): "admin",
    ("POST", "/admin/users"): "admin",
    ("POST", "/admin/users/{name}/delete"): "admin",
    ("GET", "/api/v1/users"): "admin",
    ("POST", "/api/v1/users"): "admin",
}


def _routes(routes: list[Any]) -> set[tuple[str, str]]:
    found = set()
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            found |= _routes(inner.routes)
            continue
        for method in getattr(route, "methods", None) or {"GET"}:
            if method != "HEAD":
                found.add((method, route.path))
    return found


def _concrete(path: str) -> str:
    """A request path for a route pattern: ids 1, names "nobody"."""
    for pattern, value in (("{link_id}", "1"), ("{capture_id}", "1"), ("{capture_id:int}", "1"),
                           ("{job_id}", "1"), ("{name}", "nobody"),
                           ("{rest:path}", "20300101000000/http://example.org/")):  # fmt: skip
        path = path.replace(pattern, value)
    return path


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    return make_app(tmp_path_factory.mktemp("security") / "home")


def test_every_route_has_a_least_role(app: FastAPI) -> None:
    served = _routes(app.routes)
    assert served - PUBLIC == set(LEAST_ROLE), "routes without a least role here, or gone"


@pytest.mark.parametrize(("method", "path"), sorted(LEAST_ROLE))
def test_each_route_refuses_every_role_below_its_least_and_anonymous_visitors(
    app: FastAPI, method: str, path: str
) -> None:
    target = _concrete(path)
    least = ROLES.index(LEAST_ROLE[(method, path)])
    for index, role in enumerate(ROLES):
        client = client_as(app, role)
        response = client.request(method, target, data={} if method == "POST" else None)
        if index < least:
            assert response.status_code == 403, (role, response.status_code, response.text[:200])
        else:
            assert response.status_code not in (401, 403), (role, response.text[:200])
    response = anonymous(app).request(method, target)
    assert response.status_code in (303, 401), response.status_code
    if response.status_code == 303:
        assert response.headers["location"].startswith("/login?next=")


# Statements built from constants only (values are still bound parameters), reviewed.
REVIEWED_SQL = {
    "pipeline/migrations/versions/0006_fulltext.py": "a constant index expression",
    "pipeline/migrations/versions/0013_search_tsvector.py": "0006's constant expression, stored",
    "pipeline/migrations/versions/0014_search_index.py": "triggers from the constant LOGGED",
}


def _python_files() -> list[Path]:
    return [p for folder in ("archive", "pipeline", "spiders", "flows", "bench")
            for p in (ROOT / folder).rglob("*.py")] + [ROOT / "settings.py"]  # fmt: skip


def test_no_shell_and_no_sql_built_from_strings() -> None:
    """No ``shell=True``, ``os.system`` or ``os.popen``; no f-string, ``%`` or ``.format``
    text handed to SQLAlchemy's ``text()`` or an ``execute``: parameters are bound."""
    problems = []
    for path in _python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if any(k.arg == "shell" and ast.unparse(k.value) != "False" for k in node.keywords):
                problems.append(f"{where}: shell=")
            if name in ("os.system", "os.popen"):
                problems.append(f"{where}: {name}")
            sql_call = name in ("text", "sa.text", "sqlalchemy.text") or name.endswith(
                (".execute", ".exec_driver_sql", ".executescript")
            )
            reviewed = str(path.relative_to(ROOT)) in REVIEWED_SQL
            if sql_call and node.args and _built(node.args[0]) and not reviewed:
                problems.append(f"{where}: SQL built from a string")
    assert not problems, problems


def _built(node: ast.AST) -> bool:
    """An f-string, ``%`` formatting, ``+`` of strings or a ``.format`` call."""
    if isinstance(node, ast.JoinedStr) and any(
        isinstance(v, ast.FormattedValue) for v in node.values
    ):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return isinstance(node.left, ast.Constant | ast.JoinedStr)
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
    )
