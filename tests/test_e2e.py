"""End to end: the real Prefect flow archives the whole replica world.

Index page -> seeds -> Scrapy subprocesses -> WARC files -> catalog, asserted against the
replica world's own manifest (what each link is, where it lands, what it declares).
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from archive import decoded_payload, iter_records, read_record, verify_record
from pipeline.catalog import session_scope
from pipeline.catalog.models import Capture, CrawlOutcome, Link, Media, WarcFile
from pipeline.config import paths
from pipeline.indexer import index_files
from pipeline.replica.content import GALLERIES, LINKS

pytestmark = pytest.mark.e2e


def _db(crawled: dict[str, Any]) -> str:
    return paths(crawled["home"]).database_url


def _link(session: Any, world: Any, site: str, path: str) -> Link:
    return session.scalars(select(Link).where(Link.url == world.url(site, path))).one()


def test_run_archives_every_link(crawled: dict[str, Any]) -> None:
    result = crawled["result"]
    distinct = {(spec.site, spec.path) for spec in LINKS}
    assert result["status"] == "finished"
    assert result["links_total"] == len(distinct)
    assert result["links_done"] == len(distinct)
    assert result["captures"] > 3 * len(distinct)  # pages plus requisites, images, media


@pytest.mark.parametrize("spec", LINKS, ids=lambda s: f"{s.site}{s.path}")
def test_link_status_and_metadata(crawled: dict[str, Any], spec: Any) -> None:
    world = crawled["world"]
    with session_scope(_db(crawled)) as session:
        link = _link(session, world, spec.site, spec.path)
        outcome = session.scalars(select(CrawlOutcome).where(CrawlOutcome.link_id == link.id)).one()
        assert outcome.http_status == spec.status
        if spec.status == 404:
            assert outcome.status == "dead"  # the answer: a failure, said at once
            assert (link.status, link.failures) == ("failing", 1)  # dead once confirmed
        elif spec.final_path != spec.path:
            # Moved within its own site: the same page, alive, as a check would say too.
            assert outcome.status == link.status == "alive"
            assert link.final_url == world.url(spec.site, spec.final_path)
        else:
            assert link.status == "alive"
            assert link.final_url == world.url(spec.site, spec.path)
        from pipeline.catalog.models import PageMetadataRow

        meta = session.get(PageMetadataRow, link.last_capture_id)
        if spec.status != 200:
            assert meta is None
            return
        assert meta is not None
        if spec.title:
            assert meta.title == spec.title
        if spec.published:
            assert meta.published is not None
            assert meta.published.isoformat() == spec.published[:10]
        if spec.language:
            assert meta.language == spec.language


def test_flaky_page_recovered_after_503_with_both_attempts_archived(
    crawled: dict[str, Any],
) -> None:
    world = crawled["world"]
    flaky = next(spec for spec in LINKS if spec.kind == "flaky")
    with session_scope(_db(crawled)) as session:
        link = _link(session, world, flaky.site, flaky.path)
        captures = session.scalars(
            select(Capture).where(Capture.link_id == link.id, Capture.url == link.url)
        ).all()
        statuses = sorted(c.http_status for c in captures)
        assert statuses == [200, 503]
        assert {c.role for c in captures} == {"attempt", "page"}
        assert link.status == "alive"


def test_redirects_are_captures_of_their_own(crawled: dict[str, Any]) -> None:
    world = crawled["world"]
    with session_scope(_db(crawled)) as session:
        for spec in LINKS:
            if spec.final_path == spec.path:
                continue
            link = _link(session, world, spec.site, spec.path)
            first = session.scalars(
                select(Capture).where(Capture.link_id == link.id, Capture.url == link.url)
            ).one()
            assert first.role == "redirect"
            assert first.http_status in (200, 301)  # 200: the meta-refresh page itself


def test_every_full_size_image_of_every_gallery_page_archived(crawled: dict[str, Any]) -> None:
    world = crawled["world"]
    with session_scope(_db(crawled)) as session:
        for gallery in GALLERIES.values():
            link = _link(session, world, gallery.site, gallery.path)
            archived = set(
                session.scalars(
                    select(Media.url).where(Media.link_id == link.id, Media.kind == "image")
                )
            )
            expected = {world.url(gallery.site, p) for p in gallery.full_size_paths}
            assert expected <= archived, sorted(expected - archived)
            pages = set(
                session.scalars(
                    select(Capture.url).where(
                        Capture.link_id == link.id, Capture.role.in_(("page", "gallery_page"))
                    )
                )
            )
            assert pages == {world.url(gallery.site, page.path) for page in gallery.pages}


def test_video_file_archived(crawled: dict[str, Any]) -> None:
    from pipeline.replica.content import VIDEO_EMBED_PATH, VIDEO_MP4_PATH

    world = crawled["world"]
    video = next(spec for spec in LINKS if spec.kind == "video")
    with session_scope(_db(crawled)) as session:
        link = _link(session, world, video.site, video.path)
        media = session.scalars(select(Media).where(Media.link_id == link.id)).all()
        assert world.url("video", VIDEO_MP4_PATH) in {m.url for m in media if m.kind == "video"}
        urls = set(session.scalars(select(Capture.url)))
        assert world.url("video", VIDEO_EMBED_PATH) not in urls  # an embed, not a plain file


def test_warc_files_are_valid_and_the_catalog_points_at_real_records(
    crawled: dict[str, Any],
) -> None:
    warcs = paths(crawled["home"]).warcs
    files = sorted(warcs.glob("*.warc.gz"))
    assert files
    assert not list(warcs.glob("*.open")), "every crawl closes its files"
    check = subprocess.run(
        [sys.executable, "-m", "warcio.cli", "check", *map(str, files)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    records = [rec for f in files for _, rec in iter_records(f)]
    assert [p for rec in records for p in verify_record(rec)] == []
    assert all(rec.get("WARC-Payload-Digest", "").startswith("sha256:") for rec in records
               if rec.rec_type in ("response", "request"))  # fmt: skip
    # Each file starts with its warcinfo; each response has its request beside it.
    for f in files:
        first = next(iter_records(f))[1]
        assert first.rec_type == "warcinfo"
    responses = {rec.record_id for rec in records if rec.rec_type in ("response", "revisit")}
    concurrent = {rec.get("WARC-Concurrent-To") for rec in records if rec.rec_type == "request"}
    assert responses == concurrent
    with session_scope(_db(crawled)) as session:
        indexed = {w.name for w in session.scalars(select(WarcFile))}
        assert indexed == {f.name for f in files}
        for capture in session.scalars(select(Capture)):
            record = read_record(warcs / capture.warc_file, capture.warc_offset)
            assert record.record_id == capture.record_id
            assert record.rec_type == capture.record_type


def test_gzip_response_stored_as_sent_and_decoded_on_get(crawled: dict[str, Any]) -> None:
    world = crawled["world"]
    gzipped = next(spec for spec in LINKS if "gzip" in spec.demonstrates)
    with session_scope(_db(crawled)) as session:
        link = _link(session, world, gzipped.site, gzipped.path)
        capture = session.get_one(Capture, link.last_capture_id)
    record = read_record(paths(crawled["home"]).warcs / capture.warc_file, capture.warc_offset)
    assert record.http_header("Content-Encoding") == "gzip"
    assert record.payload[:2] == b"\x1f\x8b"
    html = decoded_payload(record)
    assert gzipped.title.encode() in html


def test_reindexing_changes_nothing(crawled: dict[str, Any]) -> None:
    warcs = paths(crawled["home"]).warcs
    with session_scope(_db(crawled)) as session:
        before = session.scalar(select(Capture.id).order_by(Capture.id.desc()).limit(1))
        result = index_files(session, warcs.glob("*.warc.gz"))
        after = session.scalar(select(Capture.id).order_by(Capture.id.desc()).limit(1))
    assert result.files == 0
    assert before == after


def test_crawl_never_left_loopback(crawled: dict[str, Any]) -> None:
    with session_scope(_db(crawled)) as session:
        hosts = {urlsplit(url).hostname for url in session.scalars(select(Capture.url))}
    assert hosts == {"127.0.0.1"}


def test_shared_requisites_belong_to_every_link_that_needs_them(crawled: dict[str, Any]) -> None:
    """Fetched once per crawl process, but recorded for each link (and what CSS imports too)."""
    world = crawled["world"]
    background = world.url("cdn", "/static/bg.png")  # imported by site.css, not by any page
    with session_scope(_db(crawled)) as session:
        html_links = [
            link
            for link in session.scalars(
                select(Link).where(Link.status.in_(("alive", "redirected")))
            )
            if not link.url.endswith(".pdf")
        ]
        assert len(html_links) > 15
        for link in html_links:
            urls = set(session.scalars(select(Media.url).where(Media.link_id == link.id)))
            assert background in urls, link.url


def test_every_warc_file_has_a_sorted_cdxj_index_pointing_at_its_records(
    crawled: dict[str, Any],
) -> None:
    from archive import read_cdxj

    where = paths(crawled["home"])
    checked = 0
    for warc in where.warcs.glob("*.warc.gz"):
        index = where.indexes / f"{warc.name}.cdxj"
        lines = list(read_cdxj(index))
        assert lines  # crawl files and the archived seed import alike
        keys = [(key, stamp) for key, stamp, _ in lines]
        assert keys == sorted(keys)
        responses = [fields for _, _, fields in lines if fields.get("status")]
        checked += len(responses)
        for fields in responses:
            assert fields["filename"] == warc.name
            record = read_record(warc, int(fields["offset"]))
            assert record.target_uri == fields["url"]
            assert record.get("WARC-Payload-Digest") == fields["digest"]
    assert checked >= 50


def test_catalog_rebuilt_from_the_warc_files_alone_gives_the_same_answers(
    crawled: dict[str, Any], tmp_path: Any
) -> None:
    from pipeline.catalog.fulltext import SearchQuery, search
    from pipeline.catalog.queries import status_summary
    from pipeline.cli import main

    target = f"sqlite:///{tmp_path / 'rebuilt.sqlite'}"
    assert main(["--home", str(crawled["home"]), "catalog", "rebuild", "--into", target]) == 0

    def answers(url: str) -> tuple[list[dict], list[dict]]:
        with session_scope(url) as session:
            every = search(session, SearchQuery(limit=None)).rows
            rows = [{k: v for k, v in r.items() if k != "capture_id"} for r in every]
            return rows, status_summary(session)

    assert answers(target) == answers(_db(crawled))
    # The rebuilt catalog is a real one: the same captures, in the same places.
    with session_scope(target) as rebuilt, session_scope(_db(crawled)) as original:
        where = {c.record_id: (c.warc_file, c.warc_offset, c.link_id, c.role)
                 for c in original.scalars(select(Capture))}  # fmt: skip
        again = {c.record_id: (c.warc_file, c.warc_offset, c.link_id, c.role)
                 for c in rebuilt.scalars(select(Capture))}  # fmt: skip
        assert again == where


def test_responses_are_stored_exactly_as_the_servers_sent_them(crawled: dict[str, Any]) -> None:
    """Chunk framing, header case and order, reason phrase: the bytes off the wire."""
    world = crawled["world"]
    base = {url: site for site, url in world.base_urls.items()}
    where = paths(crawled["home"])
    compared = set()
    with session_scope(_db(crawled)) as session:
        for capture in session.scalars(select(Capture).where(Capture.record_type == "response")):
            parts = urlsplit(capture.url)
            site = base[f"{parts.scheme}://{parts.netloc}"]
            record = read_record(where.warcs / capture.warc_file, capture.warc_offset)
            assert record.get("WARC-Linkarchive-Capture") is None  # not a reconstruction
            assert record.block in world.sent(site, parts.path), capture.url
            compared.add(spec_kind(capture.url))
    assert {"chunked", "gzip", "404", "503"} <= compared


def spec_kind(url: str) -> str:
    for spec in LINKS:
        if url.endswith(spec.path):
            for kind in ("chunked", "gzip"):
                if kind in spec.demonstrates:
                    return kind
            if spec.status == 404:
                return "404"
            if spec.kind == "flaky":
                return "503"
    return "other"
