"""A synthetic news site for the crawl benchmark, on loopback addresses 127.0.0.2, .3, ...

Every host serves report pages (~5 KB of HTML with OpenGraph/article meta tags and
multilingual text), one unique ~20 KB JPEG per page and one stylesheet shared by the host's
pages. Page ``i`` lives on host ``i % hosts``. With no added latency nginx serves the files
(when ``/usr/sbin/nginx`` or ``nginx`` on PATH exists); otherwise, or with latency, a small
asyncio server in a child process (``python -m bench.site serve ...``) generates them and
sleeps before each response.

``Site`` is the context manager the harness uses; everything it starts runs in a process
group of its own and is killed on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parent.parent
NGINX_CANDIDATES = ("/usr/sbin/nginx",)

# A few sentences per language, in the register of rally reports (UTF-8, several scripts).
SENTENCES: dict[str, list[str]] = {
    "de": [
        "Am Samstag versammelten sich Hunderte Menschen vor dem Brandenburger Tor.",
        "Die Frauen in Weiß trugen Blumen und sangen Lieder der Solidarität.",
        "Die Polizei schätzte die Zahl der Teilnehmerinnen auf etwa achthundert.",
        "Nach der Kundgebung zog der Demonstrationszug friedlich durch die Innenstadt.",
        "Viele Teilnehmer hielten weiß-rot-weiße Fahnen und selbstgemalte Plakate.",
    ],
    "ru": [
        "В субботу сотни людей собрались на центральной площади города.",
        "Женщины в белом держали цветы и пели песни солидарности.",
        "Организаторы акции призвали освободить всех политических заключённых.",
        "После митинга колонна мирно прошла по главной улице до набережной.",
        "Многие участники принесли бело-красно-белые флаги и самодельные плакаты.",
    ],
    "be": [
        "У суботу сотні людзей сабраліся на цэнтральнай плошчы горада.",
        "Жанчыны ў белым трымалі кветкі і спявалі песні салідарнасці.",
        "Удзельнікі акцыі патрабавалі вызваліць усіх палітычных вязняў.",
        "Пасля мітынгу калона мірна прайшла па галоўнай вуліцы.",
    ],
    "pl": [
        "W sobotę setki osób zebrały się na placu przed ratuszem.",
        "Kobiety w bieli trzymały kwiaty i śpiewały pieśni solidarności.",
        "Po wiecu uczestnicy przeszli spokojnie ulicami Starego Miasta.",
        "Wielu demonstrantów niosło biało-czerwono-białe flagi i transparenty.",
    ],
    "lt": [
        "Šeštadienį šimtai žmonių susirinko prie Katedros aikštės.",
        "Moterys baltais drabužiais laikė gėles ir dainavo solidarumo dainas.",
        "Po mitingo eisena ramiai praėjo Gedimino prospektu.",
    ],
    "en": [
        "On Saturday hundreds of people gathered in front of the city hall.",
        "Women dressed in white carried flowers and sang songs of solidarity.",
        "The organisers called for the release of all political prisoners.",
        "After the rally the march moved peacefully through the old town.",
        "Many participants carried white-red-white flags and hand-painted banners.",
    ],
    "fr": [
        "Samedi, des centaines de personnes se sont rassemblées place de la République.",
        "Des femmes vêtues de blanc portaient des fleurs et chantaient la solidarité.",
        "Après le rassemblement, le cortège a traversé paisiblement le centre-ville.",
    ],
}
AUTHORS = ("Alena Kavalchuk", "Jonas Petraitis", "Marta Nowak", "Claire Dubois", "Ruth Weber")
CITIES = ("Berlin", "Vilnius", "Warsaw", "Paris", "London", "Prague", "Riga", "Munich")
CSS_TEMPLATE = """/* site stylesheet of host {host} */
body {{ font-family: Georgia, serif; margin: 0 auto; max-width: 46em; color: #222; }}
header, footer {{ background: #f4f1ea; padding: 1em; }}
article h1 {{ font-size: 2em; line-height: 1.2; }}
article img {{ max-width: 100%; height: auto; }}
.byline {{ color: #666; font-size: .9em; }}
.lang-ru, .lang-be {{ font-family: "PT Serif", serif; }}
"""
PAGE_RE = re.compile(r"^/reports/(\d+)\.html$")
IMAGE_RE = re.compile(r"^/img/(\d+)\.jpg$")
CSS_PATH = "/static/site.css"
TYPES = {"html": "text/html; charset=utf-8", "jpg": "image/jpeg", "css": "text/css; charset=utf-8"}


def host_address(index: int) -> str:
    """The loopback address of host ``index`` (0 -> 127.0.0.2)."""
    n = index + 2
    if n > 0xFFFFFE:
        raise ValueError("too many hosts")
    return f"127.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def page_url(address: str, port: int, page: int) -> str:
    return f"http://{address}:{port}/reports/{page:06d}.html"


def page_html(page: int, hosts: int, port: int) -> bytes:
    """The HTML of report ``page``: ~5 KB, meta tags, one image, the host's stylesheet."""
    rng = random.Random(page)
    lang = rng.choice(sorted(SENTENCES))
    city = rng.choice(CITIES)
    headline = SENTENCES[lang][page % len(SENTENCES[lang])].split()[:8]
    title = f"{city}: {' '.join(headline).rstrip('.,')} ({page})"
    description = " ".join(rng.sample(SENTENCES[lang], 2))
    published = f"2020-{1 + page % 12:02d}-{1 + page % 28:02d}T{page % 24:02d}:00:00+00:00"
    author = rng.choice(AUTHORS)
    url = page_url(host_address(page % hosts), port, page)
    paragraphs, size = [], 0
    while size < 3600:
        lines = [rng.choice(SENTENCES[rng.choice((lang, lang, "en"))]) for _ in range(4)]
        paragraph = f"<p>{' '.join(lines)}</p>"
        paragraphs.append(paragraph)
        size += len(paragraph.encode())
    body = "\n".join(paragraphs)
    html = f"""<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8">
<title>{title}</title>
<meta name="description" content="{description}">
<meta name="author" content="{author}">
<meta property="og:type" content="article">
<meta property="og:site_name" content="Solidarity Reports">
<meta property="og:title" content="{title}">
<meta property="og:description" content="{description}">
<meta property="og:url" content="{url}">
<meta property="article:published_time" content="{published}">
<link rel="stylesheet" href="{CSS_PATH}">
</head><body><header><a href="/">Solidarity Reports</a></header>
<article class="lang-{lang}"><h1>{title}</h1>
<p class="byline">{author}, <time datetime="{published}">{published[:10]}</time></p>
<img src="/img/{page:06d}.jpg" alt="{city}" width="200" height="150">
{body}
</article><footer>© Solidarity Reports</footer></body></html>
"""
    return html.encode()


@functools.cache
def _base_jpeg() -> bytes:
    """A real ~20 KB JPEG (noise over a gradient), made once with Pillow."""
    from PIL import Image

    rng = random.Random(7)
    width, height = 200, 150
    pixels = bytes(
        min(255, (x + y) // 2 + rng.randrange(128))
        for y in range(height)
        for x in range(width)
        for _ in range(3)
    )
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


def image_bytes(page: int) -> bytes:
    """The page's JPEG: the base image with a COM segment naming the page (unique digest)."""
    base = _base_jpeg()
    comment = f"report {page:06d}".encode()
    segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    return base[:2] + segment + base[2:]


def css_bytes(host: int) -> bytes:
    return CSS_TEMPLATE.format(host=host_address(host)).encode()


def resource(path: str, host: int, hosts: int, pages: int, port: int) -> tuple[str, bytes] | None:
    """(content type, body) of ``path`` on host ``host``, or None for a 404."""
    if path == CSS_PATH:
        return TYPES["css"], css_bytes(host)
    for pattern, kind in ((PAGE_RE, "html"), (IMAGE_RE, "jpg")):
        match = pattern.match(path)
        if match:
            page = int(match.group(1))
            if page >= pages or page % hosts != host:
                return None
            body = page_html(page, hosts, port) if kind == "html" else image_bytes(page)
            return TYPES[kind], body
    return None


# --- the asyncio server ---------------------------------------------------------------------


class InFlight:
    """Requests being answered per host, and the most ever at once: written to ``log`` (a
    JSON object, host address to peak) whenever a peak rises, so a test can check that
    crawlers anywhere kept to their per-host limit."""

    def __init__(self, log: Path | None) -> None:
        self.log = log
        self.now: dict[str, int] = {}
        self.peak: dict[str, int] = {}

    @contextlib.contextmanager
    def request(self, address: str) -> Iterator[None]:
        self.now[address] = self.now.get(address, 0) + 1
        if self.now[address] > self.peak.get(address, 0):
            self.peak[address] = self.now[address]
            if self.log is not None:
                partial = self.log.with_suffix(".partial")
                partial.write_text(json.dumps(self.peak, sort_keys=True))
                partial.replace(self.log)
        try:
            yield
        finally:
            self.now[address] -= 1


async def _handle(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    host: int,
    hosts: int,
    pages: int,
    port: int,
    latency: float,
    inflight: InFlight,
) -> None:
    """HTTP/1.1 with keep-alive: GET and HEAD, Content-Length, ``latency`` s per response."""
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split()
            if len(parts) != 3:
                return
            method, target, version = parts
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            with inflight.request(host_address(host)):
                if latency:
                    await asyncio.sleep(latency)
                found = resource(target.split("?", 1)[0], host, hosts, pages, port)
                status, ctype, body = (
                    ("200 OK", *found) if found else ("404 Not Found", "text/plain", b"not found\n")
                )
                close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
                head_out = (
                    f"HTTP/1.1 {status}\r\nServer: bench-asyncio\r\nContent-Type: {ctype}\r\n"
                    f"Content-Length: {len(body)}\r\n"
                    f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
                ).encode()
                writer.write(head_out if method == "HEAD" else head_out + body)
                await writer.drain()
            if close:
                return
    except (ConnectionError, OSError):
        return
    finally:
        writer.close()


async def serve(
    hosts: int, pages: int, port: int, latency_ms: float, log: Path | None = None
) -> None:
    """Serve every host on its own address until killed; peaks per host into ``log``."""
    servers = []
    inflight = InFlight(log)
    for host in range(hosts):
        handler = functools.partial(
            _handle,
            host=host,
            hosts=hosts,
            pages=pages,
            port=port,
            latency=latency_ms / 1000,
            inflight=inflight,
        )
        servers.append(await asyncio.start_server(handler, host_address(host), port, backlog=512))
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


# --- nginx ---------------------------------------------------------------------------------


def find_nginx() -> str | None:
    """Debian's nginx binary, if installed."""
    for candidate in NGINX_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("nginx")


def write_files(folder: Path, hosts: int, pages: int, port: int) -> None:
    """Every host's files under ``folder/<address>/`` for nginx to serve."""
    for host in range(hosts):
        root = folder / host_address(host)
        (root / "reports").mkdir(parents=True)
        (root / "img").mkdir()
        (root / "static").mkdir()
        (root / "static" / "site.css").write_bytes(css_bytes(host))
    for page in range(pages):
        root = folder / host_address(page % hosts)
        (root / "reports" / f"{page:06d}.html").write_bytes(page_html(page, hosts, port))
        (root / "img" / f"{page:06d}.jpg").write_bytes(image_bytes(page))


def nginx_config(folder: Path, hosts: int, port: int) -> str:
    """A self-contained nginx.conf: one server per loopback address, no access log."""
    www = folder / "www"
    servers = "\n".join(
        f"    server {{ listen {host_address(h)}:{port}; root {www / host_address(h)}; }}"
        for h in range(hosts)
    )
    temp = folder / "tmp"
    return f"""daemon off;
worker_processes 1;
pid {folder / "nginx.pid"};
error_log {folder / "error.log"} warn;
events {{ worker_connections 4096; }}
http {{
    types {{ text/html html; image/jpeg jpg; text/css css; }}
    default_type application/octet-stream;
    charset utf-8;
    charset_types text/css;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    server_tokens off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
{servers}
}}
"""


# --- the context manager --------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 (hence on no wildcard listener either)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kill_group(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """Terminate ``proc``'s process group (started with start_new_session), then kill it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=grace)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _answers(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


class Site:
    """The synthetic site: ``with Site(hosts, pages, latency_ms) as site: site.urls``."""

    def __init__(
        self,
        hosts: int,
        pages: int,
        latency_ms: float,
        *,
        nginx: bool = True,
        peaks: Path | None = None,
    ) -> None:
        self.hosts, self.pages, self.latency_ms = hosts, pages, latency_ms
        # ``peaks``: the asyncio server logs the most requests in flight per host there.
        self.peaks = peaks
        self.use_nginx = nginx and latency_ms == 0 and peaks is None and find_nginx() is not None
        self.port = 0
        self.server = ""
        self._folder: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def addresses(self) -> list[str]:
        return [host_address(h) for h in range(self.hosts)]

    @property
    def urls(self) -> list[str]:
        """Every report page, in page order (hosts interleaved)."""
        return [page_url(host_address(p % self.hosts), self.port, p) for p in range(self.pages)]

    def __enter__(self) -> Site:
        self._folder = Path(tempfile.mkdtemp(prefix="bench-site-"))
        try:
            for _attempt in range(3):  # another process may take the port in between
                self.port = free_port()
                if self._start():
                    return self
                self._stop()
            raise RuntimeError(f"the {self.server} site did not start; see {self._folder}")
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def _start(self) -> bool:
        assert self._folder is not None
        log = (self._folder / "server.log").open("ab")
        if self.use_nginx:
            nginx = find_nginx()
            assert nginx is not None
            version = subprocess.run(
                [nginx, "-v"], capture_output=True, text=True, timeout=30, check=False
            ).stderr.strip()
            self.server = f"nginx {version.split('/')[-1]}".strip()
            www = self._folder / "www"
            shutil.rmtree(www, ignore_errors=True)
            write_files(www, self.hosts, self.pages, self.port)
            for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
                (self._folder / "tmp" / sub).mkdir(parents=True, exist_ok=True)
            os.chmod(self._folder, 0o755)  # nginx's workers run as nobody when we are root
            conf = self._folder / "nginx.conf"
            conf.write_text(nginx_config(self._folder, self.hosts, self.port))
            cmd = [
                nginx,
                "-p",
                str(self._folder),
                "-c",
                str(conf),
                "-e",
                str(self._folder / "error.log"),
            ]
        else:
            self.server = "the Python asyncio server"
            cmd = [
                sys.executable,
                "-m",
                "bench.site",
                "serve",
                f"--hosts={self.hosts}",
                f"--pages={self.pages}",
                f"--port={self.port}",
                f"--latency-ms={self.latency_ms}",
                *([f"--log={self.peaks}"] if self.peaks else []),
            ]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        self._proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT, env=env
        )
        log.close()
        deadline = time.monotonic() + 60
        pending = list(self.addresses)
        while pending and time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            pending = [a for a in pending if not _answers(a, self.port)]
            if pending:
                time.sleep(0.1)
        return not pending

    def _stop(self) -> None:
        if self._proc is not None:
            kill_group(self._proc)
            self._proc = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.site serve --hosts H --pages N --port P --latency-ms L``."""
    parser = argparse.ArgumentParser(prog="python -m bench.site")
    sub = parser.add_subparsers(dest="command", required=True)
    serve_parser = sub.add_parser("serve", help="run the asyncio server in the foreground")
    serve_parser.add_argument("--hosts", type=int, default=1)
    serve_parser.add_argument("--pages", type=int, default=100)
    serve_parser.add_argument("--port", type=int, required=True)
    serve_parser.add_argument("--latency-ms", type=float, default=0.0)
    serve_parser.add_argument("--log", type=Path, help="JSON file of in-flight peaks per host")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.hosts, args.pages, args.port, args.latency_ms, args.log))
    return 0


if __name__ == "__main__":
    sys.exit(main())
