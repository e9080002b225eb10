"""Replay through real pywb: every archived page shows, with its images."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any

import pytest
from conftest import free_port

from pipeline.replay import find_wayback

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        find_wayback() is None and not os.environ.get("CI"),
        reason="pywb not installed (pip install -e '.[replay]' or set LINKARCHIVE_WAYBACK)",
    ),
]


def _get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - loopback
        return response.status, response.headers.get("Content-Type", ""), response.read()


def test_replay_serves_every_archived_page_with_its_images(crawled: dict[str, Any]) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "--home", str(crawled["home"]), "replay",
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        urls = []
        for line in server.stdout:
            if line.startswith("Replaying"):
                break
            urls.append(line.split()[1])
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline, "pywb did not start"
                time.sleep(0.3)
        assert len(urls) == 24  # every link but the dead one
        images = 0
        for url in urls:
            page = re.sub(r"/(\d{14})/", r"/\1mp_/", url, count=1)
            status, content_type, body = _get(page)
            assert status == 200, url
            if "html" not in content_type:
                continue  # the PDF report
            for src in re.findall(rb'<img[^>]+src="([^"]+im_/[^"]+)"', body):
                status, content_type, _ = _get(src.decode())
                assert status == 200 and content_type.startswith("image/"), src
                images += 1
        assert images > 24
    finally:
        server.terminate()
        server.wait(10)
