"""Archived HTML and CSS rewritten so that resources and links stay in the archive."""

from __future__ import annotations

from datetime import datetime

import pytest
from bs4 import BeautifulSoup

from pipeline.web.rewrite import (
    archived_url,
    parse_timestamp,
    rewrite_css,
    rewrite_html,
    timestamp14,
)

PAGE = "http://news.example/de/2020/bericht.html"
WHEN = datetime(2020, 10, 10, 18, 5, 9)
TS = "20201010180509"


def web(url: str) -> str:
    return f"/archived/web/{TS}/{url}"


def rewritten(html: str, url: str = PAGE, **kwargs: object) -> BeautifulSoup:
    out = rewrite_html(html.encode("utf-8"), url, WHEN, **kwargs)  # type: ignore[arg-type]
    return BeautifulSoup(out.decode("utf-8"), "lxml")


def test_timestamps() -> None:
    assert timestamp14(WHEN) == TS
    assert parse_timestamp(TS) == WHEN
    assert parse_timestamp("2020") == datetime(2020, 1, 1)
    assert parse_timestamp("202010") == datetime(2020, 10, 1)
    for bad in ("", "20", "2020x", "202013", "123456789012345", "..", "-2020"):
        assert parse_timestamp(bad) is None, bad
    assert archived_url("http://a/b?c=1", TS, "/p") == f"/p/{TS}/http://a/b?c=1"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("img/a.jpg", "http://news.example/de/2020/img/a.jpg"),
        ("../a.jpg", "http://news.example/de/a.jpg"),
        ("/static/a.jpg", "http://news.example/static/a.jpg"),
        ("//cdn.example/a.jpg", "http://cdn.example/a.jpg"),
        ("https://cdn.example/a.jpg?w=1&h=2", "https://cdn.example/a.jpg?w=1&h=2"),
        ("  /a.jpg\n", "http://news.example/a.jpg"),
        ("http://cdn.example/x/../../a.jpg#frag", "http://cdn.example/a.jpg"),
    ],
)
def test_img_src_forms(raw: str, expected: str) -> None:
    soup = rewritten(f'<img src="{raw}">')
    assert soup.img["src"] == web(expected)


def test_srcset_keeps_descriptors_and_rewrites_every_candidate() -> None:
    soup = rewritten(
        '<picture><source srcset="a-800.webp 800w, /b-1600.webp 1600w">'
        '<img src="a.jpg" srcset="a,1.jpg 1x, //cdn.example/a@2x.jpg 2x" '
        'data-srcset="lazy.jpg 100w" data-src="lazy-full.jpg" sizes="50vw"></picture>'
    )
    source, img = soup.source, soup.img
    assert source["srcset"] == (
        f"{web('http://news.example/de/2020/a-800.webp')} 800w, "
        f"{web('http://news.example/b-1600.webp')} 1600w"
    )
    assert img["srcset"] == (
        f"{web('http://news.example/de/2020/a,1.jpg')} 1x, {web('http://cdn.example/a@2x.jpg')} 2x"
    )
    assert img["data-srcset"] == f"{web('http://news.example/de/2020/lazy.jpg')} 100w"
    assert img["data-src"] == web("http://news.example/de/2020/lazy-full.jpg")
    assert img["sizes"] == "50vw"


def test_links_stylesheets_media_and_frames() -> None:
    soup = rewritten(
        '<head><link rel="stylesheet" href="/s.css" integrity="sha384-x" crossorigin>'
        '<link rel="icon" href="favicon.ico"><link rel="preload" as="font" href="/f.woff2">'
        "</head><body background='bg.png'>"
        '<a href="other.html#part" target="_blank" ping="http://t.example/">next</a>'
        '<a href="#top">top</a><a href="mailto:x@example.org">mail</a>'
        '<map><area href="/map-area" alt=""></map>'
        '<video poster="p.jpg" src="v.mp4"><source src="v.webm"><track src="t.vtt"></video>'
        '<iframe src="/embed" srcdoc="&lt;script&gt;alert(1)&lt;/script&gt;"></iframe>'
        '<iframe src="data:text/html,hi"></iframe>'
        '<embed src="e.swf"><object data="o.pdf"></object>'
        '<form action="/search" method="post"><button formaction="/x">go</button></form>'
        "</body>"
    )
    links = soup.find_all("link")
    assert [link["href"] for link in links] == [
        web("http://news.example/s.css"),
        web("http://news.example/de/2020/favicon.ico"),
        web("http://news.example/f.woff2"),
    ]
    assert not links[0].has_attr("integrity")  # the rewritten CSS would not match it
    assert soup.body["background"] == web("http://news.example/de/2020/bg.png")
    anchors = soup.find_all("a")
    assert anchors[0]["href"] == web("http://news.example/de/2020/other.html#part")
    assert not anchors[0].has_attr("target") and not anchors[0].has_attr("ping")
    assert anchors[1]["href"] == "#top"
    assert not anchors[2].has_attr("href")
    assert soup.area["href"] == web("http://news.example/map-area")
    assert soup.video["poster"] == web("http://news.example/de/2020/p.jpg")
    assert soup.video["src"] == web("http://news.example/de/2020/v.mp4")
    assert soup.source["src"] == web("http://news.example/de/2020/v.webm")
    assert soup.track["src"] == web("http://news.example/de/2020/t.vtt")
    frames = soup.find_all("iframe")
    assert frames[0]["src"] == web("http://news.example/embed")
    assert not frames[0].has_attr("srcdoc")
    assert not frames[1].has_attr("src")  # a data: document is not from the archive
    assert soup.embed["src"] == web("http://news.example/de/2020/e.swf")
    assert soup.object["data"] == web("http://news.example/de/2020/o.pdf")
    assert not soup.form.has_attr("action") and not soup.button.has_attr("formaction")


def test_base_href_is_honoured_then_removed() -> None:
    soup = rewritten(
        '<head><base href="https://cdn.example/assets/"></head>'
        '<body><img src="a.png"><a href="/home">home</a></body>'
    )
    assert soup.find("base") is None
    assert soup.img["src"] == web("https://cdn.example/assets/a.png")
    assert soup.a["href"] == web("https://cdn.example/home")


def test_a_javascript_base_is_ignored() -> None:
    soup = rewritten('<base href="javascript:alert(1)"><img src="a.png">')
    assert soup.img["src"] == web("http://news.example/de/2020/a.png")


def test_scripts_handlers_and_javascript_urls_are_removed() -> None:
    soup = rewritten(
        "<head><script>window.x=1</script><script src='/app.js'></script></head>"
        '<body onload="steal()"><img src="a.png" onerror="x()" ONCLICK="y()">'
        '<a href="javascript:alert(1)">a</a><a href=" JaVa\tScRiPt:alert(2)">b</a>'
        '<iframe src="javascript:alert(3)"></iframe><details open><summary>s</summary></details>'
        '<svg><script>alert(4)</script><a xlink:href="javascript:alert(5)"><text>t</text></a></svg>'
        '<div data-x="javascript:alert(6)" style="color: red">d</div></body>'
    )
    html = str(soup)
    assert soup.find("script") is None
    assert "alert" not in html and "steal" not in html and "window.x" not in html
    assert not soup.body.has_attr("onload")
    assert set(soup.img.attrs) == {"src"}
    assert all(not a.has_attr("href") for a in soup.find_all("a"))
    assert soup.details.has_attr("open")  # not an event handler
    assert soup.div["style"] == "color: red"


def test_meta_refresh_is_rewritten() -> None:
    soup = rewritten('<meta http-equiv="refresh" content="5; URL=\'/moved.html\'">')
    assert soup.find("meta", attrs={"http-equiv": "refresh"})["content"] == (
        f"5; url={web('http://news.example/moved.html')}"
    )
    soup = rewritten('<meta http-equiv="Refresh" content="0;url=javascript:alert(1)">')
    assert not soup.find("meta", attrs={"http-equiv": "Refresh"}).has_attr("content")


def test_inline_and_embedded_css() -> None:
    soup = rewritten(
        "<style>@import 'print.css'; @import url(\"/base.css\");"
        ".a > b { background: url(img/x.png) } .c { background: url( 'data:image/png;base64,AA' ) }"
        ".d { background: url(javascript:alert(1)) }</style>"
        "<p style=\"background-image: url('//cdn.example/p.jpg')\">p</p>"
    )
    css = soup.style.string
    assert f'@import "{web("http://news.example/de/2020/print.css")}"' in css
    assert f'url("{web("http://news.example/base.css")}")' in css
    assert f'.a > b {{ background: url("{web("http://news.example/de/2020/img/x.png")}") }}' in css
    assert 'url("data:image/png;base64,AA")' in css
    assert "javascript" not in css and 'url("about:invalid")' in css
    assert soup.p["style"] == f'background-image: url("{web("http://cdn.example/p.jpg")}")'


def test_css_file_resolves_against_its_own_url() -> None:
    css = (
        b'@charset "utf-8";\n@font-face { src: url(../fonts/f.woff2) format("woff2") }\n'
        b'body { background: url("bg.png?v=1") }'
    )
    out = rewrite_css(css, "http://news.example/static/css/site.css", WHEN).decode("utf-8")
    assert "@charset" not in out
    assert f'url("{web("http://news.example/static/fonts/f.woff2")}") format("woff2")' in out
    assert f'url("{web("http://news.example/static/css/bg.png?v=1")}")' in out


def test_css_file_in_a_declared_charset_comes_out_utf8() -> None:
    css = '@charset "windows-1251";\n.x::after { content: "Минск"; }'.encode("cp1251")
    out = rewrite_css(css, "http://a.example/s.css", WHEN)
    assert "Минск" in out.decode("utf-8")


def test_a_quote_in_a_url_cannot_break_out_of_css() -> None:
    css = b"a { background: url(\"x'y<b>.png\") } b { background: url('a\"b\\\\.png') }"
    out = rewrite_css(css, "http://a.example/", WHEN)
    assert out.count(b'"') == 4 and b"<" not in out and b"'" not in out and b"\\" not in out


def test_windows_1251_page_comes_out_utf8_with_its_charset_updated() -> None:
    body = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1251">'
        "<title>Женщины в белом</title></head><body><p>Минск, 10 октября</p>"
        '<img src="фото.jpg"></body></html>'
    ).encode("cp1251")
    out = rewrite_html(body, "http://by.example/news/", WHEN)
    text = out.decode("utf-8")  # raises if the output is not UTF-8
    soup = BeautifulSoup(text, "lxml")
    assert soup.title.string == "Женщины в белом"
    assert soup.p.string == "Минск, 10 октября"
    metas = soup.find_all("meta")
    assert [m.get("charset") for m in metas] == ["utf-8"]
    assert soup.head.contents[0] is metas[0]
    assert soup.img["src"] == web("http://by.example/news/фото.jpg")


def test_the_content_type_charset_wins_over_detection() -> None:
    body = "<p>Grüße aus München</p>".encode("latin-1")
    out = rewrite_html(body, PAGE, WHEN, content_type="text/html; charset=iso-8859-1")
    assert "Grüße aus München" in out.decode("utf-8")


def test_a_custom_prefix_is_used() -> None:
    out = rewrite_html(b'<img src="a.png">', PAGE, TS, prefix="/archived/web/pass.1.x/")
    assert f'src="/archived/web/pass.1.x/{TS}/http://news.example/de/2020/a.png"' in out.decode()
