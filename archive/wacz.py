"""WACZ 1.1.1 packages (https://specs.webrecorder.net/wacz/1.1.1/) of archived records.

A package holds ``archive/data.warc.gz`` (byte-for-byte copies of gzip members of
existing WARC files, records of uncompressed ones gzipped one by one: every record, and
so every digest, is unchanged), its sorted CDXJ
index ``indexes/index.cdxj``, the entry points ``pages/pages.jsonl``, and the manifest
``datapackage.json`` with ``datapackage-digest.json`` beside it. WARC and index are
stored uncompressed in the ZIP (random access), the JSON files deflated.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, BinaryIO

from archive.cdxj import write_cdxj
from archive.reader import TruncatedWarcError, iter_records

__all__ = [
    "WACZ_VERSION",
    "Member",
    "Page",
    "WaczError",
    "WaczSummary",
    "copy_members",
    "write_replay_index",
    "write_wacz",
]

WACZ_VERSION = "1.1.1"
PAGES_HEADER = {"format": "json-pages-1.0", "id": "pages", "title": "All Pages"}
WARC_PATH = "archive/data.warc.gz"
INDEX_PATH = "indexes/index.cdxj"
PAGES_PATH = "pages/pages.jsonl"
REPLAY_TYPES = ("response", "revisit", "resource")
_CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"


class WaczError(Exception):
    """A package cannot be written from the given members (one line, for the user)."""


@dataclass(frozen=True)
class Member:
    """One gzip member of a source WARC file: the bytes of exactly one record."""

    path: Path
    offset: int
    length: int


@dataclass(frozen=True)
class Page:
    """An entry point of the package: a captured page (``ts`` is taken as UTC if naive)."""

    url: str
    ts: datetime
    title: str | None = None
    id: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The page's line in ``pages.jsonl``.

        Always with an ``id`` (derived from ``ts`` and ``url`` if not given): py-wacz
        validates the file as a table whose columns are the header's keys, and a line
        holding none of ``format``, ``id``, ``title`` fails as a blank row.
        """
        stamp = rfc3339(self.ts)
        key = f"{stamp} {self.url}".encode()
        entry: dict[str, Any] = {"id": self.id or hashlib.sha256(key).hexdigest()[:20]}
        entry["url"] = self.url
        entry["ts"] = stamp
        if self.title:
            entry["title"] = self.title
        return entry


@dataclass
class WaczSummary:
    """What a written package holds."""

    path: Path
    records: int
    warc_bytes: int
    pages: int
    resources: list[dict[str, Any]] = field(default_factory=list)


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken as UTC (as the catalog stores them)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def rfc3339(moment: datetime) -> str:
    """``moment`` as RFC 3339 UTC to the second, e.g. ``2020-10-10T12:00:00Z``."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_software() -> str:
    """``linkarchive <installed version>``."""
    try:
        return f"linkarchive {metadata.version('linkarchive')}"
    except metadata.PackageNotFoundError:
        return "linkarchive"


# ----------------------------------------------------------------------------- WARC data


def _chunks(src: BinaryIO, member: Member, where: str) -> Iterator[bytes]:
    """The member's bytes, read in bounded chunks."""
    src.seek(member.offset)
    left = member.length
    while left:
        chunk = src.read(min(_CHUNK, left))
        if not chunk:
            raise WaczError(f"{where}: file ends {left} bytes before the record does")
        left -= len(chunk)
        yield chunk


def _copy_gzip_member(src: BinaryIO, out: BinaryIO, member: Member, where: str) -> None:
    """Append the member's bytes to ``out``, checking they are exactly one gzip member."""
    inflater = zlib.decompressobj(zlib.MAX_WBITS + 16)
    done = 0
    for chunk in _chunks(src, member, where):
        done += len(chunk)
        out.write(chunk)
        data = chunk
        try:
            while data and not inflater.eof:  # bounded output: never inflate a bomb at once
                inflater.decompress(data, _CHUNK)
                data = inflater.unconsumed_tail
        except zlib.error as exc:
            raise WaczError(f"{where}: not a gzip member ({exc})") from None
        if inflater.eof and (done < member.length or inflater.unused_data or data):
            raise WaczError(f"{where}: {member.length} bytes hold more than one gzip member")
    if not inflater.eof:
        raise WaczError(f"{where}: gzip member is incomplete in {member.length} bytes")


def _gzip_plain_record(src: BinaryIO, out: BinaryIO, member: Member, where: str) -> None:
    """Append a record of an uncompressed WARC file as a gzip member of its own.

    The record's bytes are unchanged (only compressed); the CRLF CRLF that ends a record
    is added, as warcio's length of an uncompressed record leaves it out.
    """
    deflater = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS + 16)
    first = True
    for chunk in _chunks(src, member, where):
        if first and not chunk.startswith(b"WARC/"):
            raise WaczError(f"{where}: neither a gzip member nor a WARC record")
        first = False
        out.write(deflater.compress(chunk))
    out.write(deflater.compress(b"\r\n\r\n") + deflater.flush())


def _copy_member(src: BinaryIO, out: BinaryIO, member: Member) -> None:
    """Append one record: a gzip member byte for byte, an uncompressed record gzipped."""
    where = f"{member.path.name} at offset {member.offset}"
    if member.offset < 0 or member.length <= 0:
        raise WaczError(f"{where}: invalid record length {member.length}")
    src.seek(member.offset)
    if src.read(2) == GZIP_MAGIC:
        _copy_gzip_member(src, out, member, where)
    else:
        _gzip_plain_record(src, out, member, where)


def copy_members(members: Iterable[Member], target: Path) -> dict[int, str]:
    """Concatenate the members (each once, in the given order) into ``target``; returns
    the offset and WARC-Type of each record written.

    Gzip members are copied byte for byte; a record of an uncompressed WARC file (as other
    tools write them) becomes a gzip member of its own, its bytes unchanged. So every
    record and digest stays as archived. The result is read back before it is used.
    """
    seen: set[tuple[Path, int]] = set()
    opened: dict[Path, BinaryIO] = {}
    try:
        with target.open("wb") as out:
            for member in members:
                key = (member.path, member.offset)
                if key in seen:
                    continue
                seen.add(key)
                src = opened.get(member.path)
                if src is None:
                    src = opened[member.path] = member.path.open("rb")
                _copy_member(src, out, member)
    finally:
        for src in opened.values():
            src.close()
    try:
        records = {location.offset: record.rec_type for location, record in iter_records(target)}
    except TruncatedWarcError as exc:
        raise WaczError(f"the copied records do not read back: {exc.reason}") from exc
    if len(records) != len(seen):
        raise WaczError(f"{len(seen)} members were copied but {len(records)} records read back")
    return records


def write_replay_index(warc: Path, records: dict[int, str], directory: Path) -> Path:
    """The sorted CDXJ of ``warc`` (:func:`archive.write_cdxj`) without the lines of records
    that are no HTTP exchange: replay tools would serve our crawl-context ``metadata``
    JSON for the page URL it describes. Those records stay in the WARC data."""
    index = write_cdxj(warc, directory)
    lines = index.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [
        line
        for line in lines
        if records.get(int(json.loads(line.split(" ", 2)[2])["offset"])) in REPLAY_TYPES
    ]
    index.write_text("".join(kept), encoding="utf-8")
    return index


# ----------------------------------------------------------------------------- package


def _sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return "sha256:" + digest.hexdigest(), size


def _zip_info(name: str, when: datetime, compress_type: int, size: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=when.timetuple()[:6])
    info.compress_type = compress_type
    info.external_attr = 0o644 << 16
    info.file_size = size  # lets zipfile choose ZIP64 up front for big WARCs
    return info


def write_wacz(
    target: Path,
    members: Sequence[Member],
    pages: Sequence[Page],
    *,
    title: str,
    description: str | None = None,
    software: str | None = None,
    created: datetime | None = None,
    overwrite: bool = False,
    extra: Callable[[list[dict[str, Any]]], list[tuple[str, bytes]]] | None = None,
    seal: Callable[[str], tuple[dict[str, Any], list[tuple[str, bytes]]]] | None = None,
) -> WaczSummary:
    """Write a WACZ 1.1.1 package of ``members`` with ``pages`` as its entry points.

    Everything is built beside ``target`` and renamed into place at the end, so a
    failure leaves no partial package. An existing ``target`` is replaced only with
    ``overwrite``. ``extra`` is given the resources written so far (name, path, hash,
    bytes) and returns more files to package (listed in datapackage.json too); ``seal``
    is given datapackage.json's hash and returns fields to add to datapackage-digest.json
    (a signature) and files that can only follow it (a timestamp token over it).
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists")
    if not members:
        raise WaczError("no records to package")
    created = _utc(created or datetime.now(UTC)).replace(microsecond=0)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
        work = Path(tmp)
        warc = work / "archive" / "data.warc.gz"
        warc.parent.mkdir()
        records = copy_members(members, warc)
        index = write_replay_index(warc, records, work / "indexes")  # filename: data.warc.gz
        pages_file = work / "pages.jsonl"
        lines = [PAGES_HEADER, *(page.as_json() for page in pages)]
        pages_file.write_text(
            "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines),
            encoding="utf-8",
        )
        files = [
            (WARC_PATH, warc, zipfile.ZIP_STORED),
            (INDEX_PATH, index, zipfile.ZIP_STORED),
            (PAGES_PATH, pages_file, zipfile.ZIP_DEFLATED),
        ]
        resources = []
        for name, path, _ in files:
            digest, size = _sha256_file(path)
            resources.append({"name": Path(name).name, "path": name, "hash": digest, "bytes": size})
        for name, data in extra(list(resources)) if extra else []:
            path = work / "extra" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            files.append((name, path, zipfile.ZIP_DEFLATED))
            digest, size = _sha256_file(path)
            resources.append({"name": Path(name).name, "path": name, "hash": digest, "bytes": size})
        package: dict[str, Any] = {
            "profile": "data-package",
            "wacz_version": WACZ_VERSION,
            "title": title,
        }
        if description:
            package["description"] = description
        package |= {
            "created": rfc3339(created),
            "software": software or default_software(),
            "resources": resources,
        }
        manifest = (json.dumps(package, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
        digest: dict[str, Any] = {
            "path": "datapackage.json",
            "hash": "sha256:" + hashlib.sha256(manifest).hexdigest(),
        }
        after: list[tuple[str, bytes]] = []
        if seal is not None:
            fields, after = seal(digest["hash"])
            digest |= fields
        partial = work / "package.wacz"
        with zipfile.ZipFile(partial, "w", allowZip64=True) as zf:
            for name, path, compress in files:
                info = _zip_info(name, created, compress, path.stat().st_size)
                with path.open("rb") as src, zf.open(info, "w") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
            for name, data in (
                ("datapackage.json", manifest),
                ("datapackage-digest.json", (json.dumps(digest, indent=2) + "\n").encode()),
                *after,
            ):
                zf.writestr(_zip_info(name, created, zipfile.ZIP_DEFLATED, len(data)), data)
        with partial.open("rb+") as fh:
            os.fsync(fh.fileno())
        if target.exists() and not overwrite:  # appeared while we were writing
            raise FileExistsError(f"{target} exists")
        partial.replace(target)
    return WaczSummary(target, len(records), resources[0]["bytes"], len(pages), resources)
