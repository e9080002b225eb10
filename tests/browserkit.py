"""Helpers for the browser tests: Debian's Chromium under Playwright, the web app as a real
`linkarchive serve` process, users made with the CLI, screenshots, and a hostile website.

Everything stays on 127.0.0.1: the app, the hostile site, and every request the browser
makes (the tests record them and refuse any other host).
"""

from __future__ import annotations

import http.server
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LINKARCHIVE = Path(sys.executable).parent / "linkarchive"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "browser"


def add_user(home: Path, name: str, role: str) -> str:
    """Create a user with the CLI; returns the API token it prints once."""
    done = subprocess.run(
        [str(LINKARCHIVE), "--home", str(home), "users", "add", name, "--role", role],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert lines, f"`users add` printed nothing: {done.stderr}"
    # The token is the last word of the line that names it (or of the only line).
    line = next((line for line in lines if "token" in line.lower()), lines[-1])
    return line.split()[-1].strip("'\"`")


class AppServer:
    """`linkarchive --home HOME serve` on a free loopback port, for a `with` block."""

    def __init__(self, home: Path, port: int, log: Path) -> None:
        self.home, self.port, self.log = home, port, log
        self.url = f"http://127.0.0.1:{port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> AppServer:
        with self.log.open("wb") as out:
            self._proc = subprocess.Popen(
                [str(LINKARCHIVE), "--home", str(self.home), "serve", "--host", "127.0.0.1",
                 "--port", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise AssertionError(f"`linkarchive serve` exited:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/login", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        self.__exit__(None, None, None)
        raise AssertionError(f"`linkarchive serve` did not answer /login:\n{self.log.read_text()}")

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


@dataclass
class Shots:
    """Numbered full-page screenshots of one test, kept as CI artefacts."""

    test: str
    count: int = 0
    taken: list[Path] = field(default_factory=list)

    def __call__(self, page: Any, step: str) -> Path:
        self.count += 1
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{self.test}-{self.count:02d}-{step}")
        path = ARTIFACTS / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        return path


class Requests:
    """Every http(s) URL a browser context asked for; other hosts than 127.0.0.1 are
    refused before they leave the machine (and still recorded, so tests can fail on them)."""

    def __init__(self, context: Any) -> None:
        self.urls: list[str] = []
        context.on("request", lambda request: self.urls.append(request.url))
        context.route(
            lambda url: (
                urlsplit(url).scheme in ("http", "https") and urlsplit(url).hostname != "127.0.0.1"
            ),
            lambda route: route.abort("blockedbyclient"),
        )

    def web(self) -> list[str]:
        """The http(s) URLs (data: and about: are no requests to anywhere)."""
        return [url for url in self.urls if urlsplit(url).scheme in ("http", "https")]


# What a hostile page plants: each, shown by a careless app, runs script in the app.
SCRIPT_TAG = "<script>window.__pwned=1</script>"
ATTRIBUTE_BREAKOUT = '"><img src=x onerror="window.__pwned=2">'
CANARY = "xsscanary"
_ACTIVE = (
    "<script>window.__pwned=3;"
    "try { parent.document.body.innerHTML = 'PWNED'; } catch (e) {}"
    "document.body.insertAdjacentHTML('beforeend', '<p id=\"pwned\">PWNED</p>');"
    "fetch('/api/v1/users').then(r => r.text())"
    ".then(t => document.body.insertAdjacentHTML('beforeend', '<p id=\"leak\">' + t + '</p>'));"
    "</script>"
)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


HOSTILE_TITLE = f"{SCRIPT_TAG} Hostile {CANARY} report"
HOSTILE_HTML = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{HOSTILE_TITLE}</title>
<meta property="og:title" content='{ATTRIBUTE_BREAKOUT} {CANARY}'>
<meta name="description" content='{ATTRIBUTE_BREAKOUT} {SCRIPT_TAG} {CANARY}'>
</head><body>
<article>
<h1>{_escape(HOSTILE_TITLE)}</h1>
<p>On Saturday the {CANARY} march gathered in the square. {_escape(SCRIPT_TAG)}
{_escape(ATTRIBUTE_BREAKOUT)} The organisers spoke about detained journalists, and the crowd
carried white flowers and banners for the prisoners. The police watched from the side
streets while the speeches went on for more than an hour.</p>
<p>Witnesses described the rally as calm. Several participants said they came to remember
friends who had been arrested after the election, and that they would return next week.</p>
<img src=x onerror="window.__pwned=2">
{_ACTIVE}
</article>
</body></html>
"""


class _HostileHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        if self.path != "/hostile":
            self.send_error(404)
            return
        body = HOSTILE_HTML.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class HostileSite:
    """A loopback website whose one page (/hostile) tries stored XSS on whoever shows it."""

    def __enter__(self) -> HostileSite:
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HostileHandler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hostile"
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
