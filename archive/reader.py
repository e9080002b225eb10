"""Reading records back from ``.warc.gz`` files (via warcio's ``ArchiveIterator``).

Records are returned as :class:`StoredRecord`: WARC headers, the parsed HTTP head (for
request/response/revisit records of http(s) URIs, as warcio decides), the block exactly
as stored and the payload (the HTTP entity body as stored, still content-encoded).
HTTP header text is decoded as ISO-8859-1 (the inverse of how it is written); values
are stripped of surrounding blanks, as HTTP prescribes.

A record is complete when its gzip member is complete and its block has Content-Length
bytes.  Reading stops at the first incomplete record or unreadable bytes: for the
``.open`` file left by a killed writer that is the torn tail, and
:class:`TruncatedWarcError` reports where the complete prefix ends (``offset``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.recordloader import ArcWarcRecord
from warcio.statusandheaders import StatusAndHeadersParserException

from archive.digests import parse_labelled
from archive.writer import OPEN_SUFFIX, RecordLocation

__all__ = [
    "ContentDecodingError",
    "StoredRecord",
    "TruncatedWarcError",
    "decoded_payload",
    "iter_records",
    "read_record",
    "resolve_path",
    "verify_record",
]

_HTTP_RECORD_TYPES = ("response", "request", "revisit")
_READ_ERRORS = (
    ArchiveLoadFailed,
    StatusAndHeadersParserException,
    EOFError,
    zlib.error,
    ValueError,
    IndexError,
)


class TruncatedWarcError(Exception):
    """A WARC file ends in (or contains) an incomplete or unreadable record.

    ``offset`` is where the last complete record ends: the file's bytes before it are
    whole records, what follows is the torn tail to cut.
    """

    def __init__(self, path: Path, offset: int, reason: str) -> None:
        # warcio quotes the undecodable bytes it met ("first line: [...]"): not for a reader.
        reason = reason.split(", first line:")[0].encode("ascii", "replace").decode()[:200]
        super().__init__(f"{path}: incomplete or unreadable record at offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


class ContentDecodingError(ValueError):
    """The payload cannot be decoded according to its Content-Encoding."""


@dataclass
class StoredRecord:
    """One record as stored, fully read.

    ``headers`` are the WARC headers in file order; ``http_headers`` the HTTP headers
    (order, case and repeats as stored) or None for non-HTTP records; ``payload`` is the
    part of ``block`` after the HTTP head (the whole block for non-HTTP records).
    """

    rec_type: str
    headers: list[tuple[str, str]]
    http_status: int | None
    http_headers: list[tuple[str, str]] | None
    block: bytes
    payload: bytes
    http_reason: str | None = None
    http_version: str | None = None
    http_method: str | None = None
    http_target: str | None = None

    def get(self, name: str, default: str | None = None) -> str | None:
        """First WARC header called ``name`` (case-insensitive)."""
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return default

    def http_header(self, name: str, default: str | None = None) -> str | None:
        """First HTTP header called ``name`` (case-insensitive)."""
        values = self.http_header_all(name)
        return values[0] if values else default

    def http_header_all(self, name: str) -> list[str]:
        """All values of HTTP header ``name`` in stored order."""
        lname = name.lower()
        return [v for k, v in self.http_headers or [] if k.lower() == lname]

    @property
    def record_id(self) -> str | None:
        """WARC-Record-ID."""
        return self.get("WARC-Record-ID")

    @property
    def target_uri(self) -> str | None:
        """WARC-Target-URI."""
        return self.get("WARC-Target-URI")

    @property
    def date(self) -> str | None:
        """WARC-Date (text)."""
        return self.get("WARC-Date")

    @property
    def content_type(self) -> str | None:
        """WARC Content-Type of the block."""
        return self.get("Content-Type")


# ----------------------------------------------------------------------------- parsing


def _parse_http_head(block: bytes) -> tuple[str, list[tuple[str, str]], int]:
    """Split an HTTP message: (first line, headers, offset of the body)."""
    lines: list[str] = []
    pos = 0
    end = len(block)
    while pos < end:
        nl = block.find(b"\n", pos)
        nxt = end if nl < 0 else nl + 1
        line = block[pos:nxt].rstrip(b"\r\n")
        pos = nxt
        if not line:
            break
        lines.append(line.decode("latin-1"))
    first = lines[0] if lines else ""
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:  # obsolete line folding
            name, value = headers[-1]
            headers[-1] = (name, (value + " " + line.strip(" \t")).strip(" \t"))
            continue
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.rstrip(" \t"), value.strip(" \t")))
    return first, headers, pos


def _stored(rec: ArcWarcRecord, block: bytes) -> StoredRecord:
    rec_type = rec.rec_type
    headers = list(rec.rec_headers.headers)
    uri = (rec.rec_headers.get_header("WARC-Target-URI") or "").lower()
    stored = StoredRecord(rec_type, headers, None, None, block, block)
    if rec_type in _HTTP_RECORD_TYPES and uri.startswith(("http:", "https:")) and block:
        first, http_headers, body_at = _parse_http_head(block)
        stored.http_headers = http_headers
        stored.payload = block[body_at:]
        parts = first.split(" ", 2)
        if rec_type == "request":
            stored.http_method = parts[0]
            stored.http_target = parts[1] if len(parts) > 1 else None
            stored.http_version = parts[2] if len(parts) > 2 else None
        else:
            stored.http_version = parts[0]
            if len(parts) > 1 and parts[1].isdigit():
                stored.http_status = int(parts[1])
            stored.http_reason = parts[2] if len(parts) > 2 else ""
    return stored


class _QuietIterator(ArchiveIterator):
    """warcio's iterator without its multi-line stderr warning about a record not
    followed by a newline: a damaged record is reported once, by us, as
    TruncatedWarcError (the user sees one line, not warcio's raw bytes)."""

    INC_RECORD = ""


def _incomplete(rec: ArcWarcRecord, block: bytes, it: _QuietIterator) -> str | None:
    """Why the record just read is incomplete, or None if it is complete."""
    declared = rec.rec_headers.get_header("Content-Length")
    if declared is None or not declared.strip().isdigit():
        return "no valid Content-Length"
    if int(declared) != len(block):
        return f"block has {len(block)} of {int(declared)} bytes"
    decompressor = getattr(getattr(it, "reader", None), "decompressor", None)
    if decompressor is not None and not getattr(decompressor, "eof", True):
        return "gzip member not complete"
    return None


def resolve_path(path: str | Path) -> Path:
    """``path`` itself, or ``<path>.open`` if only that exists (a file still being written)."""
    path = Path(path)
    if not path.exists():
        open_path = path.with_name(path.name + OPEN_SUFFIX)
        if open_path.exists():
            return open_path
    return path


def _final_name(path: Path) -> str:
    name = path.name
    return name[: -len(OPEN_SUFFIX)] if name.endswith(OPEN_SUFFIX) else name


# ----------------------------------------------------------------------------- reading


def read_record(path: str | Path, offset: int) -> StoredRecord:
    """Read the record whose gzip member starts at ``offset`` in ``path``.

    ``path`` may be a final name whose file is still ``.open``.  Raises
    TruncatedWarcError if no complete record starts there.
    """
    real = resolve_path(path)
    with open(real, "rb") as fh:
        fh.seek(offset)
        return read_member(fh, real, offset)


def read_member(fh: BinaryIO, where: Path | str, offset: int) -> StoredRecord:
    """The record whose gzip member starts at ``fh``'s position: a file positioned at
    ``offset``, or the bytes of one member read by range from a store. ``where`` and
    ``offset`` name it in errors. A record of an imported ARC file is read as WARC."""
    it = _QuietIterator(fh, no_record_parse=True, arc2warc=True)
    try:
        rec = next(it)
        block = rec.raw_stream.read()
        it.get_record_length()  # consume the member's end
    except StopIteration:
        raise TruncatedWarcError(Path(where), offset, "no record at this offset") from None
    except _READ_ERRORS as exc:
        raise TruncatedWarcError(Path(where), offset, f"{type(exc).__name__}: {exc}") from exc
    problem = _incomplete(rec, block, it)
    if problem:
        raise TruncatedWarcError(Path(where), offset, problem)
    stored = _stored(rec, block)
    it.close()
    return stored


def iter_records(
    path: str | Path, *, strict: bool = True
) -> Iterator[tuple[RecordLocation, StoredRecord]]:
    """Yield (location, record) for every complete record in ``path``, in file order.

    Locations name the final file (without ``.open``) and give each gzip member's
    offset and length as warcio's ArchiveIterator measures them.  At the first
    incomplete or unreadable record (the torn tail of a crashed ``.open`` file) or
    trailing bytes that are no record, iteration stops: with ``strict`` (default)
    TruncatedWarcError is raised after the complete records were yielded, giving the
    offset where they end; with ``strict=False`` iteration just ends there.
    """
    real = resolve_path(path)
    name = _final_name(real)
    size = os.path.getsize(real)
    end = 0
    reason: str | None = None
    with open(real, "rb") as fh:
        it = _QuietIterator(fh, no_record_parse=True)
        while True:
            try:
                rec = next(it)
            except StopIteration:
                break
            except _READ_ERRORS as exc:
                reason = f"{type(exc).__name__}: {exc}"
                break
            try:
                block = rec.raw_stream.read()
                offset = it.get_record_offset()
                length = it.get_record_length()
            except _READ_ERRORS as exc:
                reason = f"{type(exc).__name__}: {exc}"
                break
            problem = _incomplete(rec, block, it)
            if problem or not _only_separators(fh, end, offset):
                reason = problem or f"unexpected bytes before offset {offset}"
                break
            stored = _stored(rec, block)
            location = RecordLocation(name, offset, length, stored.record_id or "")
            yield location, stored
            end = offset + length
        it.close()
    if reason is None and end != size and not _only_separators_at(real, end, size):
        reason = f"{size - end} trailing bytes are not a complete record"
    if reason is not None and strict:
        raise TruncatedWarcError(real, end, reason)


def _only_separators(fh: BinaryIO, start: int, stop: int) -> bool:
    """True if the bytes between two records are only the CRLFs that end a record.

    An uncompressed WARC puts ``\r\n\r\n`` after each record, which warcio does not
    count in a record's length; gzip members abut. Read without moving ``fh``.
    """
    if stop < start:
        return False
    return stop == start or not os.pread(fh.fileno(), stop - start, start).strip(b"\r\n")


def _only_separators_at(path: Path, start: int, stop: int) -> bool:
    with open(path, "rb") as fh:
        return _only_separators(fh, start, stop)


# ----------------------------------------------------------------------------- payloads


def _gunzip(data: bytes, limit: int = 0) -> bytes:
    out: list[bytes] = []
    size = 0
    while data:
        d = zlib.decompressobj(zlib.MAX_WBITS + 16)
        out.append(d.decompress(data, limit - size if limit else 0))
        size += len(out[-1])
        if limit and (size >= limit or not d.eof):
            break  # a prefix was asked for: what follows, or a cut stream's end, is not needed
        if not d.eof:
            raise ContentDecodingError("gzip stream is truncated")
        data = d.unused_data
        if not data.strip(b"\x00"):  # padding after the last member
            break
    return b"".join(out)


def _inflate(data: bytes, limit: int = 0) -> bytes:
    for wbits in (zlib.MAX_WBITS, -zlib.MAX_WBITS):  # zlib-wrapped, then raw deflate
        d = zlib.decompressobj(wbits)
        try:
            out = d.decompress(data, limit)
        except zlib.error:
            continue
        if d.eof or (limit and len(out) >= limit):
            return out
    raise ContentDecodingError("invalid deflate data")


def _brotli(data: bytes, limit: int = 0) -> bytes:
    try:
        import brotli  # type: ignore[import-not-found]
    except ImportError:
        raise ContentDecodingError("brotli is not installed") from None
    return brotli.decompress(data)


def _zstd(data: bytes, limit: int = 0) -> bytes:
    try:
        from compression import zstd  # type: ignore[import-not-found]  # Python >= 3.14
    except ImportError:
        try:
            from backports import zstd  # type: ignore[import-not-found,no-redef]
        except ImportError:
            raise ContentDecodingError("zstd is not available") from None
    return zstd.decompress(data)


# Each takes the data and an output limit (0: none; gzip and deflate stop at it, brotli and
# zstd decode whole and are cut after).
_DECODERS: dict[str, Callable[[bytes, int], bytes]] = {
    "gzip": _gunzip,
    "x-gzip": _gunzip,
    "deflate": _inflate,
    "br": _brotli,
    "zstd": _zstd,
    "identity": lambda data, _limit: data,
}


def _dechunk(data: bytes) -> bytes:
    out = []
    pos = 0
    while True:
        nl = data.find(b"\r\n", pos)
        if nl < 0:
            raise ValueError("missing chunk size")
        size = int(data[pos:nl].split(b";", 1)[0].strip(), 16)
        pos = nl + 2
        if size == 0:
            return b"".join(out)
        if pos + size + 2 > len(data) or data[pos + size : pos + size + 2] != b"\r\n":
            raise ValueError("truncated chunk")
        out.append(data[pos : pos + size])
        pos += size + 2


def _tokens(values: list[str]) -> list[str]:
    return [t.strip().lower() for v in values for t in v.split(",") if t.strip()]


def decoded_payload(rec: StoredRecord, limit: int = 0) -> bytes:
    """The entity body with its Content-Encoding(s) removed: the file a browser would save.

    With ``limit``, at most its first ``limit`` bytes (for parsing: a gzip bomb is never
    decoded whole, and a truncated stream gives what precedes the cut).

    Handles gzip/x-gzip, deflate, br (if brotli is installed), zstd (if available) and
    stacked encodings (``Content-Encoding: gzip, br`` is undone right to left).  A
    payload still chunked per Transfer-Encoding is de-chunked first (left as is if it
    does not parse as chunks, e.g. when the crawler stored it already de-chunked).
    Raises ContentDecodingError for an unknown encoding or corrupt data.
    """
    data = rec.payload
    if rec.http_headers is None:
        return data
    if "chunked" in _tokens(rec.http_header_all("Transfer-Encoding")):
        with contextlib.suppress(ValueError):
            data = _dechunk(data)
    for encoding in reversed(_tokens(rec.http_header_all("Content-Encoding"))):
        decoder = _DECODERS.get(encoding)
        if decoder is None:
            raise ContentDecodingError(f"unsupported Content-Encoding: {encoding}")
        try:
            data = decoder(data, limit)[: limit or None]
        except ContentDecodingError:
            raise
        except Exception as exc:  # zlib.error, brotli.error, zstd errors ...
            raise ContentDecodingError(f"cannot decode {encoding}: {exc}") from exc
    return data


# ----------------------------------------------------------------------------- checks


def _check_digest(kind: str, value: str, data: bytes) -> str | None:
    try:
        algo, expected = parse_labelled(value)
    except ValueError as exc:
        return f"unreadable {kind} digest {value!r}: {exc}"
    computed = hashlib.new(algo, data)
    if computed.digest() != expected:
        return f"{kind} digest mismatch: header {value}, computed {algo}:{computed.hexdigest()}"
    return None


def verify_record(rec: StoredRecord) -> list[str]:
    """Problems found in ``rec``: missing/mismatched block digest, payload digest
    mismatch, Content-Length mismatch.  ``[]`` means the record is intact.

    Payload digests of revisit records describe the original capture and are skipped.
    """
    problems = []
    declared = rec.get("Content-Length")
    if declared is not None and declared.strip() != str(len(rec.block)):
        problems.append(f"Content-Length {declared} but block has {len(rec.block)} bytes")
    block_digest = rec.get("WARC-Block-Digest")
    if not block_digest:
        problems.append("missing WARC-Block-Digest")
    elif problem := _check_digest("block", block_digest, rec.block):
        problems.append(problem)
    payload_digest = rec.get("WARC-Payload-Digest")
    if (
        payload_digest
        and rec.rec_type != "revisit"
        and (problem := _check_digest("payload", payload_digest, rec.payload))
    ):
        problems.append(problem)
    return problems


def warc_fields(payload: bytes) -> dict[str, str]:
    """The ``name: value`` fields of an ``application/warc-fields`` block (a warcinfo)."""
    fields: dict[str, str] = {}
    for line in payload.decode("utf-8", "replace").splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip()] = value.strip()
    return fields
