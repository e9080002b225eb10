"""The one query engine: full-text search with filters, facets, ranking and snippets.

Each link has one row in ``search_documents`` holding its words (page title, label, place
names, metadata, text of its latest capture) folded in Python: NFKD, combining marks
stripped, casefolded, so "Munchen" finds "München" on every database. SQLite searches them
with an FTS5 table (``search_fts``, kept in step by triggers), PostgreSQL with a GIN index
on a weighted ``tsvector`` of the 'simple' configuration (no extension needed), also
stored for ranking.

What users type (words, "phrases", OR, -excluded, prefix*) is parsed here into a small tree
and rebuilt as a safe FTS5 expression or tsquery, always passed as a bound parameter.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date
from functools import lru_cache
from threading import Lock
from typing import Any

from markupsafe import Markup, escape
from sqlalchemy import (
    REAL,
    ColumnElement,
    Float,
    Integer,
    Select,
    cast,
    delete,
    func,
    insert,
    literal,
    literal_column,
    null,
    select,
    text,
    union_all,
)
from sqlalchemy.orm import Session, aliased

from pipeline.catalog.models import (
    Capture,
    City,
    Country,
    CrawlOutcome,
    Link,
    LinkCheck,
    Media,
    PageMetadataRow,
    SearchDocument,
)
from pipeline.catalog.queries import QueryError, Selection, _filtered, _iso
from pipeline.linkcheck.standing import check_label, death_rule, standing_label

MARK_START, MARK_END = "\x02", "\x03"
FACETS = ("country", "city", "kind", "language", "status", "published", "captured")

_WORD = re.compile(r"[^\W_]+")
_MONTH = re.compile(r"(\d{4})(?:-(\d{2}))?")
MAX_WORD = 100  # longer "words" (base64 blobs...) are cut: PostgreSQL lexemes are bounded
MAX_BODY = 200_000  # characters of folded text indexed per field (a tsvector is < 1 MB)
MAX_TERMS = 32
SNIPPET_WORDS = 30
_CHUNK = 500
# Totals and facet counts stop at this many matches (then shown as "10,000+"): counting
# every match of a large catalog grows with it, and so would each page's time.
COUNT_CAP = 10_000
# FTS5 column weights for bm25: title, label, place, meta, body.
_BM25 = "bm25(search_fts, 10.0, 5.0, 5.0, 2.0, 1.0)"
# The expression of migration 0006's GIN index (kept identical so the index is used).
PG_VECTOR = " || ".join(
    f"setweight(to_tsvector('simple'::regconfig, search_documents.{column}), '{weight}')"
    for column, weight in (
        ("title", "A"),
        ("label", "B"),
        ("place", "B"),
        ("meta", "C"),
        ("body", "D"),
    )
)
# PG_VECTOR stored (migration 0013): ranking reads it instead of rebuilding each match's.
PG_COLUMN = "search_documents.vector"
# Serialises, within a process, the first use's filling of an old catalog's documents.
_PREPARE_LOCK = Lock()


@dataclass(frozen=True)
class SearchQuery:
    """What to search for: text in the query syntax, and filters; every field optional."""

    text: str | None = None
    country: str | None = None  # name, original spelling, code or alias
    city: str | None = None
    kind: str | None = None
    language: str | None = None
    status: str | None = None
    published: str | None = None  # "YYYY" or "YYYY-MM"
    captured: str | None = None  # "YYYY" or "YYYY-MM"
    since: date | None = None  # published on/after
    until: date | None = None  # published on/before
    link_ids: tuple[int, ...] | None = None
    limit: int | None = 50  # None: every row
    offset: int = 0

    def as_params(self) -> dict[str, str]:
        """The non-empty fields as strings (text as ``q``), for building URLs; no paging."""
        params: dict[str, str] = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.name in ("limit", "offset") or value is None or value == "":
                continue
            if isinstance(value, date):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = ",".join(str(v) for v in value)
            params["q" if spec.name == "text" else spec.name] = str(value)
        return params


@dataclass
class SearchResult:
    """A page of ranked rows, the size of the whole result set, and its facet counts.

    ``exact`` is False when more than :data:`COUNT_CAP` links match: ``total`` is then
    COUNT_CAP (at least that many match) and each facet count is a lower bound, counted
    over the first COUNT_CAP + 1 matches found (in no particular order); the rows are
    ranked over every match all the same.
    """

    total: int
    rows: list[dict[str, Any]]
    facets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    exact: bool = True

    @property
    def total_label(self) -> str:
        """The total as people read it: "2832", or "10,000+" when capped."""
        return str(self.total) if self.exact else f"{self.total:,}+"

    def count_label(self, count: int) -> str:
        """A facet count as people read it: "+" after it when counts are capped."""
        return str(count) if self.exact else f"{count:,}+"


# --------------------------------------------------------------------------------------
# Folding and the query language
# --------------------------------------------------------------------------------------


def fold(value: str) -> str:
    """Text as the index sees it: compatibility-decomposed, without marks, casefolded."""
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def words(value: str | None) -> list[str]:
    """The folded words of a text, as indexed."""
    return [w[:MAX_WORD] for w in _WORD.findall(fold(value))] if value else []


def _indexed(*values: str | None) -> str:
    return " ".join(w for v in values for w in words(v))[:MAX_BODY]


@dataclass(frozen=True)
class Term:
    """One word or phrase (several words in a row); ``prefix``: its last word is a prefix."""

    words: tuple[str, ...]
    prefix: bool = False

    def fts5(self) -> str:
        return '"' + " ".join(self.words) + '"' + (" *" if self.prefix else "")

    def tsquery(self) -> str:
        lexemes = [f"'{w}'" for w in self.words]
        if self.prefix:
            lexemes[-1] += ":*"
        return lexemes[0] if len(lexemes) == 1 else "(" + " <-> ".join(lexemes) + ")"


@dataclass(frozen=True)
class ParsedQuery:
    """All ``groups`` must match (a group: any of its terms); no ``excluded`` term may."""

    groups: tuple[tuple[Term, ...], ...]
    excluded: tuple[Term, ...] = ()

    @property
    def terms(self) -> list[Term]:
        return [t for g in self.groups for t in g]

    def fts5(self, terms: Iterable[Term] | None = None) -> str:
        if terms is not None:
            return " OR ".join(t.fts5() for t in terms)
        return " AND ".join("(" + " OR ".join(t.fts5() for t in g) + ")" for g in self.groups)

    def tsquery(self, terms: Iterable[Term] | None = None) -> str:
        if terms is not None:
            return " | ".join(t.tsquery() for t in terms)
        return " & ".join("(" + " | ".join(t.tsquery() for t in g) + ")" for g in self.groups)


_TOKEN = re.compile(r'\s*(?:(?P<neg>-*)"(?P<phrase>[^"]*)"?(?P<star>\*?)|(?P<bare>[^\s"]+))')


def parse_query(value: str) -> ParsedQuery:
    """Parse what a user typed: words (all must match), "phrases", OR, -excluded, prefix*.

    Unbalanced quotes and stray operators are tolerated; a query with nothing to search
    for raises QueryError.
    """
    groups: list[list[Term]] = []
    excluded: list[Term] = []
    joining = negate_next = False
    last_positive = False
    for match in _TOKEN.finditer(value):
        negated = negate_next
        negate_next = False
        if match.group("bare") is not None:
            bare = match.group("bare")
            if bare in ("OR", "|", "||"):
                joining = last_positive
                continue
            if bare in ("AND", "&", "&&", "+"):
                continue
            if bare == "NOT":
                negate_next = True
                continue
            stripped = bare.lstrip("-")
            negated = negated or (len(stripped) < len(bare) and bool(stripped))
            prefix, found = stripped.endswith("*"), words(stripped)
        else:
            negated = negated or bool(match.group("neg"))
            prefix, found = bool(match.group("star")), words(match.group("phrase"))
        if not found:
            continue
        term = Term(tuple(found), prefix)
        if negated:
            excluded.append(term)
            joining = last_positive = False
        else:
            if joining and groups:
                groups[-1].append(term)
            else:
                groups.append([term])
            joining, last_positive = False, True
    if not groups and not excluded:
        raise QueryError(
            f"nothing to search for in {value.strip()[:80]!r}: "
            'use words, "a phrase", OR, -excluded, prefix*'
        )
    if len(excluded) + sum(len(g) for g in groups) > MAX_TERMS:
        raise QueryError(f"too many search terms: at most {MAX_TERMS}")
    return ParsedQuery(tuple(tuple(g) for g in groups), tuple(excluded))


# --------------------------------------------------------------------------------------
# Snippets
# --------------------------------------------------------------------------------------


def _clean(value: str) -> str:
    return unicodedata.normalize("NFC", value.replace(MARK_START, "").replace(MARK_END, ""))


def _matches(word: str, terms: Sequence[Term]) -> bool:
    for term in terms:
        for index, wanted in enumerate(term.words):
            last = index == len(term.words) - 1
            if word == wanted or (term.prefix and last and word.startswith(wanted)):
                return True
    return False


@lru_cache(maxsize=65_536)
def _token_words(token: str) -> tuple[str, ...]:
    return tuple(words(token))


@lru_cache(maxsize=64)
def _matched(terms: tuple[Term, ...]) -> dict[str, bool]:
    """Token -> whether it matches ``terms``, filled as snippets are made: the pages of
    one search share most of their words."""
    return {}


def _hits(tokens: list[re.Match[str]], terms: tuple[Term, ...]) -> list[bool]:
    if not terms:
        return [False] * len(tokens)
    matched = _matched(terms)
    if len(matched) > 65_536:
        matched.clear()
    hits = []
    for token in tokens:
        word = token.group()
        found = matched.get(word)
        if found is None:
            found = matched[word] = any(_matches(w, terms) for w in _token_words(word))
        hits.append(found)
    return hits


def make_snippet(
    texts: Sequence[str | None], terms: Sequence[Term], size: int = SNIPPET_WORDS
) -> str | None:
    """About ``size`` words of the text that best matches ``terms``, matches marked with
    MARK_START/MARK_END; without terms, the start of the first text."""
    best: tuple[int, str, list[re.Match[str]], list[bool]] | None = None
    wanted = tuple(terms)
    for value in texts:
        if not value or not value.strip():
            continue
        clean = _clean(value[:50_000])
        tokens = list(_WORD.finditer(clean))
        if not tokens:
            continue
        hits = _hits(tokens, wanted)
        score = sum(hits)
        if best is None or score > best[0]:
            best = (score, clean, tokens, hits)
        if not terms:
            break
    if best is None:
        return None
    _, clean, tokens, hits = best
    start = 0
    if any(hits):  # the window with the most matches among those starting just before one
        starts = [max(0, i - 3) for i, hit in enumerate(hits) if hit]
        start = max(starts, key=lambda s: (sum(hits[s : s + size]), -s))
    end = min(len(tokens), start + size)
    out = ["…" if start else ""]
    cursor = tokens[start].start()
    for token, hit in zip(tokens[start:end], hits[start:end], strict=True):
        out.append(clean[cursor : token.start()])
        out.append(f"{MARK_START}{token.group()}{MARK_END}" if hit else token.group())
        cursor = token.end()
    if end < len(tokens):
        out.append("…")
    else:
        out.append(clean[cursor:].rstrip())
    return " ".join("".join(out).split())


def strip_marks(snippet: str | None) -> str | None:
    """A snippet without its match markers (for exports and plain text)."""
    return snippet.replace(MARK_START, "").replace(MARK_END, "") if snippet else snippet


_MARKED = re.compile(f"{MARK_START}([^{MARK_START}{MARK_END}]*){MARK_END}")


def highlight_html(snippet: str | None) -> Markup:
    """A snippet as HTML: its text escaped first, then its marked matches in <mark>."""
    if not snippet:
        return Markup("")
    marked = _MARKED.sub(r"<mark>\1</mark>", str(escape(snippet)))
    return Markup(marked.replace(MARK_START, "").replace(MARK_END, ""))


# --------------------------------------------------------------------------------------
# The documents and their index
# --------------------------------------------------------------------------------------


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _prepare(session: Session) -> None:
    """Make sure the index exists (SQLite's FTS5 table) and holds every link's document.

    Catalogs from before migration 0006 get their documents here, on first use.
    """
    with _PREPARE_LOCK:
        empty = session.scalar(select(SearchDocument.link_id).limit(1)) is None
        if empty and session.scalar(select(Link.id).limit(1)) is not None:
            _refresh(session, None)


def refresh_documents(session: Session, link_ids: Iterable[int] | None = None) -> None:
    """Rebuild the search documents of these links (of every link with None).

    Call it whenever a link or its latest capture (``Link.last_capture_id``) changes.
    """
    session.flush()
    ids = None if link_ids is None else sorted(set(link_ids))
    if ids == []:
        return
    _refresh(session, ids)


def _refresh(session: Session, ids: list[int] | None) -> None:
    if ids is None:
        session.execute(delete(SearchDocument))
        ids = list(session.scalars(select(Link.id).order_by(Link.id)))
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        session.execute(delete(SearchDocument).where(SearchDocument.link_id.in_(chunk)))
        documents = [_document(row) for row in session.execute(_document_rows(chunk))]
        if documents:
            session.execute(insert(SearchDocument), documents)


def _document_rows(ids: list[int]) -> Select:
    return (
        select(
            Link.id,
            Link.label,
            Link.url,
            Link.final_url,
            Country.name,
            Country.original_name,
            Country.code,
            City.name,
            City.original_name,
            PageMetadataRow.title,
            PageMetadataRow.description,
            PageMetadataRow.author,
            PageMetadataRow.site_name,
            PageMetadataRow.text,
        )
        .join(Country, Link.country_id == Country.id)
        .outerjoin(City, Link.city_id == City.id)
        .outerjoin(PageMetadataRow, PageMetadataRow.capture_id == Link.last_capture_id)
        .where(Link.id.in_(ids))
    )


def _document(row: Any) -> dict[str, Any]:
    (link_id, label, url, final_url, country, country_original, code, city, city_original,
     title, description, author, site_name, body) = row  # fmt: skip
    return {
        "link_id": link_id,
        "title": _indexed(title),
        "label": _indexed(label),
        "place": _indexed(country, country_original, code, city, city_original),
        "meta": _indexed(description, author, site_name, url, final_url),
        "body": _indexed(body),
    }


# --------------------------------------------------------------------------------------
# Exports
# --------------------------------------------------------------------------------------

#: The columns of every export of search results, CSV or JSON, from the web app, the API
#: or the CLI: a result row without its snippet and rank (they belong to one query).
EXPORT_COLUMNS = ("link_id", "country", "city", "kind", "label", "url", "status",
                  "last_check", "last_checked_at", "title",
                  "author", "published", "language", "site_name", "captured_at", "capture_id",
                  "description", "http_status", "final_url", "capture_record_id",
                  "payload_sha256", "images", "warc_file")  # fmt: skip
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def export_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """Search result rows as CSV in :data:`EXPORT_COLUMNS`, formulas defused."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        writer.writerow([csv_cell(row.get(column)) for column in EXPORT_COLUMNS])
    return buffer.getvalue()


# --------------------------------------------------------------------------------------
# Searching
# --------------------------------------------------------------------------------------


def _month_range(value: str, name: str) -> tuple[date, date]:
    match = _MONTH.fullmatch(value.strip())
    if not match:
        raise QueryError(f"--{name} {value!r}: use YYYY or YYYY-MM")
    year, month = int(match.group(1)), match.group(2)
    if month is None:
        return date(year, 1, 1), date(year + 1, 1, 1)
    if not 1 <= int(month) <= 12:
        raise QueryError(f"--{name} {value!r}: no month {month}")
    first = date(year, int(month), 1)
    return first, date(year + (first.month == 12), first.month % 12 + 1, 1)


def _month(session: Session, column: Any) -> ColumnElement[str]:
    if _dialect(session) == "sqlite":
        return func.strftime("%Y-%m", column)
    return func.to_char(column, "YYYY-MM")


def _text_match(session: Session, parsed: ParsedQuery) -> tuple[Any, Any, list[Any]]:
    """(a FROM to join on links.id or None, its rank column or None, extra conditions)."""
    conditions: list[Any] = []
    joined = rank = None
    if _dialect(session) == "sqlite":

        def matching(expression: str, name: str) -> Any:
            return (
                text(
                    f"SELECT rowid AS link_id, -{_BM25} AS rank FROM search_fts"
                    f" WHERE search_fts MATCH :{name}"
                )
                .bindparams(**{name: expression})
                .columns(link_id=Integer, rank=Float)
                .subquery(name)
            )

        if parsed.groups:
            joined = matching(parsed.fts5(), "fts_match")
            rank = joined.c.rank
        if parsed.excluded:
            excluded = matching(parsed.fts5(parsed.excluded), "fts_excluded")
            conditions.append(Link.id.not_in(select(excluded.c.link_id)))
        return joined, rank, conditions

    config = literal_column("'simple'::regconfig")
    vector = literal_column(PG_VECTOR)  # matched through migration 0006's GIN index
    documents = select(SearchDocument.link_id)
    if parsed.groups:
        tsquery = func.to_tsquery(config, literal(parsed.tsquery()))
        joined = (
            select(
                SearchDocument.link_id.label("link_id"),
                func.ts_rank(literal_column(PG_COLUMN), tsquery).label("rank"),
            )
            .where(vector.op("@@")(tsquery))
            .subquery("ts_match")
        )
        rank = joined.c.rank
    if parsed.excluded:
        tsquery = func.to_tsquery(config, literal(parsed.tsquery(parsed.excluded)))
        conditions.append(Link.id.not_in(documents.where(vector.op("@@")(tsquery))))
    return joined, rank, conditions


def _base(session: Session, query: SearchQuery, parsed: ParsedQuery | None) -> tuple[Select, Any]:
    """The matching links with their joins and filters, and the rank column (or None)."""
    statement = (
        select(Link.id)
        .join(Country, Link.country_id == Country.id)
        .outerjoin(City, Link.city_id == City.id)
        .outerjoin(Capture, Capture.id == Link.last_capture_id)
        .outerjoin(PageMetadataRow, PageMetadataRow.capture_id == Link.last_capture_id)
    )
    selection = Selection(
        country=query.country or None,
        city=query.city or None,
        kind=query.kind or None,
        status=query.status or None,
        link_ids=query.link_ids,
    )
    statement = _filtered(session, statement, selection)
    if query.language:
        wanted = query.language.strip().casefold()
        statement = statement.where(func.lower(PageMetadataRow.language) == wanted)
    if query.published:
        first, after = _month_range(query.published, "published")
        statement = statement.where(
            PageMetadataRow.published >= first, PageMetadataRow.published < after
        )
    if query.captured:
        first, after = _month_range(query.captured, "captured")
        statement = statement.where(Capture.captured_at >= first, Capture.captured_at < after)
    if query.since:
        statement = statement.where(PageMetadataRow.published >= query.since)
    if query.until:
        statement = statement.where(PageMetadataRow.published <= query.until)
    rank = None
    if parsed is not None:
        joined, rank, conditions = _text_match(session, parsed)
        if joined is not None:
            statement = statement.join(joined, joined.c.link_id == Link.id)
        statement = statement.where(*conditions)
    return statement, rank


def search(session: Session, query: SearchQuery, *, facets: bool = True) -> SearchResult:
    """Links matching ``query``: ranked rows (by relevance with text, else newest publication
    first, then place), the size of the whole result set and its facet counts."""
    if query.limit is not None and query.limit < 0 or query.offset < 0:
        raise QueryError("limit and offset cannot be negative")
    parsed = parse_query(query.text) if query.text and query.text.strip() else None
    _prepare(session)
    base, rank = _base(session, query, parsed)
    counts = _facet_counts(session, base, facets, COUNT_CAP)
    total = counts.pop("total", [("", 0)])[0][1]
    exact = COUNT_CAP is None or total <= COUNT_CAP
    rows = _rows(session, base, rank, parsed, query)
    return SearchResult(
        total=total if exact else COUNT_CAP,
        rows=rows,
        facets=counts if facets else {},
        exact=exact,
    )


def _facet_counts(
    session: Session, base: Select, facets: bool, cap: int | None = None
) -> dict[str, list]:
    """Total and facet counts over the matching set (its first ``cap`` + 1 links found
    when ``cap`` is given), in one statement."""
    columns = {
        "country": Country.name,
        "city": City.name,
        "kind": Link.kind,
        "language": PageMetadataRow.language,
        "status": Link.status,
        "published": _month(session, PageMetadataRow.published),
        "captured": _month(session, Capture.captured_at),
    }
    labelled = [c.label(f"f_{n}") for n, c in columns.items()] if facets else []
    matching = base.with_only_columns(Link.id.label("link_id"), *labelled)
    if cap is not None:
        matching = matching.limit(cap + 1)
    matching = matching.cte("matching")
    if facets:  # read eight times: computed once
        matching = matching.prefix_with("MATERIALIZED")
    total = select(literal("total").label("facet"), literal(None).label("value"), func.count())
    parts = [total.select_from(matching)]
    if facets:
        for name in FACETS:
            value = matching.c[f"f_{name}"]
            parts.append(
                select(literal(name), value, func.count()).where(value.is_not(None)).group_by(value)
            )
    counts: dict[str, list[tuple[str, int]]] = {name: [] for name in FACETS}
    counts["total"] = []
    for facet, value, count in session.execute(union_all(*parts)):
        counts[facet].append(("" if value is None else str(value), int(count)))
    for name in FACETS:
        counts[name].sort(key=lambda pair: (-pair[1], pair[0]))
    return counts


_LISTING_FILTERS = ("country", "city", "kind", "language", "status", "captured", "link_ids")


def _newest_first(session: Session, page: Select, base: Select, query: SearchQuery) -> Select:
    """``page`` (newest publication first, no text) limited to the links published on or
    after the date of its last row, found by walking ``ix_page_metadata_published`` from
    the newest: the same rows in the same order, without sorting every link.

    Only when no filter but the publication dates is given: another filter can leave few
    links among many dates, and the walk would then read most of the index.
    """
    if any(getattr(query, name) for name in _LISTING_FILTERS):
        return page
    walked = aliased(PageMetadataRow)
    bounds = [walked.published.is_not(None)]
    if query.published:
        first, after = _month_range(query.published, "published")
        bounds += [walked.published >= first, walked.published < after]
    if query.since:
        bounds.append(walked.published >= query.since)
    if query.until:
        bounds.append(walked.published <= query.until)
    listed = base.with_only_columns(literal(1)).where(Link.last_capture_id == walked.capture_id)
    last = (
        select(walked.published)
        .with_hint(walked, "INDEXED BY ix_page_metadata_published", "sqlite")
        .where(*bounds, listed.exists())
        .order_by(walked.published.desc())
        .offset(query.offset + query.limit - 1)
        .limit(1)
    )
    threshold = session.scalar(last)
    if threshold is None:  # fewer dated links than the page reaches: sort them all
        return page
    recent = aliased(PageMetadataRow)
    since = (
        select(recent.capture_id)
        .with_hint(recent, "INDEXED BY ix_page_metadata_published", "sqlite")
        .where(recent.published >= threshold)
    )
    return page.where(Link.last_capture_id.in_(since))


def _rows(
    session: Session, base: Select, rank: Any, parsed: ParsedQuery | None, query: SearchQuery
) -> list[dict[str, Any]]:
    if query.limit == 0:
        return []
    outcome = aliased(CrawlOutcome)
    latest_outcome = (
        select(func.max(CrawlOutcome.id)).where(CrawlOutcome.link_id == Link.id).scalar_subquery()
    )
    check = aliased(LinkCheck)
    latest_check = (
        select(func.max(LinkCheck.id)).where(LinkCheck.link_id == Link.id).scalar_subquery()
    )
    images = (
        select(func.count(func.distinct(Media.url)))
        .where(Media.link_id == Link.id, Media.run_id == Capture.run_id, Media.kind == "image")
        .scalar_subquery()
    )
    # The page's ids first, then their details: SQLite would otherwise compute every
    # column (subqueries included) of every matching row before sorting.
    rank_column = rank if rank is not None else cast(null(), Float)
    order = [PageMetadataRow.published.desc().nulls_last(), Country.name, City.name, Link.id]
    if rank is not None:
        order.insert(0, rank.desc())
    page = base.with_only_columns(Link.id, rank_column).order_by(*order)
    if rank is None and query.limit is not None:
        page = _newest_first(session, page, base, query)
    elif query.limit is not None:  # the page's lowest rank first, without the other keys
        lowest = session.scalar(
            base.with_only_columns(rank)
            .order_by(rank.desc())
            .offset(query.offset + query.limit - 1)
            .limit(1)
        )
        if lowest is not None:  # PostgreSQL's ranks are float4: compared as read
            page = page.where(rank >= cast(literal(lowest), REAL))
    page = page.offset(query.offset or None)
    if query.limit is not None:
        page = page.limit(query.limit)
    ranked = list(session.execute(page).tuples())
    details = (
        select(Link, Country, City, Capture, PageMetadataRow, outcome, check, images)
        .join(Country, Link.country_id == Country.id)
        .outerjoin(City, Link.city_id == City.id)
        .outerjoin(Capture, Capture.id == Link.last_capture_id)
        .outerjoin(PageMetadataRow, PageMetadataRow.capture_id == Link.last_capture_id)
        .outerjoin(outcome, outcome.id == latest_outcome)
        .outerjoin(check, check.id == latest_check)
    )
    rule = death_rule()
    found: dict[int, Any] = {}
    for start in range(0, len(ranked), _CHUNK):
        chunk = [link_id for link_id, _ in ranked[start : start + _CHUNK]]
        found.update((row[0].id, row) for row in session.execute(details.where(Link.id.in_(chunk))))
    terms = parsed.terms if parsed else []
    rows = []
    for link_id, score in ranked:
        link, country, city, capture, meta, last, checked, image_count = found[link_id]
        texts = [meta.text, meta.description, meta.title] if meta else []
        if meta and not terms:  # no words to show in context: the summary first
            texts = [meta.description, meta.text]
        rows.append(
            {
                "link_id": link.id,
                "country": country.name,
                "city": city.name if city else None,
                "kind": link.kind,
                "label": link.label,
                "url": link.url,
                "status": standing_label(link.status, link.failures, rule),
                "last_check": check_label(checked),
                "last_checked_at": _iso(checked.checked_at) if checked else None,
                "http_status": last.http_status if last else None,
                "final_url": link.final_url,
                "captured_at": _iso(capture.captured_at) if capture else None,
                "capture_id": capture.id if capture else None,
                "capture_record_id": capture.record_id if capture else None,
                "payload_sha256": capture.payload_sha256 if capture else None,
                "title": meta.title if meta else None,
                "description": meta.description if meta else None,
                "author": meta.author if meta else None,
                "published": meta.published.isoformat() if meta and meta.published else None,
                "language": meta.language if meta else None,
                "site_name": meta.site_name if meta else None,
                "images": image_count or 0,
                "warc_file": capture.warc_file if capture else None,
                "snippet": make_snippet([*texts, link.label], terms),
                "rank": float(score) if score is not None else None,
            }
        )
    return rows
