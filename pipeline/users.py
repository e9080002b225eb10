"""Roles, permissions, users with hashed tokens, and web sessions (see docs/WEB.md).

A user's credential is a random token shown once; only its SHA-256 is stored. A web
session is a random id in a cookie; only its SHA-256 is stored, with the session's CSRF
token and expiry.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pipeline.catalog.importer import utcnow
from pipeline.catalog.models import User, WebSession

# The ladder: each role has the permissions of the roles before it.
ROLES = ("researcher", "legal", "archivist", "admin")
_OWN = {
    "researcher": ("search", "view", "export"),
    "legal": ("retrieve", "evidence"),
    "archivist": ("manage",),
    "admin": ("users",),
}
PERMISSIONS: dict[str, frozenset[str]] = {
    role: frozenset(p for earlier in ROLES[: i + 1] for p in _OWN[earlier])
    for i, role in enumerate(ROLES)
}
ALL_PERMISSIONS = PERMISSIONS["admin"]
SESSION_LIFETIME = timedelta(hours=12)
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


class UsersError(Exception):
    """A bad user name or role, a duplicate or an unknown user: reported as one line."""


def allowed(role: str, permission: str) -> bool:
    """Whether a role has a permission (unknown roles have none)."""
    return permission in PERMISSIONS.get(role, frozenset())


def sha256_hex(secret: str) -> str:
    """The SHA-256 of a token or session id, as stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def check_name(name: str) -> str:
    """The name if it is short and plain (letters, digits, . _ @ -), else UsersError."""
    if not NAME_PATTERN.fullmatch(name):
        raise UsersError(
            f"bad user name {name[:40]!r}: use 1-64 letters, digits, '.', '_', '@' or '-'"
        )
    return name


def check_role(role: str) -> str:
    """The role if it is one of ROLES, else UsersError."""
    if role not in ROLES:
        raise UsersError(f"unknown role {role[:40]!r}: choose one of {', '.join(ROLES)}")
    return role


def get_user(session: Session, name: str) -> User:
    """The user of that name, else UsersError."""
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise UsersError(f"no user named {name[:64]!r}")
    return user


def add_user(session: Session, name: str, role: str) -> tuple[User, str]:
    """Create a user; returns it with its token (shown once, never stored)."""
    check_name(name)
    check_role(role)
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        raise UsersError(f"a user named {name!r} exists already")
    token = secrets.token_urlsafe(32)
    user = User(name=name, role=role, token_sha256=sha256_hex(token), created_at=utcnow())
    session.add(user)
    session.flush()
    return user, token


def list_users(session: Session) -> list[User]:
    """Every user, by name."""
    return list(session.scalars(select(User).order_by(User.name)))


def remove_user(session: Session, name: str) -> None:
    """Delete a user and their sessions."""
    user = get_user(session, name)
    session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    session.delete(user)
    session.flush()


def new_token(session: Session, name: str) -> str:
    """Issue a new token for a user; the old one and all their sessions stop working."""
    user = get_user(session, name)
    token = secrets.token_urlsafe(32)
    user.token_sha256 = sha256_hex(token)
    session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    session.flush()
    return token


def authenticate(session: Session, name: str, token: str) -> User | None:
    """The user if name and token match, else None."""
    user = session.scalar(select(User).where(User.name == name))
    # Hash even for unknown names, so both failures take the same path.
    offered = sha256_hex(token)
    stored = user.token_sha256 if user is not None else sha256_hex(secrets.token_urlsafe(32))
    if user is None or not token or not hmac.compare_digest(offered, stored):
        return None
    return user


def user_for_token(session: Session, token: str) -> User | None:
    """The user a bearer token belongs to, else None."""
    if not token:
        return None
    digest = sha256_hex(token)
    user = session.scalar(select(User).where(User.token_sha256 == digest))
    if user is None or not hmac.compare_digest(digest, user.token_sha256):
        return None
    return user


@dataclass(frozen=True)
class SessionGrant:
    """A new web session: the cookie value (shown once) and its CSRF token."""

    session_id: str
    csrf_token: str
    expires_at: datetime


def start_session(
    session: Session, user: User, lifetime: timedelta = SESSION_LIFETIME
) -> SessionGrant:
    """Create a web session for a user who just signed in."""
    now = utcnow()
    grant = SessionGrant(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now + lifetime)
    session.add(
        WebSession(
            id_sha256=sha256_hex(grant.session_id),
            user_id=user.id,
            csrf_token=grant.csrf_token,
            created_at=now,
            expires_at=grant.expires_at,
        )
    )
    user.last_login_at = now
    # Expired sessions are swept whenever someone signs in.
    session.execute(delete(WebSession).where(WebSession.expires_at < now))
    session.flush()
    return grant


def session_user(session: Session, session_id: str) -> tuple[User, WebSession] | None:
    """The user and session of a session cookie, if it is known and not expired."""
    if not session_id:
        return None
    web = session.scalar(select(WebSession).where(WebSession.id_sha256 == sha256_hex(session_id)))
    if web is None or web.expires_at <= utcnow():
        return None
    return web.user, web


def end_session(session: Session, session_id: str) -> None:
    """Forget a web session (sign out)."""
    session.execute(delete(WebSession).where(WebSession.id_sha256 == sha256_hex(session_id)))
