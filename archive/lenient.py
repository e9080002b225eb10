"""Reading other tools' WARC and ARC files as leniently as warcio and pywb do.

Our own files are read strictly (:func:`archive.reader.iter_records`): a bad record
there is a torn tail to cut. Files written elsewhere (wget, warcprox, Heritrix, pywb's
samples, old ARC crawls) often hold a record whose Content-Length is a few bytes off, a
stray line between records, or a cut member. Here such a record is reported to ``warn``
with its byte offset, and reading resumes at the next record start found after it (a
``WARC/1.x`` or ARC header line in an uncompressed file, a gzip member that holds a
record in a compressed one), as warcio's iterator and pywb's indexer read on.

ARC files (``.arc``, ``.arc.gz``) are read through warcio's ``arc2warc`` conversion.
Their records, and records without a ``WARC-Record-ID``, get an id derived from their
content and offset, so importing the same file again names them the same.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
import zlib
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import BinaryIO

from warcio.bufferedreaders import DecompressingBufferedReader
from warcio.recordloader import ArcWarcRecord, ArcWarcRecordLoader
from warcio.utils import BUFF_SIZE

from archive.reader import (
    _READ_ERRORS,
    StoredRecord,
    _only_separators,
    _QuietIterator,
    _stored,
)
from archive.writer import RecordLocation

__all__ = ["UnreadableArchiveError", "Warn", "iter_lenient"]

#: Called with the byte offset of a problem and one line saying what was done about it.
Warn = Callable[[int, str], None]

_CHUNK = 1 << 20
_GZIP_START = re.compile(rb"\x1f\x8b\x08")
# A WARC record's version line, or an ARC record's header line (URL IP date ...).
_PLAIN_START = re.compile(rb"WARC/1\.[01]\r?\n|[A-Za-z][A-Za-z0-9+.-]*:\S+ \S+ \d{14}")
_RecordGenerator = Generator[tuple[RecordLocation, StoredRecord], None, int | None]
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S")


class _Loader(ArcWarcRecordLoader):
    """warcio's record loader, remembering whether the last record had an ARC header."""

    from_arc = False

    def _detect_type_load_headers(self, *args: object, **kwargs: object) -> tuple:
        the_format, headers = super()._detect_type_load_headers(*args, **kwargs)
        self.from_arc = the_format == "arc2warc"
        return the_format, headers


class _QuietReader(DecompressingBufferedReader):
    """warcio's reader without its line on stderr for each undecodable gzip block: the
    damage is reported once, with its offset, by the reader that skips it."""

    def _decompress(self, data: bytes) -> bytes:
        if self.decompressor and data and self.num_block_read:
            try:
                return self.decompressor.decompress(data)
            except zlib.error:
                return b""  # as warcio does: the record ends short here
        return super()._decompress(data)


def _iterator(fh: BinaryIO) -> tuple[_QuietIterator, _Loader]:
    it = _QuietIterator(fh, no_record_parse=True, arc2warc=True)
    it.loader = loader = _Loader(verify_http=False, arc2warc=True)
    it.reader = _QuietReader(fh, block_size=BUFF_SIZE)
    return it, loader


def _plausible(loader: _Loader, arc: bool, rec: ArcWarcRecord) -> bool:
    """False for text that warcio took for an ARC header: in a WARC file, or naming no URI."""
    if not loader.from_arc:
        return True
    uri = rec.rec_headers.get_header("WARC-Target-URI") or ""
    return arc and (rec.rec_type == "warcinfo" or bool(_URI.match(uri)))


class UnreadableArchiveError(Exception):
    """A file of which no record can be read by offset."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def iter_lenient(path: str | Path, warn: Warn) -> Iterator[tuple[RecordLocation, StoredRecord]]:
    """Yield (location, record) for every readable record of a WARC or ARC file.

    Bad records and bytes that are no record are passed to ``warn`` and skipped. Raises
    UnreadableArchiveError if no record at all can be read, or if the records share one
    gzip stream (no record could then be read back by its offset).
    """
    real = Path(path)
    with open(real, "rb") as fh:
        reader = _LenientReader(fh, real, warn)
        start: int | None = 0
        while start is not None:
            start = yield from reader.segment(start)
    if not reader.records:
        reason = reader.first_problem or "empty file"
        raise UnreadableArchiveError(real, f"not a readable WARC or ARC file ({reason})")


class _LenientReader:
    def __init__(self, fh: BinaryIO, path: Path, warn: Warn) -> None:
        self.fh = fh
        self.path = path
        self.size = os.fstat(fh.fileno()).st_size
        self.gz = os.pread(fh.fileno(), 2, 0) == b"\x1f\x8b"
        self.arc = _starts_arc(fh, self.gz)
        self.records = 0
        self.first_problem = ""
        self._warn = warn

    def warn(self, offset: int, message: str, reason: str | None = None) -> None:
        self.first_problem = self.first_problem or reason or message
        self._warn(offset, message)

    def segment(self, start: int) -> _RecordGenerator:
        """Records from ``start`` until the end or a problem; returns where to read on."""
        self.fh.seek(start)
        it, loader = _iterator(self.fh)
        end = start
        try:
            while True:
                try:
                    rec = next(it)
                    block = rec.raw_stream.read()
                    offset = it.get_record_offset()
                    length = it.get_record_length()
                except StopIteration:
                    break
                except _READ_ERRORS as exc:
                    if "non-chunked gzip" in str(exc):
                        raise UnreadableArchiveError(
                            self.path,
                            "its records are compressed as one gzip stream, not one gzip "
                            "member each, so none can be read by offset (`warcio recompress` "
                            "makes a copy that can be imported)",
                        ) from None
                    return self.skip(end, _reason(exc))
                if offset > end and not _only_separators(self.fh, end, offset):
                    self.warn(
                        end,
                        f"{offset - end} bytes belong to no record (the Content-Length of "
                        f"the record before is probably wrong); read on at offset {offset}",
                    )
                if not _plausible(loader, self.arc, rec):
                    return self.skip(end, "bytes that are no WARC or ARC record")
                problem = _cut_short(rec, block, it)
                if problem:
                    return self.skip(offset, problem)
                declared = (rec.rec_headers.get_header("Content-Length") or "").strip()
                if not declared.isdigit():
                    self.warn(offset, f"invalid length {declared[:40]!r}: read as an empty record")
                stored = _stored(rec, block)
                if self.arc or not stored.record_id:
                    _name_record(stored, offset)
                self.records += 1
                yield RecordLocation(self.path.name, offset, length, stored.record_id or ""), stored
                end = offset + length
        finally:
            it.close()
        if end < self.size and not _only_separators(self.fh, end, self.size):
            return self.skip(end, f"{self.size - end} bytes at the end are no record")
        return None

    def skip(self, at: int, reason: str) -> int | None:
        """Warn about the bad bytes at ``at``; the offset of the next record after them."""
        following = _next_record_start(self.fh, at + 1, self.size, self.gz, self.arc)
        then = (
            "nothing readable after it" if following is None else f"read on at offset {following}"
        )
        self.warn(at, f"{reason}; skipped, {then}", reason)
        return following


def _reason(exc: BaseException) -> str:
    # warcio quotes the undecodable bytes it met ("first line: [...]"): not for a reader.
    text = str(exc).strip().split(", first line:")[0].split("\n")[0]
    return f"unreadable record ({type(exc).__name__}: {text})"[:200]


def _cut_short(rec: object, block: bytes, it: _QuietIterator) -> str | None:
    length = getattr(rec, "length", None)
    if isinstance(length, int) and len(block) < length:
        return f"record cut short ({len(block)} of {length} bytes)"
    decompressor = getattr(getattr(it, "reader", None), "decompressor", None)
    if decompressor is not None and not getattr(decompressor, "eof", True):
        return "record's gzip member is cut short"
    return None


def _name_record(stored: StoredRecord, offset: int) -> None:
    """Give an ARC record (warcio makes up a random id) or an id-less record a stable id."""
    seed = "|".join(
        [
            stored.target_uri or "",
            stored.date or "",
            str(offset),
            hashlib.sha1(stored.block).hexdigest(),
        ]
    )
    value = f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, seed)}>"
    headers = [(k, v) for k, v in stored.headers if k.lower() != "warc-record-id"]
    stored.headers = [("WARC-Record-ID", value), *headers]


def _starts_arc(fh: BinaryIO, gz: bool) -> bool:
    """Whether the file is an ARC file (it starts with a ``filedesc://`` record)."""
    head = os.pread(fh.fileno(), 4096, 0)
    if gz:
        try:
            head = zlib.decompressobj(zlib.MAX_WBITS + 16).decompress(head, 64)
        except zlib.error:
            return False
    return head.lstrip().startswith(b"filedesc://")


def _record_at(fh: BinaryIO, offset: int, arc: bool) -> bool:
    fh.seek(offset)
    it, loader = _iterator(fh)
    try:
        rec = next(it)
        return _plausible(loader, arc, rec)
    except (StopIteration, *_READ_ERRORS):
        return False
    finally:
        it.close()


def _next_record_start(fh: BinaryIO, pos: int, size: int, gz: bool, arc: bool) -> int | None:
    """The first offset at or after ``pos`` where a record can be read."""
    pattern = _GZIP_START if gz else _PLAIN_START
    while pos < size:
        chunk = os.pread(fh.fileno(), _CHUNK + 64, pos)
        for match in pattern.finditer(chunk):
            if match.start() >= _CHUNK:
                break  # the next window looks at it
            at = pos + match.start()
            line_start = gz or at == 0 or os.pread(fh.fileno(), 1, at - 1) == b"\n"
            if line_start and _record_at(fh, at, arc):
                return at
        pos += _CHUNK
    return None
