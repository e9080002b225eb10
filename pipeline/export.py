"""What goes into an export package: the records of the selected links, found via the catalog.

:func:`plan_export` turns a link selection (and optionally one crawl run) into the list
of WARC gzip members to copy and the pages to list; :mod:`archive.wacz` writes them.
Included, for every selected link:

- its captures (responses and revisits: pages, redirects, retried attempts, gallery
  pages, requisites, images, media), also those it shares with links crawled before it
  in the same crawl process (found through its ``media`` rows and the chains of its
  crawl-context metadata records);
- the ``request`` record of each of those captures (``WARC-Concurrent-To``) and the
  crawl-context ``metadata`` records of the selected links that refer to them;
- the original record of every revisit, even when it belongs to another link or run
  (a revisit whose original is not in the catalog, as other tools' files may hold,
  is packaged without it, with a warning);
- the ``warcinfo`` record of every WARC file anything is copied from.

Only the WARC files holding the captures are read (revisit originals' files: their
warcinfo only). A link whose crawl got no response at all (a host that does not
resolve) has no capture and so is not in the package.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from archive import iter_records
from archive.store import StoreError
from archive.wacz import Member, Page
from pipeline.catalog.models import Capture, CrawlRun, Link, Media, PageMetadataRow, WarcFile
from pipeline.catalog.queries import Selection, select_links
from pipeline.config import paths
from pipeline.crawlcontext import BROWSER_FORMAT, METADATA_FORMAT
from pipeline.storage import cached_copy

__all__ = ["ExportError", "ExportPlan", "plan_export"]

KIND_TITLES = {"report": "reports", "photo_gallery": "photo galleries", "video": "videos"}


class ExportError(ValueError):
    """Nothing to export for the selection, or the archive cannot supply it (one line)."""


@dataclass
class ExportPlan:
    """What a package of the selection holds: members in copy order and the pages."""

    members: list[Member]
    pages: list[Page]
    title: str
    description: str
    links: int
    captures: int
    revisit_originals: int
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # packaged, but worth saying


@dataclass
class _Scan:
    """The records of one WARC file that a package may need, by what they relate to."""

    warcinfo: list[Member] = field(default_factory=list)
    requests: dict[str, Member] = field(default_factory=dict)  # by their record id
    # record id -> ids it is WARC-Concurrent-To (both ways: we link request -> response,
    # wget and others response -> request)
    concurrent: dict[str, set[str]] = field(default_factory=dict)
    # crawl-context metadata: (member, refers-to record id, context)
    contexts: list[tuple[Member, str | None, dict[str, Any]]] = field(default_factory=list)
    # browser-capture metadata (browser, viewport, behaviours): (member, refers-to id)
    rendered: list[tuple[Member, str | None]] = field(default_factory=list)


def _scan(path: Path) -> _Scan:
    found = _Scan()
    # Not strict: of an imported file damaged at its end the catalog indexed the records
    # before the damage, and those are what a package can hold.
    for location, record in iter_records(path, strict=False):
        member = Member(path, location.offset, location.length)
        if record.rec_type in ("request", "response", "revisit"):
            for name, value in record.headers:
                if name.lower() == "warc-concurrent-to":
                    found.concurrent.setdefault(location.record_id, set()).add(value)
                    found.concurrent.setdefault(value, set()).add(location.record_id)
        if record.rec_type == "warcinfo":
            found.warcinfo.append(member)
        elif record.rec_type == "request":
            found.requests[location.record_id] = member
        elif record.rec_type == "metadata" and "json" in (record.content_type or ""):
            try:
                context = json.loads(record.payload)
            except ValueError:
                continue
            if isinstance(context, dict) and context.get("format") == METADATA_FORMAT:
                found.contexts.append((member, record.get("WARC-Refers-To"), context))
            elif isinstance(context, dict) and context.get("format") == BROWSER_FORMAT:
                found.rendered.append((member, record.get("WARC-Refers-To")))
    return found


def _head(path: Path) -> list[Member]:
    """The warcinfo record at the head of ``path`` (reading that record only)."""
    for location, record in iter_records(path, strict=False):
        if record.rec_type == "warcinfo":
            return [Member(path, location.offset, location.length)]
        break
    return []


class _Files:
    """WARC file names of the catalog -> paths on disk."""

    def __init__(self, session: Session, warcs: Path) -> None:
        self.session = session
        self.warcs = warcs
        self.where = paths(warcs.parent)  # the data home whose warcs/ these are
        self.paths: dict[str, Path] = {}

    def __call__(self, name: str) -> Path:
        path = self.paths.get(name)
        if path is None:
            stored = self.session.scalar(select(WarcFile.path).where(WarcFile.name == name))
            for candidate in (Path(stored) if stored else None, self.warcs / name):
                if candidate is not None and candidate.is_file():
                    path = self.paths[name] = candidate
                    break
            else:  # not here: a verified copy from the WARC store, if one is there
                try:
                    path = cached_copy(self.session, self.where, name)
                except StoreError as exc:
                    raise ExportError(f"WARC file {name}: the WARC store: {exc}") from exc
                if path is None:
                    raise ExportError(f"WARC file {name} is missing (not in {self.warcs})")
                self.paths[name] = path
        return path


def _member(capture: Capture, files: _Files) -> Member:
    return Member(files(capture.warc_file), capture.warc_offset, capture.warc_length)


def _title(links: list[Link], selection: Selection, run_id: int | None) -> str:
    parts = []
    if selection.country:
        parts.append(links[0].country.name)
    if selection.city:
        parts.append(" / ".join(sorted({link.city.name for link in links if link.city})))
    if selection.kind:
        parts.append(KIND_TITLES.get(selection.kind, selection.kind))
    if run_id is not None:
        parts.append(f"crawl run {run_id}")
    return "linkarchive: " + (", ".join(parts) if parts else "all links")


def plan_export(
    session: Session, selection: Selection, warcs: Path, run_id: int | None = None
) -> ExportPlan:
    """The members and pages of a package of the selected links' captures.

    ``warcs`` is the data home's WARC folder (used when the catalog's stored path of a
    file no longer exists). Raises QueryError for an unknown place or kind and
    ExportError when nothing is selected or a WARC file is missing.
    """
    if run_id is not None and session.get(CrawlRun, run_id) is None:
        raise ExportError(f"no crawl run {run_id}")
    links = select_links(session, selection)
    if not links:
        raise ExportError("no links match the selection")
    return plan_links(session, links, warcs, run_id, _title(links, selection, run_id))


def plan_links(
    session: Session,
    links: list[Link],
    warcs: Path,
    run_id: int | None,
    title: str,
    extra: Sequence[Capture] = (),
) -> ExportPlan:
    """The members and pages of a package of these links' captures (in run ``run_id``),
    plus the ``extra`` captures (resources taken from other runs)."""
    link_ids = {link.id for link in links}
    in_run = [Capture.run_id == run_id] if run_id is not None else []
    shared = select(Media.capture_id).where(Media.link_id.in_(link_ids))
    if run_id is not None:
        shared = shared.where(Media.run_id == run_id)
    query = select(Capture).where(or_(Capture.link_id.in_(link_ids), Capture.id.in_(shared)))
    captures = {c.record_id: c for c in session.scalars(query.where(*in_run))}
    captures |= {c.record_id: c for c in extra}
    if not captures:
        where = f" in crawl run {run_id}" if run_id is not None else ""
        raise ExportError(f"no captures of the {len(links)} selected links{where}: crawl first")

    files = _Files(session, warcs)
    scans: dict[Path, _Scan] = {}
    contexts: list[tuple[Member, str | None, dict[str, Any]]] = []
    while True:  # chains of the selected links' metadata may name captures of other files
        pending = {files(c.warc_file) for c in captures.values()} - set(scans)
        if not pending:
            break
        for path in sorted(pending):
            scans[path] = _scan(path)
            contexts += scans[path].contexts
        chained = {
            record_id
            for _, _, context in contexts
            if context.get("link_id") in link_ids
            and (run_id is None or context.get("run_id") == run_id)
            for record_id in context.get("chain") or []
        } - set(captures)
        if chained:
            found = session.scalars(select(Capture).where(Capture.record_id.in_(chained)))
            captures |= {c.record_id: c for c in found}

    members = [_member(c, files) for c in captures.values()]
    for scan in scans.values():
        members += scan.warcinfo
        members += [member for member, refers_to in scan.rendered if refers_to in captures]
        for record_id in captures:
            for other in scan.concurrent.get(record_id, ()):
                if other in scan.requests:
                    members.append(scan.requests[other])
    members += [
        member
        for member, refers_to, context in contexts
        if refers_to in captures
        and context.get("link_id") in link_ids
        and (run_id is None or context.get("run_id") == run_id)
    ]
    revisits = [c for c in captures.values() if c.record_type == "revisit"]
    revisited = {c.refers_to for c in revisits if c.refers_to}
    originals = list(session.scalars(select(Capture).where(Capture.record_id.in_(revisited))))
    found = {c.record_id for c in originals}
    unresolved = [c for c in revisits if c.refers_to not in found]
    warnings = []
    if unresolved:
        warnings.append(
            f"{len(unresolved)} revisit records refer to records not in the catalog (e.g. "
            f"{unresolved[0].url}); they are packaged without their payload"
        )
    for original in originals:
        members.append(_member(original, files))
        path = files(original.warc_file)
        if path not in scans:
            scans[path] = _Scan(warcinfo=_head(path))
            members += scans[path].warcinfo

    order = {link.id: index for index, link in enumerate(links)}
    page_captures = sorted(
        (c for c in captures.values() if c.role == "page" and c.link_id in link_ids),
        key=lambda c: (order[c.link_id or 0], c.captured_at, c.id),
    )
    titles = dict(
        session.execute(
            select(PageMetadataRow.capture_id, PageMetadataRow.title).where(
                PageMetadataRow.capture_id.in_([c.id for c in page_captures])
            )
        ).all()
    )
    pages = [
        Page(
            c.url,
            c.captured_at,
            titles.get(c.id),
            c.record_id.strip("<>").removeprefix("urn:uuid:"),
        )
        for c in page_captures
    ]
    unique = sorted(set(members), key=lambda m: (str(m.path), m.offset))
    description = (
        f"{len(links)} curated links ({len(pages)} page captures) archived by linkarchive: "
        f"{len(captures)} captures with their requests and crawl-context metadata, and "
        f"{len(originals)} original records of revisits. WARC records copied unchanged "
        f"from {len(scans)} WARC files."
    )
    return ExportPlan(
        members=unique,
        pages=pages,
        title=title,
        description=description,
        links=len(links),
        captures=len(captures),
        revisit_originals=len(originals),
        files=sorted(scans, key=str),
        warnings=warnings,
    )
