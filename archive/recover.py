"""Recover the ``.open`` WARC file a killed crawl left behind.

A writer appends whole records and fsyncs before handing out their locations, so after a
crash its ``.open`` file holds complete records followed by at most one torn record. Recovery
keeps every complete record under the file's final name and moves the torn tail into a
``.torn`` file beside it: nothing captured is thrown away, and the WARC file is valid.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from archive.reader import iter_records
from archive.writer import OPEN_SUFFIX

__all__ = ["Recovery", "process_alive", "recover_open_file", "stale_open_files", "writer_alive"]

TORN_SUFFIX = ".torn"
# IIPC-style names written by RotatingWarcWriter: ...-{serial}-{pid}~{host}.warc.gz.open
_WRITER = re.compile(r"-(?P<pid>\d+)~(?P<host>[A-Za-z0-9._-]+)\.warc(?:\.gz)?\.open$")


@dataclass(frozen=True)
class Recovery:
    """What recovering one ``.open`` file did."""

    source: Path
    final: Path | None  # None when not even one record was complete
    records: int
    kept_bytes: int
    torn_bytes: int
    torn_file: Path | None

    def describe(self) -> str:
        """One line for a person."""
        kept = (
            f"{self.records} complete records kept in {self.final.name}"
            if self.final
            else ("no complete record")
        )
        torn = (
            f"; {self.torn_bytes} bytes of a torn record moved to {self.torn_file.name}"
            if self.torn_file
            else "; no torn tail"
        )
        return f"{self.source.name}: {kept}{torn}"


def writer_alive(path: Path, hostname: str | None = None) -> bool | None:
    """Whether the process that writes ``path`` still runs: None if it cannot be told
    (a name not written by us, or a writer on another host)."""
    match = _WRITER.search(path.name)
    if match is None:
        return None
    here = re.sub(r"[^A-Za-z0-9._-]", "_", hostname or socket.gethostname())
    if match["host"] != here:
        return None
    return process_alive(int(match["pid"]))


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (one of another user's counts).

    A zombie does not: an orphaned writer that ended stays one wherever the init process
    does not reap (in many containers), and its files must still be recovered."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc here: signal 0 is all we know
    return state not in ("Z", "X")


def stale_open_files(directory: Path) -> list[Path]:
    """``.open`` files in ``directory`` whose writer on this host is gone."""
    return sorted(path for path in directory.glob(f"*{OPEN_SUFFIX}") if writer_alive(path) is False)


def recover_open_file(path: Path) -> Recovery:
    """Close a crashed writer's ``.open`` file: keep its complete records, set aside the rest."""
    if not path.name.endswith(OPEN_SUFFIX):
        raise ValueError(f"{path} is not an .open WARC file")
    final = path.with_name(path.name[: -len(OPEN_SUFFIX)])
    if final.exists():
        raise FileExistsError(f"{final} already exists; not overwriting it")
    records, end = 0, 0
    for location, _record in iter_records(path, strict=False):
        records += 1
        end = location.offset + location.length
    size = path.stat().st_size
    torn_file = None
    if end < size:
        torn_file = final.with_name(final.name + TORN_SUFFIX)
        with path.open("r+b") as fh:
            fh.seek(end)
            tail = fh.read()
            with torn_file.open("xb") as out:
                out.write(tail)
                out.flush()
                os.fsync(out.fileno())
            fh.truncate(end)
            fh.flush()
            os.fsync(fh.fileno())
    if records:
        path.rename(final)
    else:
        path.unlink()
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return Recovery(
        source=path,
        final=final if records else None,
        records=records,
        kept_bytes=end,
        torn_bytes=size - end,
        torn_file=torn_file,
    )
