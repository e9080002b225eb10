"""The search index: an embedded tantivy index beside the catalog, kept current from it.

The catalog stays the record: ``search_documents`` hold each link's folded words, and
``search_changes`` (filled by triggers, migration 0014) logs every link whose document or
facets change. An index is a directory of tantivy segments and a ``state.json`` naming the
last change it applied; before each search it applies the changes logged since, so it is
current whichever process or machine wrote the catalog. Applying a change is idempotent
(the link's document is replaced), so a crash between tantivy's commit and the state file
only means some changes are applied twice. A first build commits every
:data:`BUILD_CHUNK` links and resumes after the last committed one.

Where an index lives: beside a SQLite catalog file (``catalog.sqlite`` ->
``catalog.sqlite-search/``), under the data home for a server database, in a temporary
directory for an in-memory catalog; in the user's cache when that place is read-only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import tantivy
from sqlalchemy import Select, delete, func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from pipeline.catalog.models import (
    Capture,
    City,
    Country,
    Link,
    PageMetadataRow,
    SearchChange,
    SearchDocument,
)
from pipeline.config import paths

log = logging.getLogger(__name__)

#: Bumped whenever the schema or the way documents are made changes: the index is rebuilt.
SCHEMA_VERSION = 2
#: Text fields and their weights in ranking (tantivy's BM25, summed over fields).
TEXT_FIELDS = (("title", 10.0), ("label", 5.0), ("place", 5.0), ("meta", 2.0), ("body", 1.0))
ALL = "all"
#: Facet fields (raw text, counted by tantivy's terms aggregation).
FACET_FIELDS = ("country", "city", "kind", "language", "status", "published", "captured")
BUILD_CHUNK = 20_000
#: A change logged after a gap in the sequence may belong to a transaction that committed
#: after a later one (PostgreSQL): the gap is waited for this long before it is passed.
GAP_GRACE = timedelta(seconds=60)
#: Changes older than this are pruned from the log; an index further behind is rebuilt.
KEEP_CHANGES = timedelta(days=30)
LOCK_WAIT = 10.0  # seconds to wait for another process's writer before searching as is
EPOCH = date(1970, 1, 1)

# Scripts written without spaces between words: indexed as overlapping pairs of characters
# (and each run's last character alone), so any substring of two or more characters is a
# phrase of pairs and a single character a prefix.
UNSPACED = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uf900-\ufaff\uff66-\uff9f]+"
)


def index_tokens(word: str, *, last_alone: bool = True) -> list[str]:
    """The tokens a folded word is indexed as: itself, or for unspaced scripts its pairs of
    characters (and, with ``last_alone``, its last character alone)."""
    if not UNSPACED.search(word):
        return [word]
    tokens: list[str] = []
    position = 0
    for run in UNSPACED.finditer(word):
        if run.start() > position:
            tokens.append(word[position : run.start()])
        text = run.group()
        if len(text) == 1:
            tokens.append(text)
        else:
            tokens += [text[i : i + 2] for i in range(len(text) - 1)]
            if last_alone:
                tokens.append(text[-1])
        position = run.end()
    if position < len(word):
        tokens.append(word[position:])
    return tokens


def _tokenized(value: str) -> str:
    if not value or max(value) < "\u0e00" or not UNSPACED.search(value):  # max(): fast
        return value
    return " ".join(t for word in value.split() for t in index_tokens(word))


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_unsigned_field("link_id", stored=True, indexed=True, fast=True)
    for name, _ in TEXT_FIELDS:
        builder.add_text_field(name, tokenizer_name="folded", index_option="position")
    # Every text field, each repeated its weight's times: a word's frequency here is its
    # weighted frequency in the document, as SQLite FTS5's bm25() counted it.
    builder.add_text_field(ALL, tokenizer_name="folded", index_option="freq")
    for name in (*FACET_FIELDS, "language_key"):
        builder.add_text_field(name, tokenizer_name="raw", fast=True)
    for name in ("country_id", "city_id"):
        builder.add_unsigned_field(name, indexed=True, fast=True)
    for name in ("published_day", "captured_day"):
        builder.add_integer_field(name, indexed=True, fast=True)
    builder.add_unsigned_field("words", fast=True)  # in all text fields: BM25's length
    # Newest publication first, then place and id: the order of a search without text.
    builder.add_text_field("listing", stored=True, tokenizer_name="raw", fast=True)
    return builder.build()


SCHEMA = _schema()


def listing_key(published: date | None, country: str, city: str | None, link_id: int) -> str:
    """A key whose byte order is the listing's: newest publication first (undated last),
    then country and city name (no city first) and link id."""
    newest = 99_999_999 - int(published.strftime("%Y%m%d")) if published else 99_999_999
    return f"{newest:08d}\x1f{country}\x1f{city or ''}\x1f{link_id:012d}"


def day_number(moment: date | datetime | None) -> int | None:
    """Days since 1970-01-01 (the integer the index filters dates by)."""
    if moment is None:
        return None
    day = moment.date() if isinstance(moment, datetime) else moment
    return (day - EPOCH).days


def _rows(link_ids: Iterable[int] | None = None, after: int | None = None) -> Select:
    """Everything an index document needs, per link with a search document."""
    statement = (
        select(
            SearchDocument.link_id,
            *(getattr(SearchDocument, name) for name, _ in TEXT_FIELDS),
            Link.kind,
            Link.status,
            Link.country_id,
            Link.city_id,
            Country.name,
            City.name,
            PageMetadataRow.language,
            PageMetadataRow.published,
            Capture.captured_at,
        )
        .join(Link, Link.id == SearchDocument.link_id)
        .join(Country, Country.id == Link.country_id)
        .outerjoin(City, City.id == Link.city_id)
        .outerjoin(Capture, Capture.id == Link.last_capture_id)
        .outerjoin(PageMetadataRow, PageMetadataRow.capture_id == Link.last_capture_id)
        .order_by(SearchDocument.link_id)
    )
    if link_ids is not None:
        statement = statement.where(SearchDocument.link_id.in_(list(link_ids)))
    if after is not None:
        statement = statement.where(SearchDocument.link_id > after)
    return statement


def word_count(value: str) -> int:
    """``len(value.split())`` for a document's field (words joined by single spaces)."""
    return value.count(" ") + 1 - value.endswith(" ") if value else 0


def _document(row: Any) -> tantivy.Document:
    link_id, *texts = row[: len(TEXT_FIELDS) + 1]
    (kind, status, country_id, city_id, country, city, language, published,
     captured) = row[len(TEXT_FIELDS) + 1 :]  # fmt: skip
    values: dict[str, Any] = {
        "link_id": link_id,
        "country": country,
        "kind": kind,
        "status": status,
        "country_id": country_id,
        "city_id": city_id or 0,
        "listing": listing_key(published, country, city, link_id),
        "words": sum(word_count(text or "") for text in texts),
    }
    for (name, _), text in zip(TEXT_FIELDS, texts, strict=True):
        values[name] = _tokenized(text or "")
    values[ALL] = " ".join(
        values[name] for name, weight in TEXT_FIELDS for _ in range(int(weight)) if values[name]
    )
    if city:
        values["city"] = city
    if language:
        values["language"] = language
        values["language_key"] = language.strip().casefold()
    if published:
        values["published"] = published.strftime("%Y-%m")
        values["published_day"] = day_number(published)
    if captured:
        values["captured"] = captured.strftime("%Y-%m")
        values["captured_day"] = day_number(captured)
    return tantivy.Document.from_dict(values, SCHEMA)


@dataclass
class _State:
    """What ``state.json`` records: the last change applied, or how far a build got."""

    version: int = SCHEMA_VERSION
    seq: int = 0  # changes up to this one are in the index
    complete: bool = False  # False: a build in progress, ``through`` the last link added
    through: int = 0
    written: int = 0  # when (ns): a reader reloads when it changes

    @classmethod
    def read(cls, path: Path) -> _State | None:
        try:
            data = json.loads(path.read_text())
            state = cls(**data)
        except (OSError, ValueError, TypeError):
            return None
        return state if state.version == SCHEMA_VERSION else None

    def write(self, path: Path) -> None:
        self.written = time.time_ns()
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(self.__dict__))
        os.replace(partial, path)


class SearchIndex:
    """One index directory, opened once per process (see :func:`for_session`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.state_path = path / "state.json"
        self._lock = threading.Lock()
        self._loaded: tuple[int, int, int] | None = None
        self._average: tuple[Any, float] | None = None
        self._merging: threading.Thread | None = None
        if _State.read(self.state_path) is None and path.exists():
            shutil.rmtree(path)  # another schema, or never finished its first commit
        path.mkdir(parents=True, exist_ok=True)
        try:
            self.index = tantivy.Index(SCHEMA, path=str(path), reuse=True)
        except (ValueError, OSError) as exc:  # damaged: it is derived, so made anew
            log.warning("search index %s unreadable (%s): building it anew", path, exc)
            shutil.rmtree(path)
            path.mkdir(parents=True)
            self.index = tantivy.Index(SCHEMA, path=str(path), reuse=True)
        folded = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).build()
        self.index.register_tokenizer("folded", folded)

    # -- reading ---------------------------------------------------------------------

    def searcher(self) -> tantivy.Searcher:
        """A searcher over the last commit (of any process)."""
        state = _State.read(self.state_path)
        seen = (state.seq, state.through, state.written) if state else None
        if seen != self._loaded:
            self.index.reload()
            self._loaded = seen
        return self.index.searcher()

    def average_words(self, searcher: tantivy.Searcher) -> float:
        """The mean number of words of a document (as BM25 weighs lengths)."""
        if self._average is None or self._average[0] != self._loaded:
            found = searcher.aggregate(
                tantivy.Query.all_query(), {"w": {"sum": {"field": "words"}}}
            )
            total = float(found["w"]["value"] or 0.0)
            self._average = (self._loaded, total / searcher.num_docs if searcher.num_docs else 1.0)
        return self._average[1]

    # -- keeping current -------------------------------------------------------------

    def catch_up(self, session: Session) -> None:
        """Apply the catalog's logged changes since the last applied (a first build if the
        index has none): afterwards the index holds the catalog as ``session`` sees it."""
        head = session.scalar(select(func.max(SearchChange.seq))) or 0
        state = _State.read(self.state_path)
        if state is not None and state.complete and state.seq == head:
            return
        usable = state is not None and state.complete
        with self._lock:
            if self._merging is not None:
                self._merging.join()  # the last catch-up's merges: its writer is still held
            lease = _WriterLease(self.index, LOCK_WAIT if usable else 3600.0, background=True)
            with lease as writer:
                if writer is not None:
                    self._catch_up(session, writer, head)
            self._merging = lease.merging

    def _catch_up(self, session: Session, writer: tantivy.IndexWriter, head: int) -> None:
        state = _State.read(self.state_path)
        oldest = session.scalar(select(func.min(SearchChange.seq)))
        if (
            state is None
            or state.seq > head  # another catalog under the same name
            or (state.complete and oldest is not None and state.seq + 1 < oldest)
        ):
            state = self._build(session, writer, _State(), head)
        elif not state.complete:
            state = self._build(session, writer, state, state.seq)
        self._apply(session, writer, state)

    def _build(
        self, session: Session, writer: tantivy.IndexWriter, state: _State, head: int
    ) -> _State:
        """Index every search document (after ``state.through``), committing each chunk."""
        if state.through == 0:
            writer.delete_all_documents()
            state = _State(seq=head)
            log.info("building the search index in %s", self.path)
        while True:
            rows = session.execute(_rows(after=state.through).limit(BUILD_CHUNK)).all()
            if not rows:
                break
            for row in rows:
                writer.add_document(_document(row))
            writer.commit()
            state.through = rows[-1][0]
            state.write(self.state_path)
        state.complete = True
        writer.commit()
        state.write(self.state_path)
        return state

    def _apply(self, session: Session, writer: tantivy.IndexWriter, state: _State) -> None:
        while True:
            changes = session.execute(
                select(SearchChange.seq, SearchChange.link_id, SearchChange.changed_at)
                .where(SearchChange.seq > state.seq)
                .order_by(SearchChange.seq)
                .limit(BUILD_CHUNK)
            ).all()
            if not changes:
                break
            ids = sorted({link_id for _, link_id, _ in changes})
            # (by query: a term of an unsigned field given as a Python int deletes nothing)
            writer.delete_documents_by_query(tantivy.Query.term_set_query(SCHEMA, "link_id", ids))
            for row in session.execute(_rows(ids)):
                writer.add_document(_document(row))
            writer.commit()
            seq = _advance(state.seq, changes, _utcnow())
            if seq == state.seq:
                break  # a gap's transaction may still commit: applied again next time
            state.seq = seq
            state.write(self.state_path)
            if seq < changes[-1][0]:
                break
        cutoff = _utcnow() - KEEP_CHANGES
        if (session.scalar(select(func.min(SearchChange.changed_at))) or cutoff) < cutoff:
            try:
                with session.begin_nested():  # what this index has had (one further behind
                    session.execute(  # rebuilds): not on a read-only catalog
                        delete(SearchChange).where(
                            SearchChange.changed_at < cutoff, SearchChange.seq <= state.seq
                        )
                    )
            except OperationalError:
                log.info("the search change log was not pruned: the catalog is read-only")

    def rebuild(self, session: Session) -> None:
        """Index every document anew (``catalog reindex``)."""
        with self._lock:
            if self._merging is not None:
                self._merging.join()
        with self._lock, _WriterLease(self.index, 3600.0) as writer:
            head = session.scalar(select(func.max(SearchChange.seq))) or 0
            state = self._build(session, writer, _State(), head)
            self._apply(session, writer, state)


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # as the log's changed_at: naive UTC


def _advance(seq: int, changes: Iterable[Any], now: datetime) -> int:
    """The new watermark: the last change with none missing before it, unless the missing
    ones are older than :data:`GAP_GRACE` (rolled back, never to come)."""
    for number, _, changed_at in changes:
        if number != seq + 1 and changed_at > now - GAP_GRACE:
            break
        seq = number
    return seq


class _WriterLease:
    """tantivy's one writer of an index, waited for while another process holds it; None
    when the wait runs out."""

    def __init__(self, index: tantivy.Index, wait: float, *, background: bool = False) -> None:
        self.index, self.wait, self.background = index, wait, background
        self.writer: tantivy.IndexWriter | None = None
        self.merging: threading.Thread | None = None  # finishing merges (``background``)

    def __enter__(self) -> tantivy.IndexWriter | None:
        deadline = time.monotonic() + self.wait
        while True:
            try:
                self.writer = self.index.writer(heap_size=200_000_000, num_threads=2)
                return self.writer
            except ValueError as exc:
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self.writer is None:
            return
        if exc[0] is not None:
            self.writer.rollback()
        if self.background and exc[0] is None:  # the commit is searchable already
            self.merging = threading.Thread(
                target=self.writer.wait_merging_threads, name="search-index-merges"
            )
            self.merging.start()
        else:
            self.writer.wait_merging_threads()  # drops the writer: its lock is released
        self.writer = None


_INDEXES: dict[str, SearchIndex] = {}
_INDEXES_LOCK = threading.Lock()
_MEMORY = Path(tempfile.gettempdir())
#: Where the indexes of server databases live (None: the data home's search-index/).
SERVER_INDEXES: Path | None = None


def location(bind: Engine | Connection) -> Path:
    """Where the index of the catalog ``bind`` connects to lives."""
    url = bind.engine.url
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            database = Path(url.database).absolute()
            return database.with_name(database.name + "-search")
        return _MEMORY / f"linkarchive-search-{os.getpid()}-{id(bind.engine)}"
    where = f"{url.host or 'local'}-{url.port or 'default'}-{url.database}"
    folder = SERVER_INDEXES or paths().home / "search-index"
    return folder / re.sub(r"[^\w.-]", "_", where)


def _writable(path: Path) -> bool:
    existing = path if path.exists() else path.parent
    return existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)


def _open(session: Session) -> SearchIndex:
    path = location(session.get_bind())
    if not _writable(path):  # a read-only copy of an archive: an index of this user's own
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
        path = cache / "linkarchive" / "search" / f"{path.name}-{digest}"
    with _INDEXES_LOCK:
        index = _INDEXES.get(str(path))
        if index is None or not index.path.exists():
            index = _INDEXES[str(path)] = SearchIndex(path)
    return index


def for_session(session: Session) -> SearchIndex:
    """The catalog's index, caught up with every change ``session`` can see."""
    index = _open(session)
    index.catch_up(session)
    return index


def rebuild(session: Session) -> SearchIndex:
    """The catalog's index, every document indexed anew."""
    index = _open(session)
    index.rebuild(session)
    return index


def forget(bind: Engine | Connection) -> None:
    """Close this process's handle on the index of ``bind``'s catalog."""
    with _INDEXES_LOCK:
        _INDEXES.pop(str(location(bind)), None)


def link_ids(searcher: tantivy.Searcher, hits: Iterable[Any]) -> Iterator[int]:
    """The link ids of search hits (pairs of order key and address)."""
    for _, address in hits:
        yield searcher.doc(address)["link_id"][0]
