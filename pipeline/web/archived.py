"""The archived page as captured, in a sandboxed frame; payload and evidence downloads.

An archived document is served with a ``sandbox`` CSP: an opaque origin with no scripts
whose resources come from the archive only. Browsers send no SameSite cookies with the
requests of such a document, so the resources it loads carry a *view pass* in their path
(``/archived/web/PASS/TIMESTAMP/URL``): an HMAC over the user's id, token hash and an
expiry, keyed by a secret kept in the data home. It stops working when it expires, or
when the user is removed or given a new token. Nothing here touches a file named by a
request: WARC files are found through catalog rows (:mod:`pipeline.retrieval`).

Thumbnails of archived images (``/archived/thumb/ID``) are renditions for viewing, cached
in the data home under ``cache/thumbs/`` and named by the SHA-256 of the image's bytes; the
archived bytes are never changed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from PIL import Image, ImageOps
from sqlalchemy import select
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from archive import ContentDecodingError, decoded_payload
from archive.signing import create_secret_file
from pipeline.catalog import session_scope
from pipeline.catalog.importer import utcnow
from pipeline.catalog.models import Capture, User, WebSession
from pipeline.catalog.queries import QueryError, get_capture, payload_capture
from pipeline.config import Paths
from pipeline.crawlcontext import RENDERED_URNS
from pipeline.evidence.package import EvidenceError
from pipeline.export import ExportError
from pipeline.retrieval import (
    PayloadTooLarge,
    RetrievalError,
    export_package,
    read_payload,
    read_stored,
    retrieve_payload,
)
from pipeline.users import allowed
from pipeline.web.auth import form_data, identify, require, verify_csrf
from pipeline.web.params import Id
from pipeline.web.rewrite import (
    archived_url,
    parse_timestamp,
    rewrite_css,
    rewrite_html,
    rewrite_url,
    timestamp14,
)
from pipeline.web.templating import render

router = APIRouter()
log = logging.getLogger(__name__)

ARCHIVED_CSP = (
    "sandbox; default-src 'none'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "font-src 'self'; media-src 'self'; frame-ancestors 'self'"
)
HTML_TYPES = {"text/html", "application/xhtml+xml"}
MAX_REASON = 1000
MAX_REQUESTED_BY = 500
PASS_LIFETIME = 12 * 3600  # seconds, as long as a web session
WEB_PREFIX = "/archived/web"
_CANDIDATES = 200  # captures of one URL considered when choosing the nearest
_MIME = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_CHARSET = re.compile(r";\s*charset=\"?([A-Za-z0-9_.:-]{1,40})\"?\s*(?:;|$)", re.I)
THUMB_SIDE = 320  # px: the longest side of a thumbnail
# Larger images get no thumbnail (decompression bombs): 24 Mpx decode to at most ~100 MB.
THUMB_MAX_PIXELS = 24_000_000
# Payloads decoded for a view or a thumbnail stop at these sizes (a gzip bomb of 400 KB on
# the wire decodes to 400 MB); larger ones are downloaded instead (`get`, the payload form).
VIEW_MAX_BYTES = int(os.environ.get("LINKARCHIVE_VIEW_MAX_BYTES", 64 << 20))
THUMB_MAX_BYTES = 32 << 20
# Thumbnails made at once: each may hold a decoded image of up to THUMB_MAX_PIXELS.
_THUMB_WORK = threading.BoundedSemaphore(2)
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _archived_headers(disposition: str = "inline") -> dict[str, str]:
    return {
        "Content-Security-Policy": ARCHIVED_CSP,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private",
        "Content-Disposition": disposition,
        "Referrer-Policy": "no-referrer",
    }


def _where(request: Request) -> Paths:
    return request.app.state.paths


# --------------------------------------------------------------------------- view passes


def _pass_secret(where: Paths) -> bytes:
    """The data home's secret for view passes (created on first use, mode 0600)."""
    return _secret_at(where.home / "keys" / "view-pass.key")


@lru_cache(maxsize=8)
def _secret_at(path: Path) -> bytes:
    # Read once per process: every resource of an archived page checks a pass.
    path.parent.mkdir(parents=True, exist_ok=True)
    create_secret_file(path, secrets.token_hex(32).encode())  # unless it exists
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise RuntimeError(f"{path} is not a view pass secret")
    return secret.encode()


def _pass_mac(where: Paths, user: User, expires: int, session_ref: int) -> str:
    message = f"{user.id}.{expires}.{session_ref}.{user.token_sha256}".encode()
    digest = hmac.new(_pass_secret(where), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def mint_pass(where: Paths, user: User, session_ref: int = 0) -> str:
    """A view pass for ``user``: ``ID.EXPIRES.SESSION.MAC`` (no '/', always a '.'). Minted
    in a web session (``session_ref``, its row id), it dies with that session (sign-out,
    expiry); minted for a bearer token (0), with the token."""
    expires = int(time.time()) + PASS_LIFETIME
    return f"{user.id}.{expires}.{session_ref}.{_pass_mac(where, user, expires, session_ref)}"


def pass_user(where: Paths, token: str) -> User | None:
    """The user of a valid, unexpired view pass who may still view, in a web session that
    is still open; else None."""
    parts = token.split(".")
    if len(parts) != 4 or not all(part.isdigit() for part in parts[:3]) or not parts[3]:
        return None
    user_id, expires, session_ref = (int(part) for part in parts[:3])
    if expires < time.time():
        return None
    with session_scope(where.database_url) as session:
        user = session.get(User, user_id)
        if user is None or not allowed(user.role, "view"):
            return None
        if not hmac.compare_digest(parts[3], _pass_mac(where, user, expires, session_ref)):
            return None
        if session_ref:
            web = session.get(WebSession, session_ref)
            if web is None or web.user_id != user.id or web.expires_at <= utcnow():
                return None
        return user


def _prefix(where: Paths, request: Request, user: User) -> str:
    identity = identify(request)
    ref = identity.session_ref if identity is not None and identity.user.id == user.id else 0
    return f"{WEB_PREFIX}/{mint_pass(where, user, ref)}"


# --------------------------------------------------------------------------- serving


def _not_archived() -> Response:
    body = (
        '<!doctype html><meta charset="utf-8"><title>Not archived</title>'
        "<p>This resource is not in the archive.</p>"
    )
    return Response(body, 404, media_type="text/html; charset=utf-8", headers=_archived_headers())


def _server_error(exc: Exception, capture_id: int) -> HTTPException:
    log.error("capture %s cannot be read: %s", capture_id, exc)
    if isinstance(exc, RetrievalError):
        return HTTPException(500, f"capture {capture_id} cannot be read: {exc}")
    return HTTPException(
        500, f"capture {capture_id} cannot be read: the archived record is damaged"
    )


def _mime(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _served_type(content_type: str | None) -> str:
    """The archived Content-Type reduced to ``type/subtype`` (and a plain charset for text):
    anything a browser might read otherwise (``text/plain, text/html``) becomes
    application/octet-stream."""
    mime = _mime(content_type)
    if not _MIME.fullmatch(mime):
        return "application/octet-stream"
    charset = _CHARSET.search(content_type or "")
    return f"{mime}; charset={charset.group(1)}" if mime.startswith("text/") and charset else mime


def document_url(url: str) -> str:
    """The URL a capture's relative links resolve against: a browser capture's rendered DOM
    (``urn:dom:<page URL>``) is the page's own document."""
    for prefix in RENDERED_URNS:
        if url.startswith(prefix):
            return url[len(prefix) :]
    return url


def _serve(where: Paths, capture_id: int, prefix: str) -> Response:
    """A capture as the archived frame shows it: HTML and CSS rewritten, redirects followed
    within the archive, everything else byte-exact (content-encoding removed)."""
    with session_scope(where.database_url) as session:
        capture = get_capture(session, capture_id)
        holder, record = read_stored(session, where, capture)
    timestamp = timestamp14(capture.captured_at)
    base = document_url(capture.url)
    status = capture.http_status or holder.http_status or 200
    location = record.http_header("Location")
    if 300 <= status < 400 and location:
        target = rewrite_url(location, base, timestamp, prefix=prefix, navigation=True)
        if target and not target.startswith("#"):
            return RedirectResponse(target, 302, headers=_archived_headers())
    try:
        body = decoded_payload(record, limit=VIEW_MAX_BYTES + 1)
    except ContentDecodingError as exc:
        raise _server_error(exc, capture_id) from exc
    if len(body) > VIEW_MAX_BYTES:
        raise HTTPException(
            413,
            f"capture {capture_id} decodes to more than {VIEW_MAX_BYTES >> 20} MiB: too large "
            "to show here; download its payload instead",
        )
    content_type = record.http_header("Content-Type") or holder.content_type
    mime = _mime(content_type)
    headers = _archived_headers()
    headers["X-Archived-Status"] = str(status)
    if mime in HTML_TYPES:
        page = rewrite_html(body, base, timestamp, content_type=content_type, prefix=prefix)
        return Response(page, media_type="text/html; charset=utf-8", headers=headers)
    if mime == "text/css":
        css = rewrite_css(body, base, timestamp, content_type=content_type, prefix=prefix)
        return Response(css, media_type="text/css; charset=utf-8", headers=headers)
    return Response(body, media_type=_served_type(content_type), headers=headers)


def _url_variants(url: str) -> list[str]:
    """The URL as asked, and with / without a trailing slash (``http://h`` == ``http://h/``)."""
    variants = [url]
    base, question, query = url.partition("?")
    other = base[:-1] if base.endswith("/") else base + "/"
    variants.append(other + question + query)
    return variants


def nearest_capture(where: Paths, url: str, moment: datetime) -> int | None:
    """The id of the response or revisit capture of ``url`` closest to ``moment``."""
    with session_scope(where.database_url) as session:
        rows = session.execute(
            select(Capture.id, Capture.captured_at)
            .where(
                Capture.url.in_(_url_variants(url)),
                Capture.record_type.in_(("response", "revisit")),
            )
            .limit(_CANDIDATES)
        ).all()
    if not rows:
        return None
    return min(rows, key=lambda r: (abs((r.captured_at - moment).total_seconds()), -r.id)).id


def _asked_url(request: Request, rest: str) -> str:
    """The original URL of an ``/archived/web/...`` request, rebuilt from the raw path (the
    decoded path loses percent-escapes) and the query string."""
    query = request.scope.get("query_string", b"").decode("latin-1")
    url = rest + (f"?{query}" if query else "")
    for scheme in ("http:/", "https:/"):  # a proxy or client may have merged '//'
        if url.startswith(scheme) and not url.startswith(scheme + "/"):
            url = scheme + "/" + url[len(scheme) :]
    return url


def _raw_rest(request: Request) -> str:
    raw = request.scope.get("raw_path") or request.scope["path"].encode()
    text = raw.decode("latin-1")
    marker = WEB_PREFIX + "/"
    return text[text.index(marker) + len(marker) :] if marker in text else ""


@router.get("/archived/web/{rest:path}")
def archived_web(request: Request, rest: str) -> Response:
    """An archived resource nearest a time: ``/archived/web/[PASS/]TIMESTAMP/URL``."""
    where = _where(request)
    del rest  # the decoded path; the raw one keeps the URL's escapes
    head, _, remainder = _raw_rest(request).partition("/")
    if "." in head:  # a view pass from an archived document
        user = pass_user(where, head)
        if user is None:
            return Response(
                "This view pass expired: reload the page.",
                403,
                media_type="text/plain; charset=utf-8",
                headers=_archived_headers(),
            )
        prefix = f"{WEB_PREFIX}/{head}"
        timestamp, _, remainder = remainder.partition("/")
    else:
        user = require("view")(request)
        prefix, timestamp = _prefix(where, request, user), head
    moment = parse_timestamp(timestamp)
    url = _asked_url(request, remainder)
    if moment is None or not url.lower().startswith(("http://", "https://")):
        return _not_archived()
    found = nearest_capture(where, url, moment)
    if found is None:
        return _not_archived()
    try:
        return _serve(where, found, prefix)
    except (RetrievalError, ContentDecodingError) as exc:
        raise _server_error(exc, found) from exc


@router.get("/archived/{capture_id:int}/")
def archived_capture(
    request: Request, capture_id: Id, user: Annotated[User, Depends(require("view"))]
) -> Response:
    """The archived document of a capture, rewritten, with the archived CSP."""
    where = _where(request)
    try:
        return _serve(where, capture_id, _prefix(where, request, user))
    except QueryError as exc:
        raise HTTPException(404, str(exc)) from exc
    except (RetrievalError, ContentDecodingError) as exc:
        raise _server_error(exc, capture_id) from exc


@router.get("/captures/{capture_id:int}/view")
def capture_view(
    request: Request, capture_id: Id, _user: Annotated[User, Depends(require("view"))]
) -> Response:
    """The capture's facts and its archived rendition in a sandboxed frame."""
    with session_scope(_where(request).database_url) as session:
        try:
            capture = get_capture(session, capture_id)
            holder = payload_capture(session, capture)
        except QueryError as exc:
            raise HTTPException(404, str(exc)) from exc
    mime = _mime(holder.content_type or capture.content_type)
    shown = "html" if mime in HTML_TYPES else "image" if mime.startswith("image/") else "file"
    return render(
        request,
        "capture_view.html",
        capture=capture,
        holder=holder,
        shown=shown,
        archived_web=archived_url(capture.url, timestamp14(capture.captured_at)),
    )


# --------------------------------------------------------------------------- thumbnails


class NotAnImage(Exception):
    """Archived bytes that cannot become a thumbnail."""


def make_thumbnail(body: bytes, side: int = THUMB_SIDE) -> bytes:
    """A WebP rendition of an image: longest side at most ``side`` px, aspect kept, EXIF
    orientation applied, first frame only. Raises NotAnImage for bytes Pillow cannot decode
    and for images of more than THUMB_MAX_PIXELS pixels."""
    try:
        with Image.open(io.BytesIO(body)) as image:
            width, height = image.size
            if width * height > THUMB_MAX_PIXELS:
                raise NotAnImage(f"{width}x{height} pixels: too large for a thumbnail")
            image.draft("RGB", (side, side))  # JPEG: decode at a reduced scale
            shown = ImageOps.exif_transpose(image)
            alpha = shown.mode in ("RGBA", "LA", "PA") or "transparency" in shown.info
            shown = shown.convert("RGBA" if alpha else "RGB")
            shown.thumbnail((side, side), Image.Resampling.LANCZOS)
            out = io.BytesIO()
            shown.save(out, "WEBP", quality=80)
    except NotAnImage:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise NotAnImage(str(exc) or type(exc).__name__) from exc
    return out.getvalue()


def thumb_path(where: Paths, sha256: str | None) -> Path | None:
    """Where the thumbnail of image bytes with this SHA-256 (hex) is cached, if it is one."""
    if not sha256 or not _SHA256.fullmatch(sha256):
        return None
    return where.home / "cache" / "thumbs" / f"{sha256}-{THUMB_SIDE}.webp"


def _failure_marker(where: Paths, sha256: str | None) -> Path | None:
    """Where a failed thumbnail of these image bytes is remembered (so a bomb is decoded
    once, not on every request)."""
    path = thumb_path(where, sha256)
    return path.with_suffix(".failed") if path is not None else None


def _mark_failed(marker: Path | None) -> None:
    if marker is not None:
        try:
            _write_atomically(marker, b"")
        except OSError as exc:
            log.warning("thumbnail failure not remembered: %s", exc)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _read_cached(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError:
        return None


def _thumb_answer(status: int, text: str) -> Response:
    return Response(
        text, status, media_type="text/plain; charset=utf-8", headers=_archived_headers()
    )


def _thumb_response(data: bytes, media_type: str = "image/webp") -> Response:
    headers = _archived_headers()
    headers["Cache-Control"] = "private, max-age=86400"  # a capture's bytes never change
    return Response(data, media_type=media_type, headers=headers)


@router.get("/archived/thumb/{capture_id:int}")
def archived_thumb(
    request: Request, capture_id: Id, _user: Annotated[User, Depends(require("view"))]
) -> Response:
    """A thumbnail of an image capture (a revisit's original), cached in the data home.

    SVG is served as archived (it scales by itself); a capture that is not an image is
    404, an image that cannot be decoded (or is too large) 415."""
    where = _where(request)
    with session_scope(where.database_url) as session:
        try:
            capture = get_capture(session, capture_id)
            holder = payload_capture(session, capture)
        except QueryError:
            return _thumb_answer(404, "Not archived.")
        mime = _mime(holder.content_type or capture.content_type)
        digest = holder.payload_sha256  # of the bytes as sent: the image's, unless encoded
    if not mime.startswith("image/"):
        return _thumb_answer(404, "Not an image.")
    cached = _read_cached(thumb_path(where, digest)) if mime != "image/svg+xml" else None
    if cached is not None:
        return _thumb_response(cached)
    failed = _failure_marker(where, digest)
    if failed is not None and failed.exists():  # decoding it failed before: not again
        return _thumb_answer(415, "This archived image cannot be shown as a thumbnail.")
    try:
        got = read_payload(where, capture_id, limit=THUMB_MAX_BYTES)
    except QueryError:
        return _thumb_answer(404, "Not archived.")
    except PayloadTooLarge as exc:
        log.info("capture %s has no thumbnail: %s", capture_id, exc)
        _mark_failed(failed)
        return _thumb_answer(415, "This archived image is too large for a thumbnail.")
    except (RetrievalError, ContentDecodingError) as exc:
        raise _server_error(exc, capture_id) from exc
    mime = _mime(got.content_type)
    if mime == "image/svg+xml":
        return _thumb_response(got.body, mime)
    if not mime.startswith("image/"):
        return _thumb_answer(404, "Not an image.")
    path = thumb_path(where, got.sha256)
    cached = _read_cached(path) if got.sha256 != digest else None  # content-encoded
    if cached is not None:
        return _thumb_response(cached)
    try:
        with _THUMB_WORK:
            data = make_thumbnail(got.body)
    except NotAnImage as exc:
        log.info("capture %s has no thumbnail: %s", capture_id, exc)
        _mark_failed(failed)
        return _thumb_answer(415, "This archived image cannot be shown as a thumbnail.")
    if path is not None:
        try:
            _write_atomically(path, data)
        except OSError as exc:
            log.warning("thumbnail of capture %s not cached: %s", capture_id, exc)
    return _thumb_response(data)


# --------------------------------------------------------------------------- downloads


def _reason(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise HTTPException(422, "a reason is required: say why you need this")
    if len(value) > MAX_REASON:
        raise HTTPException(422, f"the reason is too long (at most {MAX_REASON} characters)")
    return value.strip()


def _requested_by(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or len(value) > MAX_REQUESTED_BY:
        raise HTTPException(422, f"requested_by must be text of at most {MAX_REQUESTED_BY} chars")
    return value.strip()


async def _json_fields(request: Request) -> dict[str, Any]:
    try:
        fields = await request.json()
    except ValueError:
        raise HTTPException(400, 'send a JSON object: {"reason": "..."}') from None
    if not isinstance(fields, dict):
        raise HTTPException(400, 'send a JSON object: {"reason": "..."}')
    return fields


async def _payload(request: Request, capture_id: int, user: User, fields: dict) -> Response:
    reason = _reason(fields.get("reason"))
    where = _where(request)
    try:
        got = await run_in_threadpool(
            retrieve_payload, where, capture_id, actor=user.name, reason=reason
        )
    except QueryError as exc:
        raise HTTPException(404, str(exc)) from exc
    except (RetrievalError, ContentDecodingError) as exc:
        raise _server_error(exc, capture_id) from exc
    headers = _archived_headers(f'attachment; filename="{got.filename}"')
    headers["X-Payload-SHA256"] = got.sha256
    headers["Cache-Control"] = "private, no-store"
    return Response(got.body, media_type="application/octet-stream", headers=headers)


async def _evidence(request: Request, capture_id: int, user: User, fields: dict) -> Response:
    reason = _reason(fields.get("reason"))
    requested_by = _requested_by(fields.get("requested_by"))
    where = _where(request)
    folder = Path(tempfile.mkdtemp(prefix="evidence-", dir=where.ensure().jobs))
    output = folder / f"evidence-capture-{capture_id}.wacz"

    def export() -> None:
        export_package(
            where,
            output,
            reason=reason,
            requested_by=requested_by,
            actor=user.name,
            capture_id=capture_id,
        )

    try:
        await run_in_threadpool(export)
    except BaseException as exc:
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, QueryError):
            raise HTTPException(404, str(exc)) from exc
        if isinstance(exc, EvidenceError):
            raise HTTPException(422, str(exc)) from exc
        if isinstance(exc, RetrievalError | ExportError | ContentDecodingError):
            raise _server_error(exc, capture_id) from exc
        raise
    headers = _archived_headers(f'attachment; filename="{output.name}"')
    headers["Cache-Control"] = "private, no-store"
    return FileResponse(
        output,
        media_type="application/zip",
        headers=headers,
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )


@router.post("/captures/{capture_id:int}/payload", dependencies=[Depends(verify_csrf)])
async def payload_download(
    request: Request, capture_id: Id, user: Annotated[User, Depends(require("retrieve"))]
) -> Response:
    """The archived payload, exactly; recorded in the custody ledger with the reason."""
    return await _payload(request, capture_id, user, await form_data(request))


@router.post("/captures/{capture_id:int}/evidence", dependencies=[Depends(verify_csrf)])
async def evidence_download(
    request: Request, capture_id: Id, user: Annotated[User, Depends(require("evidence"))]
) -> Response:
    """An evidence package (.wacz) of the capture; recorded in the custody ledger."""
    return await _evidence(request, capture_id, user, await form_data(request))


@router.post("/api/v1/captures/{capture_id:int}/payload", dependencies=[Depends(verify_csrf)])
async def api_payload(
    request: Request, capture_id: Id, user: Annotated[User, Depends(require("retrieve"))]
) -> Response:
    """The archived payload, exactly (JSON body ``{"reason": ...}``)."""
    return await _payload(request, capture_id, user, await _json_fields(request))


@router.post("/api/v1/captures/{capture_id:int}/evidence", dependencies=[Depends(verify_csrf)])
async def api_evidence(
    request: Request, capture_id: Id, user: Annotated[User, Depends(require("evidence"))]
) -> Response:
    """An evidence package (JSON body ``{"reason": ..., "requested_by": ...}``)."""
    return await _evidence(request, capture_id, user, await _json_fields(request))
