"""The crawl-engine benchmark: ``linkarchive crawl`` beside wget and a bare Scrapy spider.

Three contenders fetch the same report pages (and each page's image and its host's
stylesheet) from the synthetic site of ``bench.site``, alternating, several runs each:

- ``linkarchive crawl``: the whole pipeline (Prefect flow, Scrapy, WARC files, catalog),
  against one real Prefect API server started for the whole benchmark; the seed CSV is
  imported first, untimed, into a fresh data home per run;
- ``python -m bench.barescrapy``: Scrapy alone, same politeness settings, nothing stored;
- ``wget -p --warc-file``: one connection at a time, a compressed WARC file.

Each run is measured by ``bench.measure`` in a child process: wall time, user+system CPU
and peak RSS of the command's own process tree. ``crawl_section`` returns the Markdown
that ``bench.run`` puts into docs/PERFORMANCE.md.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.site import Site, find_nginx, free_port, kill_group

ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT = 30 * 60  # seconds, per measured command; longer crawls get 0.15 s per page
SETUP_TIMEOUT = 10 * 60  # seconds, per untimed seed import
CITIES = (
    ("Germany", "Berlin"),
    ("Lithuania", "Vilnius"),
    ("Poland", "Warsaw"),
    ("France", "Paris"),
    ("United Kingdom", "London"),
)
LINKARCHIVE = "linkarchive crawl"
BARE = "bare Scrapy"
WGET = "wget -p"


@dataclass(frozen=True)
class Shape:
    """One site shape: ``pages`` report pages spread over ``hosts`` hosts."""

    label: str
    hosts: int
    pages: int
    latency_ms: float


@dataclass(frozen=True)
class Config:
    """What one invocation measures."""

    shapes: tuple[Shape, ...]
    runs: int
    rss_sizes: tuple[int, ...]
    quick: bool = False


def config(quick: bool, runs: int | None, rss_sizes: tuple[int, ...] | None) -> Config:
    """Full sizes, or the small ones of ``--quick``; ``runs``/``rss_sizes`` override."""
    if quick:
        shapes = (
            Shape("(a) 1 host, 0 ms", 1, 300, 0),
            Shape("(b) 10 hosts, 100 ms", 10, 30, 100),
            Shape("(c) 20 hosts × 5 pages, 50 ms", 20, 100, 50),
        )
        default_runs, default_rss = 1, (500, 2000)
    else:
        shapes = (
            Shape("(a) 1 host, 0 ms", 1, 3000, 0),
            Shape("(b) 10 hosts, 100 ms", 10, 300, 100),
            Shape("(c) 200 hosts × 5 pages, 50 ms", 200, 1000, 50),
        )
        default_runs, default_rss = 3, (2000, 50_000)
    return Config(shapes, runs or default_runs, rss_sizes or default_rss, quick)


@dataclass
class Measurement:
    """One run of one contender."""

    ok: bool
    wall_s: float = 0.0
    cpu_s: float = 0.0
    maxrss_kib: int = 0
    requests: int | None = None
    bytes_written: int | None = None
    note: str = ""
    strays: int = 0  # processes the command left running (killed by the bench)


@dataclass
class Context:
    """What every run needs: the environment, a scratch folder, the Prefect API URL."""

    env: dict[str, str]
    scratch: Path
    api_url: str | None = None
    failures: list[str] = field(default_factory=list)


def say(message: str) -> None:
    """Progress on stderr."""
    print(f"[crawl bench {datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


# --- running commands -----------------------------------------------------------------------


def python_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` with this checkout first on PYTHONPATH (bench, pipeline, settings)."""
    path = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return {**env, "PYTHONPATH": path}


def run_tree(cmd: list[str], *, env: dict[str, str], cwd: Path, log: Path, timeout: float) -> int:
    """Run ``cmd`` in a process group of its own; kill the whole group afterwards.

    Returns the exit status, or -1 on timeout. Leftovers (daemons the command started in its
    group) are killed too, so a failed run never leaves servers behind.
    """
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1
    finally:
        kill_group(proc, grace=2.0)


def kill_strays(marker: Path) -> int:
    """Kill processes whose command line or environment names ``marker`` (a scratch folder
    made for one run): daemons a command detached from its process group, such as a server
    started with a session of its own."""
    needle, killed = str(marker).encode(), 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            seen = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
        except OSError:
            continue
        if needle in seen:
            say(f"  killing stray process {proc.name}: {seen[:120]!r}")
            with suppress(OSError):
                os.kill(int(proc.name), signal.SIGKILL)
                killed += 1
    return killed


def measured(cmd: list[str], *, env: dict[str, str], cwd: Path, timeout: float) -> Measurement:
    """Run ``cmd`` under ``bench.measure``; its output goes to ``cwd/command.log``."""
    out, log = cwd / "measure.json", cwd / "command.log"
    wrapper = [sys.executable, "-m", "bench.measure", "--out", str(out), "--log", str(log), "--"]
    status = run_tree(
        wrapper + cmd, env=python_env(env), cwd=cwd, log=cwd / "measure.log", timeout=timeout
    )
    if status == -1:
        return Measurement(False, note=f"timed out after {timeout:.0f} s")
    if not out.exists():
        return Measurement(False, note=f"measure exited with {status}")
    data = json.loads(out.read_text())
    result = Measurement(
        ok=data["returncode"] == 0,
        wall_s=data["wall_s"],
        cpu_s=data["user_s"] + data["sys_s"],
        maxrss_kib=data["maxrss_kib"],
    )
    if not result.ok:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
        result.note = f"exit {data['returncode']}: {' '.join(tail)[:200]}"
    return result


def count_warc(paths: list[Path]) -> tuple[int, int]:
    """(response + revisit records, bytes) over WARC files; counts what could be read."""
    from archive import iter_records

    count = 0
    for path in paths:
        try:
            for _, record in iter_records(path, strict=False):
                count += record.rec_type in ("response", "revisit")
        except Exception as exc:  # noqa: BLE001 - a count is a side figure; say so and go on
            say(f"could not read {path.name}: {exc}")
    return count, sum(p.stat().st_size for p in paths)


def warc_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and ".warc" in p.name)


def run_timeout(urls: Path) -> float:
    """Seconds a crawl of the URL list may take: 30 minutes, or 0.15 s per page if longer."""
    return max(RUN_TIMEOUT, 0.15 * len(urls.read_text().split()))


def linkarchive_cmd() -> list[str]:
    """The CLI of this checkout (``linkarchive`` is the same ``pipeline.cli:main``)."""
    return [sys.executable, "-m", "pipeline.cli"]


# --- the contenders -------------------------------------------------------------------------


def write_seeds(path: Path, urls: list[str]) -> None:
    """A seed CSV (``country,city,kind,label,url``) listing ``urls`` as reports."""
    lines = ["country,city,kind,label,url"]
    for i, url in enumerate(urls):
        country, city = CITIES[i % len(CITIES)]
        lines.append(f"{country},{city},report,Report {i},{url}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_linkarchive(site: Site, urls: Path, work: Path, ctx: Context) -> Measurement:
    """Import the seeds (untimed) into a fresh home, then time ``linkarchive crawl``."""
    home, seeds = work / "home", work / "seeds.csv"
    write_seeds(seeds, urls.read_text().split())
    env = {**ctx.env, "LINKARCHIVE_ALLOWED_HOSTS": ",".join(site.addresses),
           "LINKARCHIVE_ALLOW_ADDRESSES": "127.0.0.0/8"}  # fmt: skip
    env.pop("LINKARCHIVE_HOME", None)
    env.pop("PREFECT_API_URL", None)
    if ctx.api_url:
        env["PREFECT_API_URL"] = ctx.api_url
    else:  # a fresh Prefect home, inside the run's folder: what it starts is swept with it
        env["PREFECT_HOME"] = str(work / "prefect-home")
    cli = linkarchive_cmd()
    status = run_tree(
        [*cli, "--home", str(home), "seeds", "import", str(seeds)],
        env=python_env(env),
        cwd=work,
        log=work / "seeds.log",
        timeout=SETUP_TIMEOUT,
    )
    if status != 0:
        return Measurement(False, note=f"seeds import failed ({status}); see {work}/seeds.log")
    before = warc_files(home / "warcs")  # the seed import's own WARC file
    crawl = [*cli, "--home", str(home), "crawl"]
    result = measured(crawl, env=env, cwd=work, timeout=run_timeout(urls))
    crawled = [p for p in warc_files(home / "warcs") if p not in before]
    result.requests, result.bytes_written = count_warc(crawled)
    return result


def run_bare(site: Site, urls: Path, work: Path, ctx: Context) -> Measurement:
    """``python -m bench.barescrapy URLS.txt``."""
    stats = work / "stats.json"
    cmd = [sys.executable, "-m", "bench.barescrapy", str(urls), "--stats", str(stats)]
    result = measured(cmd, env=ctx.env, cwd=work, timeout=run_timeout(urls))
    if stats.exists():
        result.requests = json.loads(stats.read_text()).get("downloader/request_count")
    return result


def run_wget(site: Site, urls: Path, work: Path, ctx: Context) -> Measurement:
    """``wget -q --tries=1 -e robots=off -p --warc-file=… -P dir -i urls.txt`` (gzip WARC)."""
    wget = shutil.which("wget")
    assert wget is not None
    cmd = [
        wget,
        "-q",
        "--tries=1",
        "-e",
        "robots=off",
        "-p",
        f"--warc-file={work / 'wget'}",
        "-P",
        str(work / "files"),
        "-i",
        str(urls),
    ]
    result = measured(cmd, env=ctx.env, cwd=work, timeout=run_timeout(urls))
    result.requests, result.bytes_written = count_warc(warc_files(work))
    return result


Runner = Callable[[Site, Path, Path, Context], Measurement]


def contenders() -> list[tuple[str, Runner]]:
    """The tools to compare; wget only when installed."""
    found: list[tuple[str, Runner]] = [(LINKARCHIVE, run_linkarchive), (BARE, run_bare)]
    if shutil.which("wget"):
        found.append((WGET, run_wget))
    return found


def one_run(name: str, runner: Runner, site: Site, urls: Path, ctx: Context) -> Measurement:
    """A run in a scratch folder of its own, removed afterwards unless it failed."""
    work = Path(tempfile.mkdtemp(prefix="run-", dir=ctx.scratch))
    started = time.perf_counter()
    try:
        result = runner(site, urls, work, ctx)
    except Exception as exc:  # noqa: BLE001 - one failed run must not end the benchmark
        result = Measurement(False, note=f"{type(exc).__name__}: {exc}")
    result.strays = kill_strays(work)
    verdict = "ok" if result.ok else f"FAILED ({result.note}; kept {work})"
    say(
        f"  {name}: {result.wall_s:.1f} s wall, {result.cpu_s:.1f} s CPU, "
        f"{result.requests} requests, {verdict} [{time.perf_counter() - started:.0f} s in all]"
    )
    if result.ok:
        shutil.rmtree(work, ignore_errors=True)
    else:
        ctx.failures.append(str(work))
    return result


# --- Prefect --------------------------------------------------------------------------------


@contextmanager
def prefect_server(env: dict[str, str], folder: Path) -> Iterator[str]:
    """One real Prefect API server on 127.0.0.1 for the whole benchmark; yields its API URL."""
    script = Path(sys.executable).parent / "prefect"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "prefect"]
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server_env = {
        **env,
        "PREFECT_HOME": str(folder / "server-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    server_env.pop("PREFECT_API_URL", None)
    log = (folder / "server.log").open("ab")
    proc = subprocess.Popen(
        [*command, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=server_env,
        start_new_session=True,
    )
    log.close()
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server exited; see {folder / 'server.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"prefect server not healthy in 180 s; see {folder}/server.log")
            try:
                url = f"http://127.0.0.1:{port}/api/health"
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/api"
    finally:
        kill_group(proc)


# --- the measurements -----------------------------------------------------------------------


@dataclass
class ShapeResult:
    shape: Shape
    server: str
    results: dict[str, list[Measurement]]


def bench_shape(shape: Shape, runs: int, ctx: Context) -> ShapeResult:
    """Every contender ``runs`` times on one site, alternating (the order rotates per run)."""
    tools = contenders()
    results: dict[str, list[Measurement]] = {name: [] for name, _ in tools}
    say(f"shape {shape.label}: {shape.pages} pages on {shape.hosts} host(s), starting the site")
    with Site(shape.hosts, shape.pages, shape.latency_ms) as site:
        say(f"  served by {site.server} on port {site.port}")
        urls = ctx.scratch / f"urls-{shape.hosts}-{shape.pages}.txt"
        urls.write_text("\n".join(site.urls) + "\n")
        for run in range(runs):
            say(f" run {run + 1} of {runs}")
            for name, runner in tools[run % len(tools) :] + tools[: run % len(tools)]:
                results[name].append(one_run(name, runner, site, urls, ctx))
        server = site.server
    return ShapeResult(shape, server, results)


def bench_rss(sizes: tuple[int, ...], ctx: Context) -> list[tuple[int, str, Measurement]]:
    """``linkarchive crawl`` once per size, 1 host, no added latency: does memory stay flat?"""
    rows = []
    for size in sizes:
        say(f"peak RSS: linkarchive crawl of {size:,} pages (1 host, 0 ms)")
        with Site(1, size, 0) as site:
            urls = ctx.scratch / f"urls-rss-{size}.txt"
            urls.write_text("\n".join(site.urls) + "\n")
            rows.append((size, site.server, one_run(LINKARCHIVE, run_linkarchive, site, urls, ctx)))
    return rows


def bench_prefect_start(ctx: Context) -> list[tuple[str, Measurement]]:
    """One link crawled with Prefect's temporary server (no PREFECT_API_URL) and with ours."""
    rows = []
    with Site(1, 1, 0) as site:
        urls = ctx.scratch / "urls-one.txt"
        urls.write_text("\n".join(site.urls) + "\n")
        temporary = Context(ctx.env, ctx.scratch, None)
        say("one link, PREFECT_API_URL unset (Prefect's temporary server)")
        rows.append(
            (
                "unset: the CLI gets a server itself (Prefect's temporary one today), fresh "
                "PREFECT_HOME",
                one_run(LINKARCHIVE, run_linkarchive, site, urls, temporary),
            )
        )
        ctx.failures += temporary.failures
        say("one link, PREFECT_API_URL set (the running server)")
        rows.append(
            (
                "set: the Prefect server already running",
                one_run(LINKARCHIVE, run_linkarchive, site, urls, ctx),
            )
        )
    return rows


# --- the report -----------------------------------------------------------------------------


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


@dataclass
class Summary:
    """Medians over the successful runs of one contender on one shape."""

    ok: int
    total: int
    urls_per_s: float | None
    cpu_per_1000: float | None
    rss_mb: float | None
    requests: float | None
    bytes_written: float | None
    notes: list[str]


def summarize(pages: int, runs: list[Measurement]) -> Summary:
    good = [m for m in runs if m.ok]
    return Summary(
        ok=len(good),
        total=len(runs),
        urls_per_s=_median([pages / m.wall_s for m in good if m.wall_s > 0]),
        cpu_per_1000=_median([m.cpu_s / pages * 1000 for m in good]),
        rss_mb=_median([m.maxrss_kib / 1024 for m in good]),
        requests=_median([m.requests for m in good if m.requests is not None]),
        bytes_written=_median([m.bytes_written for m in good if m.bytes_written is not None]),
        notes=[m.note for m in runs if not m.ok],
    )


def _num(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    if value >= 10 ** (digits - 1):
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _ratio(mine: float | None, theirs: float | None) -> str:
    if mine is None or not theirs:
        return "–"
    return f"×{mine / theirs:.2g}"


def shape_table(result: ShapeResult) -> str:
    """One Markdown table: a row per contender, ratios to wget and to bare Scrapy."""
    pages = result.shape.pages
    sums = {name: summarize(pages, runs) for name, runs in result.results.items()}
    wget, bare = sums.get(WGET), sums.get(BARE)
    lines = [
        "| tool | runs ok | URLs/s | speed vs wget / Scrapy | requests | "
        "CPU s per 1,000 URLs | CPU vs wget / Scrapy | peak RSS MB | WARC MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in sums.items():
        speed = (
            f"{_ratio(s.urls_per_s, wget and wget.urls_per_s)} / "
            f"{_ratio(s.urls_per_s, bare and bare.urls_per_s)}"
        )
        cpu = (
            f"{_ratio(s.cpu_per_1000, wget and wget.cpu_per_1000)} / "
            f"{_ratio(s.cpu_per_1000, bare and bare.cpu_per_1000)}"
        )
        written = "none" if name == BARE else _num(s.bytes_written and s.bytes_written / 1e6)
        lines.append(
            f"| {name} | {s.ok}/{s.total} | {_num(s.urls_per_s)} | {speed} | "
            f"{_num(s.requests, 6)} | {_num(s.cpu_per_1000)} | {cpu} | {_num(s.rss_mb)} | "
            f"{written} |"
        )
    notes = [f"- failed run — {name}: {note}" for name, s in sums.items() for note in s.notes]
    for name, runs in result.results.items():
        left = sum(m.strays for m in runs)
        if left:
            notes.append(
                f"- {name} left {left} process(es) running after its runs (killed by "
                "the bench; their CPU after the run is in no row)"
            )
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def revision() -> str:
    """The commit of the code measured, ``-dirty`` with uncommitted changes."""
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def machine() -> str:
    """Cores, CPU model, memory, kernel, Python and tool versions."""
    model = platform.processor() or platform.machine()
    memory = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f", {int(line.split()[1]) / 1024 / 1024:.0f} GiB RAM"
                break
    except OSError:
        pass
    versions = [f"Python {platform.python_version()}"]
    for module in ("scrapy", "prefect"):
        with suppress(ImportError):
            versions.append(f"{module.capitalize()} {__import__(module).__version__}")
    wget = shutil.which("wget")
    if wget:
        first = subprocess.run(
            [wget, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout.splitlines()[:1]
        versions.append(" ".join(first[0].split()[:3]) if first else "wget")
    return (
        f"{os.cpu_count()} cores ({model}){memory}, Linux {platform.release()}, "
        f"{', '.join(versions)}"
    )


def render(
    cfg: Config,
    shapes: list[ShapeResult],
    rss: list[tuple[int, str, Measurement]],
    prefect: list[tuple[str, Measurement]],
    took: float,
) -> str:
    """The Markdown of the crawl-engine section."""
    servers = sorted({r.server for r in shapes} | {server for _, server, _ in rss})
    wget_note = (
        "" if shutil.which("wget") else " wget is not installed here, so its rows are missing."
    )
    nginx_note = (
        "" if find_nginx() else " nginx is not installed, so the Python server served all shapes."
    )
    quick = (
        " **Small `--quick` sizes and one run: a developer's check, not the reference figures.**"
        if cfg.quick
        else ""
    )
    intro = f"""## Crawl engine: `linkarchive crawl` beside wget and bare Scrapy

Measured by `bench/crawlbench.py`. A synthetic site (`bench/site.py`): report pages of
~5 KB HTML (OpenGraph and article meta tags, multilingual text), each with a JPEG of its
own (~20 KB) and one stylesheet per host; each host is a loopback address of its own
(127.0.0.2, .3, …), all on one port. Servers used: {", ".join(servers)} (nginx where no
latency is added; the Python server sleeps the added latency before each
response).{nginx_note} Three contenders fetch the same page list, alternating, the median
of {cfg.runs} run(s) each: **linkarchive crawl** (the whole pipeline, `python -m
pipeline.cli crawl`: Prefect flow against one Prefect API server started beforehand for
the whole benchmark, Scrapy, WARC files, catalog; the seed CSV imported untimed into a
fresh data home per run), **bare Scrapy** (`bench/barescrapy.py`: the politeness settings
of `settings.py`, selectors for `img[src]` and stylesheets, nothing stored) and **wget**
(`wget -q --tries=1 -e robots=off -p --warc-file=… -i urls.txt`: one connection, gzipped
WARC).{wget_note} URLs/s: listed page URLs per wall-clock second. Requests: WARC response
and revisit records (for bare Scrapy, its request count). CPU: user+system seconds of the
command's whole process tree; peak RSS: its largest process (`bench/measure.py`); the site
server's CPU is in no row. "vs wget / Scrapy": this row's figure divided by wget's and
by bare Scrapy's. Machine: {machine()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC;
code at commit {revision()}; this section took {took / 60:.0f} min. The machine may be
shared: compare rows of one run.{quick}"""
    heading, _, paragraph = intro.partition("\n\n")
    wrapped = textwrap.fill(
        " ".join(paragraph.split()), width=92, break_long_words=False, break_on_hyphens=False
    )
    parts = [f"{heading}\n\n{wrapped}"]
    for result in shapes:
        s = result.shape
        parts.append(
            f"### {s.label}: {s.pages:,} pages on {s.hosts} host(s), "
            f"{s.latency_ms:g} ms added per response, served by {result.server}\n\n"
            + shape_table(result)
        )
    if rss:
        lines = [
            "| pages | server | seconds | URLs/s | peak RSS MB | requests | WARC MB |",
            "|---|---|---|---|---|---|---|",
        ]
        for size, server, m in rss:
            if m.ok:
                lines.append(
                    f"| {size:,} | {server} | {m.wall_s:.1f} | "
                    f"{_num(size / m.wall_s)} | {_num(m.maxrss_kib / 1024)} | "
                    f"{m.requests} | {_num((m.bytes_written or 0) / 1e6)} |"
                )
            else:
                lines.append(f"| {size:,} | {server} | failed: {m.note} | | | | |")
        parts.append(
            "### Peak RSS of `linkarchive crawl` by crawl length (1 host, 0 ms, one run "
            "each)\n\nWhether memory stays flat as the crawl gets longer.\n\n" + "\n".join(lines)
        )
    if prefect:
        lines = [
            "| PREFECT_API_URL | seconds | CPU s | peak RSS MB | processes left running |",
            "|---|---|---|---|---|",
        ]
        for label, m in prefect:
            cells = (
                f"{m.wall_s:.1f} | {m.cpu_s:.1f} | {_num(m.maxrss_kib / 1024)} | {m.strays}"
                if m.ok
                else f"failed: {m.note} | | | {m.strays}"
            )
            lines.append(f"| {label} | {cells} |")
        parts.append(
            "### Prefect's share: `linkarchive crawl` of one link, run once each\n\n"
            "Every run in the tables above used a Prefect API server that was already "
            "running, so they time the crawl, not Prefect's start. Processes a run leaves "
            "running (such as a detached Prefect server) are killed after it; the CPU they "
            "use is not counted.\n\n" + "\n".join(lines)
        )
    return "\n\n".join(parts) + "\n"


def crawl_section(cfg: Config, env: dict[str, str]) -> str:
    """Run the whole crawl benchmark and return its Markdown section."""
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="bench-crawl-"))
    env = {
        **env,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_HOME": str(scratch / "prefect-client-home"),
    }
    ctx = Context(env, scratch)
    if not shutil.which("wget"):
        say("wget is not installed: its rows are skipped")
    if not find_nginx():
        say("nginx is not installed: the Python asyncio server serves every shape")
    say(f"scratch folder {scratch}; starting the Prefect API server")
    failed = True
    try:
        with prefect_server(env, scratch / "prefect") as api_url:
            ctx.api_url = api_url
            say(f"Prefect API at {api_url}")
            shapes = [bench_shape(shape, cfg.runs, ctx) for shape in cfg.shapes]
            rss = bench_rss(cfg.rss_sizes, ctx)
            prefect = bench_prefect_start(ctx)
        failed = bool(ctx.failures)
    finally:
        kill_strays(scratch)  # the Prefect server is stopped by now; nothing else may remain
        if failed:
            say(f"kept {scratch} for inspection")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return render(cfg, shapes, rss, prefect, time.perf_counter() - started)
