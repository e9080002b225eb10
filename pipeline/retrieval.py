"""Reading archived payloads for people: ``linkarchive get``, web downloads and evidence.

Files are found only through catalog rows: a capture names its WARC file, which is the
stored path of an indexed file or a plain file name inside the data home's WARC folder
(see :func:`locate_warc`). Every retrieval and export is appended to the capture's
custody ledger with who and why.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive import StoredRecord, TruncatedWarcError, decoded_payload, read_record
from archive.store import StoreError
from pipeline.catalog import session_scope
from pipeline.catalog.models import Capture, WarcFile
from pipeline.catalog.queries import get_capture, payload_capture, resolve_capture
from pipeline.config import Paths
from pipeline.evidence.custody import append_event, record_capture_events
from pipeline.evidence.ledgerfile import keep_ledger
from pipeline.storage import read_from_store

if TYPE_CHECKING:
    from pipeline.evidence.package import Exported

__all__ = [
    "Retrieved",
    "RetrievalError",
    "check_warc_name",
    "download_name",
    "export_package",
    "locate_warc",
    "read_payload",
    "read_stored",
    "record_retrieval",
    "retrieve_payload",
    "tsa_url",
]


class RetrievalError(ValueError):
    """A capture whose bytes cannot be read: its WARC file is missing or unsafely named."""


class PayloadTooLarge(RetrievalError):
    """A payload that decodes to more than the reader's limit (a decompression bomb, or
    just too big for a browser view): the decoding stopped at the limit."""


def _plain(name: str) -> bool:
    return (
        bool(name)
        and name not in (".", "..")
        and not any(c in name for c in "/\\\x00")
        and Path(name).name == name
    )


def check_warc_name(name: str) -> str:
    """``name`` if it is a plain file name (no folder, no ``..``), else RetrievalError."""
    if not _plain(name):
        raise RetrievalError(f"the catalog names WARC file {name[:200]!r}: not a plain file name")
    return name


def _indexed_path(session: Session, name: str) -> Path | None:
    """The stored absolute path of the indexed WARC file called ``name``, if any."""
    stored = session.scalar(select(WarcFile.path).where(WarcFile.name == name)) if name else None
    return Path(stored) if stored and Path(stored).is_absolute() else None


def locate_warc(session: Session, where: Paths, name: str, capture_id: int) -> Path:
    """The WARC file called ``name`` in the catalog: the stored absolute path of an indexed
    file of that name if it exists (imported files are indexed in place, named by their
    path), else ``name`` inside the data home's WARC folder.

    Raises RetrievalError for a name that is not a plain file name (unless it is an
    indexed file's), a path that would leave the WARC folder, or a file that is missing.
    """
    stored = _indexed_path(session, name)
    if stored is not None and (stored.is_file() or not _plain(name)):
        if not stored.is_file():
            raise RetrievalError(f"WARC file {stored} of capture {capture_id} is missing")
        return stored
    check_warc_name(name)
    folder = where.warcs.resolve()
    warc = (folder / name).resolve()
    if not warc.is_relative_to(folder):  # a symlink pointing out of the folder
        raise RetrievalError(f"WARC file {name!r} of capture {capture_id} is outside {folder}")
    if not warc.is_file():
        missing = stored or where.warcs / name
        raise RetrievalError(f"WARC file {missing} of capture {capture_id} is missing")
    return warc


def read_stored(session: Session, where: Paths, capture: Capture) -> tuple[Capture, StoredRecord]:
    """The capture holding ``capture``'s payload (a revisit's original) and its record."""
    holder = payload_capture(session, capture)
    try:
        warc = locate_warc(session, where, holder.warc_file, capture.id)
    except RetrievalError:  # not here: read it from the WARC store, if a copy is there
        try:
            stored = read_from_store(session, holder)
        except (StoreError, TruncatedWarcError) as exc:
            raise RetrievalError(f"capture {capture.id}: the WARC store: {exc}") from exc
        if stored is None:
            raise
        return holder, stored
    try:
        return holder, read_record(warc, holder.warc_offset)
    except (TruncatedWarcError, OSError, ValueError) as exc:
        raise RetrievalError(
            f"capture {capture.id}: its record in {holder.warc_file} at offset "
            f"{holder.warc_offset} cannot be read: the file is damaged or was altered "
            f"(check it with `warcio check {warc}`)"
        ) from exc


@dataclass
class Retrieved:
    """A capture's payload as a browser would save it (content-encoding removed)."""

    capture: Capture
    holder: Capture  # the capture whose record holds the payload (itself or the original)
    body: bytes
    sha256: str
    content_type: str | None  # the archived response's Content-Type header

    @property
    def filename(self) -> str:
        """A safe file name for a download of this payload."""
        return download_name(self.capture.url, self.content_type, self.capture.id)


def read_payload(where: Paths, capture_id: int, limit: int = 0) -> Retrieved:
    """Read a capture's payload (a revisit's from its original); records nothing. With
    ``limit``, a payload decoding to more bytes raises :class:`PayloadTooLarge` (never
    more than ``limit`` + 1 bytes are decoded)."""
    with session_scope(where.database_url) as session:
        capture = get_capture(session, capture_id)
        holder, record = read_stored(session, where, capture)
    body = decoded_payload(record, limit=limit + 1 if limit else 0)
    if limit and len(body) > limit:
        raise PayloadTooLarge(f"capture {capture_id} decodes to more than {limit // (1 << 20)} MiB")
    return Retrieved(
        capture=capture,
        holder=holder,
        body=body,
        sha256=hashlib.sha256(body).hexdigest(),
        content_type=record.http_header("Content-Type") or holder.content_type,
    )


def record_retrieval(
    where: Paths, got: Retrieved, *, actor: str, reason: str | None, output: str
) -> None:
    """Append the ``retrieved`` event of a payload handed out to ``output``."""
    details = {
        "output": output,
        "bytes": len(got.body),
        "sha256": got.sha256,
        "content": "payload, content-encoding decoded",
        "payload_record": got.holder.record_id,
    }
    with session_scope(where.database_url, write_lock=True) as session:
        keep_ledger(session, where)
        # A capture indexed before custody ledgers existed gets its ledger now.
        record_capture_events(
            session,
            got.capture,
            reason="ledger started on retrieval: indexed before ledgers existed",
        )
        append_event(
            session, got.capture.id, "retrieved", actor=actor, reason=reason, details=details
        )


def retrieve_payload(
    where: Paths,
    capture_id: int,
    *,
    actor: str,
    reason: str | None,
    output: str | None = None,
) -> Retrieved:
    """Read a capture's payload, write it to ``output`` if given ('-' is stdout), and
    append the ``retrieved`` custody event; nothing is recorded if reading or writing fails.

    Without ``output`` the caller hands the bytes out itself (a web download): the event
    names the download's file name.
    """
    got = read_payload(where, capture_id)
    if output == "-":
        sys.stdout.buffer.write(got.body)
        sys.stdout.buffer.flush()
        recorded = "-"
    elif output is not None:
        Path(output).write_bytes(got.body)
        recorded = str(Path(output).resolve())
    else:
        recorded = f"web download {got.filename}"
    record_retrieval(where, got, actor=actor, reason=reason, output=recorded)
    return got


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def download_name(url: str, content_type: str | None, capture_id: int) -> str:
    """A file name for a payload: the URL's last path segment reduced to safe characters,
    with an extension for its type when it has none."""
    segment = unquote(urlsplit(url).path.rstrip("/").rpartition("/")[2])
    name = _UNSAFE.sub("_", segment).strip("._-")[:100] or f"capture-{capture_id}"
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if not Path(name).suffix and mime:
        extension = ".html" if mime == "text/html" else mimetypes.guess_extension(mime)
        name += extension or ""
    return name


def tsa_url() -> str | None:
    """The timestamp authority evidence packages are stamped by ($LINKARCHIVE_TSA_URL)."""
    return os.environ.get("LINKARCHIVE_TSA_URL") or None


def export_package(
    where: Paths,
    output: Path,
    *,
    reason: str,
    requested_by: str | None,
    actor: str | None = None,
    target: str | None = None,
    capture_id: int | None = None,
    at: datetime | None = None,
    overwrite: bool = False,
) -> Exported:
    """Export a capture (by id, or a link's closest to ``at``) as an evidence package.

    ``actor`` is who exports (default: ``requested_by``, else the operator); the custody
    ``exported`` event names them, and ``requested_by`` too when both are given.
    """
    # Here, not at the top: `get` and downloads need not import the packaging (WACZ,
    # signing, timestamps) and, through it, the indexer's extraction libraries.
    from pipeline.evidence.package import export_evidence

    with session_scope(where.database_url, write_lock=True) as session:
        keep_ledger(session, where)
        capture = resolve_capture(session, target, capture_id, at)
        for held in (capture, payload_capture(session, capture)):
            if _indexed_path(session, held.warc_file) is None:
                check_warc_name(held.warc_file)  # export looks in the WARC folder then
        return export_evidence(
            session,
            where,
            capture,
            reason=reason,
            requested_by=requested_by,
            actor=actor,
            output=output,
            overwrite=overwrite,
            tsa_url=tsa_url(),
        )
