"""Index closed WARC files into the catalog.

The WARC files are the source of truth. A crawl writes response records and, for every
archived response, a ``metadata`` record (JSON, ``WARC-Refers-To`` the response) holding
the crawl context. Indexing reads both back: a capture row is therefore only ever written
for a record that is already on disk in a closed file. Page metadata (title, dates,
author, text) is extracted here, from the archived page, not in the crawl process: the
crawl's process fetches and writes while the flow's process extracts and indexes, so a
crawl of one host keeps two cores busy, and a rebuild extracts exactly as a crawl does.
(Metadata records written before this carried the extraction; it is used as it is.)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive import (
    ContentDecodingError,
    RecordLocation,
    StoredRecord,
    TruncatedWarcError,
    decoded_payload,
    iter_records,
    read_record,
    sha256_hex,
    warc_fields,
    write_cdxj,
)
from pipeline.catalog.fulltext import refresh_documents
from pipeline.catalog.importer import import_entries, utcnow
from pipeline.catalog.models import (
    Capture,
    CrawlOutcome,
    CrawlRun,
    Link,
    Media,
    PageMetadataRow,
    Source,
    WarcFile,
)
from pipeline.crawlcontext import (
    CHECK_FORMAT,
    METADATA_FORMAT,
    RENDERED_ROLES,
    RENDERED_URNS,
    RUN_FIELD,
    SEED_FORMAT,
)
from pipeline.evidence.custody import record_captures
from pipeline.extract import MAX_INPUT_BYTES, MAX_PDF_BYTES, PDF_TYPES, extract_metadata
from pipeline.linkcheck.standing import apply_check, death_rule, observe
from pipeline.seedarchive import entries_from_context


@dataclass
class IndexResult:
    """Totals of one indexing pass."""

    files: int = 0
    skipped: int = 0
    captures: int = 0
    outcomes: int = 0
    bytes: int = 0
    revisits: int = 0
    bytes_deduplicated: int = 0
    duplicates: int = 0  # records skipped on import: already indexed from another file
    problems: list[str] = field(default_factory=list)


def _parse_warc_date(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)


def _payload_sha256(digest: str | None) -> str | None:
    if digest and digest.lower().startswith("sha256:"):
        return digest.split(":", 1)[1].lower()
    return None


def index_files(
    session: Session, paths: Iterable[Path], cdxj_dir: Path | None = None
) -> IndexResult:
    """Index every closed WARC file in ``paths`` not indexed yet, in name order.

    With ``cdxj_dir``, each newly indexed file also gets its sorted CDXJ index there.
    """
    result = IndexResult()
    known = set(session.scalars(select(WarcFile.name)))
    for path in sorted(Path(p) for p in paths):
        if path.name in known or path.name.endswith(".open"):
            result.skipped += 1
            continue
        _index_file(session, path, result)
        if cdxj_dir is not None:
            write_cdxj(path, cdxj_dir)
        known.add(path.name)
        result.files += 1
    return result


def _index_file(
    session: Session,
    path: Path,
    result: IndexResult,
) -> None:
    run_id: int | None = None
    contexts: list[tuple[str, datetime, dict]] = []
    new_captures: list[tuple[Capture, dict[str, str]]] = []  # each with its warcinfo fields
    fields: dict[str, str] = {}
    records = 0
    for location, record in iter_records(path):
        records += 1
        if record.rec_type == "warcinfo":
            fields = warc_fields(record.payload)
            run_id = int(fields[RUN_FIELD]) if fields.get(RUN_FIELD, "").isdigit() else None
            if run_id is not None and session.get(CrawlRun, run_id) is None:
                # Rebuilding from the WARC files alone: the run is known by its id only.
                when = _parse_warc_date(record.get("WARC-Date") or "")
                session.add(CrawlRun(id=run_id, started_at=when, status="rebuilt"))
                session.flush()
        elif record.rec_type in ("response", "revisit") or (
            record.rec_type == "resource" and (record.target_uri or "").startswith(RENDERED_URNS)
        ):
            capture = _capture(session, record, location, run_id, result)
            session.add(capture)
            new_captures.append((capture, fields))
        elif record.rec_type == "metadata" and "json" in (record.content_type or ""):
            try:
                context = json.loads(record.payload)
            except ValueError:
                continue
            if isinstance(context, dict) and context.get("format") in (
                METADATA_FORMAT,
                SEED_FORMAT,
                CHECK_FORMAT,
            ):
                contexts.append(
                    (location.record_id, _parse_warc_date(record.get("WARC-Date") or ""), context)
                )
    session.flush()
    record_captures(session, new_captures)  # each capture's custody ledger: captured, indexed
    touched: set[int] = set()  # links whose latest capture may have changed
    for _, _, context in contexts:
        if context["format"] == SEED_FORMAT and not _seed_merged(session, context):
            import_entries(
                session,
                context["location"],
                entries_from_context(context),
                link_ids=context.get("link_ids"),
                sha256=context.get("sha256"),
            )
    crawled = [c for c in contexts if c[2]["format"] == METADATA_FORMAT]
    applier = _ContextApplier(session, crawled, [c for c, _ in new_captures], path.parent)
    with session.no_autoflush:  # rows are looked up in bulk first, not flushed one by one
        for record_id, when, context in crawled:
            if applier.apply(record_id, when, context):
                result.outcomes += 1
                touched.add(context["link_id"])
    for record_id, _, context in contexts:  # after the check's own fetch above
        if context["format"] == CHECK_FORMAT and apply_check(session, record_id, context):
            touched.add(context["link_id"])
    refresh_documents(session, touched)
    session.add(
        WarcFile(
            name=path.name,
            path=str(path.resolve()),
            size=path.stat().st_size,
            records=records,
            run_id=run_id,
            indexed_at=utcnow(),
        )
    )
    session.flush()


def _seed_merged(session: Session, context: dict) -> bool:
    """Whether this seed import is in the catalog already (the import that archived it
    merged it): re-merging thousands of entries would change nothing, slowly."""
    digest = context.get("sha256")
    return (
        bool(digest)
        and session.scalar(
            select(Source.id).where(Source.location == context["location"], Source.sha256 == digest)
        )
        is not None
    )


def _capture(
    session: Session,
    record: StoredRecord,
    location: RecordLocation,
    run_id: int | None,
    result: IndexResult,
) -> Capture:
    """The catalog row of a response or revisit record."""
    payload_sha = _payload_sha256(record.get("WARC-Payload-Digest"))
    refers_to = record.get("WARC-Refers-To") if record.rec_type == "revisit" else None
    if refers_to:  # the payload is the original's: count its size, stored once
        size = session.scalar(select(Capture.size).where(Capture.record_id == refers_to)) or 0
        result.revisits += 1
        result.bytes_deduplicated += size
    else:
        size = len(record.payload)
        payload_sha = payload_sha or sha256_hex(record.payload)  # other tools label sha1
        result.bytes += size
    result.captures += 1
    return capture_row(
        record,
        location,
        run_id=run_id,
        captured_at=_parse_warc_date(record.get("WARC-Date") or ""),
        size=size,
        payload_sha256=payload_sha,
    )


def capture_row(
    record: StoredRecord,
    location: RecordLocation,
    *,
    run_id: int | None,
    captured_at: datetime,
    size: int,
    payload_sha256: str | None,
) -> Capture:
    """The catalog row of a response, revisit or resource record at ``location`` (ours or
    another tool's): what the record says, with the size and digest its indexer found."""
    return Capture(
        record_id=location.record_id,
        record_type=record.rec_type,
        refers_to=record.get("WARC-Refers-To") if record.rec_type == "revisit" else None,
        run_id=run_id,
        url=record.target_uri or "",
        captured_at=captured_at,
        http_status=record.http_status,
        content_type=(
            record.content_type
            if record.rec_type == "resource"
            else record.http_header("Content-Type")
        ),
        size=size,
        payload_sha256=payload_sha256,
        warc_file=location.filename,
        warc_offset=location.offset,
        warc_length=location.length,
    )


def _extracted(capture: Capture, record: StoredRecord) -> dict | None:
    """The page metadata of an HTML or PDF capture's record (a bounded prefix is decoded
    and read, whatever its size); None for other types or an undecodable body."""
    content_type = (capture.content_type or "").lower()
    if not any(t in content_type for t in ("html", "pdf")):
        return None
    pdf = content_type.split(";", 1)[0].strip() in PDF_TYPES
    try:
        body = decoded_payload(record, limit=MAX_PDF_BYTES if pdf else MAX_INPUT_BYTES)
    except (ValueError, ContentDecodingError):
        return None
    return extract_metadata(body, capture.url, capture.content_type).to_dict()


# A page whose stored body is larger is not read back for extraction: reading a record
# loads its whole block, and such bodies are endless or hostile, not articles.
EXTRACT_MAX_STORED = 64 << 20


def _extract_page(capture: Capture, directory: Path) -> dict | None:
    """Extract a crawled page's metadata from its archived response (2xx only)."""
    if capture.http_status is None or not 200 <= capture.http_status < 300:
        return None
    if capture.size > EXTRACT_MAX_STORED:
        return None
    where = Path(capture.warc_file)
    try:
        record = read_record(where if where.is_absolute() else directory / where,
                             capture.warc_offset)  # fmt: skip
    except (OSError, TruncatedWarcError):
        return None
    return _extracted(capture, record)


def _extract_rendered(dom: Capture, page: Capture, directory: Path) -> dict | None:
    """A browser-captured page's metadata, from the DOM the browser rendered (what the
    page's scripts wrote is what researchers search), under the page's own URL."""
    if dom.size > EXTRACT_MAX_STORED:
        return None
    where = Path(dom.warc_file)
    try:
        record = read_record(where if where.is_absolute() else directory / where, dom.warc_offset)
    except (OSError, TruncatedWarcError):
        return None
    body = record.payload[:MAX_INPUT_BYTES]
    return extract_metadata(body, page.url, "text/html; charset=utf-8").to_dict()


def _rendered_ids(context: dict) -> list[str]:
    rendered = context.get("rendered") or {}
    return [rendered[name] for name in RENDERED_ROLES if rendered.get(name)]


def _metadata_row(capture_id: int, extracted: dict) -> PageMetadataRow:
    published = extracted.get("published")
    return PageMetadataRow(
        capture_id=capture_id,
        title=extracted.get("title"),
        description=extracted.get("description"),
        author=extracted.get("author"),
        published=date.fromisoformat(published) if published else None,
        published_source=(extracted.get("published_source") or None) if published else None,
        language=extracted.get("language"),
        site_name=extracted.get("site_name"),
        canonical_url=extracted.get("canonical_url"),
        images=extracted.get("images") or [],
        text=extracted.get("text"),
        encoding=extracted.get("encoding"),
    )


def _media_kind(content_type: str | None) -> str | None:
    major = (content_type or "").split("/", 1)[0].strip().lower()
    return major if major in ("image", "video", "audio") else None


def _chunks(items: list, size: int = 500) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _ContextApplier:
    """Attaches one file's crawl-context records to their captures and links.

    What they refer to is looked up in a few bulk queries first: a file holds thousands of
    records, and a query per record (with an autoflush each) made indexing slower than
    crawling. Captures new in this file cannot have media, outcomes or metadata yet.
    """

    def __init__(
        self,
        session: Session,
        contexts: list[tuple[str, datetime, dict]],
        new: list[Capture],
        directory: Path,
    ) -> None:
        self.session = session
        self.directory = directory
        self.new = {id(c) for c in new}
        self.captures = {c.record_id: c for c in new}
        wanted = sorted(
            {rid for _, _, c in contexts for rid in [*c.get("chain", []), *_rendered_ids(c)]}
            - set(self.captures)
        )
        for chunk in _chunks(wanted):
            for capture in session.scalars(select(Capture).where(Capture.record_id.in_(chunk))):
                self.captures[capture.record_id] = capture
        link_ids = sorted({c.get("link_id") for _, _, c in contexts if c.get("link_id")})
        self.links: dict[int, Link] = {}
        for chunk in _chunks(link_ids):
            self.links.update(
                (k.id, k) for k in session.scalars(select(Link).where(Link.id.in_(chunk)))
            )
        record_ids = [rid for rid, _, c in contexts if c.get("outcome")]
        self.outcomes_done: set[str] = set()
        for chunk in _chunks(record_ids):
            self.outcomes_done.update(
                session.scalars(
                    select(CrawlOutcome.metadata_record_id).where(
                        CrawlOutcome.metadata_record_id.in_(chunk)
                    )
                )
            )
        # (run, link) pairs with an outcome: one per link and run, whichever attempt or
        # worker archived it first (a unit run again, a dead worker's files found later).
        self.reached: set[tuple[int, int]] = set()
        run_ids = sorted({c["run_id"] for _, _, c in contexts if c.get("run_id")})
        for chunk in _chunks(link_ids):
            self.reached.update(
                session.execute(
                    select(CrawlOutcome.run_id, CrawlOutcome.link_id).where(
                        CrawlOutcome.run_id.in_(run_ids), CrawlOutcome.link_id.in_(chunk)
                    )
                ).tuples()
            )
        self.rule = death_rule()
        self.media: set[tuple[int, int]] = set()  # (link, capture) pairs added here
        self.described: set[int] = set()  # captures given page metadata here

    def _has_media(self, link_id: int, capture: Capture) -> bool:
        if (link_id, capture.id) in self.media:
            return True
        if id(capture) in self.new:
            return False
        return (
            self.session.scalar(
                select(Media.id).where(Media.link_id == link_id, Media.capture_id == capture.id)
            )
            is not None
        )

    def _has_metadata(self, capture: Capture) -> bool:
        if capture.id in self.described:
            return True
        return (
            id(capture) not in self.new
            and self.session.get(PageMetadataRow, capture.id) is not None
        )

    def apply(self, record_id: str, when: datetime, context: dict) -> bool:
        """Attach one context to its captures; True if it set a link outcome."""
        link = self.links.get(context.get("link_id") or 0)
        if link is None:
            return False
        run_id = context.get("run_id")
        chain = [self.captures[rid] for rid in context.get("chain", []) if rid in self.captures]
        role = context.get("role", "page")
        for capture in chain[:-1]:
            capture.link_id = capture.link_id or link.id
            # A 3xx, or a 2xx that led on (a meta refresh), is a redirect; else a retried attempt.
            is_redirect = capture.http_status is not None and 200 <= capture.http_status < 400
            capture.role = capture.role or ("redirect" if is_redirect else "attempt")
        final = chain[-1] if chain else None
        if final is not None:
            final.link_id = final.link_id or link.id
            final.role = final.role or role
            kind = _media_kind(final.content_type)
            wanted = role != "page" and kind and final.http_status == 200
            if wanted and not self._has_media(link.id, final):
                self.media.add((link.id, final.id))
                self.session.add(
                    Media(
                        link_id=link.id,
                        capture_id=final.id,
                        run_id=run_id,
                        kind=kind,
                        role=role,
                        url=final.url,
                    )
                )
        rendered = context.get("rendered") or {}
        for name, capture_role in RENDERED_ROLES.items():
            made = self.captures.get(rendered.get(name) or "")
            if made is not None:
                made.link_id = made.link_id or link.id
                made.role = made.role or capture_role
        outcome = context.get("outcome")
        if role != "page" or not outcome or record_id in self.outcomes_done:
            return False
        if run_id is not None and (run_id, link.id) in self.reached:
            return False
        self.outcomes_done.add(record_id)
        if run_id is not None:
            self.reached.add((run_id, link.id))
        self.session.add(
            CrawlOutcome(
                link_id=link.id,
                run_id=run_id,
                status=outcome["status"],
                http_status=outcome.get("http_status"),
                final_url=outcome.get("final_url"),
                error=outcome.get("error"),
                capture_id=final.id if final else None,
                metadata_record_id=record_id,
                checked_at=when,
            )
        )
        if final is not None and not self._has_metadata(final):
            dom = self.captures.get(rendered.get("dom") or "")
            extracted = context.get("metadata") or (
                _extract_rendered(dom, final, self.directory)
                if dom is not None
                else _extract_page(final, self.directory)
            )
            if extracted:
                self.described.add(final.id)
                self.session.add(_metadata_row(final.id, extracted))
        if outcome.get("mode") == "check":
            return True  # judged and folded into the standing by its archived check record
        newer = link.updated_at is None or when >= link.updated_at
        observe(link, outcome["status"], when, self.rule, check=False)
        if newer:
            link.final_url = outcome.get("final_url")
            if final is not None:  # a 404 is a capture too: the evidence that the page is gone
                link.last_capture_id = final.id
        return True
