"""Regression tests for pipeline.extract's choices among candidates, one per kind of miss
seen on public corpora (issue 15). Every page here is written for the test."""

from __future__ import annotations

import datetime

import pytest

from pipeline.extract import PageMetadata, extract_metadata
from pipeline.replica.content import make_pdf

pytestmark = pytest.mark.usefixtures("no_network")

FILLER = (
    "Several hundred people gathered in the square on Saturday afternoon, holding flowers "
    "and white-red-white flags. Speakers read out the names of those detained, and the "
    "crowd formed a long chain along the river before dispersing peacefully at dusk. "
)


def page(head: str = "", body: str = "", lang: str = "en") -> bytes:
    return f"""<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">
<title>Rally in the square | Solidarity Wire</title>{head}</head>
<body><header><a href="/">Solidarity Wire</a></header>
<article>{body}<p>{FILLER}</p><p>{FILLER}</p></article>
<footer>© 2019–2024 Solidarity Wire</footer></body></html>""".encode()


def ld(**fields: str) -> str:
    import json

    node = {"@context": "https://schema.org", "@type": "NewsArticle", **fields}
    return f'<script type="application/ld+json">{json.dumps(node)}</script>'


URL = "https://wire.example/news/rally-in-the-square"


# --------------------------------------------------------------------------- dates


def test_site_wide_placeholder_date_is_not_the_publication_date() -> None:
    html = page(
        ld(headline="Rally in the square", datePublished="2000-01-01T00:00:00Z"),
        "<p class='byline'>Published 12 March 2021</p>",
    )
    meta = extract_metadata(html, URL, "text/html")
    assert meta.published == datetime.date(2021, 3, 12)
    assert meta.published_source != "json-ld datePublished"


def test_future_date_is_ignored() -> None:
    html = page(
        '<meta property="article:published_time" content="2099-05-01T10:00:00Z">'
        '<meta name="date" content="2021-04-30">'
    )
    meta = extract_metadata(html, URL, "text/html")
    assert meta.published == datetime.date(2021, 4, 30)
    assert meta.published_source == "meta date"


def test_modification_date_loses_to_the_publication_date() -> None:
    html = page(
        ld(
            headline="Rally",
            datePublished="2021-05-10T09:00:00+02:00",
            dateModified="2023-02-01T12:00:00Z",
        )  # fmt: skip
        + '<meta property="article:modified_time" content="2023-02-01T12:00:00Z">',
        "<p>Updated: 1 February 2023</p>",
    )
    meta = extract_metadata(html, URL, "text/html")
    assert meta.published == datetime.date(2021, 5, 10)
    assert meta.published_source == "json-ld datePublished"


def test_comment_dates_are_not_the_article_date() -> None:
    comments = "".join(
        f'<li><time datetime="2021-06-{d:02d}T10:00">{d} June 2021</time> Great report!</li>'
        for d in (20, 21, 22)
    )
    html = page(
        body="<h1>Rally in the square</h1><p class='date'>14 June 2021</p>",
    ).replace(b"</article>", f'</article><ol class="comments">{comments}</ol>'.encode())
    meta = extract_metadata(html, URL, "text/html")
    assert meta.published == datetime.date(2021, 6, 14)


def test_date_found_by_htmldate_when_the_markup_has_none() -> None:
    html = page(body="<p>Written on 2021-07-03 by our correspondent.</p>")
    meta = extract_metadata(html, URL, "text/html")
    assert meta.published == datetime.date(2021, 7, 3)
    assert meta.published_source


def test_url_date_beats_a_conflicting_structured_date() -> None:
    html = page(ld(headline="Rally", datePublished="2023-11-30T10:00:00Z"))
    meta = extract_metadata(html, "https://wire.example/2020/10/10/rally/", "text/html")
    assert meta.published == datetime.date(2020, 10, 10)
    assert meta.published_source == "url"


VISIBLE = {
    "de": "10. Oktober 2020",
    "ru": "10 октября 2020 г.",
    "be": "10 кастрычніка 2020",
    "uk": "10 жовтня 2020 р.",
    "pl": "10 października 2020",
    "lt": "2020 m. spalio 10 d.",
    "lv": "2020. gada 10. oktobris",
    "et": "10. oktoober 2020",
    "en": "October 10, 2020",
    "fr": "10 octobre 2020",
    # the replica world's other languages
    "it": "10 ottobre 2020",
    "pt": "10 de outubro de 2020",
    "hu": "2020. október 10.",
    "ja": "2020年10月10日",
}


@pytest.mark.parametrize("lang", sorted(VISIBLE))
def test_visible_date_in_the_rally_languages(lang: str) -> None:
    html = page(body=f"<h1>Rally</h1><p class='meta'>{VISIBLE[lang]}</p>", lang=lang)
    meta = extract_metadata(html, URL, "text/html")
    assert meta.published == datetime.date(2020, 10, 10)
    assert meta.published_source is not None


def test_visible_update_date_is_skipped() -> None:
    html = page(body="<p>Обновлено 3 ноября 2020</p><p>Опубликовано 10 октября 2020</p>", lang="ru")
    meta = extract_metadata(html, URL, "text/html")
    assert meta.published == datetime.date(2020, 10, 10)


def test_copyright_year_alone_gives_no_date() -> None:
    meta = extract_metadata(page(body="<h1>About us</h1>"), "https://wire.example/about", None)
    assert meta.published is None
    assert meta.published_source is None


def test_pdf_dates_from_metadata_then_text() -> None:
    dated = make_pdf("Report", "Anna Nowak", "D:20201012090000Z", ("Report", "Minsk."))
    meta = extract_metadata(dated, "https://ngo.example/report.pdf", "application/pdf")
    assert (meta.published, meta.published_source) == (
        datetime.date(2020, 10, 12),
        "pdf metadata CreationDate",
    )
    undated = make_pdf("Report", "Anna Nowak", "", ("Report", "Berlin, 10. Oktober 2020."))
    meta = extract_metadata(undated, "https://ngo.example/report.pdf", "application/pdf")
    assert meta.published == datetime.date(2020, 10, 10)
    assert meta.published_source == "pdf text: 10. Oktober 2020"


def test_published_source_round_trips() -> None:
    meta = extract_metadata(page(ld(headline="R", datePublished="2021-05-10")), URL, "text/html")
    again = PageMetadata.from_dict(meta.to_dict())
    assert again.published_source == meta.published_source == "json-ld datePublished"


# --------------------------------------------------------------------------- title, author


def test_byline_beats_the_site_name_as_author() -> None:
    html = page(
        '<meta name="author" content="Solidarity Wire">'
        '<meta property="og:site_name" content="Solidarity Wire">',
        '<h1>Rally in the square</h1><p class="byline">By <a rel="author" class="author" '
        'href="/authors/anna">Anna Kowalska</a></p>',
    )
    meta = extract_metadata(html, URL, "text/html")
    assert meta.author == "Anna Kowalska"
    assert meta.site_name == "Solidarity Wire"


def test_organisation_author_in_json_ld_loses_to_the_byline() -> None:
    html = page(
        ld(headline="Rally in the square", author={"@type": "Organization", "name": "Wire Media"}),  # type: ignore[arg-type]
        '<h1>Rally in the square</h1><p class="byline">By <span class="author">'
        "Jonas Weber</span></p>",
    )
    meta = extract_metadata(html, URL, "text/html")
    assert meta.author == "Jonas Weber"


def test_person_author_stays() -> None:
    html = page(
        ld(headline="Rally", author={"@type": "Person", "name": "Lena Müller"}),  # type: ignore[arg-type]
        '<p class="byline">By <span class="author">Someone Else</span></p>',
    )
    assert extract_metadata(html, URL, "text/html").author == "Lena Müller"


def test_shortened_og_title_loses_to_the_headline() -> None:
    html = page(
        '<meta property="og:title" content="Thousands march for the detained">',
        "<h1>Minsk, Sunday: thousands march for the detained</h1>",
    )
    meta = extract_metadata(html, URL, "text/html")
    assert meta.title == "Minsk, Sunday: thousands march for the detained"


def test_truncated_json_ld_headline_loses_to_the_headline() -> None:
    html = page(
        ld(headline="Women in white form a chain of solidarity along the…"),
        "<h1>Women in white form a chain of solidarity along the river</h1>",
    )
    meta = extract_metadata(html, URL, "text/html")
    assert meta.title == "Women in white form a chain of solidarity along the river"


def test_a_different_headline_does_not_replace_the_declared_title() -> None:
    html = page(ld(headline="Women in white"), "<h1>Latest news</h1>")
    assert extract_metadata(html, URL, "text/html").title == "Women in white"
