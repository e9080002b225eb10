"""The JSON API under /api/v1, its OpenAPI schema and a server-rendered page of it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from pipeline.catalog import session_scope
from pipeline.catalog.models import PageMetadataRow, User
from pipeline.users import ROLES, UsersError, add_user, list_users
from pipeline.web.auth import require, verify_csrf
from pipeline.web.pages import (
    EXPORT_COLUMNS,
    MAX_QUERY,
    capture_facts,
    citation_text,
    expand_params,
    iso,
    link_details,
    metadata_facts,
    run_search,
)
from pipeline.web.params import Id
from pipeline.web.templating import render

router = APIRouter()
v1 = "/api/v1"
HIGHLIGHT = str.maketrans({"\x02": "«", "\x03": "»"})
HTTP_METHODS = ("get", "post", "put", "patch", "delete")

Searcher = Annotated[User, Depends(require("search"))]
Viewer = Annotated[User, Depends(require("view"))]
Exporter = Annotated[User, Depends(require("export"))]
Admin = Annotated[User, Depends(require("users"))]


class SearchOut(BaseModel):
    #: The query text searched: ``q``, with its translations when ``expand`` is true.
    query: str | None = None
    total: int
    results: list[dict[str, Any]]
    facets: dict[str, Any]


class UserOut(BaseModel):
    name: str
    role: str
    created: str | None
    last_login: str | None


class UserIn(BaseModel):
    name: str = Field(max_length=64, examples=["alice"])
    role: str = Field(examples=list(ROLES))


class NewUser(BaseModel):
    name: str
    role: str
    token: str = Field(description="shown once; only its SHA-256 is stored")


class Citation(BaseModel):
    capture_id: int
    style: str
    citation: str


def _text(value: str | None, limit: int = 500) -> str | None:
    return value.strip()[:limit] or None if value else None


@router.get(f"{v1}/search", response_model=SearchOut, summary="Search the archive")
def api_search(
    request: Request,
    _u: Searcher,
    q: Annotated[str | None, Query(description='words, "phrases", OR, -not, pref*')] = None,
    country: str | None = None,
    city: str | None = None,
    kind: str | None = None,
    language: str | None = None,
    status: str | None = None,
    published: Annotated[str | None, Query(description="YYYY or YYYY-MM")] = None,
    captured: Annotated[str | None, Query(description="YYYY or YYYY-MM")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**7)] = 0,
    expand: Annotated[
        bool, Query(description="add each known word's translations to q (see `query`)")
    ] = False,
) -> Any:
    """Ranked results with snippets (matches between « and ») and facet counts."""
    given = {"q": q, "country": country, "city": city, "kind": kind, "language": language,
             "status": status, "published": published, "captured": captured}  # fmt: skip
    limits = {"q": MAX_QUERY}  # a query expanded with its translations is long
    params = {k: v for k, v in ((k, _text(v, limits.get(k, 500))) for k, v in given.items()) if v}
    if expand:
        expand_params(params)
    result = run_search(request, params, limit, offset)
    rows = []
    for row in result.rows:
        entry = {column: row.get(column) for column in EXPORT_COLUMNS}
        snippet = row.get("snippet")
        entry["snippet"] = snippet.translate(HIGHLIGHT) if snippet else None
        entry["rank"] = row.get("rank")
        rows.append(entry)
    return {"query": params.get("q"), "total": result.total,
            "results": jsonable_encoder(rows),
            "facets": jsonable_encoder(result.facets or {})}  # fmt: skip


@router.get(f"{v1}/links/{{link_id}}", summary="A link with its captures and history")
def api_link(request: Request, link_id: Id, _u: Viewer) -> dict[str, Any]:
    """Place, link, captures, page metadata, archived images and check history."""
    with session_scope(request.app.state.paths.database_url) as session:
        return link_details(session, link_id)


@router.get(f"{v1}/captures/{{capture_id}}", summary="One capture")
def api_capture(request: Request, capture_id: Id, _u: Viewer) -> dict[str, Any]:
    """Where and when a capture was made, its digests and its page metadata."""
    from pipeline.catalog.queries import QueryError, get_capture

    with session_scope(request.app.state.paths.database_url) as session:
        try:
            capture = get_capture(session, capture_id)
        except QueryError:
            raise HTTPException(404, f"There is no capture {capture_id}.") from None
        facts = capture_facts(capture)
        metadata = session.get(PageMetadataRow, capture_id)
        facts["metadata"] = metadata_facts(metadata) if metadata is not None else None
        return facts


@router.get(
    f"{v1}/captures/{{capture_id}}/citation", response_model=Citation, summary="Cite a capture"
)
def api_citation(
    request: Request,
    capture_id: Id,
    _u: Exporter,
    style: Annotated[str, Query(max_length=20, description="apa, chicago, bibtex, csl-json")] = (
        "apa"
    ),
) -> Any:
    """A citation of the capture in one style."""
    text, _media_type = citation_text(request, capture_id, style)
    return {"capture_id": capture_id, "style": style, "citation": text}


@router.get(f"{v1}/status", summary="Links per country and city")
def api_status(request: Request, _u: Viewer) -> list[dict[str, Any]]:
    """Per country and city: links, archived, a count per status, last check and capture."""
    from pipeline.catalog.queries import status_summary

    with session_scope(request.app.state.paths.database_url) as session:
        return status_summary(session)


@router.get(f"{v1}/users", response_model=list[UserOut], summary="Users (admin)")
def api_users(request: Request, _u: Admin) -> Any:
    """Every user with role, creation and last sign-in; never tokens."""
    with session_scope(request.app.state.paths.database_url) as session:
        return [
            {"name": u.name, "role": u.role, "created": iso(u.created_at),
             "last_login": iso(u.last_login_at)}
            for u in list_users(session)
        ]  # fmt: skip


@router.post(
    f"{v1}/users",
    response_model=NewUser,
    status_code=201,
    summary="Add a user (admin)",
    dependencies=[Depends(verify_csrf)],
)
async def api_add_user(request: Request, body: UserIn, _u: Admin) -> Any:
    """Create a user; the response holds their token, shown this once."""

    def add() -> str:
        with session_scope(request.app.state.paths.database_url) as session:
            return add_user(session, body.name, body.role)[1]

    try:
        token = await run_in_threadpool(add)
    except UsersError as exc:
        raise HTTPException(400, str(exc)) from None
    return {"name": body.name, "role": body.role, "token": token}


# --- the schema and its page -----------------------------------------------------------


@router.get("/api/openapi.json", include_in_schema=False)
def openapi_schema(request: Request, _u: Searcher) -> Response:
    """The OpenAPI schema, for signed-in users only."""
    return JSONResponse(request.app.openapi())


def operations(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """Every operation of an OpenAPI schema: path, method, summary, description, parameters."""
    found = []
    for path, item in sorted(schema.get("paths", {}).items()):
        for method in HTTP_METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            found.append(
                {
                    "path": path,
                    "method": method.upper(),
                    "summary": operation.get("summary", ""),
                    "description": operation.get("description", ""),
                    "parameters": [
                        {
                            "name": p["name"],
                            "in": p["in"],
                            "required": p.get("required", False),
                            "type": _type_name(p.get("schema", {})),
                            "description": p.get("description", ""),
                        }
                        for p in operation.get("parameters", [])
                    ],
                    "body": _ref_name(body["schema"]) if body else None,
                }
            )
    return found


def _type_name(schema: dict[str, Any]) -> str:
    if "anyOf" in schema:
        return " | ".join(_type_name(s) for s in schema["anyOf"])
    return schema.get("type", _ref_name(schema) or "any")


def _ref_name(schema: dict[str, Any]) -> str:
    return schema.get("$ref", "").rsplit("/", 1)[-1]


@router.get("/api/docs", include_in_schema=False)
def api_docs(request: Request, _u: Searcher) -> Response:
    """The API's operations as a page (no scripts, no CDN)."""
    schema = request.app.openapi()
    return render(
        request,
        "api_docs.html",
        operations=operations(schema),
        schemas=schema.get("components", {}).get("schemas", {}),
    )
