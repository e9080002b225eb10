"""Jinja2 rendering of the app's pages: autoescaped, with the user, CSRF token and ``can``."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from pipeline.users import allowed

TEMPLATES = Path(__file__).resolve().parent / "templates"

env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"], default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _url_with(params: dict[str, Any], changes: dict[str, Any] | None = None, **more: Any) -> str:
    """A query string from ``params`` with ``changes`` applied (None removes a key)."""
    merged = {**params, **(changes or {}), **more}
    return urlencode({k: v for k, v in merged.items() if v not in (None, "")}, doseq=True)


env.globals["query_with"] = _url_with


def render(
    request: Request, template_name: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """Render a template with ``request``, ``user``, ``csrf_token`` and ``can(permission)``.

    The identity is the one the route's ``require`` looked up; a page rendered without one
    (login, errors for anonymous visitors) shows no navigation.
    """
    identity = getattr(request.state, "identity", None)
    user = identity.user if identity is not None else None
    csrf_token = identity.csrf_token if identity is not None else ""

    def can(permission: str) -> bool:
        return user is not None and allowed(user.role, permission)

    values = {"request": request, "user": user, "csrf_token": csrf_token, "can": can}
    values.update(context)
    body = env.get_template(template_name).render(values)
    return HTMLResponse(body, status_code=status_code)
