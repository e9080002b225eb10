"""The catalog's tables (SQLAlchemy 2 declarative style).

The WARC files are the record of what was captured; the catalog is an index over
them plus the curated seed list. Every capture row points into a closed WARC file.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# pending: never crawled; the rest from crawls and checks (see pipeline/linkcheck/classify.py)
# failing: a failed crawl or check not yet confirmed (see pipeline/linkcheck/history.py)
LINK_STATUSES = ("pending", "alive", "changed", "redirected", "failing", "soft404", "dead",
                 "blocked", "error")  # fmt: skip


class Base(DeclarativeBase):
    """The one declarative base of the catalog."""


class Source(Base):
    """A page or file that seeds were imported from."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    location: Mapped[str] = mapped_column(String(2048), unique=True)
    imported_at: Mapped[datetime] = mapped_column(DateTime)
    sha256: Mapped[str | None] = mapped_column(String(64))


class Country(Base):
    __tablename__ = "countries"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    code: Mapped[str] = mapped_column(String(2))
    original_name: Mapped[str] = mapped_column(String(200))

    cities: Mapped[list[City]] = relationship(back_populates="country")


class City(Base):
    __tablename__ = "cities"
    __table_args__ = (UniqueConstraint("country_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    country_id: Mapped[int] = mapped_column(ForeignKey("countries.id"))
    name: Mapped[str] = mapped_column(String(200))
    original_name: Mapped[str] = mapped_column(String(200))

    country: Mapped[Country] = relationship(back_populates="cities")


class Link(Base):
    """One curated link: a report, photo gallery or video of a rally."""

    __tablename__ = "links"
    __table_args__ = (
        Index("ix_links_place", "country_id", "city_id"),
        # Search's newest-first listing walks page metadata by date to its links.
        Index("ix_links_last_capture", "last_capture_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    country_id: Mapped[int] = mapped_column(ForeignKey("countries.id"))
    city_id: Mapped[int | None] = mapped_column(ForeignKey("cities.id"))
    kind: Mapped[str] = mapped_column(String(20))
    label: Mapped[str] = mapped_column(String(500))
    url: Mapped[str] = mapped_column(String(2048), index=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    final_url: Mapped[str | None] = mapped_column(String(2048))
    # The last full capture (a crawl's, never a check's page-only fetch): what search,
    # `get`, `cite` and `evidence export` use unless told otherwise.
    last_capture_id: Mapped[int | None] = mapped_column(
        ForeignKey("captures.id", use_alter=True, name="fk_links_last_capture")
    )
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)  # of the last observation
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # in a row
    failing_since: Mapped[datetime | None] = mapped_column(DateTime)

    country: Mapped[Country] = relationship()
    city: Mapped[City | None] = relationship()
    sources: Mapped[list[LinkSource]] = relationship(back_populates="link")


class LinkSource(Base):
    """Which source page listed a link, with the label it used there."""

    __tablename__ = "link_sources"

    link_id: Mapped[int] = mapped_column(ForeignKey("links.id"), primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"), primary_key=True)
    label: Mapped[str] = mapped_column(String(500))

    link: Mapped[Link] = relationship(back_populates="sources")
    source: Mapped[Source] = relationship()


class CrawlRun(Base):
    __tablename__ = "crawl_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(20), default="running")
    selection: Mapped[dict] = mapped_column(JSON, default=dict)
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    links_total: Mapped[int] = mapped_column(Integer, default=0)
    links_done: Mapped[int] = mapped_column(Integer, default=0)
    links_failed: Mapped[int] = mapped_column(Integer, default=0)
    units_failed: Mapped[int] = mapped_column(Integer, default=0)
    captures: Mapped[int] = mapped_column(Integer, default=0)
    bytes_archived: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_deduplicated: Mapped[int] = mapped_column(BigInteger, default=0)


class CrawlUnit(Base):
    """One crawl unit of a run: whole hosts, crawled by one process on some machine.

    The unit's links live here, not in files of the planning machine, so a worker on
    another machine can run it; ``owner`` (the flow run that last claimed it) fences out
    an attempt declared dead, and ``heartbeat_at`` is how it is found dead.
    """

    __tablename__ = "crawl_units"
    __table_args__ = (UniqueConstraint("run_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("crawl_runs.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    link_ids: Mapped[list] = mapped_column(JSON, default=list)
    shards: Mapped[list] = mapped_column(JSON, default=list)  # host shards (politeness)
    status: Mapped[str] = mapped_column(String(20), default="queued")  # queued|running|done|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    owner: Mapped[str | None] = mapped_column(String(64))
    worker: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    result: Mapped[dict | None] = mapped_column(JSON)


class WarcFile(Base):
    """A closed WARC file that has been indexed into the catalog."""

    __tablename__ = "warc_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(500), unique=True)
    path: Mapped[str] = mapped_column(String(4096))
    size: Mapped[int] = mapped_column(BigInteger)
    records: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("crawl_runs.id"))
    indexed_at: Mapped[datetime] = mapped_column(DateTime)
    # Its copy in the WARC store (LINKARCHIVE_WARC_STORE), verified when made: the file's
    # URI there (e.g. s3://bucket/prefix/NAME) and SHA-256; None until stored.
    sha256: Mapped[str | None] = mapped_column(String(64))
    store_uri: Mapped[str | None] = mapped_column(String(4096))
    stored_at: Mapped[datetime | None] = mapped_column(DateTime)


class Capture(Base):
    """One archived HTTP response: where it is in which WARC file, and what it was."""

    __tablename__ = "captures"

    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[str] = mapped_column(String(100), unique=True)
    # "response"; "revisit": a payload already archived, stored in the record refers_to;
    # "resource": a browser capture's screenshot, DOM or text, or a video (urn:… URIs)
    record_type: Mapped[str] = mapped_column(String(20), default="response")
    refers_to: Mapped[str | None] = mapped_column(String(100))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("crawl_runs.id"), index=True)
    link_id: Mapped[int | None] = mapped_column(ForeignKey("links.id"), index=True)
    role: Mapped[str | None] = mapped_column(String(20))
    url: Mapped[str] = mapped_column(String(4096), index=True)
    captured_at: Mapped[datetime] = mapped_column(DateTime)
    http_status: Mapped[int | None] = mapped_column(Integer)
    content_type: Mapped[str | None] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger)
    payload_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    warc_file: Mapped[str] = mapped_column(String(500))
    warc_offset: Mapped[int] = mapped_column(BigInteger)
    warc_length: Mapped[int] = mapped_column(BigInteger)


class PageMetadataRow(Base):
    """Metadata extracted from a captured page."""

    __tablename__ = "page_metadata"
    # Search's newest-first listing: its first pages without sorting every link.
    __table_args__ = (Index("ix_page_metadata_published", "published"),)

    capture_id: Mapped[int] = mapped_column(ForeignKey("captures.id"), primary_key=True)
    title: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(String(500))
    published: Mapped[date | None] = mapped_column(Date)
    #: The evidence ``published`` was chosen from (pipeline.extract._choose_date).
    published_source: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(20))
    site_name: Mapped[str | None] = mapped_column(String(500))
    canonical_url: Mapped[str | None] = mapped_column(String(4096))
    images: Mapped[list] = mapped_column(JSON, default=list)
    text: Mapped[str | None] = mapped_column(Text)
    encoding: Mapped[str | None] = mapped_column(String(50))


class Media(Base):
    """An archived image or media file that belongs to a link's capture."""

    __tablename__ = "media"
    __table_args__ = (UniqueConstraint("link_id", "capture_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("links.id"), index=True)
    capture_id: Mapped[int] = mapped_column(ForeignKey("captures.id"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("crawl_runs.id"))
    kind: Mapped[str] = mapped_column(String(20))  # image | video | audio
    role: Mapped[str] = mapped_column(String(20))  # image (gallery full size) | requisite | media
    url: Mapped[str] = mapped_column(String(4096))


class CrawlOutcome(Base):
    """What happened to one link in one crawl run: the history behind ``Link.status``."""

    __tablename__ = "crawl_outcomes"

    id: Mapped[int] = mapped_column(primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("links.id"), index=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("crawl_runs.id"), index=True)
    status: Mapped[str] = mapped_column(String(20))
    http_status: Mapped[int | None] = mapped_column(Integer)
    final_url: Mapped[str | None] = mapped_column(String(4096))
    error: Mapped[str | None] = mapped_column(Text)
    capture_id: Mapped[int | None] = mapped_column(ForeignKey("captures.id"))
    metadata_record_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    checked_at: Mapped[datetime] = mapped_column(DateTime)


class CustodyEvent(Base):
    """One line of a capture's chain-of-custody ledger (see ``pipeline.evidence.custody``).

    ``line`` is the event exactly as written (canonical JSON) and is what the hash chain
    covers: ``prev_sha256`` is the SHA-256 of the previous line of the same capture, and
    the other columns are a queryable copy of the line's fields.
    """

    __tablename__ = "custody_events"
    __table_args__ = (UniqueConstraint("capture_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    capture_id: Mapped[int] = mapped_column(ForeignKey("captures.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime)
    event: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(500))
    tool: Mapped[str] = mapped_column(String(100))
    tool_version: Mapped[str] = mapped_column(String(50))
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    prev_sha256: Mapped[str | None] = mapped_column(String(64))
    line: Mapped[str] = mapped_column(Text)
    line_sha256: Mapped[str] = mapped_column(String(64))


class LinkCheck(Base):
    """One check of a link's live URL against its last capture: the watch's history."""

    __tablename__ = "link_checks"

    id: Mapped[int] = mapped_column(primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("links.id"), index=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("crawl_runs.id"))
    capture_id: Mapped[int | None] = mapped_column(ForeignKey("captures.id"))
    checked_at: Mapped[datetime] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(20))
    http_status: Mapped[int | None] = mapped_column(Integer)
    final_url: Mapped[str | None] = mapped_column(String(4096))
    change: Mapped[dict | None] = mapped_column(JSON)  # what changed, for "changed"
    confirmed: Mapped[bool] = mapped_column(default=True)  # False: a failure not yet a death
    # The WARC metadata record holding this judgement (catalog rebuild restores it).
    metadata_record_id: Mapped[str | None] = mapped_column(String(100), unique=True, index=True)


class User(Base):
    """A user of the web app and the JSON API; only the SHA-256 of the token is stored."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)


class WebSession(Base):
    """A signed-in browser: only the SHA-256 of the session id (the cookie) is stored."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    id_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)

    user: Mapped[User] = relationship()


class SearchDocument(Base):
    """What full-text search indexes of a link: its words, folded (see ``catalog.fulltext``).

    One row per link, rebuilt by ``fulltext.refresh_documents`` whenever the link or its
    latest capture changes; the search index (``catalog.searchindex``) is built from them.
    """

    __tablename__ = "search_documents"

    link_id: Mapped[int] = mapped_column(ForeignKey("links.id"), primary_key=True)
    title: Mapped[str] = mapped_column(Text, default="")
    label: Mapped[str] = mapped_column(Text, default="")
    place: Mapped[str] = mapped_column(Text, default="")
    meta: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")


class SearchChange(Base):
    """A link whose search document or facets changed, logged by triggers (migration 0014)
    so that each search index catches up from the last change it applied."""

    __tablename__ = "search_changes"
    __table_args__ = {"sqlite_autoincrement": True}

    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    link_id: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(
        DateTime, server_default=func.current_timestamp(), index=True
    )
