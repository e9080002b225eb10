"""Engine, sessions and schema migrations of the catalog."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from threading import Lock

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


class CatalogError(Exception):
    """The catalog cannot be opened (bad URL, unreachable server)."""


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    # WAL lets readers run during a crawl's writes; busy_timeout makes parallel writers wait.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # Unicode-aware case folding for search (SQLite's own lower() folds ASCII only).
    dbapi_connection.create_function(
        "casefold", 1, lambda s: s.casefold() if isinstance(s, str) else s, deterministic=True
    )


_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = Lock()


def engine_for(url: str) -> Engine:
    """The engine of a catalog URL, created once per process with its schema up to date."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            try:
                engine = create_engine(url)
            except (ArgumentError, ImportError, ValueError) as exc:
                raise CatalogError(f"cannot open catalog {url!r}: {exc}") from exc
            if engine.dialect.name == "sqlite":
                event.listen(engine, "connect", _sqlite_pragmas)
            upgrade(engine)
            _ENGINES[url] = engine
        return engine


def forget_engine(url: str) -> None:
    """Close and forget a catalog's engine (before its database file is removed)."""
    with _ENGINES_LOCK:
        engine = _ENGINES.pop(url, None)
    if engine is not None:
        engine.dispose()


def upgrade(engine: Engine) -> None:
    """Apply every Alembic migration not yet applied."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except Exception as exc:  # noqa: BLE001 - surfaced to the user as one line
        raise CatalogError(f"cannot open catalog {engine.url!r}: {exc}") from exc


@contextmanager
def session_scope(url: str, *, write_lock: bool = False) -> Iterator[Session]:
    """A session committed on success and rolled back on error.

    ``write_lock`` is for read-then-append writers such as the custody ledger: on SQLite
    the transaction takes the write lock before it reads (BEGIN IMMEDIATE), so concurrent
    writers wait their turn instead of failing on a stale snapshot; on PostgreSQL the
    writer locks the rows it appends to (``SELECT ... FOR UPDATE``).
    """
    session = sessionmaker(engine_for(url), expire_on_commit=False)()
    try:
        if write_lock and session.get_bind().dialect.name == "sqlite":
            session.execute(text("BEGIN IMMEDIATE"))
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
