"""Full-text search over the crawled replica world, on SQLite (FTS5) and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from pipeline.catalog import fulltext, searchindex, session_scope
from pipeline.catalog.db import engine_for, forget_engine
from pipeline.catalog.fulltext import (
    EXPORT_COLUMNS,
    FACETS,
    MARK_END,
    MARK_START,
    SearchQuery,
    parse_query,
    refresh_documents,
    search,
)
from pipeline.catalog.fulltext import highlight_html as highlight
from pipeline.catalog.importer import import_entries
from pipeline.catalog.models import Base, Link, SearchChange, SearchDocument
from pipeline.catalog.queries import QueryError
from pipeline.cli import main
from pipeline.config import paths
from pipeline.seeds import SeedEntry, SeedLink

pytestmark = pytest.mark.e2e

HOSTILE = ('"unbalanced', "AND OR", "NEAR(", "*", "'; drop table links; --", 'a"b"c', "-",
           "OR Blumen OR", "Blumen AND", '"" ""', "NOT", "(Blumen", "Blumen)", "col:Blumen",
           "^Blumen", "Blumen NEAR/2 Frauen", "\\", "'", "!!", ":*", "a & b | !c",
           "x" * 400, "Blumen " * 40)  # fmt: skip


def _copy_catalog(source: str, target: str) -> None:
    """Every catalog row of ``source`` into the empty catalog ``target``; then documents
    (whose changes the target's own triggers log)."""
    derived = ("search_documents", "search_changes")
    tables = [t for t in Base.metadata.sorted_tables if t.name not in derived]
    links = Base.metadata.tables["links"]
    with engine_for(source).connect() as reading, engine_for(target).begin() as writing:
        last: list[dict[str, Any]] = []
        for table in tables:
            rows = [dict(row._mapping) for row in reading.execute(table.select())]
            if table is links:  # captures refer to links and links to captures: two steps
                last = [{"i": r["id"], "c": r["last_capture_id"]} for r in rows]
                rows = [{**r, "last_capture_id": None} for r in rows]
            if rows:
                writing.execute(table.insert(), rows)
        for row in last:
            writing.execute(
                update(links).where(links.c.id == row["i"]).values(last_capture_id=row["c"])
            )
        for table in tables:
            if "id" in table.c and writing.dialect.name == "postgresql":
                writing.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'),"
                        f" coalesce((SELECT max(id) FROM {table.name}), 0) + 1, false)"
                    )
                )
    with session_scope(target) as session:
        refresh_documents(session)


@pytest.fixture(scope="module")
def pg_database(postgres_url: str) -> Iterator[Callable[[], str]]:
    """Makes throwaway databases on the test PostgreSQL server; drops them at the end."""
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make() -> str:
        name = f"fulltext_{uuid.uuid4().hex[:12]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return postgres_url.rsplit("/", 1)[0] + "/" + name

    yield make
    for name in made:
        forget_engine(postgres_url.rsplit("/", 1)[0] + "/" + name)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def catalog(request: pytest.FixtureRequest, crawled: dict[str, Any]) -> str:
    """The crawled catalog's URL, on SQLite as crawled, or copied onto PostgreSQL."""
    url = paths(crawled["home"]).database_url
    if request.param == "sqlite":
        return url
    target = request.getfixturevalue("pg_database")()
    _copy_catalog(url, target)
    return target


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def writable(
    request: pytest.FixtureRequest, crawled: dict[str, Any], tmp_path: Path
) -> Iterator[str]:
    """A copy of the crawled catalog that a test may change."""
    shutil.copytree(crawled["home"], tmp_path / "home")
    url = paths(tmp_path / "home").database_url
    if request.param == "postgresql":
        target = request.getfixturevalue("pg_database")()
        _copy_catalog(url, target)
        url = target
    yield url
    forget_engine(url)


def find(url: str, query: str | None = None, **filters: Any) -> list[dict[str, Any]]:
    with session_scope(url) as session:
        return search(session, SearchQuery(text=query, limit=None, **filters)).rows


def cities(url: str, query: str | None = None, **filters: Any) -> list[str | None]:
    return [row["city"] for row in find(url, query, **filters)]


# --- the query language --------------------------------------------------------------------


def test_queries_are_parsed_into_a_safe_tree() -> None:
    parsed = parse_query('Blumen OR "weiße  Kleidung" -Berlin Kund* AND NOT x OR')
    assert [[t.words for t in g] for g in parsed.groups] == [
        [("blumen",), ("weisse", "kleidung")],
        [("kund",)],
    ]
    assert parsed.groups[1][0].prefix
    assert [t.words for t in parsed.excluded] == [("berlin",), ("x",)]
    assert parsed.fts5() == '("blumen" OR "weisse kleidung") AND ("kund" *)'
    assert parsed.tsquery() == "('blumen' | ('weisse' <-> 'kleidung')) & ('kund':*)"
    hostile = parse_query("'; drop table links; --\" NEAR(x")
    assert hostile.fts5() == '("drop") AND ("table") AND ("links")'
    assert [t.words for t in hostile.excluded] == [("near", "x")]  # -" to the end: a phrase
    for nothing in ("AND OR", "*", "-", '""', "--", "NOT"):
        with pytest.raises(QueryError):
            parse_query(nothing)


def test_highlights_escape_the_text_before_marking_it() -> None:
    snippet = f'<script>alert("x")</script> {MARK_START}Blumen & <b>{MARK_END} {MARK_START}open'
    html = str(highlight(snippet))
    assert html == (
        "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; <mark>Blumen &amp; &lt;b&gt;</mark> open"
    )
    assert str(highlight(None)) == ""


# --- searching the crawled world -----------------------------------------------------------


def test_diacritics_and_case_are_folded(catalog: str) -> None:
    assert cities(catalog, "Munchen") == ["Munich"]
    assert cities(catalog, "MÜNCHEN") == ["Munich"]
    assert cities(catalog, "munchen marienplatz") == ["Munich"]


def test_cyrillic_and_japanese_words(catalog: str) -> None:
    assert cities(catalog, "МОСКВЫ") == ["Moscow"]
    assert cities(catalog, "Смирнова") == ["Moscow"]  # the author
    assert cities(catalog, "佐藤") == ["Tokyo"]
    assert cities(catalog, "東京でベラルーシの女性たちへの連帯集会") == ["Tokyo"]


def test_a_term_frequent_in_one_page_ranks_it_first(catalog: str) -> None:
    rows = find(catalog, "world")  # twice in the text of the Ottawa report, once elsewhere
    assert len(rows) >= 3
    assert rows[0]["city"] == "Ottawa"
    ranks = [row["rank"] for row in rows]
    assert ranks == sorted(ranks, reverse=True) and ranks[0] > ranks[-1]


def test_snippets_mark_the_matches(catalog: str) -> None:
    (row,) = find(catalog, "Blumen", city="Berlin")
    assert f"{MARK_START}Blumen{MARK_END}" in row["snippet"]
    assert "<mark>Blumen</mark>" in str(highlight(row["snippet"]))
    (row,) = find(catalog, "Москвы")
    assert f"{MARK_START}Москвы{MARK_END}" in row["snippet"]
    (row,) = find(catalog, "Kundgeb*", city="Munich")
    assert f"{MARK_START}Kundgebung{MARK_END}" in row["snippet"]
    assert all(row["snippet"] and MARK_START not in row["snippet"] for row in find(catalog))


def test_phrases_or_exclusion_and_prefixes(catalog: str) -> None:
    assert set(cities(catalog, '"weiße Kleidung"')) == {"Berlin", "Vienna"}
    assert cities(catalog, '"Kleidung weiße"') == []
    blumen, flowers = set(cities(catalog, "Blumen")), set(cities(catalog, "flowers"))
    assert blumen and flowers and not blumen <= flowers
    assert set(cities(catalog, "Blumen OR flowers")) == blumen | flowers
    assert set(cities(catalog, "Blumen -Berlin")) == blumen - {"Berlin"}
    assert "Berlin" in blumen
    assert cities(catalog, "Kundgeb") == []
    assert "Munich" in cities(catalog, "Kundgeb*")
    everything = find(catalog)
    assert len(find(catalog, "-Belarus")) == len(everything) - len(find(catalog, "Belarus"))


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_syntax_gives_results_or_a_query_error(catalog: str, query: str) -> None:
    try:
        rows = find(catalog, query)
    except QueryError as exc:
        assert str(exc) and "\n" not in str(exc)
    except DBAPIError as exc:  # pragma: no cover - the failure this test exists for
        pytest.fail(f"{query!r} reached the database unparsed: {exc}")
    else:
        assert isinstance(rows, list)
    assert len(find(catalog)) >= 20  # and nothing was dropped


def test_facet_counts_add_up_to_the_total(catalog: str) -> None:
    for query in (None, "Belarus", "Blumen OR flowers"):
        with session_scope(catalog) as session:
            result = search(session, SearchQuery(text=query, limit=3))
        rows = find(catalog, query)
        assert result.total == len(rows) and len(result.rows) == 3
        assert set(result.facets) == set(FACETS)
        for name in FACETS:
            counts = result.facets[name]
            assert counts == sorted(counts, key=lambda pair: (-pair[1], pair[0]))
            key = {"published": "published", "captured": "captured_at"}.get(name, name)
            unknown = sum(row[key] is None for row in rows)
            assert sum(count for _, count in counts) + unknown == result.total, name
        if query is None:
            assert result.facets["country"][0] == ("Germany", 3)


def test_filters(catalog: str) -> None:
    assert cities(catalog, city="München") == ["Munich"]
    assert cities(catalog, language="ru") == ["Moscow"]
    assert set(cities(catalog, country="DE")) == {"Berlin", "Munich", "Hamburg"}
    october = find(catalog, published="2020-10")
    assert october and all(row["published"].startswith("2020-10") for row in october)
    assert find(catalog, published="2020-11") == []
    assert len(find(catalog, published="2020")) == len(october)
    month = find(catalog)[0]["captured_at"][:7]
    assert len(find(catalog, captured=month)) == len(find(catalog))
    assert find(catalog, captured="1999-01") == []
    assert cities(catalog, since=date(2020, 10, 11)) == ["Ottawa"]
    for bad in ({"published": "2020-13"}, {"captured": "last week"}, {"city": "Atlantis"},
                {"kind": "podcast"}, {"status": "lost"}):  # fmt: skip
        with pytest.raises(QueryError):
            find(catalog, **bad)


def test_a_researchers_question(catalog: str) -> None:
    """A Berlin report from October 2020 mentioning Blumen or flowers."""
    rows = find(catalog, "Blumen OR flowers", city="Berlin", kind="report", published="2020-10")
    assert [(row["city"], row["kind"]) for row in rows] == [("Berlin", "report")]
    assert rows[0]["title"] == "Berlin: Frauen in Weiß für ein freies Belarus"
    assert rows[0]["capture_record_id"].startswith("<urn:uuid:")
    assert len(rows[0]["payload_sha256"]) == 64


def test_order_without_text_is_newest_publication_first(catalog: str) -> None:
    rows = find(catalog)
    published = [row["published"] or "" for row in rows]
    assert rows[0]["city"] == "Ottawa"  # the one report of 11 October
    assert published[: published.index("")] == sorted(published[: published.index("")])[::-1]
    assert all(row["rank"] is None for row in rows)
    with session_scope(catalog) as session:
        paged = search(session, SearchQuery(limit=5, offset=5), facets=False)
    assert [r["link_id"] for r in paged.rows] == [r["link_id"] for r in rows[5:10]]
    assert paged.facets == {}


def test_pages_are_slices_of_the_whole_order(catalog: str) -> None:
    """Pages found from their last row's date (newest first, by walking the publication
    dates) or rank (ranked, before sorting on the other keys) hold what sorting every
    match gives, in its order, with or without filters (issue 16)."""
    cases = ((None, {}), (None, {"published": "2020"}), (None, {"published": "2020-10"}),
             (None, {"since": date(2020, 10, 1)}), (None, {"until": date(2020, 10, 10)}),
             (None, {"country": "Germany"}), ("Belarus", {}), ("Blumen OR flowers", {}),
             ("solidar*", {}), ("Belarus -Berlin", {}),
             ("Belarus", {"country": "Germany"}))  # fmt: skip
    for words_, filters in cases:
        whole = [row["link_id"] for row in find(catalog, words_, **filters)]
        for limit, offset in ((1, 0), (3, 0), (3, 2), (5, 5), (50, 0), (2, len(whole) - 1)):
            with session_scope(catalog) as session:
                query = SearchQuery(text=words_, limit=limit, offset=offset, **filters)
                page = search(session, query, facets=False)
            wanted = whole[offset : offset + limit]
            assert [r["link_id"] for r in page.rows] == wanted, (words_, filters, limit, offset)
            assert page.total == len(whole)


def test_ranks_are_sqlite_fts5_bm25_as_before_the_index(catalog: str) -> None:
    """Scores equal, to the bit, those of FTS5's bm25() with the fields' weights, which
    ranked search before the index: orders stay as they were."""
    with session_scope(catalog) as session:
        documents = session.execute(
            select(SearchDocument.link_id, SearchDocument.title, SearchDocument.label,
                   SearchDocument.place, SearchDocument.meta, SearchDocument.body)
        ).all()  # fmt: skip
    fts = sqlite3.connect(":memory:")
    fts.execute("CREATE VIRTUAL TABLE t USING fts5(title, label, place, meta, body,"
                " tokenize='unicode61 remove_diacritics 2')")  # fmt: skip
    fts.executemany("INSERT INTO t(rowid, title, label, place, meta, body) VALUES (?,?,?,?,?,?)",
                    documents)  # fmt: skip
    for query in ("Blumen", '"Frauen in Weiß"', "Blumen OR flowers", "solidar*", "world",
                  "Belarus -Berlin", "women white"):  # fmt: skip
        parsed = parse_query(query)
        expected = dict(fts.execute(
            "SELECT rowid, -bm25(t, 10.0, 5.0, 5.0, 2.0, 1.0) FROM t WHERE t MATCH ?"
            + (" AND rowid NOT IN (SELECT rowid FROM t WHERE t MATCH ?)" if parsed.excluded
               else ""),
            (parsed.fts5(), parsed.fts5(parsed.excluded)) if parsed.excluded
            else (parsed.fts5(),)).fetchall())  # fmt: skip
        rows = find(catalog, query)
        assert {r["link_id"]: r["rank"] for r in rows} == expected, query
        assert [r["rank"] for r in rows] == sorted(expected.values(), reverse=True)


def test_an_export_longer_than_what_is_scored_exactly_keeps_every_match(
    catalog: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = find(catalog, "Blumen OR flowers OR Belarus")
    monkeypatch.setattr(fulltext, "RERANK_MAX", 3)
    monkeypatch.setattr(fulltext, "RERANK_MIN", 3)
    capped = find(catalog, "Blumen OR flowers OR Belarus")
    assert len(whole) > 3 and len(capped) == len(whole)
    assert {r["link_id"] for r in capped} == {r["link_id"] for r in whole}
    ranks = [r["rank"] for r in capped[:3]]
    assert ranks == sorted(ranks, reverse=True)


def test_japanese_matches_any_substring(catalog: str) -> None:
    # The Tokyo page's words run together: "東京でベラルーシの女性たちへの連帯集会".
    assert cities(catalog, "ベラルーシ") == ["Tokyo"]
    assert cities(catalog, "女性たち") == ["Tokyo"]
    assert cities(catalog, '"連帯集会"') == ["Tokyo"]
    assert "Tokyo" in cities(catalog, "京")  # one character
    assert cities(catalog, "ベラルーシ女性") == []  # not a substring
    [row] = find(catalog, "ベラルーシ")
    assert MARK_START in row["snippet"]


# --- keeping the index in step ---------------------------------------------------------------


def test_documents_follow_changes_of_links_and_captures(writable: str) -> None:
    def link_in(session: Any, city: str) -> Link:
        return next(link for link in session.scalars(select(Link)) if link.city and
                    link.city.name == city)  # fmt: skip

    with session_scope(writable) as session:
        berlin, munich = link_in(session, "Berlin"), link_in(session, "Munich")
        berlin.label = "Zebrafinken report"
        refresh_documents(session, [berlin.id])
    assert cities(writable, "Zebrafinken") == ["Berlin"]

    with session_scope(writable) as session:  # a newer capture: Munich's page, say
        session.get_one(Link, berlin.id).last_capture_id = munich.last_capture_id
        refresh_documents(session, [berlin.id])
    assert set(cities(writable, "Marienplatz")) == {"Berlin", "Munich"}
    assert "Berlin" not in cities(writable, "Brandenburger")

    with session_scope(writable) as session:  # a seed import refreshes what it adds
        entry = SeedEntry(
            country="Belgium",
            country_code="BE",
            country_original="Belgium",
            city="Brussels",
            city_original="Brüssel",
            links=[SeedLink("report", "Rapport", "http://127.0.0.1:9/bruxelles")],
        )
        import_entries(session, "http://127.0.0.1:9/seeds", [entry])
    assert cities(writable, "Brussel") == ["Brussels"]
    assert cities(writable, "Bruxelles") == ["Brussels"]


def test_an_empty_index_is_built_on_first_search(writable: str) -> None:
    """As in a catalog just upgraded by migration 0006: links, but no documents yet."""
    with session_scope(writable) as session:
        session.execute(SearchDocument.__table__.delete())
    assert cities(writable, "Munchen") == ["Munich"]
    with session_scope(writable) as session:
        assert len(session.scalars(select(SearchDocument.link_id)).all()) >= 20


CHANGE_ELSEWHERE = """
import sys
from sqlalchemy import select
from pipeline.catalog import session_scope
from pipeline.catalog.fulltext import refresh_documents
from pipeline.catalog.models import City, Link
with session_scope(sys.argv[1]) as session:
    links = {l.city.name: l for l in session.scalars(select(Link)) if l.city}
    links["Berlin"].label = "Zebrafinken report"
    refresh_documents(session, [links["Berlin"].id])
    links["Munich"].status = "dead"  # no refresh: the trigger logs it
    session.scalars(select(City).where(City.name == "Ottawa")).one().name = "Bytown"
"""


def test_the_index_catches_up_with_another_process(writable: str) -> None:
    assert cities(writable, "Zebrafinken") == []  # the index is built
    subprocess.run([sys.executable, "-c", CHANGE_ELSEWHERE, writable], check=True)
    assert cities(writable, "Zebrafinken") == ["Berlin"]
    assert cities(writable, status="dead") == ["Munich"]
    assert "Bytown" in cities(writable) and "Ottawa" not in cities(writable)
    with session_scope(writable) as session:
        facets = search(session, SearchQuery()).facets
    assert ("dead", 1) in facets["status"] and ("Bytown", 1) in facets["city"]


def test_an_interrupted_build_resumes_where_it_stopped(
    writable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if writable.startswith("postgresql"):
        pytest.skip("the same on both back ends")
    before = find(writable, "Blumen OR flowers")
    with session_scope(writable) as session:
        folder = searchindex.location(session.get_bind())
        total = len(session.scalars(select(SearchDocument.link_id)).all())
    shutil.rmtree(folder)
    searchindex.forget(engine_for(writable))
    made: list[int] = []
    document = searchindex._document

    def failing(row: Any) -> Any:
        made.append(row[0])
        if len(made) == 12:
            raise OSError("disk full")
        return document(row)

    monkeypatch.setattr(searchindex, "BUILD_CHUNK", 5)
    monkeypatch.setattr(searchindex, "_document", failing)
    with pytest.raises(OSError):
        find(writable, "Blumen")
    state = json.loads((folder / "state.json").read_text())
    assert not state["complete"] and state["through"] == made[9]  # two chunks committed
    made.clear()
    monkeypatch.setattr(searchindex, "_document", lambda row: made.append(1) or document(row))
    assert find(writable, "Blumen OR flowers") == before
    assert len(made) == total - 10  # the rest only
    assert json.loads((folder / "state.json").read_text())["complete"]


def test_a_damaged_index_is_built_anew(writable: str) -> None:
    if writable.startswith("postgresql"):
        pytest.skip("the same on both back ends")
    before = find(writable, "Blumen OR flowers")
    with session_scope(writable) as session:
        folder = searchindex.location(session.get_bind())
    searchindex.forget(engine_for(writable))  # as a new process would open it
    (folder / "meta.json").write_text("{ not json")
    assert find(writable, "Blumen OR flowers") == before


def test_a_gap_in_the_log_is_waited_for_until_it_cannot_fill() -> None:
    now = datetime(2026, 12, 6, 12, 0)
    recent, old = now - timedelta(seconds=5), now - timedelta(minutes=5)
    # 7 missing: another transaction may still commit it (PostgreSQL's sequences).
    assert searchindex._advance(5, [(6, 1, recent), (8, 2, recent), (9, 3, recent)], now) == 6
    # Long missing: rolled back.
    assert searchindex._advance(5, [(6, 1, old), (8, 2, old), (9, 3, recent)], now) == 9


# --- the command line ------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_cli_exports_and_facets(
    crawled: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = ["--home", str(crawled["home"]), "search"]
    lines = run(capsys, *home, "Blumen OR flowers", "--format", "jsonl", "--all").splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == len(find(paths(crawled["home"]).database_url, "Blumen OR flowers"))
    assert all("Blumen" in r["snippet"] or "flowers" in r["snippet"] for r in rows)
    assert not any(MARK_START in r["snippet"] or MARK_END in r["snippet"] for r in rows)

    out = run(capsys, *home, "Blumen", "--format", "csv", "--limit", "2")
    table = list(csv.DictReader(io.StringIO(out)))
    assert len(table) == 2 and tuple(table[0]) == EXPORT_COLUMNS  # the web app's columns
    assert MARK_START not in out

    result = json.loads(run(capsys, *home, "--country", "Germany", "--format", "json", "--facets"))
    assert result["total"] == 3 and len(result["rows"]) == 3
    assert {"value": "Germany", "count": 3} in result["facets"]["country"]

    out = run(capsys, *home, "Blumen", "--city", "Berlin", "--facets")
    assert "Berlin: Frauen in Weiß" in out and "Blumen" in out and "city: Berlin (1)" in out
    assert MARK_START not in out and "1 of 1 results" in out

    for bad in (["--published", "2020-13"], ["AND OR"], ["--all", "--limit", "3"],
                ["--facets", "--format", "csv"]):  # fmt: skip
        code = main([*home, *bad])
        _, err = capsys.readouterr()
        assert code != 0 and err.startswith("linkarchive: error: ")
        assert len(err.strip().splitlines()) == 1


def test_catalog_reindex_builds_the_index_anew(
    crawled: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(crawled["home"], tmp_path / "home")
    url = paths(tmp_path / "home").database_url
    assert cities(url, "Zebrafinken") == []
    with session_scope(url) as session:  # a change whose log line is lost
        applied = session.scalar(select(func.max(SearchChange.seq)))
        session.execute(update(SearchDocument).where(SearchDocument.link_id == 1)
                        .values(label="zebrafinken"))  # fmt: skip
        session.execute(delete(SearchChange).where(SearchChange.seq > applied))
    assert cities(url, "Zebrafinken") == []
    out = run(capsys, "--home", str(tmp_path / "home"), "catalog", "reindex")
    assert "Search index of" in out
    assert len(cities(url, "Zebrafinken")) == 1
    forget_engine(url)
