"""What a fetched page really is: an article, an app shell that needs a browser, a log-in
wall, or a platform's "not available" page.

Pure functions over HTML text (no parser: they run on every crawled page, so they must cost
far less than parsing it). The crawler uses them to decide when a page needs a browser
(``--browser auto``) and to give log-in walls and removed posts an honest status
(``blocked``) instead of ``alive``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

#: Hosts (and their subdomains) whose pages are built by scripts or sit behind log-in
#: walls: a plain fetch of them gets an app shell. ``LINKARCHIVE_BROWSER_HOSTS`` replaces it.
PLATFORM_HOSTS = (
    "facebook.com", "fb.com", "fb.watch", "instagram.com", "threads.net", "threads.com",
    "t.me", "telegram.me", "vk.com", "vk.ru", "ok.ru", "youtube.com", "youtu.be",
    "twitter.com", "x.com", "tiktok.com", "linkedin.com", "bsky.app",
)  # fmt: skip

#: Hosts (and subdomains) whose pages get yt-dlp (``LINKARCHIVE_VIDEO_HOSTS`` replaces it).
VIDEO_HOSTS = (
    "youtube.com", "youtu.be", "vimeo.com", "vk.com", "vk.ru", "vkvideo.ru", "ok.ru",
    "facebook.com", "fb.watch", "instagram.com", "t.me", "tiktok.com", "rutube.ru",
    "dailymotion.com", "twitter.com", "x.com",
)  # fmt: skip

#: A page with less visible text than this, and a script, is an app shell.
SHELL_TEXT_CHARS = 200
#: Walls and "not available" pages are short; longer pages are not searched for markers.
MARKER_TEXT_CHARS = 6000

# Phrases platforms show instead of a post (lower case, straight apostrophes), by reason.
WALL_MARKERS: dict[str, tuple[str, ...]] = {
    "log-in wall": (
        "log in to see", "log in to continue", "log into facebook", "log in or sign up",
        "you must log in", "you must be logged in", "login to continue", "sign in to continue",
        "sign in to see", "sign in to confirm you're not a bot", "sign in to view",
        "войдите, чтобы", "войдите в аккаунт", "melde dich an, um", "zaloguj się, aby",
        "connectez-vous pour", "accedi per",
    ),
    "content unavailable": (
        "this content isn't available", "this page isn't available", "content isn't available",
        "this account is private", "this account doesn't exist", "this video is unavailable",
        "video unavailable", "this post is unavailable", "post not found",
        "the link you followed may be broken", "this tweet is unavailable",
        "this post was deleted", "запись удалена", "страница удалена", "пост удален",
    ),
}  # fmt: skip

#: Only the start of a page is read: shells, walls and error pages are small.
SIGNAL_BYTES = 512 * 1024

_HIDDEN_OPEN = re.compile(rb"<(script|style|noscript|template|svg)\b|<!--", re.I)
_TAG = re.compile(rb"<[^<>]*>")  # not [^>]*: linear even on "<<<<…"
_SPACE = re.compile(rb"\s+")
_SCRIPT = re.compile(rb"<script\b", re.I)
_PASSWORD = re.compile(rb"<input\b[^>]*\btype\s*=\s*[\"']?password", re.I)


@dataclass(frozen=True)
class PageSignals:
    """What a page's HTML shows about it."""

    text: str  # the visible text (an estimate without a parser), at most MARKER_TEXT_CHARS
    scripts: bool
    password_form: bool

    @property
    def text_chars(self) -> int:
        """How much visible text there is (capped at MARKER_TEXT_CHARS + 1)."""
        return len(self.text)

    @property
    def app_shell(self) -> bool:
        """Little visible text and a script that is meant to make the page."""
        return self.scripts and self.text_chars < SHELL_TEXT_CHARS


def signals(html: bytes | str) -> PageSignals:
    """The visible text and tell-tale markup of ``html``."""
    data = html.encode("utf-8", "replace") if isinstance(html, str) else html
    data = data[:SIGNAL_BYTES]
    visible = _SPACE.sub(b" ", _TAG.sub(b" ", _without_hidden(data))).strip()
    text = visible[: MARKER_TEXT_CHARS + 1].decode("utf-8", "replace")
    return PageSignals(
        text=text,
        scripts=_SCRIPT.search(data) is not None,
        password_form=_PASSWORD.search(data) is not None,
    )


def _without_hidden(data: bytes) -> bytes:
    """``data`` without scripts, styles, templates, SVG and comments, in one pass: a
    regular expression with a lazy ``.*?`` would rescan to the end for every unclosed
    ``<script`` (quadratic on a hostile page); an unclosed one hides the rest."""
    lower = data.lower()
    kept, pos = [], 0
    while (found := _HIDDEN_OPEN.search(data, pos)) is not None:
        kept.append(data[pos : found.start()])
        if found.group(1) is None:  # a comment
            end = lower.find(b"-->", found.end())
            pos = end + 3 if end >= 0 else len(data)
        else:
            end = lower.find(b"</" + found.group(1).lower(), found.end())
            close = lower.find(b">", end) if end >= 0 else -1
            pos = close + 1 if close >= 0 else len(data)
    kept.append(data[pos:])
    return b" ".join(kept)


def wall_reason(page: PageSignals, text: str | None = None) -> str | None:
    """``"log-in wall"`` or ``"content unavailable"`` when the page is one, else None.

    ``text`` is the rendered text when a browser made the page (more exact than the
    estimate from HTML). A password form on a page with little else is a log-in wall.
    """
    visible = text if text is not None else page.text
    if len(visible) > MARKER_TEXT_CHARS:
        return None
    folded = visible.lower().replace("\u2019", "'")
    for reason, markers in WALL_MARKERS.items():
        if any(marker in folded for marker in markers):
            return reason
    if page.password_form and len(visible.strip()) < 1500:
        return "log-in wall"
    return None


def on_platform(host: str, platforms: Iterable[str] = PLATFORM_HOSTS) -> bool:
    """Whether ``host`` is one of ``platforms`` or a subdomain of one."""
    host = host.lower().rstrip(".")
    return any(host == p or host.endswith("." + p) for p in platforms)


def browser_reason(page: PageSignals, host: str, platforms: Iterable[str]) -> str | None:
    """Why a page needs a browser in ``auto`` mode (None: the plain fetch is the page)."""
    if on_platform(host, platforms):
        return "platform"
    if page.app_shell:
        return "app shell"
    if wall_reason(page):
        return "log-in wall"
    return None
