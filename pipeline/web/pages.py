"""Pages: sign-in, search, link, countries, exports, citations and the admin's users."""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from pipeline.catalog import session_scope
from pipeline.catalog.fulltext import EXPORT_COLUMNS, export_csv
from pipeline.catalog.models import (
    Capture,
    Country,
    CrawlOutcome,
    LinkCheck,
    Media,
    PageMetadataRow,
    User,
)
from pipeline.linkcheck.standing import check_label, last_check, standing_label
from pipeline.users import (
    NAME_PATTERN,
    ROLES,
    UsersError,
    add_user,
    authenticate,
    end_session,
    list_users,
    remove_user,
    start_session,
)
from pipeline.web.auth import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    form_data,
    identify,
    require,
    same_secret,
    verify_csrf,
)
from pipeline.web.params import Id
from pipeline.web.templating import render

router = APIRouter(include_in_schema=False)


def _db(request: Request) -> str:
    return request.app.state.paths.database_url


def safe_next(target: str | None) -> str:
    """``target`` if it is a path on this site, else /search (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/search"
    if "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return "/search"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/search"
    return target


def _cookie_options(request: Request) -> dict[str, object]:
    return {
        "httponly": True,
        "samesite": "strict",
        "path": "/",
        "secure": request.url.scheme == "https",
    }


def _login_page(
    request: Request, status_code: int = 200, *, name: str = "", next_: str = "", error: str = ""
) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if len(token) < 32:
        token = secrets.token_urlsafe(32)
    request.state.identity = None  # the sign-in page shows no navigation
    response = render(
        request,
        "login.html",
        status_code,
        login_csrf=token,
        next=safe_next(next_) if next_ else "",
        name=name,
        login_error=error,
    )
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, **_cookie_options(request))
    return response


@router.get("/login")
def login_form(request: Request, next: str = "") -> Response:  # noqa: A002 - the query name
    """The sign-in form."""
    return _login_page(request, next_=next)


@router.post("/login")
async def login(request: Request) -> Response:
    """Sign in with name and token; a server-side session, then back to ``next``."""
    fields = await form_data(request)
    name, token, next_ = fields.get("name", ""), fields.get("token", ""), fields.get("next", "")
    if not same_secret(fields.get("csrf_token"), request.cookies.get(LOGIN_CSRF_COOKIE)):
        return _login_page(
            request, 403, name=name, next_=next_, error="The form expired; please try again."
        )

    address = request.client.host if request.client else ""
    by_name, by_address = request.app.state.sign_in_throttles
    keys = ((by_name, name[:64].casefold()), (by_address, address))
    wait = max(throttle.retry_after(key) for throttle, key in keys)
    if wait:  # refused unseen, even with the right token: guessing costs a wait each time
        response = _login_page(
            request, 429, name=name, next_=next_,
            error=f"Too many failed sign-ins; try again in {wait} s.",
        )  # fmt: skip
        response.headers["Retry-After"] = str(wait)
        return response

    def sign_in() -> str | None:
        with session_scope(_db(request)) as session:
            user = authenticate(session, name[:64], token[:200])
            return start_session(session, user).session_id if user is not None else None

    session_id = await run_in_threadpool(sign_in)
    if session_id is None:
        for throttle, key in keys:
            throttle.failed(key)
        return _login_page(request, 401, name=name, next_=next_, error="Wrong name or token.")
    by_name.succeeded(keys[0][1])
    response = RedirectResponse(safe_next(next_), 303)
    response.set_cookie(SESSION_COOKIE, session_id, **_cookie_options(request))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Sign out: the session is deleted on the server."""
    identity = await run_in_threadpool(identify, request)
    if identity is not None and identity.via == "session":
        await verify_csrf(request)
        cookie = request.cookies.get(SESSION_COOKIE, "")

        def forget() -> None:
            with session_scope(_db(request)) as session:
                end_session(session, cookie)

        await run_in_threadpool(forget)
    response = RedirectResponse("/login", 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/")
def home(_user: Annotated[User, Depends(require("search"))]) -> Response:
    """The start page is the search."""
    return RedirectResponse("/search", 303)


# --- search and exports ---------------------------------------------------------------

PAGE_SIZE = 50
SEARCH_FIELDS = ("q", "country", "city", "kind", "language", "status", "published", "captured")
MAX_QUERY = 2000  # characters of q: a query expanded with its translations is long
MAX_FILTER = 500


def search_params(request: Request) -> dict[str, str]:
    """The search filters of a request's query string (empty ones dropped, each trimmed)."""
    params = {}
    for name in SEARCH_FIELDS:
        value = request.query_params.get(name, "").strip()
        if value:
            params[name] = value[: MAX_QUERY if name == "q" else MAX_FILTER]
    return params


def expand_params(params: dict[str, str]) -> Any:
    """Put the translations of ``q``'s known words into ``q`` (see
    pipeline.catalog.translations); the Expansion, or None without ``q``."""
    from pipeline.catalog.translations import expansion

    if not params.get("q"):
        return None
    expanded = expansion(params["q"])
    params["q"] = expanded.text
    return expanded


def search_query(params: dict[str, str], limit: int | None = PAGE_SIZE, offset: int = 0) -> Any:
    """The engine's SearchQuery for the page's filters."""
    from pipeline.catalog.fulltext import SearchQuery

    filters = {k: v for k, v in params.items() if k != "q"}
    return SearchQuery(text=params.get("q"), limit=limit, offset=offset, **filters)


def run_search(request: Request, params: dict[str, str], limit: int | None, offset: int,
               facets: bool = True) -> Any:  # fmt: skip
    """Run the engine; a bad query (QueryError) becomes a 400 with its one line."""
    from pipeline.catalog.fulltext import search
    from pipeline.catalog.queries import QueryError

    try:
        with session_scope(_db(request)) as session:
            return search(session, search_query(params, limit, offset), facets=facets)
    except (QueryError, ValueError) as exc:
        raise HTTPException(400, str(exc).splitlines()[0] if str(exc) else "bad query") from None


def facet_groups(facets: Any) -> list[tuple[str, list[tuple[str, int]]]]:
    """The engine's facets as [(name, [(value, count), ...]), ...] in FACETS order."""
    from pipeline.catalog.fulltext import FACETS

    groups = []
    for name in FACETS:
        entries = (facets or {}).get(name) or []
        pairs = []
        for entry in entries:
            if isinstance(entry, dict):
                pairs.append((str(entry.get("value")), int(entry.get("count", 0))))
            else:
                value, count = entry
                pairs.append((str(value), int(count)))
        if pairs:
            groups.append((name, pairs))
    return groups


@router.get("/search")
def search_page(
    request: Request,
    _u: Annotated[User, Depends(require("search"))],
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    expand: bool = False,
) -> Response:
    """Results with highlighted snippets and facet counts; with ``expand`` (the "Add
    translations" button), ``q`` is first expanded, and the box shows it for editing."""
    from pipeline.catalog.fulltext import MAX_TERMS

    params = search_params(request)
    expansion = expand_params(params) if expand else None
    try:
        result = run_search(request, params, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    except HTTPException as exc:
        return render(request, "search.html", 400, params=params, result=None, groups=[],
                      page=page, pages=0, error=exc.detail, expansion=expansion,
                      max_terms=MAX_TERMS)  # fmt: skip
    from pipeline.catalog.fulltext import highlight_html

    pages = max(1, -(-result.total // PAGE_SIZE))
    with session_scope(_db(request)) as session:
        shots = screenshot_thumbs(session, [row["link_id"] for row in result.rows])
    return render(request, "search.html", params=params, result=result, highlight=highlight_html,
                  groups=facet_groups(result.facets), page=page, pages=pages,
                  shots=shots, expansion=expansion, max_terms=MAX_TERMS)  # fmt: skip


def screenshot_thumbs(session: Session, link_ids: list[int]) -> dict[int, str]:
    """Link id -> thumbnail URL of its latest screenshot, for the links that have one."""
    if not link_ids:
        return {}
    rows = session.execute(
        select(Capture.link_id, func.max(Capture.id))
        .where(Capture.role == "screenshot", Capture.link_id.in_(link_ids))
        .group_by(Capture.link_id)
    ).all()
    return {link_id: f"/archived/thumb/{capture_id}" for link_id, capture_id in rows}


def export_rows(request: Request, params: dict[str, str]) -> list[dict[str, Any]]:
    """Every row of the result set, in the export's columns."""
    result = run_search(request, params, None, 0, facets=False)
    return [{column: row.get(column) for column in EXPORT_COLUMNS} for row in result.rows]


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


@router.get("/search.csv")
def search_csv(request: Request, _u: Annotated[User, Depends(require("export"))]) -> Response:
    """The whole result set as CSV."""
    rows = export_rows(request, search_params(request))
    return Response(export_csv(rows), media_type="text/csv; charset=utf-8",
                    headers=_attachment("linkarchive-search.csv"))  # fmt: skip


@router.get("/search.jsonl")
def search_jsonl(request: Request, _u: Annotated[User, Depends(require("export"))]) -> Response:
    """The whole result set as JSON Lines."""
    lines = (
        json.dumps(row, ensure_ascii=False, default=str) + "\n"
        for row in export_rows(request, search_params(request))
    )
    return Response("".join(lines), media_type="application/jsonl; charset=utf-8",
                    headers=_attachment("linkarchive-search.jsonl"))  # fmt: skip


# --- a link, its captures and history --------------------------------------------------


def archive_timestamp(moment: datetime) -> str:
    """A capture time as the archived-URL timestamp (YYYYMMDDhhmmss)."""
    return moment.strftime("%Y%m%d%H%M%S")


def iso(moment: datetime | date | None) -> str | None:
    """A catalog time (naive UTC) or date as ISO 8601 text."""
    if moment is None:
        return None
    if isinstance(moment, datetime):
        return moment.isoformat(timespec="seconds") + "Z"
    return moment.isoformat()


def capture_facts(capture: Capture) -> dict[str, Any]:
    """A capture as the link page and the API show it."""
    return {
        "id": capture.id,
        "link_id": capture.link_id,
        "url": capture.url,
        "captured_at": iso(capture.captured_at),
        "role": capture.role,
        "record_type": capture.record_type,
        "http_status": capture.http_status,
        "content_type": capture.content_type,
        "size": capture.size,
        "payload_sha256": capture.payload_sha256,
        "record_id": capture.record_id,
        "warc_file": capture.warc_file,
        "warc_offset": capture.warc_offset,
        "refers_to": capture.refers_to,
    }


def metadata_facts(row: PageMetadataRow) -> dict[str, Any]:
    """The metadata extracted from a captured page (not its full text)."""
    return {
        "capture_id": row.capture_id,
        "title": row.title,
        "description": row.description,
        "author": row.author,
        "published": iso(row.published),
        "published_source": row.published_source,
        "language": row.language,
        "site_name": row.site_name,
        "canonical_url": row.canonical_url,
    }


def _distinct_metadata(rows: Sequence[PageMetadataRow]) -> list[dict[str, Any]]:
    """One entry per distinct set of metadata, newest first, naming every capture that
    had it (``capture_ids``): a page captured four times unchanged shows one table."""
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: r.capture_id, reverse=True):
        facts = metadata_facts(row)
        key = tuple(v for k, v in facts.items() if k != "capture_id")
        if not any(key):  # nothing was extracted (a revisit's row): no empty table
            continue
        group = groups.setdefault(key, {**facts, "capture_ids": []})
        group["capture_ids"].append(row.capture_id)
    return list(groups.values())


def _check_runs(session: Session, run_ids: set[int]) -> set[int]:
    """Which of ``run_ids`` were checks (a check's fetch is a crawl run whose judgements
    are ``link_checks``; a rebuilt run no longer knows its mode)."""
    if not run_ids:
        return set()
    return set(
        session.scalars(select(LinkCheck.run_id).where(LinkCheck.run_id.in_(run_ids)).distinct())
    )


def link_details(session: Session, link_id: int) -> dict[str, Any]:
    """Everything the link page shows: place, link, captures, metadata, images, history.

    Raises 404 for an unknown link."""
    from pipeline.catalog.queries import QueryError, link_captures

    try:
        link, captures = link_captures(session, link_id)
    except QueryError:
        raise HTTPException(404, f"There is no link {link_id}.") from None
    page_ids = [c.id for c in captures if c.role == "page"]
    metadata = session.scalars(
        select(PageMetadataRow).where(PageMetadataRow.capture_id.in_(page_ids))
    ).all()
    images = session.execute(
        select(Media.url, Capture.captured_at, Capture.id)
        .join(Capture, Capture.id == Media.capture_id)
        .where(Media.link_id == link_id, Media.kind == "image")
        .order_by(Capture.captured_at, Media.id)
    ).all()
    history: list[dict[str, Any]] = [
        {"at": iso(c.checked_at), "what": "check", "status": c.status,
         "http_status": c.http_status, "final_url": c.final_url, "capture_id": c.capture_id,
         "detail": _change_text(c.change) if c.confirmed else "not yet confirmed"}
        for c in session.scalars(select(LinkCheck).where(LinkCheck.link_id == link_id))
    ]  # fmt: skip
    outcomes = session.scalars(select(CrawlOutcome).where(CrawlOutcome.link_id == link_id)).all()
    checks = _check_runs(session, {o.run_id for o in outcomes if o.run_id is not None})
    history += [  # a check's own fetch is its "check" row above, not a crawl too
        {"at": iso(o.checked_at), "what": "crawl", "status": o.status,
         "http_status": o.http_status, "final_url": o.final_url, "capture_id": o.capture_id,
         "detail": o.error or ""}
        for o in outcomes if o.run_id not in checks
    ]  # fmt: skip
    history.sort(key=lambda entry: entry["at"] or "", reverse=True)
    latest = _latest(captures, "screenshot")
    dom = _latest(captures, "dom")
    checked = last_check(session, link.id)
    return {
        "id": link.id,
        "country": link.country.name,
        "city": link.city.name if link.city else None,
        "kind": link.kind,
        "label": link.label,
        "url": link.url,
        "status": standing_label(link.status, link.failures),
        "status_class": link.status,
        "last_check": check_label(checked),
        "last_checked_at": iso(checked.checked_at) if checked else None,
        "final_url": link.final_url,
        "last_capture_id": link.last_capture_id,
        "captures": [capture_facts(c) for c in captures],
        "metadata": _distinct_metadata(metadata),
        "images": [
            {
                "url": url,
                "capture_id": capture_id,
                "src": f"/archived/web/{archive_timestamp(at)}/{url}",
                "thumb": f"/archived/thumb/{capture_id}",
            }
            for url, at, capture_id in images
        ],  # fmt: skip
        "history": history,
        # A browser capture's full-page screenshot, shown first: what the page looked like.
        "screenshot": latest
        and {
            "capture_id": latest.id,
            "captured_at": iso(latest.captured_at),
            "src": f"/archived/{latest.id}/",
            "view": f"/captures/{latest.id}/view",
            "dom_view": dom and f"/captures/{dom.id}/view",
        },
    }


def _latest(captures: list[Capture], role: str) -> Capture | None:
    """The newest of ``captures`` with ``role``."""
    found = [c for c in captures if c.role == role]
    return max(found, key=lambda c: (c.captured_at, c.id)) if found else None


def _change_text(change: dict | None) -> str:
    if not change:
        return ""
    return "; ".join(f"{key}: {value}" for key, value in change.items())[:300]


@router.get("/links/{link_id}")
def link_page(
    request: Request,
    link_id: Id,
    _u: Annotated[User, Depends(require("view"))],
) -> Response:
    """A link: its place, captures, metadata, archived images and history."""
    with session_scope(_db(request)) as session:
        details = link_details(session, link_id)
    target = legal_target(details)
    return render(request, "link.html", link=details, target=target and target["id"],
                  target_at=target and target["captured_at"])  # fmt: skip


def legal_target(details: dict[str, Any]) -> dict[str, Any] | None:
    """The capture the payload and evidence forms act on: the link's last capture, else its
    newest page capture."""
    captures = details["captures"]
    chosen = [c for c in captures if c["id"] == details["last_capture_id"]]
    chosen = chosen or [c for c in captures if c["role"] == "page"][-1:]
    return chosen[0] if chosen else None


@router.get("/captures/{capture_id}/cite")
def cite_capture(
    request: Request,
    capture_id: Id,
    _u: Annotated[User, Depends(require("export"))],
    style: Annotated[str, Query(max_length=20)] = "apa",
) -> Response:
    """A citation of a capture, as text."""
    text, media_type = citation_text(request, capture_id, style)
    return Response(text, media_type=media_type)


def citation_text(request: Request, capture_id: int, style: str) -> tuple[str, str]:
    """A capture's citation in ``style`` and its media type; 400 for an unknown style, 404
    for an unknown capture."""
    from pipeline.catalog.queries import QueryError
    from pipeline.citation import STYLES, citation_facts, cite, public_url

    if style not in STYLES:
        raise HTTPException(400, f"unknown citation style; choose one of {', '.join(STYLES)}")
    # Never the request's Host: a forged one would end up in footnotes.
    base = public_url()
    try:
        with session_scope(_db(request)) as session:
            facts = citation_facts(session, capture_id, base)
    except QueryError:
        raise HTTPException(404, f"There is no capture {capture_id}.") from None
    media_type = "application/json" if style == "csl-json" else "text/plain; charset=utf-8"
    return cite(facts, style), media_type


# --- countries -------------------------------------------------------------------------

CHART_COLOURS = {"archived": "#2e7d32", "changed": "#f9a825", "failing": "#ef6c00",
                 "dead": "#c62828", "other": "#9e9e9e"}  # fmt: skip
TABLE_COUNTS = ("links", "archived", "changed", "failing", "dead", "soft404", "blocked", "error",
                "pending")  # fmt: skip


def country_chart(session: Session, rows: list[dict[str, Any]]) -> Markup:
    """Per country, a bar of archived / changed / dead / other links (inline SVG)."""
    from pipeline.linkcheck.report import bar_chart

    codes = dict(session.execute(select(Country.name, Country.code)).all())
    totals: dict[str, Counter[str]] = {}
    for row in rows:
        counts = totals.setdefault(row["country"], Counter())
        counts["archived"] += row["alive"] + row["redirected"]
        counts["changed"] += row["changed"]
        counts["failing"] += row["failing"]
        counts["dead"] += row["dead"] + row["soft404"]
        counts["other"] += (row["links"] - row["archived"] - row["failing"] - row["dead"]
                            - row["soft404"])  # fmt: skip
    points = sorted(totals.items())
    svg = bar_chart(points, CHART_COLOURS, label=lambda name: (codes.get(name) or name[:3]),
                    aria="links per country: archived, changed, failing, dead, other")  # fmt: skip
    return Markup(svg.replace("<svg ", '<svg class="chart" ', 1))  # noqa: S704 - escaped by report


@router.get("/countries")
def countries_page(request: Request, _u: Annotated[User, Depends(require("view"))]) -> Response:
    """Per country and city, like ``linkarchive status``, with a chart."""
    from pipeline.catalog.queries import status_summary

    with session_scope(_db(request)) as session:
        rows = status_summary(session)
        chart = country_chart(session, rows)
    return render(request, "countries.html", rows=rows, counts=TABLE_COUNTS, chart=chart,
                  colours=CHART_COLOURS)  # fmt: skip


# --- the admin's users -----------------------------------------------------------------


def _users_page(request: Request, status_code: int = 200, **context: Any) -> Response:
    with session_scope(_db(request)) as session:
        people = [
            {"name": u.name, "role": u.role, "created": iso(u.created_at),
             "last_login": iso(u.last_login_at)}
            for u in list_users(session)
        ]  # fmt: skip
    return render(request, "users.html", status_code, users=people, roles=ROLES, **context)


@router.get("/admin/users")
def users_page(
    request: Request,
    _u: Annotated[User, Depends(require("users"))],
    removed: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """Every user; forms to add and remove."""
    flash = f"Removed user {removed}." if removed and NAME_PATTERN.fullmatch(removed) else ""
    return _users_page(request, flash=flash)


@router.post("/admin/users", dependencies=[Depends(verify_csrf)])
async def users_add(request: Request, _u: Annotated[User, Depends(require("users"))]) -> Response:
    """Add a user and show their token once."""
    fields = await form_data(request)
    name, role = fields.get("name", "").strip(), fields.get("role", "")

    def add() -> str:
        with session_scope(_db(request)) as session:
            return add_user(session, name, role)[1]

    try:
        token = await run_in_threadpool(add)
    except UsersError as exc:
        return await run_in_threadpool(_users_page, request, 400, error=str(exc))
    return render(request, "user_token.html", 201, name=name, role=role, token=token)


@router.post("/admin/users/{name}/delete", dependencies=[Depends(verify_csrf)])
def users_delete(
    request: Request, name: str, user: Annotated[User, Depends(require("users"))]
) -> Response:
    """Remove a user (never yourself)."""
    if name == user.name:
        return _users_page(request, 400, error="You cannot remove yourself.")
    try:
        with session_scope(_db(request)) as session:
            remove_user(session, name)
    except UsersError:
        raise HTTPException(404, "There is no such user.") from None
    return RedirectResponse(f"/admin/users?{urlencode({'removed': name})}", 303)
