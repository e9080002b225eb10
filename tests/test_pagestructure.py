"""Tests for pipeline.pagestructure: requisites, galleries, media."""

from __future__ import annotations

import pytest

from pipeline.pagestructure import (
    GalleryPage,
    find_css_requisites,
    find_media,
    find_requisites,
    largest_srcset_candidate,
    parse_gallery,
)

pytestmark = pytest.mark.usefixtures("no_network")


# --------------------------------------------------------------------------- srcset


@pytest.mark.parametrize(
    ("srcset", "expected"),
    [
        ("a-480.jpg 480w, a-1200.jpg 1200w, a-800.jpg 800w", "https://ex.org/p/a-1200.jpg"),
        ("a.jpg, a@3x.jpg 3x, a@2x.jpg 2x", "https://ex.org/p/a@3x.jpg"),
        ("  /x/a.jpg 1.5x,\n/x/b.jpg   2x ", "https://ex.org/x/b.jpg"),
        # URLs with commas (image CDNs): a URL runs to the next whitespace.
        (
            "https://res.cdn.example/w_400,h_300,c_fill/a.jpg 400w, "
            "https://res.cdn.example/w_1600,h_1200,c_fill/a.jpg 1600w",
            "https://res.cdn.example/w_1600,h_1200,c_fill/a.jpg",
        ),
        ("data:image/gif;base64,R0lGOD 1x, real.jpg 2x", "https://ex.org/p/real.jpg"),
        ("a.jpg 100w,b.jpg 200w", "https://ex.org/p/b.jpg"),
        ("big.jpg#frag 2x", "https://ex.org/p/big.jpg"),
        ("", None),
        ("   ,  ", None),
        ("javascript:alert(1) 2x", None),
    ],
)
def test_largest_srcset_candidate(srcset: str, expected: str | None) -> None:
    assert largest_srcset_candidate(srcset, "https://ex.org/p/page.html") == expected


# --------------------------------------------------------------------------- requisites

REQUISITES_PAGE = """<!DOCTYPE html>
<html>
<head>
<base href="https://static.example.net/site/">
<link rel="stylesheet" href="css/main.css">
<link rel="alternate" type="application/rss+xml" href="/feed.xml">
<link rel="icon" href="/favicon.ico">
<link rel="shortcut icon" href="/favicon.ico">
<link rel="apple-touch-icon" href="img/touch.png">
<link rel="preload" as="font" href="fonts/body.woff2" crossorigin>
<link rel="preload" as="script" href="js/late.js">
<link rel="canonical" href="https://www.example.org/page">
<script src="js/app.js#v2"></script>
<script>var inline = "url(not-this.png)";</script>
<style>
@import "css/print.css";
@import url('css/theme.css');
/* url(commented-out.png) */
body { background: url("img/bg.png") no-repeat; }
.hero { background-image: url(data:image/png;base64,iVBOR); }
</style>
</head>
<body>
<a href="https://www.example.org/other-page">a link is not a requisite</a>
<img src="img/photo.jpg" srcset="img/photo-640.jpg 640w, img/photo-1920.jpg 1920w" alt="">
<img src="data:image/gif;base64,R0lGOD" data-src="img/lazy.jpg" alt="">
<img data-lazy-src="//cdn.example.com/lazy2.jpg" data-original="img/orig.jpg" alt="">
<picture>
  <source type="image/avif" srcset="img/pic.avif 1x, img/pic@2x.avif 2x">
  <source type="image/webp" srcset="img/pic-800.webp 800w, img/pic-1600.webp 1600w">
  <img src="img/pic.jpg" alt="">
</picture>
<video poster="img/poster.jpg" src="media/clip.mp4"></video>
<div style="background-image:url('img/inline-bg.jpg')">x</div>
<a href="javascript:void(0)" style="background:url(mailto:x@y.z)">x</a>
<img src="img/photo.jpg" alt="duplicate">
<iframe src="https://www.youtube.com/embed/abc"></iframe>
</body>
</html>
"""


def test_find_requisites_covers_what_a_browser_loads() -> None:
    base = "https://static.example.net/site/"
    assert find_requisites(REQUISITES_PAGE, "https://www.example.org/page") == [
        base + "css/main.css",
        "https://static.example.net/favicon.ico",
        base + "img/touch.png",
        base + "fonts/body.woff2",
        base + "js/app.js",
        base + "css/print.css",
        base + "css/theme.css",
        base + "img/bg.png",
        base + "img/photo.jpg",
        base + "img/photo-1920.jpg",
        base + "img/lazy.jpg",
        "https://cdn.example.com/lazy2.jpg",
        base + "img/orig.jpg",
        base + "img/pic@2x.avif",
        base + "img/pic-1600.webp",
        base + "img/pic.jpg",
        base + "img/poster.jpg",
        base + "img/inline-bg.jpg",
    ]


def test_find_requisites_without_base_and_on_empty_input() -> None:
    html = '<html><head><link rel="stylesheet" href="../s.css"></head></html>'
    assert find_requisites(html, "https://ex.org/a/b/c.html") == ["https://ex.org/a/s.css"]
    assert find_requisites("", "https://ex.org/") == []
    assert find_requisites("<<<not html", "https://ex.org/") == []


def test_find_css_requisites() -> None:
    css = """
    @import url("base.css");
    @import 'print.css' print;
    @font-face { font-family: X; src: url(../fonts/x.woff2) format("woff2"),
                 url( "../fonts/x.woff" ) format("woff"); }
    .a { background: url(img/a.png), url('img/b.png#sprite'); }
    .b { background: url(img/a.png); }          /* duplicate */
    .c { background: url(data:image/svg+xml;utf8,<svg></svg>); }
    .d { behavior: url(); }
    """
    assert find_css_requisites(css, "https://cdn.ex.org/css/site.css") == [
        "https://cdn.ex.org/css/base.css",
        "https://cdn.ex.org/css/print.css",
        "https://cdn.ex.org/fonts/x.woff2",
        "https://cdn.ex.org/fonts/x.woff",
        "https://cdn.ex.org/css/img/a.png",
        "https://cdn.ex.org/css/img/b.png",
    ]


# --------------------------------------------------------------------------- gallery

GALLERY_PAGE = """<!DOCTYPE html>
<html>
<head>
<title>Protest in the capital — photo gallery</title>
<link rel="next" href="/gallery/protest-2024/?page=2">
</head>
<body>
<header class="site-header">
  <a href="/"><img src="/static/logo.png" alt="Example News"></a>
  <nav>
    <a href="/">Home</a> <a href="/gallery/">All galleries</a>
    <a href="/gallery/other-event/">Other event</a> <a href="?lang=de">Deutsch</a>
  </nav>
</header>
<main>
  <h1>Protest in the capital</h1>
  <div class="gallery">
    <figure>
      <a href="/media/originals/protest-01.jpg"><img src="/media/thumbs/protest-01.jpg" alt=""></a>
      <figcaption>Crowd on the square</figcaption>
    </figure>
    <figure>
      <img src="/media/thumbs/protest-02.jpg"
           srcset="/media/protest-02-600.jpg 600w, /media/protest-02-2000.jpg 2000w,
                   /media/protest-02-1200.jpg 1200w" alt="">
    </figure>
    <figure>
      <img src="/static/placeholder.gif" data-src="/media/protest-03.jpg" class="lazyload" alt="">
    </figure>
    <figure>
      <img src="data:image/gif;base64,R0lGOD" data-lazy-src="/media/protest-04.jpg" alt="">
    </figure>
    <figure>
      <img src="/media/thumbs/protest-05.jpg" data-full="/media/full/protest-05.jpg" alt="">
    </figure>
    <figure>
      <picture>
        <source srcset="/media/protest-06.avif 1x, /media/protest-06@2x.avif 2x">
        <source srcset="/media/protest-06.webp 1x, /media/protest-06@3x.webp 3x">
        <img src="/media/thumbs/protest-06.jpg" alt="">
      </picture>
    </figure>
    <figure>
      <img src="/media/thumbs/protest-07.jpg" alt="">
      <figcaption><a href="/media/originals/protest-07.tif">Download original</a></figcaption>
    </figure>
    <figure><img src="/media/protest-08.jpg" alt=""></figure>
  </div>
  <ul class="pagination">
    <li><a href="/gallery/protest-2024/">1</a></li>
    <li><a href="/gallery/protest-2024/?page=2">2</a></li>
    <li><a href="/gallery/protest-2024/?page=3#photos">3</a></li>
    <li><a href="/gallery/protest-2024/?page=2" rel="next">Next »</a></li>
    <li><a href="/gallery/other-event/?page=2">Other event, page 2</a></li>
    <li><a href="https://mirror.example.org/gallery/protest-2024/?page=2">mirror</a></li>
    <li><a href="http://news.example.org/gallery/protest-2024/?page=4">http</a></li>
  </ul>
  <aside class="related">
    <h2>More galleries</h2>
    <a href="/gallery/other-event/"><img src="/media/thumbs/other-event.jpg" alt=""></a>
  </aside>
</main>
<footer>
  <img src="/static/footer-logo.png" alt="">
  <nav><a href="/about">About</a> <a href="/gallery/protest-2024/?page=2">2</a></nav>
</footer>
</body>
</html>
"""


def test_parse_gallery_full_size_images_and_same_gallery_pages() -> None:
    page = parse_gallery(GALLERY_PAGE, "https://news.example.org/gallery/protest-2024/")
    host = "https://news.example.org"
    assert page == GalleryPage(
        images=[
            f"{host}/media/originals/protest-01.jpg",
            f"{host}/media/protest-02-2000.jpg",
            f"{host}/media/protest-03.jpg",
            f"{host}/media/protest-04.jpg",
            f"{host}/media/full/protest-05.jpg",
            f"{host}/media/protest-06@3x.webp",
            f"{host}/media/originals/protest-07.tif",
            f"{host}/media/protest-08.jpg",
        ],
        next_pages=[
            f"{host}/gallery/protest-2024/?page=2",
            f"{host}/gallery/protest-2024/?page=3",
        ],
    )


def test_parse_gallery_paths_under_the_gallery_and_from_a_later_page() -> None:
    html = """<html><body>
    <article class="post">
      <a href="/g/x/big-1.jpeg"><img src="/g/x/small-1.jpeg"></a>
      <nav class="nav-links" aria-label="Gallery pages">
        <a href="/g/x/">1</a> <a href="/g/x/page/2/">2</a> <a href="/g/x/page/3/">3</a>
        <a href="/g/xy/page/2/">similar prefix, other gallery</a>
        <a href="/g/">up</a>
      </nav>
    </article>
    </body></html>"""
    first = parse_gallery(html, "https://ex.org/g/x/")
    assert first.images == ["https://ex.org/g/x/big-1.jpeg"]
    assert first.next_pages == ["https://ex.org/g/x/page/2/", "https://ex.org/g/x/page/3/"]
    second = parse_gallery(html, "https://ex.org/g/x/page/2/")
    assert second.next_pages == ["https://ex.org/g/x/", "https://ex.org/g/x/page/3/"]


def test_parse_gallery_without_content_markers_uses_body_minus_chrome() -> None:
    html = """<html><body>
    <div id="top"><header><img src="/logo.svg"></header></div>
    <div><img src="/p/1.jpg"><img src="/p/2.jpg" srcset="/p/2-big.jpg 2x"></div>
    <footer><img src="/badge.png"></footer>
    </body></html>"""
    page = parse_gallery(html, "https://ex.org/p/")
    assert page.images == ["https://ex.org/p/1.jpg", "https://ex.org/p/2-big.jpg"]
    assert page.next_pages == []


def test_parse_gallery_theme_wrappers_are_not_chrome() -> None:
    html = """<html><body>
    <div class="site-logo"><img src="/wp-content/logo.png"></div>
    <div class="content-sidebar-wrap">
      <main class="content">
        <div class="elementor-widget elementor-widget-gallery">
          <a href="/wp-content/uploads/a.jpg"><img src="/wp-content/uploads/a-300x200.jpg"></a>
        </div>
      </main>
      <div class="sidebar-primary"><img src="/wp-content/ad.png"></div>
    </div></body></html>"""
    page = parse_gallery(html, "https://ex.org/2024/05/gallery-post/")
    assert page.images == ["https://ex.org/wp-content/uploads/a.jpg"]


def test_parse_gallery_empty() -> None:
    assert parse_gallery("", "https://ex.org/") == GalleryPage(images=[], next_pages=[])


# --------------------------------------------------------------------------- media

MEDIA_PAGE = """<!DOCTYPE html>
<html>
<head>
<meta property="og:video" content="https://www.youtube.com/embed/abc123">
<meta property="og:video:type" content="text/html">
<meta property="og:video" content="https://cdn.example.org/video/report.mp4">
<meta property="og:video:secure_url" content="https://cdn.example.org/video/report-s.mp4">
<meta property="og:video:type" content="video/mp4">
<meta property="og:audio" content="/audio/stream?id=7">
<meta property="og:audio:type" content="audio/mpeg">
<meta name="twitter:player" content="https://player.example.org/embed/7">
<meta name="twitter:player:stream" content="https://cdn.example.org/video/report.mp4">
</head>
<body>
<video src="/video/intro.webm" poster="/img/poster.jpg"></video>
<video controls>
  <source src="/video/main.mp4" type="video/mp4">
  <source src="/video/main.ogv" type="video/ogg">
  <source src="/video/main.m3u8" type="application/x-mpegURL">
</video>
<audio controls><source src="/audio/interview.mp3#t=10" type="audio/mpeg"></audio>
<picture><source srcset="/img/not-media.webp"></picture>
<iframe src="https://www.youtube.com/embed/abc123" allowfullscreen></iframe>
<iframe src="https://player.vimeo.com/video/42"></iframe>
<a href="/downloads/full-interview.mp4">download link, not embedded</a>
</body>
</html>
"""


def test_find_media_plain_files_only() -> None:
    assert find_media(MEDIA_PAGE, "https://www.example.org/story/1") == [
        "https://cdn.example.org/video/report.mp4",
        "https://cdn.example.org/video/report-s.mp4",
        "https://www.example.org/audio/stream?id=7",
        "https://www.example.org/video/intro.webm",
        "https://www.example.org/video/main.mp4",
        "https://www.example.org/video/main.ogv",
        "https://www.example.org/audio/interview.mp3",
    ]


def test_find_media_nothing_embedded() -> None:
    html = '<iframe src="https://www.youtube.com/embed/x"></iframe><video></video>'
    assert find_media(html, "https://ex.org/") == []


def test_a_page_parsed_once_gives_what_its_text_gives() -> None:
    from pipeline.pagestructure import parse_html

    html = """<html><head><base href="/sub/"><meta property="og:video" content="clip.mp4">
    <link rel="stylesheet" href="s.css"></head><body><main class="gallery">
    <a href="big1.jpg"><img src="t1.jpg"></a><a href="big2.jpg"><img src="t2.jpg"></a>
    <video src="v.webm" poster="p.jpg"><source src="v.mp4"></video>
    <nav class="pagination"><a rel="next" href="/sub/?page=2">2</a></nav></main></body></html>"""
    base = "http://127.0.0.1/sub/gallery"
    soup = parse_html(html)
    assert find_requisites(soup, base) == find_requisites(html, base)
    assert find_media(soup, base) == find_media(html, base)
    assert find_media(soup, base)  # the page has media: the comparison is not empty
    assert parse_gallery(soup, base) == parse_gallery(html, base)
