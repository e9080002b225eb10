"""Writing records to rotating ``.warc.gz`` files, crash-safe.

:class:`RotatingWarcWriter` writes records built by :class:`archive.records.RecordFactory`
(digests, lengths and ids already set) through warcio's ``WARCWriter`` (WARC/1.1), each
record in its own gzip member.  Every file starts with its own ``warcinfo`` record and
every other record gets a ``WARC-Warcinfo-ID`` pointing to it.

Durability: a record group is serialised and compressed to a buffer first, then appended
to the file with one write, flushed and (``fsync=True``) fsynced before the location is
returned; a failed append is truncated away.  Files are named ``<name>.open`` while being
written and renamed to ``<name>`` on close, so after a crash (kill -9) closed files are
complete and the ``.open`` file holds complete records plus at most one torn record at
its end (see :func:`archive.reader.iter_records`).
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from warcio.recordloader import ArcWarcRecord
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from archive.records import RecordFactory, record_id, rewind

__all__ = ["OPEN_SUFFIX", "RecordLocation", "RotatingWarcWriter", "serialize_records"]

OPEN_SUFFIX = ".open"
_SPOOL_MAX = 16 * 1024 * 1024  # compressed groups larger than this are spooled to disk
_COPY_CHUNK = 1024 * 1024
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class RecordLocation:
    """Where a record is stored: final file basename, gzip member offset and length."""

    filename: str
    offset: int
    length: int
    record_id: str


class _GzipMembers:
    """File-like handed to warcio's writer: compresses writes; ``flush()`` ends a member.

    warcio calls ``flush()`` exactly once at the end of each record, so every record
    becomes one complete gzip member (header mtime 0: output is deterministic).
    """

    def __init__(self, out: IO[bytes], level: int) -> None:
        self._out = out
        self._level = level
        self._z = self._new()

    def _new(self) -> Any:
        return zlib.compressobj(self._level, zlib.DEFLATED, zlib.MAX_WBITS + 16)

    def write(self, data: bytes) -> int:
        self._out.write(self._z.compress(data))
        return len(data)

    def flush(self) -> None:
        self._out.write(self._z.flush())
        self._z = self._new()


class _CountingReader:
    """Read-only wrapper counting the bytes warcio pulls out of a record's stream."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.count += len(data)
        return data


def _prepared(record: ArcWarcRecord, warcinfo_id: str | None) -> tuple[ArcWarcRecord, int]:
    """A shallow copy of ``record`` ready for warcio; returns it and its expected body size.

    The WARC headers are copied (the caller's record is not modified) and get
    WARC-Warcinfo-ID after WARC-Date.  The record's stream is rewound to where it was
    when the record was first written, so a record can be serialised more than once.
    """
    headers = record.rec_headers
    if not headers.get_header("WARC-Record-ID") or not headers.get_header("WARC-Block-Digest"):
        raise ValueError("record lacks WARC-Record-ID or WARC-Block-Digest: use RecordFactory")
    if record.length is None or headers.get_header("Content-Length") != str(record.length):
        raise ValueError("record Content-Length is unset or inconsistent: use RecordFactory")
    head_len = len(record.http_headers.headers_buff or b"") if record.http_headers else 0
    body_len = record.length - head_len
    if record.http_headers and record.payload_length != body_len:
        raise ValueError("record payload_length does not match Content-Length")
    if record.rec_type != "warcinfo" and not headers.get_header("WARC-Payload-Digest"):
        # warcio's writer would add a SHA-1 one
        raise ValueError("record lacks WARC-Payload-Digest: build it with RecordFactory")

    rewind(record)

    items = [(k, v) for k, v in headers.headers if k.lower() != "warc-warcinfo-id"]
    if warcinfo_id and record.rec_type != "warcinfo":
        names = [k.lower() for k, _ in items]
        at = names.index("warc-date") + 1 if "warc-date" in names else len(items)
        items.insert(at, ("WARC-Warcinfo-ID", warcinfo_id))
    copy = ArcWarcRecord(
        record.format,
        record.rec_type,
        StatusAndHeaders("", items, protocol=headers.protocol),
        _CountingReader(record.raw_stream),
        record.http_headers,
        headers.get_header("Content-Type"),
        record.length,
        payload_length=body_len,
    )
    return copy, body_len


def serialize_records(
    records: Sequence[ArcWarcRecord],
    out: IO[bytes],
    *,
    warcinfo_id: str | None = None,
    compresslevel: int = 6,
) -> list[int]:
    """Write ``records`` to ``out`` as gzip members, via warcio; return each member's length.

    ``out`` must support ``tell()``.  Raises ValueError if a record's stream does not
    deliver exactly its announced length or if warcio changed a record's headers.
    """
    members = _GzipMembers(out, compresslevel)
    warc_writer = WARCWriter(members, gzip=False, warc_version="1.1")
    lengths = []
    for record in records:
        start = out.tell()
        copy, body_len = _prepared(record, warcinfo_id)
        expected = list(copy.rec_headers.headers)
        warc_writer.write_record(copy)
        if copy.raw_stream.count != body_len:
            raise ValueError(
                f"record {record_id(record)}: stream gave {copy.raw_stream.count} bytes, "
                f"expected {body_len}"
            )
        if copy.rec_headers.headers != expected:
            raise ValueError(f"warcio altered the WARC headers of {record_id(record)}")
        lengths.append(out.tell() - start)
    return lengths


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RotatingWarcWriter:
    """Appends records to ``.warc.gz`` files in ``directory``, rotating at ``max_size`` bytes.

    File names follow the IIPC convention
    ``{prefix}-{YYYYmmddHHMMSSfff}-{serial:05d}-{pid}~{hostname}.warc.gz``: the timestamp
    is the UTC time the file was opened (from ``factory.clock``, milliseconds), the serial
    starts at 00000 and increments per file opened by this writer (a name already taken
    in ``directory`` is skipped by incrementing it again), ``pid`` is the writing
    process's id and ``hostname`` has characters other than ``[A-Za-z0-9._-]`` replaced by
    ``_``.  The warcinfo record carries software, format, conformsTo, ``hostname`` and
    ``warcinfo_fields``.

    Files are opened lazily on the first write.  While written a file is named
    ``<name>.open`` (``current_path``); rotation and :meth:`close` flush, fsync, rename it
    to ``<name>``, fsync the directory and call ``on_close(final_path)``.  Before a record
    (or a :meth:`write_many` group) is written into a file that holds more than its
    warcinfo, the writer rotates if the file would grow beyond ``max_size``; a group
    bigger than ``max_size`` therefore gets a file of its own.  All methods are
    thread-safe; writing after :meth:`close` starts a new file.

    With ``fsync_interval`` > 0, appends are fsynced at most that often (a group commit,
    for crawls writing hundreds of records a second).  Every record still reaches the
    file in one ``write`` before its location is returned, so a killed process loses
    nothing, and closing a file always fsyncs it; only a power cut can lose the last
    interval's records of a file still open (which nothing has indexed yet).
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        prefix: str = "linkarchive",
        max_size: int = 1_000_000_000,
        warcinfo_fields: dict[str, str] | None = None,
        hostname: str | None = None,
        factory: RecordFactory | None = None,
        fsync: bool = True,
        fsync_interval: float = 0.0,
        on_close: Callable[[Path], None] | None = None,
        compresslevel: int = 6,
    ) -> None:
        if not prefix or "/" in prefix or os.sep in prefix:
            raise ValueError(f"invalid prefix: {prefix!r}")
        if max_size <= 0:
            raise ValueError("max_size must be positive")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.max_size = max_size
        self.warcinfo_fields: dict[str, str] = dict(warcinfo_fields or {})
        self.hostname = hostname or socket.gethostname()
        self.factory = factory or RecordFactory()
        self.fsync = fsync
        self.fsync_interval = fsync_interval
        self._last_fsync = float("-inf")
        self.on_close = on_close
        self.compresslevel = compresslevel

        self.closed_files: list[Path] = []
        self.current_path: Path | None = None  # the ``.open`` path being written
        self._final_path: Path | None = None
        self._fh: IO[bytes] | None = None
        self._size = 0
        self._records_in_file = 0
        self._warcinfo_id: str | None = None
        self._opened_at = 0.0  # time.monotonic() when the current file was opened
        self._serial = 0
        self._lock = threading.RLock()

    # -- public API -------------------------------------------------------------------

    @property
    def current_filename(self) -> str | None:
        """Final basename of the file being written (what RecordLocation.filename says)."""
        return self._final_path.name if self._final_path else None

    @property
    def current_size(self) -> int:
        """Bytes in the file being written (0 if none is open)."""
        return self._size

    @property
    def current_records(self) -> int:
        """Records in the file being written after its warcinfo (0 if none is open)."""
        return self._records_in_file

    def write(self, record: ArcWarcRecord) -> RecordLocation:
        """Append one record; return its location once it is flushed (and fsynced)."""
        return self.write_many([record])[0]

    def write_many(self, records: Sequence[ArcWarcRecord]) -> list[RecordLocation]:
        """Append records to the same file, with one flush/fsync; return their locations.

        Use it for the request and response of one exchange (plus their metadata).
        """
        records = list(records)
        if not records:
            return []
        with self._lock:
            if self._fh is None:
                self._open()
            warcinfo_id = self._warcinfo_id
        # Compress outside the lock (zlib releases the GIL, so threads compress in
        # parallel); redo it under the lock only if the file changed meanwhile.
        buf, lengths = self._serialize(records, warcinfo_id)
        try:
            with self._lock:
                while True:
                    if self._fh is None:
                        self._open()
                    if self._warcinfo_id != warcinfo_id:
                        buf.close()
                        warcinfo_id = self._warcinfo_id
                        buf, lengths = self._serialize(records, warcinfo_id)
                    if self._records_in_file and self._size + sum(lengths) > self.max_size:
                        self._close_current()  # rotate
                        continue
                    break
                start = self._append(buf)
                self._records_in_file += len(records)
                assert self._final_path is not None
                filename = self._final_path.name
        finally:
            buf.close()
        locations = []
        for record, length in zip(records, lengths, strict=True):
            locations.append(RecordLocation(filename, start, length, record_id(record)))
            start += length
        return locations

    def close_if_older(self, seconds: float, records: int | None = None) -> Path | None:
        """Close the current file if it holds records and was opened ``seconds`` ago or more
        (or, with ``records``, holds that many records or more).

        A long crawl calls this periodically, so its records reach closed files (which
        alone are indexed) while it runs; the next write opens a new file.
        """
        with self._lock:
            if self._fh is None or not self._records_in_file:
                return None
            old = time.monotonic() - self._opened_at >= seconds
            if not old and (records is None or self._records_in_file < records):
                return None
            final = self._final_path
            self._close_current()
            return final

    def close(self) -> list[Path]:
        """Close the current file (if any); return every file this writer has closed."""
        with self._lock:
            if self._fh is not None:
                self._close_current()
            return list(self.closed_files)

    def __enter__(self) -> RotatingWarcWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------

    def _file_name(self, serial: int) -> tuple[str, Any]:
        now = self.factory.now()
        stamp = now.strftime("%Y%m%d%H%M%S") + f"{now.microsecond // 1000:03d}"
        host = _UNSAFE_NAME_CHARS.sub("_", self.hostname)
        return f"{self.prefix}-{stamp}-{serial:05d}-{os.getpid()}~{host}.warc.gz", now

    def _serialize(
        self, records: Sequence[ArcWarcRecord], warcinfo_id: str | None
    ) -> tuple[IO[bytes], list[int]]:
        # big groups spill to an unlinked temp file next to the WARCs, not to /tmp
        buf: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=_SPOOL_MAX, dir=self.directory
        )
        try:
            lengths = serialize_records(
                records, buf, warcinfo_id=warcinfo_id, compresslevel=self.compresslevel
            )
        except BaseException:
            buf.close()
            raise
        return buf, lengths

    def _append(self, buf: IO[bytes]) -> int:
        """Append ``buf`` to the open file; flush, fsync; undo a partial append on failure."""
        fh = self._fh
        assert fh is not None
        start = self._size
        buf.seek(0)
        try:
            while chunk := buf.read(_COPY_CHUNK):
                view = memoryview(chunk)
                while view:
                    written = fh.write(view)
                    view = view[written:]
            now = time.monotonic()
            if self.fsync and now - self._last_fsync >= self.fsync_interval:
                os.fsync(fh.fileno())
                self._last_fsync = now
        except BaseException:
            try:
                os.ftruncate(fh.fileno(), start)
                fh.seek(start)
            except OSError:  # pragma: no cover - nothing better to do
                pass
            raise
        self._size = fh.tell()
        return start

    def _open(self) -> None:
        while True:
            serial = self._serial
            self._serial += 1
            name, now = self._file_name(serial)
            final = self.directory / name
            path = self.directory / (name + OPEN_SUFFIX)
            if final.exists():
                continue
            try:
                fh = open(path, "xb", buffering=0)  # noqa: SIM115
            except FileExistsError:
                continue
            if final.exists():  # renamed by someone else in between
                fh.close()
                path.unlink()
                continue
            break
        self._fh, self.current_path, self._final_path = fh, path, final
        self._opened_at = time.monotonic()
        self._size = 0
        self._records_in_file = 0
        self._warcinfo_id = None
        try:
            info = self.factory.warcinfo(
                name, {"hostname": self.hostname, **self.warcinfo_fields}, date=now
            )
            buf, _ = self._serialize([info], None)
            try:
                self._append(buf)
            finally:
                buf.close()
            if self.fsync:
                _fsync_dir(self.directory)
        except BaseException:
            fh.close()
            path.unlink(missing_ok=True)
            self._fh = self.current_path = self._final_path = None
            self._size = 0
            raise
        self._warcinfo_id = record_id(info)

    def _close_current(self) -> None:
        fh, path, final = self._fh, self.current_path, self._final_path
        assert fh is not None and path is not None and final is not None
        if self.fsync:
            os.fsync(fh.fileno())
        fh.close()
        self._fh = self.current_path = self._final_path = None
        self._size = 0
        self._records_in_file = 0
        self._warcinfo_id = None
        if final.exists():
            raise FileExistsError(f"{final} appeared while {path.name} was being written")
        os.rename(path, final)
        if self.fsync:
            _fsync_dir(self.directory)
        self.closed_files.append(final)
        if self.on_close is not None:
            self.on_close(final)
