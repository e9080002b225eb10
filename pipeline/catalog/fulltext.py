"""The one query engine: full-text search with filters, facets, ranking and snippets.

Each link has one row in ``search_documents`` holding its words (page title, label, place
names, metadata, text of its latest capture) folded in Python: NFKD, combining marks
stripped, casefolded, so "Munchen" finds "München" on every database. The search index
(``catalog.searchindex``, tantivy) is built from them and catches up with the catalog
before each search; it matches, ranks (BM25, title weighted most), counts and facets,
the same on SQLite and PostgreSQL. The page's rows and snippets come from the catalog.

What users type (words, "phrases", OR, -excluded, prefix*) is parsed here into a small tree
and built into index queries term by term: nothing typed is ever parsed by the engine.
"""

from __future__ import annotations

import csv
import io
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from functools import lru_cache
from threading import Lock
from typing import Any

import tantivy
from markupsafe import Markup, escape
from sqlalchemy import Select, delete, func, insert, select
from sqlalchemy.orm import Session, aliased
from tantivy import Occur

from pipeline.catalog import searchindex
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
from pipeline.catalog.queries import (
    QueryError,
    _iso,
    check_kind,
    check_status,
    find_cities,
    find_country,
    known_links,
)
from pipeline.catalog.searchindex import SCHEMA
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
# Matches the index finds per row wanted, and at least, that are then scored exactly; at
# most RERANK_MAX (an export of more keeps the index's order after them).
RERANKED, RERANK_MIN, RERANK_MAX = 4, 200, 10_000
PREFIX_WORDS = 64  # a prefix starting more words is matched without scoring each
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
    """A page of ranked rows, the size of the whole result set, and its facet counts."""

    total: int
    rows: list[dict[str, Any]]
    facets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)


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
            if searchindex.UNSPACED.search(wanted) and wanted in word:  # within a run
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


def _prepare(session: Session) -> None:
    """Make sure every link has its search document.

    Catalogs from before migration 0006 get their documents here, on first use.
    """
    with _PREPARE_LOCK:
        empty = session.scalar(select(SearchDocument.link_id).limit(1)) is None
        if empty and session.scalar(select(Link.id).limit(1)) is not None:
            _refresh(session, None)


def open_index(session: Session, *, anew: bool = False) -> searchindex.SearchIndex:
    """The catalog's search index, current (built first if need be; ``anew``: rebuilt)."""
    _prepare(session)
    return searchindex.rebuild(session) if anew else searchindex.for_session(session)


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


def _days(first: date, after: date) -> tuple[int | None, int | None]:
    return searchindex.day_number(first), searchindex.day_number(after - timedelta(days=1))


@lru_cache(maxsize=4096)
def _term_query(term: Term, field_name: str) -> tantivy.Query:
    """One word or phrase in one field; unspaced scripts as phrases of character pairs."""
    tokens = [t for w in term.words for t in searchindex.index_tokens(w, last_alone=False)]
    if term.prefix and not searchindex.UNSPACED.search(term.words[-1]):
        if len(tokens) == 1:  # every word it starts (folded words are letters and digits)
            return tantivy.Query.regex_query(SCHEMA, field_name, re.escape(tokens[0]) + ".*")
        return tantivy.Query.phrase_prefix_query(SCHEMA, field_name, tokens)
    if len(tokens) == 1 and len(tokens[0]) == 1 and searchindex.UNSPACED.match(tokens[0]):
        # One character: the pairs it starts, or itself ending a run.
        return tantivy.Query.regex_query(SCHEMA, field_name, re.escape(tokens[0]) + ".?")
    if len(tokens) == 1:
        return tantivy.Query.term_query(SCHEMA, field_name, tokens[0])
    return tantivy.Query.phrase_query(SCHEMA, field_name, tokens)


def _anywhere(terms: Sequence[Term], searcher: tantivy.Searcher) -> tantivy.Query:
    """Any of ``terms`` in any text field. A word is matched in the field of all fields
    (BM25 over its weighted frequency, close to FTS5's bm25()), a prefix as the words it
    starts there (up to :data:`PREFIX_WORDS`); a phrase in each field, weighted."""
    clauses = []
    for term in terms:
        tokens = [t for w in term.words for t in searchindex.index_tokens(w, last_alone=False)]
        if len(tokens) == 1 and _kind(term) == "prefix":
            started = searcher.terms_with_prefix(searchindex.ALL, tokens[0], limit=PREFIX_WORDS)
            if len(started) < PREFIX_WORDS:
                clauses += [
                    tantivy.Query.term_query(SCHEMA, searchindex.ALL, w) for w, _ in started
                ]
            else:  # too many to score each: matched all the same
                clauses.append(_term_query(term, searchindex.ALL))
        elif len(tokens) == 1:  # a word, a pair of characters, or one character
            clauses.append(_term_query(term, searchindex.ALL))
        else:
            clauses += [
                tantivy.Query.boost_query(_term_query(term, name), weight)
                for name, weight in searchindex.TEXT_FIELDS
            ]
    return tantivy.Query.boolean_query(
        [(Occur.Should, clause) for clause in clauses]
        or [(Occur.Must, tantivy.Query.empty_query())]
    )


def _filters(session: Session, query: SearchQuery) -> list[tantivy.Query]:
    """The filters of ``query`` as index queries (names resolved in the catalog)."""
    found: list[tantivy.Query] = []

    def one_of(name: str, values: Iterable[int]) -> tantivy.Query:
        return tantivy.Query.term_set_query(SCHEMA, name, list(values))

    country = find_country(session, query.country) if query.country else None
    if country is not None:
        found.append(tantivy.Query.term_query(SCHEMA, "country_id", country.id))
    if query.city:
        found.append(one_of("city_id", [c.id for c in find_cities(session, query.city, country)]))
    if query.link_ids is not None:
        found.append(one_of("link_id", known_links(session, query.link_ids)))
    if query.kind:
        found.append(tantivy.Query.term_query(SCHEMA, "kind", check_kind(query.kind)))
    if query.status:
        found.append(tantivy.Query.term_query(SCHEMA, "status", check_status(query.status)))
    if query.language:
        wanted = query.language.strip().casefold()
        found.append(tantivy.Query.term_query(SCHEMA, "language_key", wanted))
    ranges: list[tuple[str, int | None, int | None]] = []
    if query.published:
        ranges.append(("published_day", *_days(*_month_range(query.published, "published"))))
    if query.captured:
        ranges.append(("captured_day", *_days(*_month_range(query.captured, "captured"))))
    if query.since or query.until:
        since, until = searchindex.day_number(query.since), searchindex.day_number(query.until)
        ranges.append(("published_day", since, until))
    for name, low, high in ranges:
        found.append(
            tantivy.Query.range_query(SCHEMA, name, tantivy.FieldType.Integer, low, high)
            if low is not None or high is not None
            else tantivy.Query.exists_query(name)
        )
    return found


def _matching(
    session: Session, searcher: tantivy.Searcher, query: SearchQuery, parsed: ParsedQuery | None
) -> tantivy.Query:
    """The index query of ``query``: every text group and filter, no excluded term."""
    clauses: list[tuple[Occur, tantivy.Query]] = []
    if parsed is not None:
        clauses += [(Occur.Must, _anywhere(group, searcher)) for group in parsed.groups]
        clauses += [(Occur.MustNot, _anywhere([term], searcher)) for term in parsed.excluded]
    clauses += [(Occur.Must, f) for f in _filters(session, query)]
    if not any(occur == Occur.Must for occur, _ in clauses):
        clauses.append((Occur.Must, tantivy.Query.all_query()))
    return tantivy.Query.boolean_query(clauses)


def search(session: Session, query: SearchQuery, *, facets: bool = True) -> SearchResult:
    """Links matching ``query``: ranked rows (by relevance with text, else newest publication
    first, then place), the size of the whole result set and its facet counts."""
    if query.limit is not None and query.limit < 0 or query.offset < 0:
        raise QueryError("limit and offset cannot be negative")
    parsed = parse_query(query.text) if query.text and query.text.strip() else None
    index = open_index(session)
    searcher = index.searcher()
    matching = _matching(session, searcher, query, parsed)
    total = searcher.search(matching, 1, count=True).count or 0
    counts = _facet_counts(searcher, matching) if facets else {}
    ranked = _ranked(session, index, searcher, matching, query, parsed, total)
    return SearchResult(total=total, rows=_rows(session, ranked, parsed), facets=counts)


def _facet_counts(searcher: tantivy.Searcher, matching: tantivy.Query) -> dict[str, list]:
    """Each facet's values and counts over every match, most frequent first."""
    request = {name: {"terms": {"field": name, "size": 65_000}} for name in FACETS}
    found = searcher.aggregate(matching, request)
    counts = {}
    for name in FACETS:
        pairs = [(b["key"], int(b["doc_count"])) for b in found[name]["buckets"]]
        counts[name] = sorted(pairs, key=lambda pair: (-pair[1], pair[0]))
    return counts


def bm25_idf(documents: int, matching: int) -> float:
    """A term's inverse document frequency as FTS5's bm25() computes it."""
    idf = math.log((documents - matching + 0.5) / (matching + 0.5))
    return idf if idf > 0.0 else 1e-6


@lru_cache(maxsize=1024)
def _kind(term: Term) -> str:
    if len(term.words) > 1:
        return "phrase"
    if searchindex.UNSPACED.search(term.words[0]):
        return "unspaced"
    return "prefix" if term.prefix else "word"


class _Field:
    """One text field of a document as bm25 counts in it: its words, split when needed."""

    def __init__(self, text: str) -> None:
        self.padded = " " + text  # words are joined by single spaces (see ``_indexed``)
        self.length = searchindex.word_count(text)
        self._words: list[str] | None = None
        self._counts: Counter[str] | None = None
        self._lookups = 0

    @property
    def words(self) -> list[str]:
        if self._words is None:
            self._words = self.padded.split()
        return self._words

    def occurrences(self, term: Term) -> int:
        """How many times ``term`` occurs (a phrase: its words in a row)."""
        first = term.words[0]
        kind = _kind(term)
        if kind == "unspaced":  # within runs of characters
            return self.padded.count(first)
        if kind == "prefix":  # each word starting so follows a space
            return self.padded.count(" " + first)
        if kind == "word":  # counted once for all from the fourth word looked up
            if self._counts is None:
                self._lookups += 1
                if self._lookups <= 3:
                    return self.words.count(first)
                self._counts = Counter(self.words)
            return self._counts[first]
        last = len(term.words) - 1

        def same(word: str, wanted: str, index: int) -> bool:
            if searchindex.UNSPACED.search(wanted):
                return wanted in word
            return word == wanted or (term.prefix and index == last and word.startswith(wanted))

        words, found = self.words, 0
        for start, word in enumerate(words):
            if same(word, first, 0) and all(
                start + i < len(words) and same(words[start + i], wanted, i)
                for i, wanted in enumerate(term.words[1:], 1)
            ):
                found += 1
        return found


def bm25(
    texts: Sequence[str], terms: Sequence[Term], idf: Sequence[float], average: float
) -> float:
    """The relevance of a document (its text fields) to ``terms``: SQLite FTS5's bm25()
    with the fields' weights, operation for operation (k1 1.2, b 0.75)."""
    k1, b = 1.2, 0.75
    fields = [_Field(text) for text in texts]
    length = float(sum(f.length for f in fields))
    score = 0.0
    for term, term_idf in zip(terms, idf, strict=True):
        frequency = 0.0
        for found, (_, weight) in zip(fields, searchindex.TEXT_FIELDS, strict=True):
            frequency += weight * found.occurrences(term)
        score += term_idf * (
            (frequency * (k1 + 1.0)) / (frequency + k1 * (1 - b + b * length / average))
        )
    return score


def _ranked(
    session: Session,
    index: searchindex.SearchIndex,
    searcher: tantivy.Searcher,
    matching: tantivy.Query,
    query: SearchQuery,
    parsed: ParsedQuery | None,
    total: int,
) -> list[tuple[int, float | None]]:
    """The page's (link id, score) pairs, best first, ties in listing order; without text
    in listing order (newest publication first, then place and id).

    The index finds the best :data:`RERANKED` per row wanted (at least
    :data:`RERANK_MIN`, at most :data:`RERANK_MAX`), which are then scored exactly as
    SQLite FTS5's bm25() scored them before the index (:func:`bm25`): so a result set that
    size or smaller is in the same order as it always was. The index's BM25 over its field
    of all fields is close to bm25(), so a larger one's best rows are too, but for a
    prefix (the index scores each word it starts apart).
    """
    wanted = total if query.limit is None else min(total, query.offset + query.limit)
    if wanted <= query.offset:
        return []
    if parsed is None or not parsed.groups:
        hits = searcher.search(
            matching, wanted - query.offset, count=False, order_by_field="listing",
            offset=query.offset, order=tantivy.Order.Asc,
        ).hits  # fmt: skip
        return [(link_id, None) for link_id in searchindex.link_ids(searcher, hits)]
    window = min(total, max(RERANK_MIN, RERANKED * wanted))
    hits = searcher.search(matching, window, count=False).hits
    stored = [searcher.doc(address) for _, address in hits]
    candidates = {doc["link_id"][0]: doc["listing"][0] for doc in stored[:RERANK_MAX]}
    beyond = [(doc["link_id"][0], score) for (score, _), doc in zip(hits, stored, strict=True)]
    terms = parsed.terms
    found = [searcher.search(_anywhere([t], searcher), 1, count=True).count or 0 for t in terms]
    idf = [bm25_idf(searcher.num_docs, n) for n in found]
    average = index.average_words(searcher)
    scored = []
    ids = list(candidates)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        documents = select(SearchDocument).where(SearchDocument.link_id.in_(chunk))
        for document in session.scalars(documents):
            texts = [getattr(document, n) or "" for n, _ in searchindex.TEXT_FIELDS]
            score = bm25(texts, terms, idf, average)
            scored.append((-score, candidates[document.link_id], document.link_id))
    scored.sort()
    ranked = [(link_id, -score) for score, _, link_id in scored] + beyond[RERANK_MAX:]
    return ranked[query.offset : wanted]


def _rows(
    session: Session, ranked: list[tuple[int, float | None]], parsed: ParsedQuery | None
) -> list[dict[str, Any]]:
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
