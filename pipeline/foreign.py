"""Other tools' WARC and ARC files, indexed where they lie (``warc import``).

Files written by wget, warcprox, Heritrix, pywb, old ARC crawls ... are never copied nor
altered: the catalog names them by their absolute path. They are read as leniently as
warcio and pywb read them (:mod:`archive.lenient`): a bad record is a warning naming its
offset, and reading goes on at the next record; a file is refused only when none of it
can be read.

Captures are the response and revisit records, and resource records of http(s) URLs.
A revisit without ``WARC-Refers-To`` (the identical-payload-digest profile of WARC/1.0,
or server-not-modified) is tied to its original by ``WARC-Refers-To-Target-URI`` and
``-Date`` and the payload digest, whatever the algorithm (sha1 in base32, mostly).

*Pages* are HTML or PDF captures answered 2xx (or a resource record), and revisits of
them: their title and text are extracted. A page's URL the catalog lists is tied to
that link; any other URL becomes a link of the ``imported`` source, a ``report`` with no
place (the country "Unknown", code ZZ, no city), so ``search`` finds it. Images, CSS,
scripts, redirects and errors stay captures (``get``, replay) without links of their own.

Each imported file is appended to the data home's ledger ``imports.jsonl`` (path, size,
SHA-256, time, the links it created), so ``catalog rebuild`` imports the same files again
(:func:`restore_imports`) and says which ones are gone or changed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from archive import StoredRecord, TruncatedWarcError, read_record, sha256_hex, warc_fields
from archive.digests import digest_matches, parse_labelled
from archive.lenient import UnreadableArchiveError, iter_lenient
from archive.store import file_sha256
from archive.writer import RecordLocation
from pipeline.catalog.fulltext import refresh_documents
from pipeline.catalog.importer import utcnow
from pipeline.catalog.models import (
    Capture,
    Country,
    Link,
    LinkSource,
    PageMetadataRow,
    Source,
    WarcFile,
)
from pipeline.config import Paths
from pipeline.crawlcontext import RENDERED_URNS
from pipeline.evidence.custody import record_captures
from pipeline.extract import PDF_TYPES
from pipeline.indexer import (
    IndexResult,
    _extracted,
    _metadata_row,
    _parse_warc_date,
    _payload_sha256,
    capture_row,
)
from pipeline.linkcheck.standing import death_rule, observe

IMPORT_SUFFIXES = (".warc", ".warc.gz", ".arc", ".arc.gz")
LEDGER = "imports.jsonl"
IMPORTED_SOURCE = "imported"
# No place is invented for an imported page: ZZ is the user-assigned ISO 3166 code that
# CLDR uses for an unknown region.
UNKNOWN_COUNTRY, UNKNOWN_CODE = "Unknown", "ZZ"
_NO_BODY = (204, 205, 206)


@dataclass
class ImportResult(IndexResult):
    """An import's totals, its warnings (one line each) and the links it added."""

    warnings: list[str] = field(default_factory=list)
    links_added: int = 0


@dataclass
class _Revisit:
    capture: Capture
    path: Path
    refers_to: str | None
    target: str | None  # WARC-Refers-To-Target-URI
    date: str | None  # WARC-Refers-To-Date
    digest: str | None  # WARC-Payload-Digest

    @classmethod
    def of(cls, capture: Capture, path: Path, record: StoredRecord) -> _Revisit:
        return cls(
            capture,
            path,
            record.get("WARC-Refers-To"),
            record.get("WARC-Refers-To-Target-URI"),
            record.get("WARC-Refers-To-Date"),
            record.get("WARC-Payload-Digest"),
        )


@dataclass
class _File:
    path: Path
    captures: list[tuple[Capture, dict[str, str]]] = field(default_factory=list)  # + warcinfo
    revisits: list[_Revisit] = field(default_factory=list)
    links: dict[str, int] = field(default_factory=dict)  # links it created: url -> id


def ledger_path(where: Paths) -> Path:
    """The data home's ledger of imported files."""
    return where.home / LEDGER


def import_files(
    session: Session,
    paths: Iterable[Path],
    *,
    ledger: Path | None = None,
    link_ids: Mapping[str, int] | None = None,
) -> ImportResult:
    """Index other tools' WARC and ARC files where they are (each once: a file already in
    the catalog is skipped). With ``ledger``, each imported file is appended to it; new
    links take their id from ``link_ids`` (by URL) when it is free (a rebuild)."""
    result = ImportResult()
    known = set(session.scalars(select(WarcFile.name)))
    done: list[_File] = []
    for path in sorted({Path(p).resolve() for p in paths}):
        if str(path) in known:
            result.skipped += 1
            continue
        attempt, warnings = ImportResult(), []
        try:
            with session.begin_nested():
                imported = _import_file(session, path, attempt, warnings)
        except UnreadableArchiveError as exc:
            result.problems.append(f"{exc}; skipped")
            continue
        except OSError as exc:
            result.problems.append(f"{path}: cannot be read ({exc.strerror or exc}); skipped")
            continue
        for name in ("captures", "bytes", "revisits", "duplicates"):
            setattr(result, name, getattr(result, name) + getattr(attempt, name))
        result.warnings += warnings
        result.files += 1
        known.add(str(path))
        done.append(imported)
    _Linker(session, result, link_ids or {}).run(done)
    # Each capture's custody ledger (captured, indexed), once revisits know their payload.
    record_captures(session, [item for imported in done for item in imported.captures])
    if ledger is not None and done:
        _append_ledger(ledger, done)
    return result


def _import_file(session: Session, path: Path, result: ImportResult, warnings: list[str]) -> _File:
    def warn(offset: int, message: str) -> None:
        warnings.append(f"{path}: offset {offset}: {message}")

    imported = _File(path)
    fields: dict[str, str] = {}
    described: list[tuple[Capture, dict]] = []
    seen: set[str] = set()
    records = 0
    # No flush per lookup: ``seen`` knows this file's records (a file holds thousands).
    with session.no_autoflush:
        for location, record in iter_lenient(path, warn):
            records += 1
            if record.rec_type == "warcinfo":
                fields = warc_fields(record.payload)
                continue
            if not _is_capture(record):
                continue
            record_id = location.record_id
            if record_id in seen or session.scalar(
                select(Capture.id).where(Capture.record_id == record_id)
            ):
                result.duplicates += 1  # the same record (same WARC-Record-ID) indexed already
                continue
            try:
                when = _parse_warc_date(record.date or "")
            except ValueError:
                warn(location.offset, f"unreadable WARC-Date {record.date!r}: record skipped")
                continue
            seen.add(record_id)
            capture = _capture(record, replace(location, filename=str(path)), when, result)
            session.add(capture)
            imported.captures.append((capture, fields))
            if record.rec_type == "revisit":
                imported.revisits.append(_Revisit.of(capture, path, record))
            elif _is_page(capture) and (meta := _extracted(capture, record)) is not None:
                described.append((capture, meta))
    session.flush()
    for capture, meta in described:
        session.add(_metadata_row(capture.id, meta))
    session.add(
        WarcFile(
            name=str(path),
            path=str(path),
            size=path.stat().st_size,
            records=records,
            run_id=None,
            indexed_at=utcnow(),
        )
    )
    session.flush()
    return imported


def _is_capture(record: StoredRecord) -> bool:
    if record.rec_type in ("response", "revisit"):
        return True
    uri = record.target_uri or ""
    return record.rec_type == "resource" and uri.startswith(("http:", "https:", *RENDERED_URNS))


def _capture(
    record: StoredRecord, location: RecordLocation, when: datetime, result: ImportResult
) -> Capture:
    revisit = record.rec_type == "revisit"
    if revisit:  # size and payload digest are the original's, set once it is found
        result.revisits += 1
        size, payload_sha = 0, _payload_sha256(record.get("WARC-Payload-Digest"))
    else:
        size, payload_sha = len(record.payload), sha256_hex(record.payload)
        result.bytes += size
    result.captures += 1
    return capture_row(
        record, location, run_id=None, captured_at=when, size=size, payload_sha256=payload_sha
    )


def _is_page(capture: Capture, original: Capture | None = None) -> bool:
    """An HTML or PDF page as it was served: 2xx (or a resource record); a revisit is one
    when its original is and it answered 2xx or 304 (or has no HTTP head)."""
    if original is not None:
        status = capture.http_status
        return _is_page(original) and (status is None or status == 304 or 200 <= status < 300)
    media = (capture.content_type or "").split(";", 1)[0].strip().lower()
    if "html" not in media and media not in PDF_TYPES:
        return False
    if capture.record_type == "resource":
        return capture.url.startswith(("http:", "https:"))
    status = capture.http_status
    return status is not None and 200 <= status < 300 and status not in _NO_BODY


def _either_scheme(url: str) -> list[str]:
    """``url`` over http and https: replay indexes key URLs without their scheme, and a
    revisit may name the original's URL with the other one."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in ("http", "https"):
        return [f"http://{rest}", f"https://{rest}"]
    return [url]


def _same_digest(a: str, b: str) -> bool:
    try:
        return parse_labelled(a) == parse_labelled(b)
    except ValueError:
        return a.strip() == b.strip()


class _Linker:
    """After a batch of files: revisits tied to their originals, pages to links."""

    def __init__(self, session: Session, result: ImportResult, link_ids: Mapping[str, int]):
        self.session = session
        self.result = result
        self.link_ids = link_ids
        self._source: Source | None = None
        self._country: Country | None = None
        self._listing: dict[int, bool] = {}
        self.rule = death_rule()

    def run(self, files: list[_File]) -> None:
        pages: list[tuple[Capture, _File | None]] = []
        batch: set[int] = set()
        for imported in files:
            for capture, _ in imported.captures:
                batch.add(capture.id)
                if capture.record_type != "revisit" and _is_page(capture):
                    pages.append((capture, imported))
        revisits = [(r, f) for f in files for r in f.revisits]
        for revisit, imported in revisits + self._earlier(batch):
            original = self._original(revisit)
            capture = revisit.capture
            if original is None:
                if imported is not None:
                    wanted = revisit.refers_to or revisit.target or capture.url
                    self.result.warnings.append(
                        f"{revisit.path}: offset {capture.warc_offset}: revisit of {capture.url}:"
                        f" its original ({wanted}) is in no imported file; import the file "
                        "holding it to see its payload"
                    )
                continue
            capture.refers_to = original.record_id
            capture.size, capture.payload_sha256 = original.size, original.payload_sha256
            if _is_page(capture, original):
                meta = self.session.get(PageMetadataRow, original.id)
                if meta is not None and self.session.get(PageMetadataRow, capture.id) is None:
                    self.session.add(_copy_metadata(meta, capture.id))
                pages.append((capture, imported))
        touched: set[int] = set()
        for capture, imported in sorted(pages, key=lambda page: page[0].captured_at):
            link_id = self._link(capture, imported)
            if link_id is not None:
                touched.add(link_id)
        for imported in files:  # a capture of a URL the catalog lists belongs to that link
            for capture, _ in imported.captures:
                if capture.link_id is None and (link := self._listed(capture.url)) is not None:
                    capture.link_id, capture.role = link.id, "page"
        refresh_documents(self.session, touched)

    def _earlier(self, batch: set[int]) -> list[tuple[_Revisit, None]]:
        """Revisits imported before whose original was missing: it may be here now."""
        original = aliased(Capture)
        rows = self.session.scalars(
            select(Capture)
            .outerjoin(original, original.record_id == Capture.refers_to)
            .where(
                Capture.record_type == "revisit",
                Capture.warc_file.like("/%"),  # imported files are named by absolute path
                original.id.is_(None),
            )
        ).all()
        found = []
        for capture in rows:
            record = None if capture.id in batch else self._read(capture)
            if record is None:
                continue
            found.append((_Revisit.of(capture, Path(capture.warc_file), record), None))
        return found

    def _original(self, revisit: _Revisit) -> Capture | None:
        """The capture holding a revisit's payload, if indexed."""
        if revisit.refers_to:
            found = self.session.scalar(
                select(Capture).where(Capture.record_id == revisit.refers_to)
            )
            if found is not None:
                return found
        capture = revisit.capture
        query = select(Capture).where(
            Capture.url.in_(_either_scheme(revisit.target or capture.url)),
            Capture.record_type.in_(("response", "resource")),
        )
        try:
            when = _parse_warc_date(revisit.date) if revisit.date else None
        except ValueError:
            when = None
        query = query.where(
            Capture.captured_at == when if when else Capture.captured_at <= capture.captured_at
        )
        for candidate in self.session.scalars(query.order_by(Capture.captured_at.desc()).limit(20)):
            if revisit.digest is None or self._holds(candidate, revisit.digest):
                return candidate
        return None

    def _holds(self, candidate: Capture, digest: str) -> bool:
        """Whether ``candidate``'s payload has the labelled ``digest`` (any algorithm)."""
        record = self._read(candidate)
        if record is None:
            return False
        declared = record.get("WARC-Payload-Digest")
        if declared and _same_digest(declared, digest):
            return True
        try:
            return digest_matches(digest, record.payload)
        except ValueError:
            return False

    def _read(self, capture: Capture) -> StoredRecord | None:
        where = Path(capture.warc_file)
        if not where.is_absolute():  # one of the data home's own files
            stored = self.session.scalar(
                select(WarcFile.path).where(WarcFile.name == capture.warc_file)
            )
            where = Path(stored or capture.warc_file)
        try:
            return read_record(where, capture.warc_offset)
        except (OSError, ValueError, TruncatedWarcError):
            return None

    def _listed(self, url: str) -> Link | None:
        return self.session.scalar(select(Link).where(Link.url == url).order_by(Link.id).limit(1))

    def _link(self, capture: Capture, imported: _File | None) -> int | None:
        """Tie a page capture to the link of its URL, made if the catalog has none; the
        link whose search document may have changed, if any."""
        link = self._listed(capture.url)
        if link is None:
            link = self._new_link(capture)
            if imported is not None:
                imported.links[capture.url] = link.id
        capture.link_id, capture.role = link.id, "page"
        if self._imported(link):
            if link.updated_at is None or capture.captured_at >= link.updated_at:
                link.last_capture_id = capture.id
            # The page answered at that time, as its capture shows.
            observe(link, "alive", capture.captured_at, self.rule, check=False)
            return link.id
        if link.last_capture_id is None:  # a curated link never crawled: its only capture
            link.last_capture_id = capture.id
            return link.id
        return None

    def _imported(self, link: Link) -> bool:
        """Whether ``link`` is one an import made (listed by the ``imported`` source only)."""
        if link.id not in self._listing:
            source = self._imported_source()
            key = {"link_id": link.id, "source_id": source.id}
            self._listing[link.id] = self.session.get(LinkSource, key) is not None
        return self._listing[link.id]

    def _imported_source(self) -> Source:
        if self._source is None:
            self._source = self.session.scalar(
                select(Source).where(Source.location == IMPORTED_SOURCE)
            )
            if self._source is None:
                self._source = Source(location=IMPORTED_SOURCE, imported_at=utcnow())
                self.session.add(self._source)
                self.session.flush()
        return self._source

    def _unknown_country(self) -> Country:
        if self._country is None:
            self._country = self.session.scalar(
                select(Country).where(Country.name == UNKNOWN_COUNTRY)
            )
            if self._country is None:
                self._country = Country(
                    name=UNKNOWN_COUNTRY, code=UNKNOWN_CODE, original_name=UNKNOWN_COUNTRY
                )
                self.session.add(self._country)
                self.session.flush()
        return self._country

    def _new_link(self, capture: Capture) -> Link:
        meta = self.session.get(PageMetadataRow, capture.id)
        label = ((meta.title if meta else None) or capture.url)[:500]
        wanted = self.link_ids.get(capture.url)
        link = Link(
            id=wanted if wanted and self.session.get(Link, wanted) is None else None,
            country_id=self._unknown_country().id,
            city_id=None,
            kind="report",
            label=label,
            url=capture.url,
            status="pending",
            failures=0,
        )
        self.session.add(link)
        self.session.flush()
        self.session.add(LinkSource(link_id=link.id, source_id=self._imported_source().id,
                                    label=label))  # fmt: skip
        self.session.flush()
        self.result.links_added += 1
        return link


def _copy_metadata(meta: PageMetadataRow, capture_id: int) -> PageMetadataRow:
    """A revisit's page metadata: its original's (the payload is the same)."""
    columns = [c.key for c in PageMetadataRow.__table__.columns if c.key != "capture_id"]
    return PageMetadataRow(capture_id=capture_id, **{k: getattr(meta, k) for k in columns})


# ----------------------------------------------------------------------------- the ledger


def _append_ledger(ledger: Path, files: list[_File]) -> None:
    """One JSON line per imported file, appended and fsynced before the catalog commits (a
    failed commit leaves a line for a file the catalog lacks: a rebuild imports it)."""
    lines = []
    for imported in files:
        stat = imported.path.stat()
        entry = {
            "path": str(imported.path),
            "size": stat.st_size,
            "sha256": file_sha256(imported.path),
            "imported_at": utcnow().isoformat(timespec="seconds") + "Z",
            "links": imported.links,
        }
        lines.append(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
    ledger.parent.mkdir(parents=True, exist_ok=True)
    with open(ledger, "a", encoding="utf-8") as out:
        out.write("".join(lines))
        out.flush()
        os.fsync(out.fileno())


def read_ledger(ledger: Path) -> tuple[list[dict], list[str]]:
    """The ledger's entries, and one line per line that cannot be read."""
    entries, bad = [], []
    if not ledger.exists():
        return entries, bad
    with open(ledger, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                    raise ValueError("no path")
            except ValueError:
                bad.append(f"{ledger}: line {number} is not a ledger entry")
                continue
            entries.append(entry)
    return entries, bad


def restore_imports(session: Session, where: Paths, indexed: IndexResult) -> list[str]:
    """Import again the files the data home's ledger lists (a catalog rebuild), adding the
    totals to ``indexed``; one line per file that is gone, changed or unreadable."""
    entries, lost = read_ledger(ledger_path(where))
    wanted: dict[str, dict] = {}
    for entry in entries:  # the first entry of a path is the file as it was imported
        wanted.setdefault(entry["path"], entry)
    files: list[Path] = []
    link_ids: dict[str, int] = {}
    for name, entry in wanted.items():
        path = Path(name)
        if not path.is_file():
            lost.append(f"imported file {path}: gone (imported {entry.get('imported_at')})")
            continue
        size = path.stat().st_size
        if size != entry.get("size") or file_sha256(path) != entry.get("sha256"):
            lost.append(
                f"imported file {path}: changed since it was imported "
                f"({entry.get('imported_at')}; size {entry.get('size')}, now {size})"
            )
            continue
        files.append(path)
        link_ids.update({u: i for u, i in (entry.get("links") or {}).items() if isinstance(i, int)})
    result = import_files(session, files, link_ids=link_ids)
    lost += [f"imported file {problem}" for problem in result.problems]
    for name in ("files", "skipped", "captures", "bytes", "revisits", "duplicates"):
        setattr(indexed, name, getattr(indexed, name) + getattr(result, name))
    return lost
