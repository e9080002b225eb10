"""Who is asking: a session cookie or ``Authorization: Bearer``; permissions and CSRF.

Route use::

    @router.post("/x", dependencies=[Depends(verify_csrf)])
    async def x(
        request: Request, user: Annotated[User, Depends(require("manage"))]
    ) -> Response:
        fields = await form_data(request)

``python-multipart`` is not a dependency: forms are ``application/x-www-form-urlencoded``
and read with :func:`form_data`, not FastAPI's ``Form()``.
"""

from __future__ import annotations

import hmac
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl

from fastapi import HTTPException, Request

from pipeline.catalog import session_scope
from pipeline.catalog.models import User
from pipeline.users import allowed, session_user, user_for_token

SESSION_COOKIE = "linkarchive_session"
LOGIN_CSRF_COOKIE = "linkarchive_login_csrf"  # double-submit token of the login form
MAX_FORM_BYTES = 1 << 20


class Throttle:
    """Failed sign-ins per key (a user name, a client address) in a sliding ``window`` of
    seconds: past ``limit`` of them, the key is refused until the oldest ages out. At most
    ``keys`` keys are remembered (the least recently failing forgotten first), so many
    made-up names cannot grow it without end. ``clock`` is injectable for tests."""

    def __init__(
        self,
        limit: int,
        window: float,
        keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.window, self.keys, self.clock = limit, window, keys, clock
        self._failures: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> int:
        """Seconds until ``key`` may try again (0: now)."""
        with self._lock:
            recent = self._recent(key)
            if len(recent) < self.limit:
                return 0
            return max(1, math.ceil(recent[0] + self.window - self.clock()))

    def failed(self, key: str) -> None:
        with self._lock:
            self._failures[key] = [*self._recent(key), self.clock()]
            self._failures.move_to_end(key)
            while len(self._failures) > self.keys:
                self._failures.popitem(last=False)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def _recent(self, key: str) -> list[float]:
        since = self.clock() - self.window
        return [t for t in self._failures.get(key, []) if t > since]


def sign_in_throttles() -> tuple[Throttle, Throttle]:
    """An app's limits on failed sign-ins: 5 per user name and 20 per client address in
    15 minutes."""
    return Throttle(limit=5, window=900), Throttle(limit=20, window=900)


class NotSignedIn(Exception):
    """Nobody is signed in: HTML routes redirect to /login, API routes answer 401."""


@dataclass(frozen=True)
class Identity:
    """A signed-in user and how: ``session`` (cookie, CSRF applies) or ``bearer``."""

    user: User
    via: Literal["session", "bearer"]
    csrf_token: str = ""
    session_ref: int = 0  # the web session's row (0 for bearer): view passes die with it


def identify(request: Request) -> Identity | None:
    """The identity of a request, looked up once and kept in ``request.state``."""
    if hasattr(request.state, "identity"):
        return request.state.identity
    identity: Identity | None = None
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    with session_scope(request.app.state.paths.database_url) as session:
        if scheme.lower() == "bearer":
            user = user_for_token(session, credentials.strip())
            identity = Identity(user, "bearer") if user is not None else None
        elif cookie := request.cookies.get(SESSION_COOKIE):
            found = session_user(session, cookie)
            if found is not None:
                identity = Identity(found[0], "session", found[1].csrf_token, found[1].id)
    request.state.identity = identity
    return identity


def require(permission: str) -> Callable[[Request], User]:
    """A dependency: the signed-in user if they have ``permission``, else 401/redirect or 403."""

    def dependency(request: Request) -> User:
        identity = identify(request)
        if identity is None:
            raise NotSignedIn()
        if not allowed(identity.user.role, permission):
            raise HTTPException(403, f"your role ({identity.user.role}) may not {permission}")
        return identity.user

    dependency.__name__ = f"require_{permission}"
    return dependency


async def form_data(request: Request) -> dict[str, str]:
    """The fields of an urlencoded form body (the last value of a repeated field)."""
    if hasattr(request.state, "form"):
        return request.state.form
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fields: dict[str, str] = {}
    if content_type == "application/x-www-form-urlencoded":
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413, "form too large")
        try:
            fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
        except UnicodeDecodeError:
            raise HTTPException(400, "form is not UTF-8") from None
    request.state.form = fields
    return fields


def same_secret(offered: str | None, expected: str | None) -> bool:
    """Constant-time comparison of two non-empty secrets."""
    if not offered or not expected:
        return False
    return hmac.compare_digest(offered.encode(), expected.encode())


async def verify_csrf(request: Request) -> None:
    """A dependency for POSTs: a cookie session must send its CSRF token (form field
    ``csrf_token`` or header ``X-CSRF-Token``); bearer requests carry no ambient
    credential and are exempt."""
    from starlette.concurrency import run_in_threadpool

    identity = await run_in_threadpool(identify, request)
    if identity is None:
        raise NotSignedIn()
    if identity.via == "bearer":
        return
    offered = request.headers.get("x-csrf-token")
    if offered is None:
        offered = (await form_data(request)).get("csrf_token")
    if not same_secret(offered, identity.csrf_token):
        raise HTTPException(403, "missing or wrong CSRF token; reload the page and try again")
