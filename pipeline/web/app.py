"""The FastAPI app: routers, the sign-in gate, error pages and security headers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.catalog import engine_for
from pipeline.config import Paths
from pipeline.web import api, archived, manage, pages
from pipeline.web.auth import MAX_FORM_BYTES, NotSignedIn, identify, sign_in_throttles
from pipeline.web.templating import env, render

STATIC = Path(__file__).resolve().parent / "static"
APP_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"cross-origin-opener-policy": b"same-origin",
}
log = logging.getLogger(__name__)


def wants_json(request: Request) -> bool:
    """API routes answer in JSON; everything else (the API's docs page too) is a page."""
    return request.url.path.startswith("/api/") and request.url.path != "/api/docs"


class BodyLimit:
    """Refuses, before reading a byte of it, a request body over ``limit`` (413) or of
    unknown length (411): every form and JSON body of the app is small, and a body read
    whole before the size or sign-in checks cost memory to anyone who could connect."""

    def __init__(self, app: ASGIApp, limit: int = MAX_FORM_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            declared = headers.get(b"content-length")
            status = 0
            if declared is not None:
                if not declared.isdigit() or int(declared) > self.limit:
                    status = 413
            elif headers.get(b"transfer-encoding"):
                status = 411
            if status:
                text = b"request body too large" if status == 413 else b"length required"
                await send({"type": "http.response.start", "status": status, "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(text)).encode()), (b"connection", b"close"),
                ]})  # fmt: skip
                await send({"type": "http.response.body", "body": text})
                return
        await self.app(scope, receive, send)


class SecurityHeaders:
    """Adds the app's security headers to every response (a CSP only where the route set
    none: archived documents bring their own) and turns an unhandled error into a plain
    500 page, never a traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name not in present:
                        headers.append((name, value))
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", APP_CSP.encode()))
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            log.exception("unhandled error on %s", scope.get("path"))
            if started:
                raise
            request = Request(scope)
            if wants_json(request):
                response: Response = JSONResponse({"detail": "internal error"}, 500)
            else:
                page = env.get_template("error.html").render(
                    request=request, user=None, csrf_token="", can=lambda _p: False,
                    code=500, message="Something went wrong on our side.",
                )  # fmt: skip
                response = Response(page, 500, media_type="text/html")
            await response(scope, receive, send_with_headers)


def _sign_in(request: Request) -> Response:
    if wants_json(request):
        return JSONResponse(
            {"detail": "sign in: send Authorization: Bearer TOKEN"},
            401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", 303)


def error_response(request: Request, status_code: int, message: str) -> Response:
    """The error as JSON (API) or as the error page."""
    if wants_json(request):
        return JSONResponse({"detail": message}, status_code)
    return render(request, "error.html", status_code, code=status_code, message=message)


async def _not_signed_in(request: Request, _exc: Exception) -> Response:
    return _sign_in(request)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    # Unknown paths are not revealed to anonymous visitors either.
    if await run_in_threadpool(identify, request) is None:
        return _sign_in(request)
    message = exc.detail if isinstance(exc.detail, str) else "request refused"
    if exc.status_code == 404 and message == "Not Found":
        message = "There is nothing here."
    response = error_response(request, exc.status_code, message)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if await run_in_threadpool(identify, request) is None:
        return _sign_in(request)
    if all(error.get("loc", ("",))[0] == "path" for error in exc.errors()):
        return error_response(request, 404, "There is no such page.")  # an id out of range
    problems = "; ".join(
        f"{'.'.join(str(p) for p in error.get('loc', ())[1:]) or 'request'}: {error.get('msg')}"
        for error in exc.errors()
    )
    return error_response(request, 422, f"bad request: {problems}"[:500])


def create_app(where: Paths) -> FastAPI:
    """The web app over the catalog of a data home."""
    engine_for(where.database_url)  # migrate now, not on the first request
    app = FastAPI(
        title="linkarchive",
        summary="Search, cite and retrieve the archived web record of rallies.",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served by pipeline.web.api, to signed-in users only
    )
    app.state.paths = where
    app.state.sign_in_throttles = sign_in_throttles()
    handlers: dict[Any, Any] = {
        NotSignedIn: _not_signed_in,
        StarletteHTTPException: _http_error,
        RequestValidationError: _invalid_request,
    }
    for exc_class, handler in handlers.items():
        app.add_exception_handler(exc_class, handler)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimit)  # outermost: before anything reads the body
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (pages, api, archived, manage):
        app.include_router(module.router)
    return app
