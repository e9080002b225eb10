"""Render one page in Chromium (Playwright), through a recording proxy, and run behaviours.

One :class:`Browser` per crawl process: a Chromium launched once, with a fresh context
(cookies, cache, storage) per page, so no page sees another's state. A Chromium that
crashed or was killed is launched again for the next page. Every network request of a
context goes through the proxy it is given (loopback included), and service workers are
blocked so none escape it.

Behaviours, in order, each bounded in time: wait for the network to go quiet; dismiss
overlays (cookie and log-in dialogs); scroll until no new content appears (bounded by time
and height); click "load more" / "see more" buttons; start media; wait for quiet again.
Loading and behaviours share ``page_seconds``; then, however they went, the full-page
screenshot (PNG, at most ``max_height`` pixels tall), the rendered DOM and its text
(``SNAPSHOT_SECONDS`` more).

Hostile pages are bounded too: a renderer whose resident memory passes ``max_rss`` is
killed by :class:`_RendererGuard` (a page that allocates without end costs that page only,
and its error says so); the JavaScript heap is capped below it; ``window.open`` returns
nothing and any page a page opens anyway is closed at once (a popup storm).

Knows Playwright, not Scrapy; the crawl's WARC store is written by ``spiders.browser.service``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-dev-shm-usage",  # containers' /dev/shm is small: Chromium would crash
    "--no-first-run",
    "--force-color-profile=srgb",  # screenshots' colours as the page set them
    "--hide-scrollbars",
    "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
    # A page's JavaScript heap stops here (the renderer guard bounds the rest).
    "--js-flags=--max-old-space-size=384",
)
# Pages do not open windows: popups come back empty (as with a popup blocker).
NO_POPUPS_JS = "window.open = () => null;"

# Buttons that reveal more of a page, in the rally pages' languages (lower case).
MORE_PATTERN = (
    r"^(load|show|see|view) (more|all)|more (posts|comments|replies)|^mehr (laden|anzeigen)"
    r"|^weitere|показать (ещё|еще|больше)|^загрузить (ещё|еще)|^ещё$|pokaż więcej|^więcej"
    r"|rodyti daugiau|näita rohkem|rādīt vairāk|voir plus|afficher plus|mostra altro"
    r"|carregar mais|ver mais|vis (mer|flere)|もっと見る|továbbiak|mutass többet"
)
DISMISS_PATTERN = r"^(accept all|allow all|accept|agree|i agree|not now|close|ok|got it)$"

_CLICK_JS = """([pattern, scope]) => {
  const re = new RegExp(pattern, 'i');
  const root = scope ? document.querySelectorAll(scope) : [document];
  const found = [];
  for (const r of root) {
    for (const el of r.querySelectorAll('button, [role=button], a')) {
      const href = el.getAttribute('href');
      if (el.tagName === 'A' && href && href !== '#' && !href.startsWith('javascript:')) continue;
      const label = (el.innerText || el.getAttribute('aria-label') || '').trim();
      if (!label || label.length > 40 || !re.test(label)) continue;
      if (el.disabled || el.offsetParent === null || el.dataset.linkarchiveClicked) continue;
      el.dataset.linkarchiveClicked = '1';
      found.push(el);
    }
  }
  found.slice(0, 5).forEach(el => el.click());
  return found.length;
}"""

_SCROLL_JS = """() => {
  const el = document.scrollingElement || document.documentElement;
  window.scrollTo(0, el.scrollHeight);
  return el.scrollHeight;
}"""

_MEDIA_JS = """() => {
  const urls = new Set();
  for (const m of document.querySelectorAll('video, audio')) {
    m.muted = true;
    try { const p = m.play(); if (p) p.catch(() => {}); } catch (e) {}
    for (const u of [m.currentSrc, m.src, m.poster]) if (u && !u.startsWith('blob:')) urls.add(u);
    for (const s of m.querySelectorAll('source[src]')) urls.add(s.src);
  }
  return [...urls];
}"""

#: The browser-wide proxy: the discard port on loopback, where nothing answers.
NOWHERE = "http://127.0.0.1:9"
#: Seconds after each scroll before the page's height is measured again.
SCROLL_PAUSE = 0.3
#: Time for the screenshot, DOM and text once the page's own time is spent.
SNAPSHOT_SECONDS = 20.0

_HEIGHT_JS = "() => (document.scrollingElement || document.documentElement).scrollHeight"
_TEXT_JS = "() => document.body ? document.body.innerText : ''"


class BrowserUnavailable(Exception):
    """Chromium cannot be started here (not installed, or it fails to launch)."""


@dataclass(frozen=True)
class BrowserOptions:
    """How pages are rendered; every field has a ``LINKARCHIVE_BROWSER_*`` setting."""

    executable: str = CHROMIUM
    width: int = 1280
    height: int = 900
    page_seconds: float = 60.0  # the whole capture of one page, behaviours included
    quiet_seconds: float = 10.0  # the longest wait for the network to go quiet, each time
    scroll_seconds: float = 20.0
    max_height: int = 20_000  # scrolling stops here; the screenshot is cut here
    max_rss: int = 640 << 20  # a renderer using more memory than this is killed
    user_agent: str | None = None  # None: Chromium's own, without "Headless"
    storage_state: dict[str, str] = field(default_factory=dict)  # host -> storage-state file


@dataclass
class Rendered:
    """What the browser made of one page (its exchanges are in the proxy's log)."""

    url: str
    final_url: str | None = None
    status: int | None = None
    screenshot: bytes | None = None
    dom: str | None = None
    text: str | None = None
    title: str = ""
    media: list[str] = field(default_factory=list)
    behaviours: list[str] = field(default_factory=list)
    error: str | None = None
    unavailable: bool = False  # no browser could be started: nothing was rendered
    info: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


class _Quiet:
    """Counts a page's requests in flight, to wait until the network has been idle."""

    def __init__(self, page: Any) -> None:
        self.inflight = 0
        self.last = time.monotonic()
        page.on("request", self._start)
        page.on("requestfinished", self._end)
        page.on("requestfailed", self._end)

    def _start(self, _request: Any) -> None:
        self.inflight += 1
        self.last = time.monotonic()

    def _end(self, _request: Any) -> None:
        self.inflight = max(0, self.inflight - 1)
        self.last = time.monotonic()

    async def wait(self, seconds: float, idle: float = 0.5) -> bool:
        """Until nothing was in flight for ``idle`` seconds (True) or ``seconds`` pass."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.inflight == 0 and time.monotonic() - self.last >= idle:
                return True
            await asyncio.sleep(0.1)
        return False


def _page_error(exc: Exception, limit: float) -> str:
    """One line for what Playwright raised while rendering a page."""
    first = (str(exc).splitlines() or [""])[0][:200]
    if type(exc).__name__ == "TimeoutError":  # Playwright's own, not the builtin
        return f"browser: the page took longer than {limit:.0f} s ({first})"
    if "crashed" in first.lower():
        return (
            "browser: the page crashed its renderer (usually memory: its scripts passed "
            "the JavaScript heap limit)"
        )
    return f"browser: {type(exc).__name__}: {first}"


class _RendererGuard:
    """Kills any Chromium renderer under this process whose resident memory passes
    ``limit`` bytes, sampling every ``interval`` seconds in a thread of its own (the
    event loop may be busy exactly when a page allocates fastest)."""

    def __init__(self, limit: int, interval: float = 0.05) -> None:
        self.limit, self.interval = limit, interval
        self.kills: list[float] = []  # monotonic times
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="renderer-guard", daemon=True)
        self._thread.start()

    def killed_since(self, started: float) -> bool:
        return any(when >= started for when in self.kills)

    def _watch(self) -> None:
        import psutil

        me = psutil.Process()
        renderers: dict[int, psutil.Process] = {}
        while not self._stop.wait(self.interval):
            try:
                for child in me.children(recursive=True):
                    if child.pid not in renderers and "--type=renderer" in " ".join(
                        child.cmdline()
                    ):
                        renderers[child.pid] = child
            except psutil.Error:
                pass
            for pid, proc in list(renderers.items()):
                try:
                    if proc.memory_info().rss <= self.limit:
                        continue
                    os.kill(pid, signal.SIGKILL)
                    self.kills.append(time.monotonic())
                    logger.warning("killed a Chromium renderer past %d MiB", self.limit >> 20)
                except (psutil.Error, ProcessLookupError):
                    pass
                renderers.pop(pid, None)

    def stop(self) -> None:
        self._stop.set()


class Browser:
    """One Chromium for a crawl process, relaunched when it dies."""

    def __init__(self, options: BrowserOptions, pages: int = 2) -> None:
        self.options = options
        self._slots = asyncio.Semaphore(pages)
        self._playwright: Any = None
        self._browser: Any = None
        self._launch_lock = asyncio.Lock()
        self._guard: _RendererGuard | None = None
        self.launches = 0
        self.user_agent = ""

    async def _ensure(self) -> Any:
        async with self._launch_lock:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            if not Path(self.options.executable).exists():
                raise BrowserUnavailable(f"no Chromium at {self.options.executable}")
            try:
                if self._playwright is None:
                    from playwright.async_api import async_playwright

                    self._playwright = await async_playwright().start()
                self._browser = await self._playwright.chromium.launch(
                    executable_path=self.options.executable,
                    args=list(CHROMIUM_ARGS),
                    headless=True,
                    # Chromium's own calls (sign-in, updates) are not a page's: they go to a
                    # port nothing listens on. Each page's context has its recording proxy.
                    proxy={"server": NOWHERE},
                )
            except Exception as exc:  # Playwright raises its own Error types
                raise BrowserUnavailable(f"Chromium did not start: {exc}") from exc
            self.launches += 1
            if self._guard is None and self.options.max_rss:
                self._guard = _RendererGuard(self.options.max_rss)
            if self.launches > 1:
                logger.warning("Chromium relaunched (launch %d)", self.launches)
            if not self.user_agent:
                try:
                    page = await self._browser.new_page()
                    agent = await page.evaluate("() => navigator.userAgent")
                    await page.close()
                except Exception as exc:  # closed under us (a crawl stopping, a crash)
                    raise BrowserUnavailable(f"Chromium did not answer: {exc}") from exc
                self.user_agent = self.options.user_agent or agent.replace(
                    "HeadlessChrome", "Chrome"
                )
            return self._browser

    async def render(self, url: str, proxy_url: str, host: str) -> Rendered:
        """Render ``url`` with every request through ``proxy_url``; never raises for the
        page's own failures (they are in ``Rendered.error``)."""
        async with self._slots:
            started = time.monotonic()
            rendered = Rendered(url=url)
            try:
                browser = await self._ensure()
            except BrowserUnavailable as exc:
                rendered.error, rendered.unavailable = f"browser: {exc}", True
                return rendered
            rendered.info = {
                "browser": "Chromium",
                "version": browser.version,
                "viewport": {"width": self.options.width, "height": self.options.height},
                "user_agent": self.user_agent,
                "driver": "playwright",
            }
            context = None
            limit = self.options.page_seconds + SNAPSHOT_SECONDS
            try:
                context = await browser.new_context(
                    proxy={"server": proxy_url},
                    ignore_https_errors=True,  # the recording proxy's own certificate
                    viewport={"width": self.options.width, "height": self.options.height},
                    device_scale_factor=1,
                    user_agent=self.user_agent,
                    service_workers="block",
                    storage_state=self.options.storage_state.get(host),
                )
                await context.add_init_script(NO_POPUPS_JS)
                await asyncio.wait_for(self._run(context, url, rendered), limit)
            except TimeoutError:
                rendered.error = f"browser: the page took longer than {limit:.0f} s"
            except Exception as exc:  # a crashed page or browser costs this page only
                rendered.error = _page_error(exc, limit)
            finally:
                if context is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(context.close(), 10)
            if rendered.error and self._guard is not None and self._guard.killed_since(started):
                rendered.error = (
                    f"browser: the page used more than {self.options.max_rss >> 20} MiB of "
                    "memory and was stopped (LINKARCHIVE_BROWSER_MAX_RSS)"
                )
            rendered.seconds = round(time.monotonic() - started, 3)
            return rendered

    @staticmethod
    def _popup(rendered: Rendered, page: Any) -> None:
        """A page the page opened anyway (a link with a target, a form): closed unseen."""
        if "close-popups" not in rendered.behaviours:
            rendered.behaviours.append("close-popups")
        asyncio.ensure_future(page.close())

    async def _run(self, context: Any, url: str, rendered: Rendered) -> None:
        """Load, run the behaviours while the page's time lasts, then take the snapshot
        (screenshot, DOM, text) however the behaviours went: a slow page still has one."""
        deadline = time.monotonic() + self.options.page_seconds
        page = await context.new_page()
        context.on("page", functools.partial(self._popup, rendered))  # any page after this
        quiet = _Quiet(page)
        response = await page.goto(
            url, wait_until="domcontentloaded", timeout=self.options.page_seconds * 1000
        )
        rendered.status = response.status if response is not None else None
        try:
            await asyncio.wait_for(
                self._behave(page, quiet, rendered), max(0.1, deadline - time.monotonic())
            )
        except TimeoutError:
            rendered.behaviours.append("page-time-spent")
        await asyncio.wait_for(self._snapshot(page, rendered), SNAPSHOT_SECONDS)

    async def _behave(self, page: Any, quiet: _Quiet, rendered: Rendered) -> None:
        await quiet.wait(self.options.quiet_seconds)
        rendered.behaviours.append("wait-network-quiet")
        if await page.evaluate(_CLICK_JS, [DISMISS_PATTERN, "[role=dialog], dialog"]):
            rendered.behaviours.append("dismiss-overlays")
            await quiet.wait(self.options.quiet_seconds)
        await self._scroll(page, quiet, rendered)
        for _ in range(5):
            if not await page.evaluate(_CLICK_JS, [MORE_PATTERN, None]):
                break
            if "click-more" not in rendered.behaviours:
                rendered.behaviours.append("click-more")
            await quiet.wait(self.options.quiet_seconds)
            await self._scroll(page, quiet, rendered)
        rendered.media = await page.evaluate(_MEDIA_JS)
        if rendered.media:
            rendered.behaviours.append("play-media")
            await quiet.wait(self.options.quiet_seconds)

    async def _snapshot(self, page: Any, rendered: Rendered) -> None:
        await page.evaluate("() => window.scrollTo(0, 0)")
        height = min(await page.evaluate(_HEIGHT_JS), self.options.max_height)
        rendered.screenshot = await page.screenshot(
            type="png",
            full_page=True,
            clip={"x": 0, "y": 0, "width": self.options.width, "height": max(1, height)},
            animations="disabled",
        )
        rendered.dom = await page.content()
        rendered.text = await page.evaluate(_TEXT_JS)
        rendered.title = await page.title()
        rendered.final_url = page.url

    async def _scroll(self, page: Any, quiet: _Quiet, rendered: Rendered) -> None:
        """Scroll to the bottom until the page stops growing, for at most scroll_seconds."""
        deadline = time.monotonic() + self.options.scroll_seconds
        last, still = -1, 0
        while time.monotonic() < deadline:
            height = await page.evaluate(_SCROLL_JS)
            if height > self.options.height and "scroll" not in rendered.behaviours:
                rendered.behaviours.append("scroll")
            if height >= self.options.max_height:
                break
            # A pause before measuring: what a scroll sets off (an observer's fetch, a timer)
            # has not started yet when the network is still quiet from before.
            await asyncio.sleep(SCROLL_PAUSE)
            await quiet.wait(min(self.options.quiet_seconds, max(0.1, deadline - time.monotonic())))
            # Twice unchanged: a feed's next page may start loading only after a quiet spell.
            still = still + 1 if height == last else 0
            if still >= 2 and height == await page.evaluate(_HEIGHT_JS):
                break
            last = height

    async def close(self) -> None:
        """Close Chromium and the Playwright driver."""
        if self._guard is not None:
            self._guard.stop()
            self._guard = None
        with contextlib.suppress(Exception):
            if self._browser is not None:
                await asyncio.wait_for(self._browser.close(), 10)
        with contextlib.suppress(Exception):
            if self._playwright is not None:
                await asyncio.wait_for(self._playwright.stop(), 10)
        self._browser = self._playwright = None
