"""The custody ledger's file: every ledger line a catalog commits, also appended to
``<home>/custody/ledger.jsonl`` of the data home whose process wrote it.

The file is append-only (flush and fsync on every commit, never rewritten); each line is
byte-identical to the ``line`` column of its ``custody_events`` row, so ``catalog
rebuild`` can restore every ledger verbatim (``pipeline.evidence.restore``). A session
writes its lines to the file only if told to with :func:`keep_ledger`; it does so in
``before_commit``, after a flush, keeping only the lines its transaction holds then (a
savepoint rolled back takes its lines with it). If the commit itself then fails, the file
keeps lines the catalog never had: a rebuild treats them as a branch of the chain that was
never committed, or as lines of a capture it does not know, and reports them.

A worker indexing into a shared catalog appends to its *own* data home's file. Rebuild
reads every ``*.jsonl`` in the ``custody/`` folder of the home it rebuilds from: copy each
worker's ledger file there under a name of its own (e.g. ``custody/worker-b.jsonl``).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from sqlalchemy import event, select
from sqlalchemy.orm import Session, SessionTransaction

from pipeline.catalog.models import CustodyEvent
from pipeline.config import Paths

FOLDER = "custody"
FILE = "ledger.jsonl"
_FILE_KEY = "custody_ledger_file"
_PENDING_KEY = "custody_ledger_pending"


def ledger_folder(where: Paths) -> Path:
    """The data home's folder of ledger files (its own, and any copied in from workers)."""
    return where.home / FOLDER


def ledger_files(where: Paths) -> list[Path]:
    """Every ledger file of the data home, by name."""
    return sorted(p for p in ledger_folder(where).glob("*.jsonl") if p.is_file())


def keep_ledger(session: Session, where: Paths) -> Session:
    """Have ``session`` append each custody line it commits to the data home's ledger file."""
    session.info[_FILE_KEY] = ledger_folder(where) / FILE
    session.info.setdefault(_PENDING_KEY, {})
    return session


def note_lines(session: Session, lines: Iterable[tuple[int, str]]) -> None:
    """Lines (capture id, line) just added to ``session``, for its ledger file if it keeps one."""
    pending: dict[tuple[int, str], None] | None = session.info.get(_PENDING_KEY)
    if pending is not None:
        pending.update(dict.fromkeys(lines))


def append_lines(path: Path, lines: list[str]) -> None:
    """Append ``lines`` to the ledger file at ``path``, then fsync it; one writer at a time."""
    if not lines:
        return
    data = "".join(f"{line}\n" for line in lines).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # processes of one data home append whole batches
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data  # a write cut short (full disk) stays a torn line of its own
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def read_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """A ledger file's lines (number, bytes without the newline); split on ``\\n`` only,
    since a canonical line may hold other Unicode line separators."""
    data = path.read_bytes()
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if raw:
            yield number, raw


@event.listens_for(Session, "before_commit")
def _append_committed(session: Session) -> None:
    pending: dict[tuple[int, str], None] | None = session.info.get(_PENDING_KEY)
    if not pending or session.in_nested_transaction():
        return
    session.flush()
    held: set[tuple[int, str]] = set()
    ids = sorted({capture_id for capture_id, _ in pending})
    for i in range(0, len(ids), 500):
        held.update(
            session.execute(
                select(CustodyEvent.capture_id, CustodyEvent.line).where(
                    CustodyEvent.capture_id.in_(ids[i : i + 500])
                )
            ).tuples()
        )
    append_lines(session.info[_FILE_KEY], [line for _, line in filter(held.__contains__, pending)])
    pending.clear()


@event.listens_for(Session, "after_transaction_end")
def _forget_rolled_back(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost transaction: committed (written) or not
        pending = session.info.get(_PENDING_KEY)
        if pending:
            pending.clear()
