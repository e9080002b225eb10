"""Video of a link's page with yt-dlp (as a library), through the recording proxy.

For pages on video platforms (``LINKARCHIVE_VIDEO_HOSTS``: YouTube, VK, Facebook, Telegram,
Vimeo, …) a browser sees at most a player streaming through ``blob:`` URLs. yt-dlp knows
each platform's way to the media. Its every request goes through a
:class:`~spiders.browser.proxy.RecordingProxy`, so the pages, API answers and media it
fetched are in the WARC files wire-exact like any other exchange; then:

* its info JSON (title, uploader, dates, duration, formats; yt-dlp's ``sanitize_info``) is
  a ``metadata`` record (``linkarchive/video``) about the page;
* a downloaded file that no single recorded response holds whole (fetched in ranges or
  fragments) is also stored as a ``resource`` record ``urn:video:<page URL>``, so the video
  can be played from the archive.

Limits: ``LINKARCHIVE_VIDEO_MAX_BYTES`` (default 512 MiB) per file and
``LINKARCHIVE_VIDEO_MAX_SECONDS`` (default 3 hours) of duration; live streams are skipped.
yt-dlp picks the best single file with video and audio (no merging: no ffmpeg needed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import mimetypes
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archive import record_id
from pipeline.crawlcontext import VIDEO_FORMAT
from spiders.browser.proxy import Exchange, RecordingProxy

logger = logging.getLogger(__name__)


@dataclass
class VideoResult:
    """What yt-dlp fetched for one page."""

    url: str
    info: dict[str, Any] | None = None
    files: list[Path] = field(default_factory=list)
    error: str | None = None
    exchanges: list[Exchange] = field(default_factory=list)
    records: dict[str, str] = field(default_factory=dict)  # info / video -> record id

    def context(self) -> dict[str, str]:
        """The record ids for the page's crawl context (``rendered``): the info record as
        ``video_info``, a video stored whole as ``video``."""
        named = {"video_info": self.records.get("info"), "video": self.records.get("video")}
        return {key: value for key, value in named.items() if value}


def _download(url: str, proxy_url: str, folder: Path, max_bytes: int, max_seconds: int) -> tuple[
    dict[str, Any] | None, list[Path], str | None
]:  # fmt: skip
    """Run yt-dlp (blocking: called in a thread while the proxy serves on the loop)."""
    import yt_dlp
    from yt_dlp.utils import match_filter_func

    options = {
        "proxy": proxy_url,
        "nocheckcertificate": True,  # the recording proxy's own certificate
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "noplaylist": True,
        "playlist_items": "1",
        "format": "best",  # one file with video and audio: no merging, no ffmpeg
        "writethumbnail": True,  # the poster frame (recorded as it is fetched)
        "max_filesize": max_bytes,
        "match_filter": match_filter_func(f"!is_live & duration <=? {max_seconds}"),
        "outtmpl": str(folder / "video-%(id).60s.%(ext)s"),
        "socket_timeout": 30,
        "retries": 1,
        "fragment_retries": 1,
        "cachedir": False,
        "logger": logging.getLogger("yt_dlp"),
    }
    try:
        with yt_dlp.YoutubeDL(options) as ydl:  # type: ignore[arg-type]
            info = ydl.extract_info(url, download=True)
            info = ydl.sanitize_info(info) if info else None
    except Exception as exc:  # yt-dlp raises DownloadError and many of its own
        return None, [], f"video: {str(exc).splitlines()[0][:300]}"
    downloads = (info or {}).get("requested_downloads") or []
    files = [Path(d["filepath"]) for d in downloads if Path(d.get("filepath") or "").is_file()]
    return info, files, None


class VideoFetcher:
    """yt-dlp for a crawl process, recording through proxies made by ``proxies``."""

    @classmethod
    def from_crawler(cls, crawler: Any) -> VideoFetcher:
        """Built from the crawl's settings (``LINKARCHIVE_VIDEO_*``)."""
        from spiders.browser.service import ProxyFactory

        proxies = ProxyFactory.from_crawler(crawler)
        settings = crawler.settings
        return cls(
            proxies.store,
            proxies,
            max_bytes=settings.getint("LINKARCHIVE_VIDEO_MAX_BYTES"),
            max_seconds=settings.getint("LINKARCHIVE_VIDEO_MAX_SECONDS"),
            spool_dir=settings.get("LINKARCHIVE_WARC_DIR"),
        )

    def __init__(
        self,
        store: Any,
        proxies: Any,
        *,
        max_bytes: int,
        max_seconds: int,
        spool_dir: str | None,
    ) -> None:
        self.store = store
        self.proxies = proxies
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.spool_dir = spool_dir

    async def fetch(self, url: str, refers_to: str | None) -> VideoResult:
        """Fetch the video of ``url``; archive what yt-dlp fetched, its info and the file."""
        result = VideoResult(url=url)
        # No response past the video limit is archived whole either (the head's allowance).
        proxy: RecordingProxy = await self.proxies(self.max_bytes + 64 * 1024).start()
        folder = Path(tempfile.mkdtemp(prefix="linkarchive-video-", dir=self.spool_dir))
        try:
            result.info, result.files, result.error = await asyncio.to_thread(
                _download, url, proxy.url, folder, self.max_bytes, self.max_seconds
            )
            await proxy.close()
            result.exchanges = proxy.exchanges
            self._write(result, refers_to)
        finally:
            await proxy.close()
            shutil.rmtree(folder, ignore_errors=True)
        return result

    def _write(self, result: VideoResult, refers_to: str | None) -> None:
        media_url = (result.info or {}).get("url")
        whole = any(e.url == media_url and e.status == 200 for e in result.exchanges)
        for path in result.files[:1]:  # "best" is one file
            if whole or path.stat().st_size > self.max_bytes:
                break  # archived whole as the response it came in (or too large)
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            with path.open("rb") as body:
                record = self.store.factory.resource(
                    f"urn:video:{result.url}", body, kind, concurrent_to=refers_to
                )
                self.store.writer.write(record)
            result.records["video"] = record_id(record)
        payload = {
            "format": VIDEO_FORMAT,
            "version": 1,
            "url": result.url,
            "error": result.error,
            "downloader": "yt-dlp",
            "downloader_version": _yt_dlp_version(),
            "records": dict(result.records),
            "exchanges": [e.record_id for e in result.exchanges if e.record_id],
            "info": result.info,
        }
        record = self.store.factory.metadata(
            result.url,
            json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8"),
            refers_to=refers_to,
        )
        self.store.writer.write(record)
        result.records["info"] = record_id(record)


def _yt_dlp_version() -> str:
    from yt_dlp.version import __version__

    return __version__
