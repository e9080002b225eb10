"""pipeline.walls: app shells, log-in walls and platform error pages, told from HTML."""

from __future__ import annotations

import pytest

from pipeline.walls import PLATFORM_HOSTS, browser_reason, on_platform, signals, wall_reason

ARTICLE = (
    "<html><head><title>Rally in Prague</title><script src=/app.js></script></head><body>"
    "<article><h1>Rally in Prague</h1>"
    + "<p>Hundreds gathered on Wenceslas Square to support the women of Belarus.</p>" * 6
    + "</article><script>track()</script></body></html>"
)
SHELL = (
    "<!DOCTYPE html><html><head><title>Loading…</title><style>body{margin:0}</style></head>"
    "<body><div id=root>Loading…</div><noscript>You need to enable JavaScript to run this "
    "app, which is a long sentence that must not count as visible text at all.</noscript>"
    "<script src=/static/js/main.js></script></body></html>"
)
WALL = (
    "<html><body><h1>Log in to see this post</h1><form><input type=email name=e>"
    "<input type='password' name=p><button>Log in</button></form></body></html>"
)


def test_an_article_needs_no_browser_even_with_scripts() -> None:
    page = signals(ARTICLE)
    assert page.scripts and not page.app_shell
    assert wall_reason(page) is None
    assert browser_reason(page, "news.example.org", PLATFORM_HOSTS) is None


def test_an_app_shell_is_told_by_its_missing_text_not_by_noscript_or_styles() -> None:
    page = signals(SHELL)
    assert page.app_shell and page.text_chars < 20
    assert browser_reason(page, "news.example.org", PLATFORM_HOSTS) == "app shell"


def test_a_page_without_scripts_is_never_an_app_shell() -> None:
    assert not signals("<html><body><p>Short.</p></body></html>").app_shell


def test_log_in_walls_and_removed_posts_are_named() -> None:
    assert wall_reason(signals(WALL)) == "log-in wall"
    # a password form alone, with little else on the page, is a wall too
    assert wall_reason(signals("<form><input type=password></form>")) == "log-in wall"
    removed = signals("<h2>Sorry, this content isn\u2019t available right now</h2>")
    assert wall_reason(removed) == "content unavailable"
    private = signals("<p>This Account is Private</p><script></script>")
    assert wall_reason(private) == "content unavailable"
    # the rendered text, when a browser made the page, is what counts
    assert wall_reason(signals(SHELL), text="Войдите, чтобы продолжить") == "log-in wall"
    assert wall_reason(signals(WALL), text="A long article " * 500) is None


@pytest.mark.parametrize(
    ("host", "expected"),
    [("www.facebook.com", True), ("t.me", True), ("m.vk.com", True), ("youtu.be", True),
     ("notfacebook.com", False), ("news.example.org", False)],
)  # fmt: skip
def test_platform_hosts_include_their_subdomains_only(host: str, expected: bool) -> None:
    assert on_platform(host) is expected
    reason = browser_reason(signals(ARTICLE), host, PLATFORM_HOSTS)
    assert (reason == "platform") is expected


def test_unclosed_scripts_and_comments_hide_the_rest_of_the_page() -> None:
    page = signals("<p>Visible words</p><script>var x = '<p>not text</p>'; <!-- <p>gone</p>")
    assert page.text == "Visible words"
    assert signals("<p>a</p><!-- <p>b</p> --><p>c</p>").text == "a c"
    assert signals("<<<<p>text</p>").text.endswith("text")
