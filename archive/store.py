"""Where closed WARC files are kept: a store named by URI, read by byte range.

* ``file:///srv/warcs`` (or a plain path): a folder, today's layout.
* ``s3://bucket/prefix``: S3-compatible object storage (AWS, SeaweedFS, MinIO, …) through
  boto3 (``pip install -e ".[s3]"``); the endpoint comes from ``LINKARCHIVE_S3_ENDPOINT``
  or boto3's own configuration (``AWS_ENDPOINT_URL``, credentials, region).

A store never overwrites: :meth:`WarcStorage.put` of a name already stored succeeds only
if the bytes are the same (same SHA-256: a retried upload), and raises
:class:`AlreadyStored` otherwise. On S3 this is a conditional put (``If-None-Match: *``),
so two workers racing to store one name cannot both win. Every put is verified (size and
SHA-256 read back from the store) before it returns, so a caller may delete its local copy
after it.

Readers take records by byte range (:func:`read_stored_record`): the catalog knows each
record's file, offset and length, so a reader fetches exactly that gzip member, whichever
store holds the file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from archive.reader import StoredRecord, read_member

CHUNK = 1 << 20


class StoreError(Exception):
    """The store cannot be reached or answered something unexpected."""


class AlreadyStored(StoreError):
    """A different file is already stored under this name: stores never overwrite."""


@dataclass(frozen=True)
class StoredFile:
    """A file in a store: its name, size, SHA-256 (hex) and URI."""

    name: str
    size: int
    sha256: str
    uri: str


class WarcStorage(Protocol):
    """A store of closed WARC files (and their CDXJ and timestamp tokens)."""

    uri: str

    def put(self, path: Path, name: str | None = None) -> StoredFile:
        """Store the local file ``path`` as ``name`` (default: its file name), verified."""
        ...

    def stat(self, name: str) -> StoredFile | None:
        """The stored file called ``name``, or None."""
        ...

    def read_range(self, name: str, offset: int, length: int) -> bytes:
        """``length`` bytes of ``name`` from ``offset``."""
        ...

    def fetch(self, name: str, target: Path) -> StoredFile:
        """Copy the stored ``name`` to the local file ``target``, verified against the
        SHA-256 recorded when it was stored (written beside, then renamed into place)."""
        ...

    def names(self) -> Iterator[str]:
        """Every stored name, in order."""
        ...


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a local file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _verified_copy(stored: StoredFile, target: Path, write: Any) -> StoredFile:
    """Write ``target`` with ``write(file)``, check its SHA-256 against ``stored``, then
    rename it into place; a copy that does not match is deleted and StoreError raised."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                              suffix=".part")  # fmt: skip
    temporary = Path(temporary_name)
    try:
        with os.fdopen(handle, "wb") as copy:
            write(copy)
        got = file_sha256(temporary)
        if got != stored.sha256:
            raise StoreError(f"{stored.uri}: SHA-256 {got} read, {stored.sha256} stored")
        temporary.replace(target)
    finally:
        temporary.unlink(missing_ok=True)
    return stored


def _check_name(name: str) -> str:
    if not name or "/" in name or name in (".", "..") or "\x00" in name:
        raise StoreError(f"not a file name for a store: {name!r}")
    return name


class FileStorage:
    """A folder as a store (``file://``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.uri = directory.resolve().as_uri()

    def put(self, path: Path, name: str | None = None) -> StoredFile:
        """Copy ``path`` in (fsynced), linked into place only if the name is free."""
        name = _check_name(name or path.name)
        try:
            return self._put(path, name)
        except OSError as exc:  # a folder that is not there (unmounted), full, read-only
            raise StoreError(f"cannot store {name} in {self.uri}: {exc}") from exc

    def _put(self, path: Path, name: str) -> StoredFile:
        target = self.directory / name
        self.directory.mkdir(parents=True, exist_ok=True)
        if target.exists() and path.resolve() == target.resolve():
            return self._verified(name, file_sha256(path))
        sha = file_sha256(path)
        handle, temporary_name = tempfile.mkstemp(dir=self.directory, prefix=f".{name}.",
                                                  suffix=".part")  # fmt: skip
        temporary = Path(temporary_name)
        with path.open("rb") as source, os.fdopen(handle, "wb") as copy:
            shutil.copyfileobj(source, copy, CHUNK)
            copy.flush()
            os.fsync(copy.fileno())
        try:
            os.link(temporary, target)  # atomic, and fails if the name is taken
        except FileExistsError:
            pass
        finally:
            temporary.unlink(missing_ok=True)
        return self._verified(name, sha)

    def _verified(self, name: str, sha: str) -> StoredFile:
        stored = self.stat(name)
        if stored is None:
            raise StoreError(f"{name} is not in {self.uri} after storing it")
        if stored.sha256 != sha:
            raise AlreadyStored(f"{self.uri}/{name} holds other bytes; stores never overwrite")
        return stored

    def stat(self, name: str) -> StoredFile | None:
        """The file ``name`` in the folder (its SHA-256 read from the bytes), or None."""
        target = self.directory / _check_name(name)
        if not target.is_file():
            return None
        return StoredFile(name, target.stat().st_size, file_sha256(target), target.as_uri())

    def read_range(self, name: str, offset: int, length: int) -> bytes:
        """A byte range of the file."""
        with (self.directory / _check_name(name)).open("rb") as source:
            return os.pread(source.fileno(), length, offset)

    def fetch(self, name: str, target: Path) -> StoredFile:
        """Copy the file out, verified."""
        stored = self.stat(name)
        if stored is None:
            raise StoreError(f"{name} is not in {self.uri}")
        with (self.directory / name).open("rb") as source:
            return _verified_copy(
                stored, target, lambda out: shutil.copyfileobj(source, out, CHUNK)
            )

    def names(self) -> Iterator[str]:
        """Stored names (temporary copies excluded)."""
        if self.directory.is_dir():
            yield from sorted(p.name for p in self.directory.iterdir()
                              if p.is_file() and not p.name.startswith("."))  # fmt: skip


class S3Storage:
    """A bucket and prefix of an S3-compatible store (``s3://bucket/prefix``)."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.client = client if client is not None else _s3_client()

    def _key(self, name: str) -> str:
        name = _check_name(name)
        return f"{self.prefix}/{name}" if self.prefix else name

    def put(self, path: Path, name: str | None = None) -> StoredFile:
        """Upload ``path`` if the name is free (conditional put), then verify it."""
        name = _check_name(name or path.name)
        sha = file_sha256(path)
        error = _client_error()
        try:
            with path.open("rb") as body:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=self._key(name),
                    Body=body,
                    ContentLength=path.stat().st_size,
                    Metadata={"sha256": sha},
                    IfNoneMatch="*",
                )
        except error as exc:
            if _code(exc) not in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise StoreError(f"cannot store {name} in {self.uri}: {exc}") from exc
        stored = self.stat(name)
        if stored is None:
            raise StoreError(f"{name} is not in {self.uri} after storing it")
        if stored.sha256 != sha or stored.size != path.stat().st_size:
            raise AlreadyStored(f"{self.uri}/{name} holds other bytes; stores never overwrite")
        return stored

    def stat(self, name: str) -> StoredFile | None:
        """The object's size and the SHA-256 recorded when it was stored, or None."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(name))
        except _client_error() as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise StoreError(f"cannot read {name} in {self.uri}: {exc}") from exc
        sha = (head.get("Metadata") or {}).get("sha256", "")
        return StoredFile(name, int(head["ContentLength"]), sha, f"{self.uri}/{name}")

    def read_range(self, name: str, offset: int, length: int) -> bytes:
        """A ranged GET of the object."""
        try:
            answer = self.client.get_object(
                Bucket=self.bucket,
                Key=self._key(name),
                Range=f"bytes={offset}-{offset + length - 1}",
            )
        except _client_error() as exc:
            raise StoreError(f"cannot read {name} in {self.uri}: {exc}") from exc
        return answer["Body"].read()

    def fetch(self, name: str, target: Path) -> StoredFile:
        """Download the object, verified against the SHA-256 stored with it."""
        stored = self.stat(name)
        if stored is None:
            raise StoreError(f"{name} is not in {self.uri}")
        try:
            return _verified_copy(
                stored,
                target,
                lambda out: self.client.download_fileobj(self.bucket, self._key(name), out),
            )
        except _client_error() as exc:
            raise StoreError(f"cannot read {name} in {self.uri}: {exc}") from exc

    def names(self) -> Iterator[str]:
        """Stored names under the prefix."""
        paginator = self.client.get_paginator("list_objects_v2")
        start = f"{self.prefix}/" if self.prefix else ""
        for page in paginator.paginate(Bucket=self.bucket, Prefix=start):
            for item in page.get("Contents", []):
                yield item["Key"][len(start) :]


def _s3_client() -> Any:
    try:
        import boto3
    except ImportError as exc:  # an optional extra
        raise StoreError('s3:// stores need boto3: pip install -e ".[s3]"') from exc
    endpoint = os.environ.get("LINKARCHIVE_S3_ENDPOINT") or None
    return boto3.client("s3", endpoint_url=endpoint)


def _client_error() -> type[Exception]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError)  # type: ignore[return-value]


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def open_storage(uri: str | Path) -> WarcStorage:
    """The store a URI names: ``file://…`` or a path, or ``s3://bucket/prefix``."""
    text = str(uri)
    parts = urlsplit(text)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise StoreError(f"no bucket in {text!r} (use s3://bucket/prefix)")
        return S3Storage(parts.netloc, parts.path)
    if parts.scheme == "file":
        return FileStorage(Path(unquote(parts.path)))
    if parts.scheme in ("",) or len(parts.scheme) == 1:  # a path (or a Windows drive)
        return FileStorage(Path(text))
    raise StoreError(f"unsupported store {text!r}: use file:// or s3://")


def read_stored_record(storage: WarcStorage, name: str, offset: int, length: int) -> StoredRecord:
    """The record whose gzip member is ``length`` bytes at ``offset`` of ``name``: one
    ranged read, whichever store holds the file."""
    data = storage.read_range(name, offset, length)
    return read_member(BytesIO(data), f"{storage.uri}/{name}", offset)
