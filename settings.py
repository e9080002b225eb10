"""Scrapy settings of the linkarchive crawler.

Every knob is here; paths, URLs and politeness read ``LINKARCHIVE_*`` environment
variables so a crawl subprocess is configured by its environment alone.
"""

from __future__ import annotations

import os

from pipeline.walls import PLATFORM_HOSTS, VIDEO_HOSTS


def _env(name: str, default: str) -> str:
    return os.environ.get(f"LINKARCHIVE_{name}", default)


def _env_int(name: str, default: int) -> int:
    return int(_env(name, str(default)))


def _env_float(name: str, default: float) -> float:
    return float(_env(name, str(default)))


def _env_bool(name: str, default: bool) -> bool:
    return _env(name, "1" if default else "0").strip().lower() in ("1", "true", "yes", "on")


BOT_NAME = "linkarchive"
# Crawls name their spider class (spiders.run); no module walk at start-up (a second).
SPIDER_MODULES: list[str] = []

# --- Who we are -----------------------------------------------------------------------------
USER_AGENT = _env(
    "USER_AGENT",
    "linkarchive/0.1 (web archive of human-rights reports; +https://github.com/linkarchive)",
)

# --- Politeness -----------------------------------------------------------------------------
# The seeds are curated by hand; like Archive-It's seed policy we fetch them even where
# robots.txt disallows. Set LINKARCHIVE_ROBOTSTXT_OBEY=1 to obey.
ROBOTSTXT_OBEY = _env_bool("ROBOTSTXT_OBEY", False)
CONCURRENT_REQUESTS = _env_int("CONCURRENT_REQUESTS", 16)
CONCURRENT_REQUESTS_PER_DOMAIN = _env_int("CONCURRENT_REQUESTS_PER_HOST", 4)
DOWNLOAD_DELAY = _env_float("DOWNLOAD_DELAY", 0.0)
AUTOTHROTTLE_ENABLED = _env_bool("AUTOTHROTTLE", True)
AUTOTHROTTLE_START_DELAY = _env_float("AUTOTHROTTLE_START_DELAY", 1.0)
AUTOTHROTTLE_MAX_DELAY = _env_float("AUTOTHROTTLE_MAX_DELAY", 30.0)
AUTOTHROTTLE_TARGET_CONCURRENCY = _env_float("AUTOTHROTTLE_TARGET_CONCURRENCY", 2.0)
DOWNLOAD_TIMEOUT = _env_int("DOWNLOAD_TIMEOUT", 60)
# The most bytes of one response archived (its wire bytes: head, chunk framing, body still
# encoded). A longer response, or one that never ends, is cut there: the prefix is archived
# wire-exact with `WARC-Truncated: length` and the page still gets its outcome. Read from
# LINKARCHIVE_ARCHIVE_MAXSIZE, or the older LINKARCHIVE_DOWNLOAD_MAXSIZE.
LINKARCHIVE_ARCHIVE_MAXSIZE = _env_int("ARCHIVE_MAXSIZE", _env_int("DOWNLOAD_MAXSIZE", 512 << 20))
# The most bytes of one response kept in memory for parsing and extraction (positive): of the
# body as received (Scrapy's buffer) and again of the body decoded (gzip, deflate, br, zstd).
# 4 MiB holds nearly every real HTML page whole (few exceed 1 MiB) and the head and first
# screens of any page, where requisites and gallery links mostly are. Parse trees (lxml, bs4)
# grow to 40-60 times dense input, so 4 MiB keeps the worst page's parsing near 250 MB.
# (Metadata is extracted by the indexer from the archived bytes, with pipeline.extract's caps.)
LINKARCHIVE_PARSE_MAXSIZE = _env_int("PARSE_MAXSIZE", 4 << 20)
# Scrapy's own limit cancels a download and archives nothing: off, the archive limit cuts.
DOWNLOAD_MAXSIZE = 0
# A body cut short by the server is returned (flag "dataloss"), archived as far as it came
# with WARC-Truncated: disconnect, and retried (spiders.middlewares.DataLossRetryMiddleware).
DOWNLOAD_FAIL_ON_DATALOSS = False
DOWNLOAD_WARNSIZE = 64 * 1024 * 1024
RETRY_ENABLED = True
RETRY_TIMES = _env_int("RETRY_TIMES", 3)
RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408, 429]
REDIRECT_ENABLED = True
METAREFRESH_ENABLED = True
COOKIES_ENABLED = True
# Scrapy's check re-reads each callback's source for every response (its cache is keyed by
# bound methods, new each time): 7 % of a crawl's CPU. Our callbacks return no values.
WARN_ON_GENERATOR_RETURN_VALUE = False

# --- Quiet, local-only process --------------------------------------------------------------
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False
LOG_LEVEL = _env("SCRAPY_LOG_LEVEL", "INFO")
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"

# --- Archiving components -------------------------------------------------------------------
# Scrapy's HTTP/1.1 handler with a tee: the exact bytes of every exchange (spiders/wire.py).
DOWNLOAD_HANDLERS = {
    "http": "spiders.wire.WireCaptureDownloadHandler",
    "https": "spiders.wire.WireCaptureDownloadHandler",
}
DOWNLOADER_MIDDLEWARES = {
    # Refuse hosts outside LINKARCHIVE_ALLOWED_HOSTS (the demo and tests allow loopback only).
    "spiders.middlewares.HostAllowlistMiddleware": 50,
    # Refuse literal non-public addresses (names: TWISTED_DNS_RESOLVER below); SSRF guard.
    "spiders.netguard.AddressPolicyMiddleware": 51,
    # Same place as Scrapy's CookiesMiddleware, without its download of the suffix list.
    "scrapy.downloadermiddlewares.cookies.CookiesMiddleware": None,
    "spiders.middlewares.OfflineCookiesMiddleware": 700,
    # Scrapy's decompression, bounded: at most LINKARCHIVE_PARSE_MAXSIZE decoded bytes, for
    # the responses the spider parses only (HTML, XHTML, CSS, PDF).
    "scrapy.downloadermiddlewares.httpcompression.HttpCompressionMiddleware": None,
    "spiders.compression.BoundedDecompressionMiddleware": 590,
    # Above the decompression (590) and RedirectMiddleware (600): sees every
    # response, redirects and errors included, with the wire bytes of each attempt.
    "spiders.middlewares.WarcCaptureMiddleware": 950,
    # A response the server broke off is archived as far as it came, then retried.
    "spiders.middlewares.DataLossRetryMiddleware": 560,
    # Not used, and each costs every request: no allowed_domains (the allowlist is ours),
    # no proxies (wire capture does not go through them; a proxy from the environment
    # would silently turn records into reconstructions).
    "scrapy.downloadermiddlewares.offsite.OffsiteMiddleware": None,
    "scrapy.downloadermiddlewares.httpproxy.HttpProxyMiddleware": None,
}
SPIDER_MIDDLEWARES = {
    # Depth is bounded by the spider's own scope (a link, its requisites, a gallery's
    # pages); the meta-copy check is a development aid. Each runs on every item.
    "scrapy.spidermiddlewares.depth.DepthMiddleware": None,
    "scrapy.spidermiddlewares.metacopy.MetaCopyDetectionMiddleware": None,
}
ITEM_PIPELINES = {
    "spiders.pipelines.WarcMetadataPipeline": 300,
}
EXTENSIONS = {
    # Progress per page for the flow, the CLI's bar and the web app's job page.
    "spiders.extensions.CrawlProgress": 500,
    # Close WARC files every few seconds so the flow indexes them while the crawl runs.
    "spiders.extensions.WarcRotation": 510,
    # Stop the crawl (links left for `crawl --resume`) before the WARC disk is full.
    "spiders.extensions.DiskSpaceGuard": 520,
}
# Bytes that must stay free on the WARC folder's disk (the catalog needs room too).
LINKARCHIVE_MIN_FREE_SPACE = _env_int("MIN_FREE_SPACE", 256 << 20)
LINKARCHIVE_PROGRESS_FILE = ""  # set per crawl unit by spiders.run
LINKARCHIVE_PROGRESS_INTERVAL = 0.5
# The most seconds a WARC file stays open (it closes sooner early in a crawl: see
# spiders.extensions.WarcRotation); closed files are indexed while the crawl goes on.
LINKARCHIVE_WARC_ROTATE_SECONDS = _env_float("WARC_ROTATE_SECONDS", 60.0)
# ... and once it holds this many records (the indexer's memory follows a file's records).
LINKARCHIVE_WARC_ROTATE_RECORDS = _env_int("WARC_ROTATE_RECORDS", 2000)
# Assets (stylesheets, images) remembered per process so links sharing them fetch them once;
# bounded so a long crawl's memory stays flat (a forgotten asset is fetched again: a revisit).
LINKARCHIVE_ASSET_MEMORY = _env_int("ASSET_MEMORY", 20_000)
LINKARCHIVE_WARC_DIR = _env("WARC_DIR", os.path.join(_env("HOME", "data"), "warcs"))
LINKARCHIVE_WARC_PREFIX = _env("WARC_PREFIX", "linkarchive")
LINKARCHIVE_WARC_MAX_SIZE = _env_int("WARC_MAX_SIZE", 1_000_000_000)
LINKARCHIVE_WARC_FSYNC = _env_bool("WARC_FSYNC", True)
# Group commit: fsync an open WARC file at most this often (closing always fsyncs; a killed
# process loses nothing either way, only a power cut could lose this many seconds).
LINKARCHIVE_WARC_FSYNC_INTERVAL = _env_float("WARC_FSYNC_INTERVAL", 1.0)
# RFC 3161 timestamp authority: each closed WARC file gets a token (<file>.tsr).
LINKARCHIVE_TSA_URL = _env("TSA_URL", "")
# A 200 payload already archived (same SHA-256) becomes a revisit record.
LINKARCHIVE_DEDUP = _env_bool("DEDUP", True)
LINKARCHIVE_DEDUP_MIN_SIZE = _env_int("DEDUP_MIN_SIZE", 0)
# Comma-separated host names; empty = any host.
LINKARCHIVE_ALLOWED_HOSTS = [h for h in _env("ALLOWED_HOSTS", "").split(",") if h.strip()]
# Loopback, private, link-local and other non-public addresses are never fetched, except
# these (comma-separated addresses, CIDR ranges or host names; pipeline/netpolicy.py).
LINKARCHIVE_ALLOW_ADDRESSES = _env("ALLOW_ADDRESSES", "")
# HTTPS certificates are verified; these sites (comma-separated host or host:port, or *)
# are archived although theirs does not verify (pipeline/netpolicy.py, TlsPolicy).
LINKARCHIVE_UNTRUSTED_TLS = _env("UNTRUSTED_TLS", "")
DOWNLOAD_VERIFY_CERTIFICATES = True
# Checks every address a host name resolves to, and connects only to the one it checked.
TWISTED_DNS_RESOLVER = "spiders.netguard.GuardedResolver"
# Follow a photo gallery's pagination at most this many pages deep.
LINKARCHIVE_GALLERY_MAX_PAGES = _env_int("GALLERY_MAX_PAGES", 50)

# --- Browser capture (spiders/browser) --------------------------------------------------------
# auto: a page link is rendered in Chromium when its plain fetch is an app shell, a log-in
# wall, or on a platform host; always: every page link (evidence-grade, with screenshots);
# never: plain captures only. `linkarchive crawl --browser` sets it per crawl.
LINKARCHIVE_BROWSER = _env("BROWSER", "auto")
LINKARCHIVE_BROWSER_EXECUTABLE = _env("BROWSER_EXECUTABLE", "/usr/bin/chromium")
# Hosts (and subdomains) always rendered in auto mode; comma-separated, replaces the default.
LINKARCHIVE_BROWSER_HOSTS = [
    h.strip() for h in _env("BROWSER_HOSTS", ",".join(PLATFORM_HOSTS)).split(",") if h.strip()
]
LINKARCHIVE_BROWSER_PAGES = _env_int("BROWSER_PAGES", 2)  # pages rendered at once per process
# ... and of one host (a page fires its requests at once, as a visitor's browser does).
LINKARCHIVE_BROWSER_PAGES_PER_HOST = _env_int("BROWSER_PAGES_PER_HOST", 1)
LINKARCHIVE_BROWSER_PAGE_SECONDS = _env_float("BROWSER_PAGE_SECONDS", 60.0)
# A Chromium renderer past this resident memory is killed: that page fails, saying so.
LINKARCHIVE_BROWSER_MAX_RSS = _env_int("BROWSER_MAX_RSS", 640 << 20)
LINKARCHIVE_BROWSER_SCROLL_SECONDS = _env_float("BROWSER_SCROLL_SECONDS", 20.0)
LINKARCHIVE_BROWSER_MAX_HEIGHT = _env_int("BROWSER_MAX_HEIGHT", 20_000)
# Response bytes one page may pull through the recording proxy (video included).
LINKARCHIVE_BROWSER_PAGE_BYTES = _env_int("BROWSER_PAGE_BYTES", 256 << 20)
LINKARCHIVE_BROWSER_WIDTH = _env_int("BROWSER_WIDTH", 1280)
LINKARCHIVE_BROWSER_HEIGHT = _env_int("BROWSER_HEIGHT", 900)
# Default: Chromium's own user agent, without "Headless" (sites serve headless browsers shells).
LINKARCHIVE_BROWSER_USER_AGENT = _env("BROWSER_USER_AGENT", "")
# A folder of Playwright storage states, <host>.json (cookies of a logged-in account). Never
# written into WARC files; see the README before using one.
LINKARCHIVE_BROWSER_STATE_DIR = _env("BROWSER_STATE_DIR", "")

# --- Video (yt-dlp, through the recording proxy; spiders/browser/video.py) -------------------
LINKARCHIVE_VIDEO = _env_bool("VIDEO", True)
# Hosts (and subdomains) whose page links get yt-dlp; comma-separated, replaces the default.
LINKARCHIVE_VIDEO_HOSTS = [
    h.strip() for h in _env("VIDEO_HOSTS", ",".join(VIDEO_HOSTS)).split(",") if h.strip()
]
LINKARCHIVE_VIDEO_MAX_BYTES = _env_int("VIDEO_MAX_BYTES", 512 << 20)  # per file
LINKARCHIVE_VIDEO_MAX_SECONDS = _env_int("VIDEO_MAX_SECONDS", 3 * 3600)  # of duration
