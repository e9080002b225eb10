"""Running the archive: ``demo``, ``replica``, ``users``, ``serve``."""

from __future__ import annotations

import os
import shutil
import time
from datetime import datetime
from pathlib import Path

import click
from rich.console import Console

from pipeline.catalog import session_scope
from pipeline.catalog.db import forget_engine
from pipeline.cli.base import (
    DEMO_MARKER,
    UserError,
    _emit,
    _home,
    cli,
    console,
    say,
)
from pipeline.cli.crawling import _run_crawl
from pipeline.cli.research import _status_table
from pipeline.config import Paths, paths
from pipeline.users import ROLES


@cli.command()
@click.pass_context
def demo(ctx: click.Context) -> None:
    """Archive the bundled offline replica world end to end and show what was found."""
    from pipeline.replica import ReplicaWorld

    where = paths(Path(ctx.obj.get("home") or paths().home) / "demo")
    users = _reset_demo_home(where.home)
    where.ensure()
    (where.home / DEMO_MARKER).write_text("created by `linkarchive demo`; safe to delete\n")
    _restore_users(where, users)
    # Only loopback: the demo must never reach another host.
    os.environ["LINKARCHIVE_ALLOWED_HOSTS"] = "127.0.0.1"
    os.environ["LINKARCHIVE_ALLOW_ADDRESSES"] = "127.0.0.0/8"  # the replica world is on loopback
    os.environ.setdefault("LINKARCHIVE_AUTOTHROTTLE_START_DELAY", "0.2")
    from pipeline.replica import social

    with ReplicaWorld() as world:
        say(f"Replica world up: index page at {world.index_url}")
        say(f"Data home: {where.home}")
        _run_crawl(where, source=world.index_url)
        # Posts on a social platform: app shells, an endless feed, a video, a log-in wall.
        pulse = world.url(social.SITE, social.LIST_PATH)
        say(f"\nNow the social platform's posts ({pulse}), rendered in Chromium where needed:")
        _run_crawl(where, source=pulse)
        post_url = world.url(social.SITE, social.POST_PATH)
    from pipeline.catalog.fulltext import SearchQuery
    from pipeline.catalog.fulltext import search as run_search
    from pipeline.catalog.queries import status_summary

    with session_scope(where.database_url) as session:
        _status_table(status_summary(session))
        picks = []
        for query in (
            SearchQuery(status="alive", limit=4),
            SearchQuery(kind="photo_gallery", limit=2),
            SearchQuery(status="failing", limit=1),  # a 404: dead once checks confirm it
        ):
            picks += run_search(session, query, facets=False).rows
    say("\nA few of the archived links:")
    rows = list({row["link_id"]: row for row in picks}.values())
    _emit(rows, "table", ["link_id", "city", "kind", "status", "images", "title"])
    _show_browser_capture(where, post_url)
    say(f"Try: linkarchive --home {where.home} search 'Blumen OR flowers' --city Berlin")
    say(
        f"Or in the browser: linkarchive --home {where.home} users add NAME --role researcher,"
        f" then linkarchive --home {where.home} serve"
    )


def _show_browser_capture(where: Paths, url: str) -> None:
    """Say what the browser captured of the demo's script-built post."""
    from sqlalchemy import select

    from pipeline.catalog.models import Capture, Link, PageMetadataRow

    with session_scope(where.database_url) as session:
        link = session.scalar(select(Link).where(Link.url == url))
        if link is None or link.last_capture_id is None:
            say("\nThe browser-captured post was not archived: see the crawl's log.")
            return
        meta = session.get(PageMetadataRow, link.last_capture_id)
        shot = session.scalar(
            select(Capture.id).where(Capture.link_id == link.id, Capture.role == "screenshot")
        )
    if not shot:
        say("\nNo browser here (apt-get install chromium): the script-built post kept only its "
            "plain capture, \"Loading…\".")  # fmt: skip
        return
    say(
        f'\nRendered in Chromium: link {link.id}, "{meta.title if meta else link.label}" '
        f'({link.status}); a plain fetch saw only "Loading…".'
    )
    say(f"Its screenshot is capture {shot}: open /links/{link.id} in the web app (below).")


def _reset_demo_home(home: Path) -> list[dict[str, object]]:
    """Start the demo afresh, deleting only a folder the demo itself created; returns the
    users it had (names, roles, token hashes), which the new demo home keeps."""
    if not home.exists():
        return []
    if not (home / DEMO_MARKER).exists():
        raise UserError(f"{home} exists and was not created by the demo; not touching it")
    from sqlalchemy import select

    from pipeline.catalog.models import User

    users: list[dict[str, object]] = []
    if (home / "catalog.sqlite").exists() or not paths(home).database_url.startswith("sqlite"):
        with session_scope(paths(home).database_url) as session:
            users = [
                {k: getattr(u, k) for k in ("name", "role", "token_sha256", "created_at")}
                for u in session.scalars(select(User))
            ]
    forget_engine(paths(home).database_url)
    shutil.rmtree(home)
    return users


def _restore_users(where: Paths, users: list[dict[str, object]]) -> None:
    """Add back the users a demo home had before it was reset (their tokens still work)."""
    from pipeline.catalog.models import User

    if users:
        with session_scope(where.database_url) as session:
            session.add_all(User(**user) for user in users)
        say(f"Kept {len(users)} user(s) of the previous demo home.")


@cli.command()
def replica() -> None:
    """Serve the offline replica world until Ctrl-C (for trying the crawler by hand)."""
    from pipeline.replica import ReplicaWorld

    with ReplicaWorld() as world:
        for site, url in world.base_urls.items():
            say(f"{site:>8}: {url}")
        say(f"index page: {world.index_url}")
        say("To crawl it, allow loopback: export LINKARCHIVE_ALLOW_ADDRESSES=127.0.0.0/8")
        say("Ctrl-C to stop.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


@cli.group()
def users() -> None:
    """Users of the web app and the JSON API, and their tokens."""


@users.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the user may do.")
@click.pass_context
def users_add(ctx: click.Context, name: str, role: str) -> None:
    """Add a user; their token is printed once (only its SHA-256 is kept)."""
    from pipeline.users import add_user

    with session_scope(_home(ctx).database_url) as session:
        _user, token = add_user(session, name, role)
    say(f"Token for {name} ({role}), shown once: {token}")


@users.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@click.pass_context
def users_list(ctx: click.Context, fmt: str) -> None:
    """List users with their role, creation and last sign-in (never tokens)."""
    from pipeline.users import list_users

    def moment(value: datetime | None) -> str | None:
        return value.isoformat(timespec="seconds") + "Z" if value else None

    with session_scope(_home(ctx).database_url) as session:
        rows = [
            {
                "name": user.name,
                "role": user.role,
                "created": moment(user.created_at),
                "last_login": moment(user.last_login_at),
            }
            for user in list_users(session)
        ]
    _emit(rows, fmt, ["name", "role", "created", "last_login"])


@users.command("remove")
@click.argument("name")
@click.pass_context
def users_remove(ctx: click.Context, name: str) -> None:
    """Remove a user and end their sessions."""
    from pipeline.users import remove_user

    with session_scope(_home(ctx).database_url) as session:
        remove_user(session, name)
    say(f"Removed user {name}.")


@users.command("token")
@click.argument("name")
@click.pass_context
def users_token(ctx: click.Context, name: str) -> None:
    """Issue a new token for a user; the old one and their sessions stop working."""
    from pipeline.users import get_user, new_token

    with session_scope(_home(ctx).database_url) as session:
        token = new_token(session, name)
        role = get_user(session, name).role
    say(f"Token for {name} ({role}), shown once: {token}")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--proxy-headers",
    is_flag=True,
    help="Behind a TLS proxy: trust its X-Forwarded-Proto/-For (session cookies become Secure).",
)
@click.option(
    "--forwarded-allow-ips",
    default="127.0.0.1",
    show_default=True,
    help="The proxies whose forwarded headers are trusted (with --proxy-headers).",
)
@click.pass_context
def serve(
    ctx: click.Context, host: str, port: int, proxy_headers: bool, forwarded_allow_ips: str
) -> None:
    """Serve the web app (search, cite, retrieve, manage) until Ctrl-C.

    Citations name the archive at LINKARCHIVE_PUBLIC_URL (default http://127.0.0.1:8000):
    set it to the address researchers use."""
    import ipaddress

    import uvicorn

    from pipeline.web.app import create_app

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    warnings = []
    if not loopback and not proxy_headers:
        warnings.append(f"listening on {host}, not loopback: put TLS in front of it "
                        "(and use --proxy-headers)")  # fmt: skip
    if not loopback and not os.environ.get("LINKARCHIVE_PUBLIC_URL"):
        warnings.append("LINKARCHIVE_PUBLIC_URL is not set: citations will name "
                        "http://127.0.0.1:8000")  # fmt: skip
    for warning in warnings:
        Console(stderr=True).print(
            f"linkarchive: warning: {warning}", highlight=False, markup=False, soft_wrap=True
        )
    from pipeline.catalog.fulltext import open_index

    with (
        session_scope(_home(ctx).database_url) as session,
        console.status("Bringing the search index up to date"),
    ):
        open_index(session)  # a large catalog's first build is not left to a first visitor
    app = create_app(_home(ctx))
    say(f"Serving {_home(ctx).home} on http://{host}:{port}/  (Ctrl-C to stop)")
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips if proxy_headers else None,
    )


# --- output -----------------------------------------------------------------------------
