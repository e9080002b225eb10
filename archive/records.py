"""Building WARC/1.1 records (pure: bytes or a caller's stream in, warcio ``ArcWarcRecord``
out, no other I/O).

:class:`RecordFactory` turns one HTTP exchange (or a metadata document, a resource, a
warcinfo) into a warcio ``ArcWarcRecord`` whose WARC headers are complete and final:
WARC-Record-ID, WARC-Date (always with microseconds), Content-Type, Content-Length and
SHA-256 digests (``sha256:<hex>``) are set here, so warcio's writer has nothing to add.
Only ``WARC-Warcinfo-ID`` is left to the writer, because it depends on the file the
record ends up in.

HTTP blocks are kept byte-exact: the status/request line and the header lines are
serialised once, here, in the given order and case (repeated headers kept), and the
body is stored as given (still content-encoded, e.g. gzip bytes).  The record's
``http_headers`` is a warcio ``StatusAndHeaders`` subclass that always hands warcio's
writer these exact bytes (warcio would otherwise re-serialise and %-encode non-ASCII).

A response's bytes may also come as a seekable stream (a spooled wire capture): the
digests are computed reading it once in chunks, and the record's stream is that stream,
so a large body is never held in memory.

Header text is serialised as ISO-8859-1, so a ``str`` obtained by decoding raw header
bytes as latin-1 round-trips to the very same bytes; a character beyond U+00FF makes
that header line fall back to UTF-8.  CR or LF inside a name or value is refused.
"""

from __future__ import annotations

import io
import ipaddress
import json
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from importlib import metadata as _metadata
from typing import IO

from warcio.recordloader import ArcWarcRecord
from warcio.statusandheaders import StatusAndHeaders

from archive.digests import Sha256Stream

__all__ = [
    "CONFORMS_TO",
    "RESERVED_HEADERS",
    "SOFTWARE",
    "WARC_FORMAT",
    "WARC_VERSION",
    "ExactHttpHeaders",
    "RecordFactory",
    "block_bytes",
    "format_warc_date",
    "head_end",
    "normalise_record_id",
    "record_id",
    "rewind",
]

WARC_VERSION = "WARC/1.1"
WARC_FORMAT = "WARC File Format 1.1"
CONFORMS_TO = "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/"


def _version() -> str:
    try:
        return _metadata.version("linkarchive")
    except _metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


SOFTWARE = f"linkarchive/{_version()}"

HTTP_REQUEST_TYPE = "application/http; msgtype=request"
HTTP_RESPONSE_TYPE = "application/http; msgtype=response"
REVISIT_PROFILE = "http://netpreserve.org/warc/1.1/revisit/identical-payload-digest"
WARC_FIELDS_TYPE = "application/warc-fields"

#: WARC headers computed by the factory; ``extra`` may not set them.
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "WARC-Type",
        "WARC-Record-ID",
        "Content-Length",
        "Content-Type",
        "WARC-Block-Digest",
        "WARC-Payload-Digest",
    )
)


# ----------------------------------------------------------------------------- helpers


def format_warc_date(dt: datetime) -> str:
    """WARC-Date text with microseconds, e.g. ``2024-05-01T12:00:00.000001Z``.

    Naive datetimes are taken as UTC; aware ones are converted to UTC.  Microseconds
    are always written (six digits), also when zero, so all dates have one width.
    """
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def normalise_record_id(value: str) -> str:
    """Return ``value`` as a WARC record id ``<urn:…>``.

    Accepts ``<urn:uuid:…>``, ``urn:uuid:…`` or a bare UUID.  Raises ValueError otherwise.
    """
    value = str(value).strip()
    if value.startswith("<") and value.endswith(">") and ":" in value:
        inner = value[1:-1]
    elif value.startswith("urn:"):
        inner = value
    else:
        try:
            inner = f"urn:uuid:{uuid.UUID(value)}"
        except ValueError:
            raise ValueError(f"not a record id: {value!r}") from None
    if not inner or any(c in inner for c in " \t\r\n<>"):
        raise ValueError(f"not a record id: {value!r}")
    return f"<{inner}>"


def _default_id() -> str:
    return f"<urn:uuid:{uuid.uuid4()}>"


def _default_clock() -> datetime:
    return datetime.now(UTC)


def _check_text(what: str, value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, not {type(value).__name__}")
    if "\r" in value or "\n" in value:
        raise ValueError(f"{what} contains CR/LF: {value!r}")
    return value


def _check_token(what: str, value: str) -> str:
    _check_text(what, value)
    if not value or any(c in value for c in " \t:"):
        raise ValueError(f"invalid {what}: {value!r}")
    return value


def _ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip().strip("[]")))
    except ValueError:
        raise ValueError(f"invalid IP address: {value!r}") from None


def _encode_line(line: str) -> bytes:
    try:
        return line.encode("latin-1") + b"\r\n"
    except UnicodeEncodeError:
        return line.encode("utf-8") + b"\r\n"


def _http_version(value: str) -> str:
    value = _check_text("http_version", value).strip()
    if not value.upper().startswith("HTTP/"):
        value = f"HTTP/{value}"
    if " " in value:
        raise ValueError(f"invalid http_version: {value!r}")
    return value


def _encode_http_head(first_line: str, headers: Iterable[tuple[str, str]]) -> bytes:
    parts = [_encode_line(first_line)]
    for name, value in headers:
        if not isinstance(name, str) or not name or any(c in name for c in ":\r\n"):
            raise ValueError(f"invalid HTTP header name: {name!r}")
        _check_text(f"value of HTTP header {name!r}", value)
        parts.append(_encode_line(f"{name}: {value}"))
    parts.append(b"\r\n")
    return b"".join(parts)


_READ_CHUNK = 1024 * 1024
#: The most bytes an HTTP head read from a stream may have.
MAX_HEAD = 1024 * 1024


def head_end(stream: IO[bytes], what: str = "response") -> int:
    """Position just after the blank line ending the HTTP head that starts at the stream's
    position; the stream is left there. Raises ValueError if there is none within
    ``MAX_HEAD`` bytes."""
    start = stream.tell()
    data = b""
    while len(data) < MAX_HEAD:
        chunk = stream.read(64 * 1024)
        if not chunk:
            break
        searched = max(len(data) - 3, 0)  # a CRLFCRLF may straddle two chunks
        data += chunk
        at = data.find(b"\r\n\r\n", searched)
        if at >= 0:
            stream.seek(start + at + 4)
            return start + at + 4
    raise ValueError(f"incomplete HTTP {what}: no end of headers in {len(data)} bytes")


def _split_wire(raw: bytes, what: str) -> tuple[bytes, bytes, str, list[tuple[str, str]]]:
    """Split raw HTTP bytes into (head incl. blank line, body, first line, headers)."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        raise ValueError(f"incomplete HTTP {what}: no end of headers in {len(raw)} bytes")
    head, body = raw[: end + 4], raw[end + 4 :]
    lines = head[:end].decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name, value.strip()))
    return head, body, lines[0], headers


class ExactHttpHeaders(StatusAndHeaders):
    """warcio ``StatusAndHeaders`` that always serialises to the exact bytes it was built from.

    warcio's writer calls ``compute_headers_buffer()`` before writing; the stock class
    rebuilds the bytes from the parsed headers (and %-encodes non-ASCII values), which
    would break the block digest.  This one keeps ``headers_buff`` untouched.
    """

    def __init__(
        self, statusline: str, headers: list[tuple[str, str]], protocol: str, raw: bytes
    ) -> None:
        super().__init__(statusline, list(headers), protocol=protocol)
        self.headers_buff = raw

    def compute_headers_buffer(self, header_filter: object = None) -> None:
        """Keep the original bytes (``header_filter`` is deliberately ignored)."""
        return None


def rewind(record: ArcWarcRecord) -> None:
    """Seek the record's stream back to its first byte, so it can be read again.

    The position is remembered on the record the first time (for a factory-built record
    it is where its body starts in its stream); serialising a record, e.g. to write it,
    leaves its stream at the end.
    """
    stream = record.raw_stream
    start = getattr(record, "_linkarchive_stream_start", None)
    if start is None:
        start = stream.tell()
        record._linkarchive_stream_start = start  # type: ignore[attr-defined]
    stream.seek(start)


def block_bytes(record: ArcWarcRecord) -> bytes:
    """Return the whole block (HTTP head + body) of a factory-built record.

    Reads the record's stream from its start and rewinds it again afterwards.
    """
    rewind(record)
    body = record.raw_stream.read()
    rewind(record)
    head = record.http_headers.headers_buff if record.http_headers is not None else b""
    return (head or b"") + body


def record_id(record: object) -> str:
    """The WARC-Record-ID of a warcio record (or of a :class:`archive.reader.StoredRecord`)."""
    rec_headers = getattr(record, "rec_headers", None)
    if rec_headers is not None:
        value = rec_headers.get_header("WARC-Record-ID")
    else:
        value = record.get("WARC-Record-ID")  # type: ignore[attr-defined]
    if not value:
        raise ValueError("record has no WARC-Record-ID")
    return str(value)


# ----------------------------------------------------------------------------- factory


class RecordFactory:
    """Builds WARC/1.1 records with SHA-256 digests; no I/O but reading a given stream.

    ``clock`` returns the current time (aware, or naive meaning UTC) and ``new_id`` a
    fresh record id (``<urn:uuid:…>``, ``urn:uuid:…`` or a bare UUID); inject both to
    get reproducible records.  Every record's stream is positioned at its body's first
    byte (remembered for :func:`rewind`), so :class:`archive.writer.RotatingWarcWriter`
    can (re)serialise it.
    """

    def __init__(
        self,
        clock: Callable[[], datetime] | None = None,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        self.clock: Callable[[], datetime] = clock or _default_clock
        self.new_id: Callable[[], str] = new_id or _default_id

    # -- small public helpers ---------------------------------------------------------

    def now(self) -> datetime:
        """The clock's current time as an aware UTC datetime."""
        dt = self.clock()
        return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)

    def make_id(self) -> str:
        """A fresh record id from ``new_id``, normalised to ``<urn:…>``."""
        return normalise_record_id(self.new_id())

    # -- records ----------------------------------------------------------------------

    def request(
        self,
        url: str,
        method: str,
        target: str,
        http_version: str,
        headers: list[tuple[str, str]],
        body: bytes = b"",
        *,
        ip: str | None = None,
        concurrent_to: str | None = None,
        date: datetime | None = None,
        extra: dict[str, str] | None = None,
    ) -> ArcWarcRecord:
        """A ``request`` record: block = ``"METHOD target HTTP/x\\r\\n"`` + headers + CRLF + body.

        ``target`` is the request-target as sent (usually path and query).  Pass the
        response's record id as ``concurrent_to`` to link the exchange.
        """
        method = _check_token("HTTP method", method)
        target = _check_text("request target", target)
        if not target or " " in target or "\t" in target:
            raise ValueError(f"invalid request target: {target!r}")
        head = _encode_http_head(f"{method} {target} {_http_version(http_version)}", headers)
        return self.request_from_wire(
            url, head + bytes(body), ip=ip, concurrent_to=concurrent_to, date=date, extra=extra
        )

    def response(
        self,
        url: str,
        status: int,
        reason: str,
        http_version: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        ip: str | None = None,
        concurrent_to: str | None = None,
        date: datetime | None = None,
        extra: dict[str, str] | None = None,
    ) -> ArcWarcRecord:
        """A ``response`` record: block = ``"HTTP/x status reason\\r\\n"`` + headers + CRLF + body.

        ``body`` is the entity body exactly as received (still content-encoded); it is
        also what WARC-Payload-Digest covers.  An empty ``reason`` gives ``"HTTP/1.1 204 "``.
        """
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 999:
            raise ValueError(f"invalid HTTP status: {status!r}")
        reason = _check_text("reason phrase", reason)
        head = _encode_http_head(f"{_http_version(http_version)} {status} {reason}", headers)
        return self.response_from_wire(
            url, head + bytes(body), ip=ip, concurrent_to=concurrent_to, date=date, extra=extra
        )

    def response_from_wire(
        self,
        url: str,
        raw: bytes | IO[bytes],
        *,
        ip: str | None = None,
        concurrent_to: str | None = None,
        date: datetime | None = None,
        extra: dict[str, str] | None = None,
    ) -> ArcWarcRecord:
        """A ``response`` record whose block is ``raw``: the bytes exactly as received.

        Status line, header names and order, repeated headers and chunk framing are kept.
        WARC-Payload-Digest covers the message body as stored (after the blank line that
        ends the head), as warcio, pywb and Heritrix compute it; see docs/WARC.md.

        ``raw`` may be a seekable stream: the block is then what runs from its position to
        its end, read once for the digests and left as the record's stream (positioned at
        the body), so the caller keeps it open until the record is written.
        """
        body: bytes | tuple[IO[bytes], int]
        if isinstance(raw, bytes | bytearray | memoryview):
            head, body, first_line, headers = _split_wire(bytes(raw), "response")
        else:
            start = raw.tell()
            end = head_end(raw, "response")
            raw.seek(start)
            head, _, first_line, headers = _split_wire(raw.read(end - start), "response")
            body = (raw, end)
        version, _, rest = first_line.partition(" ")
        status, _, reason = rest.partition(" ")
        if not status.isdigit():
            raise ValueError(f"not an HTTP status line: {first_line!r}")
        http = ExactHttpHeaders(f"{status} {reason}".rstrip(), headers, version, head)
        return self._http_record(
            "response", url, HTTP_RESPONSE_TYPE, http, body, ip, concurrent_to, date, extra
        )

    def request_from_wire(
        self,
        url: str,
        raw: bytes,
        *,
        ip: str | None = None,
        concurrent_to: str | None = None,
        date: datetime | None = None,
        extra: dict[str, str] | None = None,
    ) -> ArcWarcRecord:
        """A ``request`` record whose block is ``raw``: the bytes exactly as sent."""
        head, body, first_line, headers = _split_wire(raw, "request")
        method, _, rest = first_line.partition(" ")
        target, _, version = rest.rpartition(" ")
        http = ExactHttpHeaders(f"{method} {target}", headers, version, head)
        return self._http_record(
            "request", url, HTTP_REQUEST_TYPE, http, body, ip, concurrent_to, date, extra
        )

    def revisit(
        self,
        url: str,
        head: bytes,
        *,
        payload_digest: str,
        refers_to: str,
        refers_to_uri: str,
        refers_to_date: str,
        ip: str | None = None,
        date: datetime | None = None,
        extra: dict[str, str] | None = None,
    ) -> ArcWarcRecord:
        """A ``revisit`` record (profile identical-payload-digest) for a response whose
        payload is already archived: the block is the response's HTTP head only, and
        WARC-Refers-To* name the record holding the payload."""
        head, _body, first_line, headers = _split_wire(head, "response")
        version, _, rest = first_line.partition(" ")
        http = ExactHttpHeaders(rest, headers, version, head)
        warc = self._base_headers("revisit", url, date)
        if ip:
            warc.append(("WARC-IP-Address", _ip_address(ip)))
        warc += [
            ("WARC-Profile", REVISIT_PROFILE),
            ("WARC-Refers-To", normalise_record_id(refers_to)),
            ("WARC-Refers-To-Target-URI", _check_text("url", refers_to_uri)),
            ("WARC-Refers-To-Date", _check_text("date", refers_to_date)),
            ("Content-Type", HTTP_RESPONSE_TYPE),
            ("Content-Length", str(len(head))),
            ("WARC-Block-Digest", Sha256Stream(head).labelled()),
            ("WARC-Payload-Digest", _check_text("payload digest", payload_digest)),
        ]
        return self._finish("revisit", warc, io.BytesIO(b""), http, HTTP_RESPONSE_TYPE, extra, 0)

    def metadata(
        self,
        url: str,
        payload: dict | bytes,
        *,
        refers_to: str | None = None,
        content_type: str = "application/json",
        date: datetime | None = None,
        extra: dict[str, str] | None = None,
    ) -> ArcWarcRecord:
        """A ``metadata`` record about ``url``; a dict payload is stored as UTF-8 JSON.

        ``refers_to`` (a record id) becomes WARC-Refers-To.  JSON is written compactly
        with keys in insertion order and non-ASCII kept as UTF-8.
        """
        if isinstance(payload, dict):
            block = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        elif isinstance(payload, bytes | bytearray | memoryview):
            block = bytes(payload)
        else:
            raise TypeError(f"metadata payload must be dict or bytes, not {type(payload)}")
        links = [("WARC-Refers-To", normalise_record_id(refers_to))] if refers_to else []
        return self._plain_record("metadata", url, block, content_type, links, date, extra)

    def resource(
        self,
        url: str,
        body: bytes | IO[bytes],
        content_type: str,
        *,
        concurrent_to: str | None = None,
        date: datetime | None = None,
        extra: dict[str, str] | None = None,
    ) -> ArcWarcRecord:
        """A ``resource`` record: ``body`` is the whole block (e.g. a screenshot, a PDF).

        ``body`` may be a seekable stream (a downloaded video): it is read once from its
        position for the digest and left as the record's stream, so the caller keeps it
        open until the record is written. ``concurrent_to`` (a record id) becomes
        WARC-Concurrent-To: a browser capture's screenshot, rendered DOM and text name the
        page's response record so."""
        links = []
        if concurrent_to:
            links.append(("WARC-Concurrent-To", normalise_record_id(concurrent_to)))
        if isinstance(body, bytes | bytearray | memoryview):
            return self._plain_record(
                "resource", url, bytes(body), content_type, links, date, extra
            )
        start = body.tell()
        digest = Sha256Stream()
        while chunk := body.read(_READ_CHUNK):
            digest.update(chunk)
        body.seek(start)
        headers = self._base_headers("resource", url, date) + links
        headers += [
            ("Content-Type", _check_text("content_type", content_type).strip()),
            ("Content-Length", str(digest.length)),
            ("WARC-Block-Digest", digest.labelled()),
            ("WARC-Payload-Digest", digest.labelled()),
        ]
        return self._finish(
            "resource", headers, body, None, content_type, extra, digest.length, start
        )

    def warcinfo(
        self, filename: str, fields: dict[str, str], *, date: datetime | None = None
    ) -> ArcWarcRecord:
        """A ``warcinfo`` record for the file ``filename`` (its final basename).

        The block is ``application/warc-fields`` (UTF-8): ``software``, ``format`` and
        ``conformsTo`` first, then ``fields`` in their order (a field named like a
        default replaces it in place).  Fields whose value is None are left out.
        """
        merged: dict[str, str | None] = {
            "software": SOFTWARE,
            "format": WARC_FORMAT,
            "conformsTo": CONFORMS_TO,
        }
        merged.update(fields)
        lines = []
        for name, value in merged.items():
            if value is None:
                continue
            _check_token("warcinfo field name", name)
            lines.append(f"{name}: {_check_text(f'warcinfo field {name!r}', str(value))}\r\n")
        block = "".join(lines).encode("utf-8")
        headers = [
            ("WARC-Type", "warcinfo"),
            ("WARC-Record-ID", self.make_id()),
            ("WARC-Date", format_warc_date(date or self.now())),
            ("WARC-Filename", _check_text("filename", filename)),
            ("Content-Type", WARC_FIELDS_TYPE),
            ("Content-Length", str(len(block))),
            ("WARC-Block-Digest", Sha256Stream(block).labelled()),
        ]
        return self._make(
            "warcinfo", headers, io.BytesIO(block), None, WARC_FIELDS_TYPE, len(block)
        )

    # -- internals --------------------------------------------------------------------

    def _base_headers(
        self, rec_type: str, url: str, date: datetime | None
    ) -> list[tuple[str, str]]:
        url = _check_text("url", url)
        if not url or any(c in url for c in " \t"):
            raise ValueError(f"invalid target URI: {url!r}")
        return [
            ("WARC-Type", rec_type),
            ("WARC-Record-ID", self.make_id()),
            ("WARC-Date", format_warc_date(date or self.now())),
            ("WARC-Target-URI", url),
        ]

    def _http_record(
        self,
        rec_type: str,
        url: str,
        content_type: str,
        http: ExactHttpHeaders,
        body: bytes | tuple[IO[bytes], int],
        ip: str | None,
        concurrent_to: str | None,
        date: datetime | None,
        extra: dict[str, str] | None,
    ) -> ArcWarcRecord:
        headers = self._base_headers(rec_type, url, date)
        if ip:
            headers.append(("WARC-IP-Address", _ip_address(ip)))
        if concurrent_to:
            headers.append(("WARC-Concurrent-To", normalise_record_id(concurrent_to)))
        head = http.headers_buff
        if isinstance(body, bytes):
            stream: IO[bytes] = io.BytesIO(body)
            start = 0
            payload = Sha256Stream(body)
            block = Sha256Stream(head).update(body)
        else:  # (stream, position of the body): read once, in chunks, then rewound
            stream, start = body
            stream.seek(start)
            payload, block = Sha256Stream(), Sha256Stream(head)
            while chunk := stream.read(_READ_CHUNK):
                payload.update(chunk)
                block.update(chunk)
            stream.seek(start)
        headers += [
            ("Content-Type", content_type),
            ("Content-Length", str(len(head) + payload.length)),
            ("WARC-Block-Digest", block.labelled()),
            ("WARC-Payload-Digest", payload.labelled()),
        ]
        return self._finish(
            rec_type, headers, stream, http, content_type, extra, payload.length, start
        )

    def _plain_record(
        self,
        rec_type: str,
        url: str,
        block: bytes,
        content_type: str,
        links: list[tuple[str, str]],
        date: datetime | None,
        extra: dict[str, str] | None,
    ) -> ArcWarcRecord:
        content_type = _check_text("content_type", content_type).strip()
        if not content_type:
            raise ValueError("content_type is required")
        headers = self._base_headers(rec_type, url, date) + links
        digest = Sha256Stream(block).labelled()
        headers += [
            ("Content-Type", content_type),
            ("Content-Length", str(len(block))),
            ("WARC-Block-Digest", digest),
            # no HTTP envelope: the payload is the block
            ("WARC-Payload-Digest", digest),
        ]
        return self._finish(
            rec_type, headers, io.BytesIO(block), None, content_type, extra, len(block)
        )

    def _finish(
        self,
        rec_type: str,
        headers: list[tuple[str, str]],
        stream: IO[bytes],
        http: ExactHttpHeaders | None,
        content_type: str,
        extra: dict[str, str] | None,
        payload_length: int,
        stream_start: int = 0,
    ) -> ArcWarcRecord:
        for name, value in (extra or {}).items():
            _check_token("WARC header name", name)
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(f"{name} is computed by RecordFactory; not allowed in extra")
            _check_text(f"WARC header {name!r}", value)
            for i, (existing, _) in enumerate(headers):
                if existing.lower() == name.lower():
                    headers[i] = (existing, value)
                    break
            else:
                headers.append((name, value))
        return self._make(
            rec_type, headers, stream, http, content_type, payload_length, stream_start
        )

    @staticmethod
    def _make(
        rec_type: str,
        headers: list[tuple[str, str]],
        stream: IO[bytes],
        http: ExactHttpHeaders | None,
        content_type: str,
        payload_length: int,
        stream_start: int = 0,
    ) -> ArcWarcRecord:
        rec_headers = StatusAndHeaders("", headers, protocol=WARC_VERSION)
        head_len = len(http.headers_buff) if http is not None else 0
        record = ArcWarcRecord(
            "warc",
            rec_type,
            rec_headers,
            stream,
            http,
            content_type,
            head_len + payload_length,
            payload_length=payload_length,
        )
        record._linkarchive_stream_start = stream_start  # type: ignore[attr-defined]
        return record
