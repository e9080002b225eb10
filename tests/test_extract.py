"""Tests for pipeline.extract: decoding, precedence of metadata sources, PDF, robustness."""

from __future__ import annotations

import datetime
import io
import json
import time

import pytest
from pypdf import PdfWriter
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    NameObject,
)

from pipeline.extract import PageMetadata, decode_html, extract_metadata

BODY_EN = (
    "Police detained several human rights defenders on Tuesday morning after searching "
    "their homes and offices in the capital. Lawyers for the detained said they had not "
    "been allowed to see their clients for several hours, and that the searches were "
    "carried out without a warrant being shown. International organisations condemned "
    "the arrests and called for the immediate release of everyone held. "
)


pytestmark = pytest.mark.usefixtures("no_network")


# --------------------------------------------------------------------------- JSON-LD


NEWS_ARTICLE = f"""<!DOCTYPE html>
<html lang="en-GB">
<head>
<meta charset="utf-8">
<title>Arrests in the capital | Example News</title>
<meta name="description" content="Plain meta description.">
<meta name="author" content="Meta Author">
<meta property="og:title" content="OG title loses to JSON-LD">
<meta property="og:description" content="OG description loses to JSON-LD.">
<meta property="og:site_name" content="Example News">
<meta property="og:image" content="https://cdn.example.org/og.jpg">
<meta property="article:published_time" content="2024-03-10T08:00:00Z">
<meta name="twitter:image" content="/img/twitter.jpg">
<link rel="canonical" href="/world/arrests-in-the-capital">
<script type="application/ld+json">
{{
  "@context": "https://schema.org",
  "@type": "NewsArticle",
  "headline": "Rights defenders arrested in the capital",
  "description": "Several human rights defenders were detained on Tuesday.",
  "author": {{"@type": "Person", "name": "Jane Doe", "url": "https://example.org/jane"}},
  "datePublished": "2024-03-12T09:30:00+01:00",
  "dateModified": "2024-03-14T10:00:00+01:00",
  "image": ["https://cdn.example.org/og.jpg", {{"@type": "ImageObject", "url": "/img/ld.jpg"}}],
  "publisher": {{"@type": "Organization", "name": "Example Media Group Ltd"}}
}}
</script>
</head>
<body>
<header><img src="/static/logo.png" alt="Example News"></header>
<article>
<h1>Rights defenders arrested in the capital</h1>
<p>{BODY_EN}</p>
<img src="/img/body1.jpg" alt="">
<img src="data:image/gif;base64,R0lGOD" data-src="/img/body2.jpg" alt="">
<p>{BODY_EN}</p>
</article>
</body>
</html>
""".encode()


def test_jsonld_news_article_wins_over_opengraph_and_meta() -> None:
    meta = extract_metadata(
        NEWS_ARTICLE, "https://example.org/world/arrests?utm=x", "text/html; charset=utf-8"
    )
    assert meta.title == "Rights defenders arrested in the capital"
    assert meta.description == "Several human rights defenders were detained on Tuesday."
    assert meta.author == "Jane Doe"
    assert meta.published == datetime.date(2024, 3, 12)
    assert meta.language == "en"
    assert meta.site_name == "Example News"  # og:site_name beats the JSON-LD publisher
    assert meta.canonical_url == "https://example.org/world/arrests-in-the-capital"
    assert meta.images == [
        "https://cdn.example.org/og.jpg",
        "https://example.org/img/ld.jpg",
        "https://example.org/img/twitter.jpg",
        "https://example.org/img/body1.jpg",
        "https://example.org/img/body2.jpg",
    ]
    assert meta.encoding == "utf-8"
    assert meta.text is not None
    assert "without a warrant being shown" in meta.text
    assert "Example News" not in meta.text


GRAPH_ARTICLE = f"""<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>Demonstration in Berlin</title>
<script type="application/ld+json">{{ this is not json </script>
<script type="application/ld+json">
{{
  "@context": "https://schema.org",
  "@graph": [
    {{"@type": "WebSite", "@id": "https://taz.example/#website", "name": "Beispiel Zeitung",
      "inLanguage": "de-DE"}},
    {{"@type": "WebPage", "@id": "https://taz.example/berlin/demo#webpage",
      "url": "https://taz.example/berlin/demo", "inLanguage": "de-DE",
      "isPartOf": {{"@id": "https://taz.example/#website"}},
      "primaryImageOfPage": {{"@id": "https://taz.example/berlin/demo#primaryimage"}}}},
    {{"@type": "ImageObject", "@id": "https://taz.example/berlin/demo#primaryimage",
      "url": "https://taz.example/media/demo.jpg"}},
    {{"@type": "Person", "@id": "https://taz.example/#/schema/person/1", "name": "Lena Müller"}},
    {{"@type": ["BlogPosting", "NewsArticle"], "@id": "https://taz.example/berlin/demo#article",
      "headline": "Tausende demonstrieren in Berlin für Menschenrechte",
      "author": [{{"@id": "https://taz.example/#/schema/person/1"}},
                 {{"@type": "Person", "name": "Jonas Weber"}}, "Redaktion Berlin"],
      "datePublished": "2023-09-30",
      "image": {{"@id": "https://taz.example/berlin/demo#primaryimage"}},
      "mainEntityOfPage": {{"@id": "https://taz.example/berlin/demo#webpage"}}}}
  ]
}}
</script>
</head>
<body><article><p>{BODY_EN}</p></article></body>
</html>
""".encode()


def test_jsonld_graph_with_author_references_and_list() -> None:
    meta = extract_metadata(GRAPH_ARTICLE, "https://taz.example/berlin/demo", "text/html")
    assert meta.title == "Tausende demonstrieren in Berlin für Menschenrechte"
    assert meta.author == "Lena Müller; Jonas Weber; Redaktion Berlin"
    assert meta.published == datetime.date(2023, 9, 30)
    # No <html lang>, no og:locale: JSON-LD inLanguage decides even though the text is English.
    assert meta.language == "de"
    assert meta.site_name == "Beispiel Zeitung"
    assert meta.images == ["https://taz.example/media/demo.jpg"]


# --------------------------------------------------------------------------- OpenGraph / meta


OPENGRAPH_ONLY = f"""<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>ignored title tag</title>
<meta property="og:title" content="Protesto em São Paulo reúne milhares">
<meta property="og:description" content="Manifestantes pedem justiça.">
<meta property="og:site_name" content="Jornal Exemplo">
<meta property="og:locale" content="pt_BR">
<meta property="og:url" content="https://jornal.example/2024/05/protesto?ref=home#top">
<meta property="og:image" content="/fotos/protesto-1.jpg">
<meta property="og:image" content="/fotos/protesto-2.jpg">
<meta property="article:published_time" content="2024-05-01T22:15:00-03:00">
<meta property="article:author" content="https://www.facebook.com/jornal.example">
</head>
<body><div><p>{BODY_EN}</p></div></body>
</html>
""".encode()


def test_opengraph_only() -> None:
    meta = extract_metadata(OPENGRAPH_ONLY, "https://jornal.example/x", "text/html")
    assert meta.title == "Protesto em São Paulo reúne milhares"
    assert meta.description == "Manifestantes pedem justiça."
    assert meta.site_name == "Jornal Exemplo"
    # The local date as written, not shifted to UTC.
    assert meta.published == datetime.date(2024, 5, 1)
    assert meta.language == "pt"
    assert meta.canonical_url == "https://jornal.example/2024/05/protesto?ref=home"
    assert meta.images == [
        "https://jornal.example/fotos/protesto-1.jpg",
        "https://jornal.example/fotos/protesto-2.jpg",
    ]
    assert meta.author is None  # a profile URL is not an author name


PLAIN_META = f"""<!DOCTYPE html>
<html lang="es-MX">
<head>
<meta charset="utf-8">
<title>Desaparecidos: familias exigen respuestas</title>
<meta name="description" content="Las familias de los desaparecidos marcharon en la capital.">
<meta name="author" content="María Fernández">
<link rel="canonical" href="../notas/desaparecidos.html">
</head>
<body>
<nav><a href="/">Inicio</a> <time datetime="2020-01-01">1 ene</time></nav>
<article>
<h1>Desaparecidos: familias exigen respuestas</h1>
<p>Publicado el <time class="published" datetime="2023-11-05T08:00:00Z">5 nov 2023</time></p>
<p>{BODY_EN}</p>
</article>
</body>
</html>
""".encode()


def test_plain_meta_and_time_element() -> None:
    meta = extract_metadata(PLAIN_META, "https://diario.example/seccion/nota/", "text/html")
    assert meta.title == "Desaparecidos: familias exigen respuestas"
    assert meta.description == "Las familias de los desaparecidos marcharon en la capital."
    assert meta.author == "María Fernández"
    assert meta.published == datetime.date(2023, 11, 5)
    assert meta.language == "es"
    assert meta.canonical_url == "https://diario.example/seccion/notas/desaparecidos.html"
    assert meta.images == []


def test_htmldate_fallback_for_published() -> None:
    html = f"""<html><head><title>Report</title>
    <meta name="dc.date.modified" content="2024-01-20"></head>
    <body><p>{BODY_EN}</p></body></html>""".encode()
    meta = extract_metadata(html, "https://ngo.example/reports/2022/06/15/annual-report", None)
    # The date in the URL, found by htmldate (an original date, not the modification date).
    assert meta.published == datetime.date(2022, 6, 15)


def test_extensive_date_search_but_not_the_copyright_year() -> None:
    footer = "<footer>© 2019–2024 Example NGO</footer>"
    dated = f"""<html><head><title>Statement</title></head><body><article>
    <p>Published on 12 March 2024.</p><p>{BODY_EN}</p></article>{footer}</body></html>"""
    meta = extract_metadata(dated.encode(), "https://ngo.example/statement", "text/html")
    assert meta.published == datetime.date(2024, 3, 12)
    undated = f"""<html><head><title>Statement</title></head><body><article>
    <p>{BODY_EN}</p></article>{footer}</body></html>"""
    meta = extract_metadata(undated.encode(), "https://ngo.example/statement", "text/html")
    assert meta.published is None  # htmldate would say 2024-01-01 from the footer


# --------------------------------------------------------------------------- encodings

RU_TITLE = "Суд арестовал правозащитника «Мемориала» на два месяца"
RU_TEXT = (
    "Московский суд отправил под арест известного правозащитника. Адвокаты заявили, что "
    "обвинение построено на показаниях анонимных свидетелей, и обжалуют решение. "
    "Коллеги задержанного назвали дело политически мотивированным и потребовали "
    "немедленно освободить его. "
)


def _russian_page(meta_charset: str = "") -> str:
    return f"""<!DOCTYPE html>
<html>
<head>
{meta_charset}
<title>{RU_TITLE}</title>
<meta name="description" content="Решение суда — в материале «Новой ленты».">
</head>
<body><article><h1>{RU_TITLE}</h1><p>{RU_TEXT * 3}</p></article></body>
</html>
"""


def test_windows_1251_declared_in_http_header() -> None:
    body = _russian_page().encode("windows-1251")
    meta = extract_metadata(body, "https://lenta.example/news/1", "text/html; charset=windows-1251")
    assert meta.encoding == "cp1251"
    assert meta.title == RU_TITLE
    assert meta.description == "Решение суда — в материале «Новой ленты»."
    assert meta.language == "ru"  # no lang attribute: detected from the decoded text
    assert meta.text is not None and "анонимных свидетелей" in meta.text


def test_windows_1251_declared_only_in_meta() -> None:
    body = _russian_page('<meta charset="windows-1251">').encode("windows-1251")
    meta = extract_metadata(body, "https://lenta.example/news/1", "text/html")
    assert meta.encoding == "cp1251"
    assert meta.title == RU_TITLE
    assert meta.language == "ru"


def test_http_header_charset_beats_meta_charset() -> None:
    body = _russian_page('<meta charset="utf-8">').encode("windows-1251")
    text, encoding = decode_html(body, "text/html; charset=Windows-1251")
    assert encoding == "cp1251"
    assert RU_TITLE in text


LT_TITLE = "Vilniuje žmogaus teisių gynėjai reikalauja paleisti sulaikytuosius"
LT_TEXT = (
    "Šeštadienį prie teismo rūmų susirinko keli šimtai žmonių, kurie reikalavo nedelsiant "
    "paleisti sulaikytus žurnalistus ir aktyvistus. Organizatoriai teigė, kad sulaikymai "
    "buvo neteisėti, o policija neleido advokatams susitikti su klientais. "
)
LITHUANIAN_1257 = f"""<!DOCTYPE html>
<html>
<head>
<meta http-equiv="Content-Type" content="text/html; charset=windows-1257">
<title>{LT_TITLE}</title>
</head>
<body><div id="content"><h1>{LT_TITLE}</h1><p>{LT_TEXT * 3}</p></div></body>
</html>
""".encode("windows-1257")


def test_windows_1257_declared_in_meta_http_equiv() -> None:
    meta = extract_metadata(LITHUANIAN_1257, "https://naujienos.example/str/1", "text/html")
    assert meta.encoding == "cp1257"
    assert meta.title == LT_TITLE
    assert meta.language == "lt"
    assert meta.text is not None and "Šeštadienį prie teismo rūmų" in meta.text


JA_TITLE = "東京で人権団体が記者会見、拘束された活動家の釈放を求める"
JA_TEXT = (
    "人権団体は月曜日、東京都内で記者会見を開き、先週拘束された活動家らの即時釈放を求めた。"
    "弁護士によると、拘束された人々は家族との面会を認められておらず、"
    "国際的な人権基準に違反している可能性があるという。"
)
JAPANESE_UTF8 = f"""<!DOCTYPE html>
<html>
<head><title>{JA_TITLE}</title></head>
<body><main><h1>{JA_TITLE}</h1><p>{JA_TEXT * 3}</p></main></body>
</html>
""".encode()


def test_japanese_utf8_without_declarations() -> None:
    meta = extract_metadata(JAPANESE_UTF8, "https://news.example.jp/articles/1", None)
    assert meta.encoding == "utf-8"
    assert meta.title == JA_TITLE
    assert meta.language == "ja"


def test_decode_html_bom_and_undeclared() -> None:
    text, encoding = decode_html("<p>Grüße</p>".encode("utf-8-sig"), None)
    assert (text, encoding) == ("<p>Grüße</p>", "utf-8")
    text, encoding = decode_html(JAPANESE_UTF8, "text/html")
    assert encoding == "utf-8" and JA_TITLE in text


# --------------------------------------------------------------------------- robustness


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   \n",
        b"<html></html>",
        b"<html><head></head><body></body></html>",
        b"\x00\x01\x02<<<>>>\xff\xfe garbage",
        b'<?xml version="1.0" encoding="iso-8859-1"?><html><body><p>x</p></body></html>',
        b"<html><body><p>unclosed <div><span>tags",
        b'<script type="application/ld+json">{"@type": "NewsArticle", "author": {"@id": 5}}'
        b"</script>",
        b'<script type="application/ld+json">[1, "x", null, {"@graph": 5}]</script>',
    ],
)
def test_messy_pages_do_not_crash(body: bytes) -> None:
    meta = extract_metadata(body, "https://example.org/", "text/html")
    assert isinstance(meta, PageMetadata)
    assert meta.published is None
    assert meta.images == []


def test_page_with_nothing() -> None:
    meta = extract_metadata(b"<html><body></body></html>", "https://example.org/", "text/html")
    assert meta == PageMetadata(encoding="utf-8")


def test_non_html_content_is_empty() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
    assert extract_metadata(png, "https://example.org/a.png", "image/png") == PageMetadata()
    assert extract_metadata(b"\x00\x00\x00 ftypisom", "https://e.org/v.mp4", None) == (
        PageMetadata()
    )
    assert extract_metadata(NEWS_ARTICLE, "https://e.org/v.mp4", "video/mp4") == PageMetadata()


def test_content_type_missing_sniffs_html() -> None:
    meta = extract_metadata(OPENGRAPH_ONLY, "https://jornal.example/x", None)
    assert meta.title == "Protesto em São Paulo reúne milhares"


# --------------------------------------------------------------------------- PDF


def _pdf(text: str | None = None) -> bytes:
    writer = PdfWriter()
    page = writer.add_blank_page(width=612, height=792)
    if text is not None:
        font = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
            }
        )
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})}
        )
        stream = DecodedStreamObject()
        lines = [f"({line}) Tj 0 -14 Td" for line in text.split("\n")]
        stream.set_data(f"BT /F1 11 Tf 72 720 Td {' '.join(lines)} ET".encode("latin-1"))
        page[NameObject("/Contents")] = ArrayObject([writer._add_object(stream)])
    writer.add_metadata(
        {
            "/Title": "Annual Report on Human Rights 2023",
            "/Author": "Example Rights Watch",
            "/CreationDate": "D:20240115103000+01'00'",
        }
    )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pdf_metadata_and_text() -> None:
    text = (
        "This report documents arbitrary detentions of journalists and lawyers.\n"
        "It is based on interviews with witnesses and families of the detained."
    )
    meta = extract_metadata(_pdf(text), "https://ngo.example/report.pdf", "application/pdf")
    assert meta.title == "Annual Report on Human Rights 2023"
    assert meta.author == "Example Rights Watch"
    assert meta.published == datetime.date(2024, 1, 15)
    assert meta.text is not None and "arbitrary detentions of journalists" in meta.text
    assert meta.language == "en"
    assert meta.encoding is None


def test_pdf_sniffed_without_content_type_and_without_text() -> None:
    meta = extract_metadata(_pdf(), "https://ngo.example/download?id=3", None)
    assert meta.title == "Annual Report on Human Rights 2023"
    assert meta.published == datetime.date(2024, 1, 15)
    assert meta.text is None


def test_broken_pdf_gives_empty_metadata() -> None:
    meta = extract_metadata(b"%PDF-1.7\nnot really", "https://e.org/x.pdf", "application/pdf")
    assert meta == PageMetadata()


# --------------------------------------------------------------------------- serialisation


def test_to_dict_round_trip_is_json_safe() -> None:
    meta = extract_metadata(NEWS_ARTICLE, "https://example.org/world/arrests", "text/html")
    data = meta.to_dict()
    assert data["published"] == "2024-03-12"
    restored = PageMetadata.from_dict(json.loads(json.dumps(data)))
    assert restored == meta
    assert PageMetadata.from_dict({"published": None, "extra": 1}) == PageMetadata()


def test_huge_page_reads_only_a_prefix_for_main_text(monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.extract as extract_module

    monkeypatch.setattr(extract_module, "MAX_ANALYSIS_ELEMENTS", 40)
    paragraphs = "".join(f"<p>{BODY_EN} Paragraph number {i}.</p>" for i in range(200))
    html = f"""<html lang="en"><head><title>Huge</title>
    <meta property="og:site_name" content="Big Site"></head>
    <body><article>{paragraphs}</article></body></html>""".encode()
    meta = extract_metadata(html, "https://big.example/a", "text/html")
    assert meta.title == "Huge"
    assert meta.site_name == "Big Site"
    assert meta.text is not None
    assert "Paragraph number 0." in meta.text
    assert "Paragraph number 199." not in meta.text


def test_typical_page_is_fast() -> None:
    paragraphs = "".join(f"<p>{BODY_EN} Paragraph {i}.</p>" for i in range(60))
    links = "".join(f'<li><a href="/n/{i}">Other story {i}</a></li>' for i in range(200))
    body = NEWS_ARTICLE.replace(b"</article>", f"{paragraphs}</article><ul>{links}</ul>".encode())
    extract_metadata(body, "https://example.org/world/arrests", "text/html")  # warm-up
    runs = 5
    start = time.perf_counter()
    for _ in range(runs):
        extract_metadata(body, "https://example.org/world/arrests", "text/html")
    assert (time.perf_counter() - start) / runs < 0.5
