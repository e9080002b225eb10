"""Cross-language query expansion: the word list, the rewritten queries, and searching with
them from the engine, the command line, the web page and the API."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

import pytest
from webkit import client_as, copy_home, make_app, session_client

from pipeline.catalog import session_scope
from pipeline.catalog.fulltext import MAX_TERMS, SearchQuery, fold, parse_query, search, words
from pipeline.catalog.translations import ROOM, expand_query, expansion, word_list
from pipeline.cli import main
from pipeline.config import paths

LANGUAGES = ("en", "de", "fr", "ru", "uk", "be", "pl", "lt", "lv", "et")
# Places of replica pages that say "flowers" only in their own language (Vilnius also has
# one in English).
FLOWERS_ELSEWHERE = {"Berlin", "Moscow", "Vilnius", "Riga"}


def groups(query: str) -> list[set[tuple[tuple[str, ...], bool]]]:
    """The groups the engine's parser reads from ``query``, as sets of (words, prefix)."""
    return [{(t.words, t.prefix) for t in group} for group in parse_query(query).groups]


def term(text: str) -> tuple[tuple[str, ...], bool]:
    return (tuple(words(text)), text.endswith("*"))


# --- the word list ----------------------------------------------------------------------------


def test_the_word_list_covers_the_rally_pages_languages() -> None:
    table = word_list()
    assert table.languages == LANGUAGES
    assert len(table.concepts) >= 150
    for concept in table.concepts:
        assert len(concept.forms) >= 3, concept  # a translation, not a lone word
    stems = [f for c in table.concepts for _, forms in c.forms for f in forms if f.key[1]]
    short = [f.text for f in stems if len(f.key[0]) == 1 and len(f.key[0][0]) < 4]
    assert not short, f"prefixes too short to be safe: {short}"


def test_every_form_is_one_query_term() -> None:
    """What the list says is what the engine reads: one term, its words folded."""
    for concept in word_list().concepts:
        for _, forms in concept.forms:
            for form in forms:
                parsed = parse_query(form.text)
                assert [(t.words, t.prefix) for t in parsed.terms] == [form.key], form


# --- rewriting queries ------------------------------------------------------------------------


def test_each_known_word_becomes_a_group_of_its_translations() -> None:
    expanded = expand_query("flowers rally")
    flowers, rally = groups(expanded)  # two groups, as the engine reads them
    assert {
        term("flowers"),
        term("Blume*"),
        term("fleur*"),
        term("цветы"),
        term("квіти"),
    } <= flowers
    assert {term("кветк*"), term("kwiat*"), term("gėlės"), term("ziedi"), term("lilled")} <= flowers
    assert {term("rally"), term("Kundgebung*"), term("rassemblement*"), term("митинг*")} <= rally
    assert {term("мітынг*"), term("wiec"), term("miting*"), term("miiting*")} <= rally
    assert expanded.startswith("flowers OR ") and " rally OR " in expanded
    assert not flowers & rally


def firsts(word: str) -> set[tuple[tuple[str, ...], bool]]:
    """The first form in every language of the concept ``word`` names."""
    index = word_list().concept_of(term(word))
    assert index is not None, word
    return {forms[0].key for _, forms in word_list().concepts[index].forms}


def test_words_are_matched_folded_and_unknown_words_are_kept() -> None:
    for typed in ("flowers", "Blumen", "BLUMEN", "gėlėmis", "gelemis", "ЦВЕТЫ", "Kwiaty", "fleurs"):
        (group,) = groups(expand_query(typed))
        assert term(typed) in group and firsts("flowers") <= group, typed
    assert expand_query("Minsk") == "Minsk"
    assert expand_query("Minsk  Blumen").startswith("Minsk Blumen OR flowers OR ")
    assert expand_query('"Frauen in Weiß"').startswith('"Frauen in Weiß" OR "women in white" OR')
    assert fold("Weiß") == "weiss"  # the list's forms are folded as the index is


def test_or_groups_phrases_and_prefixes() -> None:
    (group,) = groups(expand_query("Blumen OR flowers"))
    assert term("Blumen") in group and term("Blume*") in group and term("цветы") in group
    assert expand_query("Blumen OR flowers").count("flowers") == 1

    (group,) = groups(expand_query('"political prisoners"'))
    assert firsts('"political prisoners"') <= group
    assert {term('"politische Gefangene"*'), term("политзаключ*"), term("палітвязн*")} <= group

    (group,) = groups(expand_query("Kundgebung*"))  # a prefix the list holds
    assert term("rally") in group and term("митинг*") in group
    assert expand_query("Kund*") == "Kund*"  # a shorter one it does not


def test_excluded_words_exclude_every_translation() -> None:
    expanded = expand_query("Belarus -flowers")
    parsed = parse_query(expanded)
    excluded = {(t.words, t.prefix) for t in parsed.excluded}
    assert {
        term("flowers"),
        term("Blume*"),
        term("цветы"),
        term("kwiat*"),
        term("ziedi"),
    } <= excluded
    (belarus,) = groups(expanded)
    assert {term("Belarus"), term("Беларусь"), term("Białoruś"), term("Baltarusij*")} <= belarus
    assert not {(t.words, t.prefix) for g in parsed.groups for t in g} & excluded
    assert expand_query("NOT flowers Minsk").startswith("-flowers -flower -Blume* ")


@pytest.mark.parametrize(
    "query",
    ["flowers", "flowers rally", "Blumen OR flowers -Berlin", "NOT flowers OR x", "Minsk",
     '"political prisoners" white flowers rally candle', "flowers flowers", "AND OR"],
)  # fmt: skip
def test_expanding_twice_changes_nothing(query: str) -> None:
    once = expand_query(query)
    assert expand_query(once) == once


def test_expansion_stays_within_the_engines_term_limit() -> None:
    query = '"political prisoners" white flowers rally'
    result = expansion(query)
    parsed = parse_query(result.text)
    assert len(parsed.terms) + len(parsed.excluded) <= MAX_TERMS - ROOM
    assert result.expanded == ('"political prisoners"', "white")
    assert result.skipped == ("flowers", "rally")  # left as typed, and said so
    prisoners, white, flowers, rally = groups(result.text)
    assert flowers == {term("flowers")} and rally == {term("rally")}
    # each expanded group got every language's first form before any second form
    assert firsts('"political prisoners"') <= prisoners and firsts("white") <= white
    # a query already at the limit is left alone, and is still searchable
    full = result.text + " -Berlin -Minsk -Moscow -Vilnius"
    assert expand_query(full) == full
    assert len(parse_query(full).terms) + len(parse_query(full).excluded) == MAX_TERMS


# --- searching with expanded queries ----------------------------------------------------------


def found(url: str, query: str, **filters: Any) -> dict[int, str]:
    """Link id -> city of every link ``query`` finds."""
    with session_scope(url) as session:
        rows = search(session, SearchQuery(text=query, limit=None, **filters)).rows
    return {row["link_id"]: row["city"] for row in rows}


@pytest.mark.e2e
def test_an_expanded_query_finds_pages_in_other_languages(crawled: dict[str, Any]) -> None:
    url = paths(crawled["home"]).database_url
    plain, expanded = found(url, "flowers"), found(url, expand_query("flowers"))
    assert set(plain) < set(expanded)
    assert {city for i, city in expanded.items() if i not in plain} >= FLOWERS_ELSEWHERE
    assert found(url, expand_query("Blumen")) == expanded  # from German, the same pages
    with session_scope(url) as session:
        (row,) = search(session, SearchQuery(text=expand_query("flowers"), city="Riga")).rows
    assert re.search("\x02(ziedus|ziediem|ziedu)\x03", row["snippet"])
    # excluded with its translations, no page about flowers is left, in any language
    elsewhere = set(expanded) - set(plain)
    assert elsewhere <= set(found(url, "-flowers"))
    assert not elsewhere & set(found(url, expand_query("-flowers")))


@pytest.mark.e2e
def test_cli_expand_prints_the_query_and_searches_with_it(
    crawled: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    home = ["--home", str(crawled["home"]), "search"]
    assert main([*home, "flowers", "--format", "jsonl", "--all"]) == 0
    plain = {json.loads(line)["link_id"] for line in capsys.readouterr().out.splitlines()}

    assert main([*home, "flowers", "--expand", "--format", "jsonl", "--all"]) == 0
    out, err = capsys.readouterr()
    assert f"searching for: {expand_query('flowers')}\n" in err  # to copy and edit
    rows = [json.loads(line) for line in out.splitlines()]
    assert {row["city"] for row in rows if row["link_id"] not in plain} >= FLOWERS_ELSEWHERE

    assert main([*home, "Minsk", "--expand"]) == 0
    assert "searching for: Minsk\nno translations to add" in capsys.readouterr().err
    assert main([*home, '"political prisoners" white flowers rally', "--expand"]) == 0
    assert "not expanded (a query holds at most 32 terms): flowers, rally" in (
        capsys.readouterr().err
    )
    assert main([*home, "--expand"]) != 0


@pytest.fixture(scope="module")
def app(crawled: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Any:
    return make_app(copy_home(crawled["home"], tmp_path_factory.mktemp("expand") / "home"))


def box(html: str) -> str:
    found = re.search(r'<input name="q" type="search" value="([^"]*)"', html)
    assert found, "no search box"
    return unescape(found.group(1))


def result_cities(html: str) -> set[str]:
    return {unescape(c) for c in re.findall(r'<div class="meta">\s*[^,<]*, ([^·<]*?) ·', html)}


@pytest.mark.e2e
def test_the_search_page_puts_the_translations_in_the_box(app: Any) -> None:
    browser = session_client(app, "researcher")
    page = browser.get("/search", params={"q": "flowers", "city": "Riga"})
    assert 'id="expand"' in page.text and "Add translations" in page.text
    assert re.search(r'<p id="total">0 results', page.text)

    page = browser.get("/search", params={"q": "flowers", "city": "Riga", "expand": "1"})
    assert page.status_code == 200
    assert box(page.text) == expand_query("flowers")  # shown, to edit
    assert re.search(r'<p id="total">1 result', page.text)
    assert 'id="expansion"' in page.text and "translations of flowers" in page.text
    assert '<input type="hidden" name="city" value="Riga">' in page.text  # filters kept
    export = unescape(re.findall(r'<a id="export-csv" href="([^"]*)"', page.text)[0])
    assert "expand" not in export and "Blume" in export  # links carry the expanded query

    edited = box(page.text).replace(" OR ziedus", "")  # the researcher edits, searches again
    again = browser.get("/search", params={"q": edited, "city": "Riga"})
    assert box(again.text) == edited and re.search(r'<p id="total">1 result', again.text)
    assert 'id="expansion"' not in again.text

    plain = browser.get("/search", params={"q": "flowers"}).text
    everywhere = browser.get("/search", params={"q": "flowers", "expand": "1"}).text
    assert not result_cities(plain) & {"Berlin", "Moscow", "Riga"}
    assert result_cities(everywhere) >= FLOWERS_ELSEWHERE


@pytest.mark.e2e
def test_the_api_expands_on_request(app: Any) -> None:
    api = client_as(app, "researcher")
    plain = api.get("/api/v1/search", params={"q": "flowers", "limit": 500}).json()
    body = api.get("/api/v1/search", params={"q": "flowers", "expand": "true", "limit": 500})
    assert body.status_code == 200
    expanded = body.json()
    assert expanded["query"] == expand_query("flowers") and plain["query"] == "flowers"
    before = {row["link_id"] for row in plain["results"]}
    new = {row["city"] for row in expanded["results"] if row["link_id"] not in before}
    assert new >= FLOWERS_ELSEWHERE
