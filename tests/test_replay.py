"""Replay through real pywb: every archived page shows, with its images."""

from __future__ import annotations

import os
import re
import urllib.request
from typing import Any

import pytest
from conftest import replay_server

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
    with replay_server(crawled["home"]) as (_port, urls):
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
