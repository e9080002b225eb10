"""The data home's WARC files and the WARC store (``LINKARCHIVE_WARC_STORE``).

Closed, indexed WARC files are copied into the store named by ``LINKARCHIVE_WARC_STORE``
(``s3://bucket/prefix`` or a folder; unset: no store), each with its CDXJ index and
timestamp token when it has them. A copy is verified (size and SHA-256) before the catalog
records it, and stores never overwrite, so pushing again, or from a retried task, is
harmless. Local files are kept (a worker's are moved: :func:`move_into_store`): readers
use them when present and read a record from the store by byte range when they are not
(:func:`read_from_store`), e.g. on a machine that has the catalog but not the files, or
fetch the whole file once into ``cache/warcs/`` (:func:`cached_copy`) for readers that
scan files (evidence and WACZ exports).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive import StoredRecord
from archive.store import StoredFile, StoreError, WarcStorage, open_storage, read_stored_record
from pipeline.catalog import session_scope
from pipeline.catalog.models import Capture, WarcFile
from pipeline.config import Paths
from pipeline.evidence.ledgerfile import keep_ledger


def configured_storage() -> WarcStorage | None:
    """The store named by ``LINKARCHIVE_WARC_STORE``, or None when it is unset."""
    uri = os.environ.get("LINKARCHIVE_WARC_STORE", "").strip()
    return _storage(uri) if uri else None


@cache
def _storage(uri: str) -> WarcStorage:
    # One per URI and process: the index pass asks every second, and an S3 client is slow
    # to build (boto3 clients are thread-safe).
    return open_storage(uri)


def cache_path(where: Paths, name: str) -> Path:
    """Where a WARC file fetched from the store is kept in the data home."""
    return where.home / "cache" / "warcs" / name


def _mark_stored(warc: WarcFile, stored: StoredFile) -> None:
    warc.sha256, warc.store_uri = stored.sha256, stored.uri
    warc.stored_at = datetime.now(UTC).replace(tzinfo=None)


@dataclass
class PushResult:
    """What a push stored, and what it could not (and, moving, the seconds spent storing
    and indexing)."""

    stored: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    store_seconds: float = 0.0
    index_seconds: float = 0.0


def push_files(
    session: Session, where: Paths, storage: WarcStorage, *, anywhere: bool = False
) -> PushResult:
    """Copy every WARC file of this data home that the catalog has indexed but not stored
    into ``storage`` (with its CDXJ and timestamp token), and record each verified copy
    in the catalog; ``anywhere``: also files indexed where they lie (``warc import``).
    A shared catalog lists other machines' files too: those are left to their machines."""
    result = PushResult()
    unstored = select(WarcFile).where(WarcFile.store_uri.is_(None)).order_by(WarcFile.id)
    if not anywhere:
        unstored = unstored.where(WarcFile.path.startswith(str(where.home.resolve())))
    pending = list(session.scalars(unstored))
    for warc in pending:
        local = Path(warc.path)
        if not local.is_file():
            result.problems.append(f"{warc.name}: not in the data home ({local}); not stored")
            continue
        extras = [where.indexes / f"{warc.name}.cdxj", local.with_name(local.name + ".tsr")]
        extras = [extra for extra in extras if extra.is_file()]
        try:
            for extra in extras:
                storage.put(extra)
            stored = storage.put(local, warc.name)
        except StoreError as exc:  # unreachable or refused: the local file stays, try later
            result.problems.append(f"{warc.name}: {exc}")
            continue
        _mark_stored(warc, stored)
        session.flush()
        result.stored.append(warc.name)
    return result


def move_into_store(where: Paths, storage: WarcStorage, database_url: str) -> PushResult:
    """A worker's pass over its closed, unindexed WARC files: each is stored first (with
    its CDXJ and timestamp token, verified), then indexed into the shared catalog with
    its stored copy recorded in the same transaction, then deleted here.

    Killed at any point, nothing the catalog lists is lost with the machine: a file it
    indexes is already in the store. A store that does not answer leaves the file here
    for the next pass.
    """
    # Only workers index: readers of records (`get`, downloads) need not import the
    # indexer and its extraction libraries (half a second of every `get` command).
    from archive.cdxj import write_cdxj
    from pipeline.indexer import index_files

    result = PushResult()
    with session_scope(database_url) as session:
        known = set(session.scalars(select(WarcFile.name)))
    for path in sorted(where.warcs.glob("*.warc.gz")):
        if path.name in known:
            continue
        token = path.with_name(path.name + ".tsr")
        started = time.monotonic()
        try:
            cdxj = write_cdxj(path, where.indexes)
            extras = [extra for extra in (cdxj, token) if extra.is_file()]
            for extra in extras:
                storage.put(extra)
            stored = storage.put(path)
        except StoreError as exc:
            result.problems.append(f"{path.name}: {exc}")
            continue
        result.store_seconds += time.monotonic() - started
        started = time.monotonic()
        with session_scope(database_url) as session:
            keep_ledger(session, where)  # this machine's ledger file (see ledgerfile)
            index_files(session, [path])
            warc = session.scalars(select(WarcFile).where(WarcFile.name == path.name)).one()
            _mark_stored(warc, stored)
        result.index_seconds += time.monotonic() - started
        result.stored.append(path.name)
        for done in (path, *extras):
            done.unlink(missing_ok=True)
    return result


def read_from_store(session: Session, capture: Capture) -> StoredRecord | None:
    """``capture``'s record read by byte range from the store holding its file, or None
    if the catalog knows no stored copy of that file."""
    uri = session.scalar(select(WarcFile.store_uri).where(WarcFile.name == capture.warc_file))
    if not uri:
        return None
    folder, _, name = uri.rpartition("/")
    return read_stored_record(_storage(folder), name, capture.warc_offset, capture.warc_length)


def cached_copy(session: Session, where: Paths, name: str) -> Path | None:
    """A local copy of the stored WARC file ``name`` for readers that need the whole
    file (evidence and WACZ exports): fetched once into the data home's ``cache/warcs/``,
    verified against the SHA-256 the catalog recorded; None if no copy is stored."""
    warc = session.scalar(select(WarcFile).where(WarcFile.name == name))
    if warc is None or not warc.store_uri or not warc.sha256:
        return None
    target = cache_path(where, name)
    if target.is_file() and target.stat().st_size == warc.size:
        return target  # written only after its digest was verified
    folder, _, stored_name = warc.store_uri.rpartition("/")
    _storage(folder).fetch(stored_name, target)
    return target


def fetch_missing(storage: WarcStorage, where: Paths, have: set[str]) -> list[Path]:
    """Every WARC file of ``storage`` whose name is not in ``have``, as a verified copy in
    the data home's ``cache/warcs/`` (a catalog rebuilt on a machine without the files)."""
    copies = []
    for name in storage.names():
        if not name.endswith(".warc.gz") or name in have:
            continue
        target = cache_path(where, name)
        stored = storage.stat(name)
        if stored is None:
            continue
        if not (target.is_file() and target.stat().st_size == stored.size):
            storage.fetch(name, target)
        copies.append(target)
    return copies


def record_stored(session: Session, storage: WarcStorage, names: list[str]) -> None:
    """Note in the catalog that the files ``names`` are kept in ``storage``."""
    for warc in session.scalars(select(WarcFile).where(WarcFile.name.in_(names))):
        stored = storage.stat(warc.name)
        if stored is not None:
            _mark_stored(warc, stored)
