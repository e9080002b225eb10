"""Disk space for preserved bytes: what a full disk looks like, and how much is left.

A crawl stops *before* the disk is full (``LINKARCHIVE_MIN_FREE_SPACE`` left, so the
catalog and the closing of WARC files still have room) and, should a write fail anyway
(another process filled the disk, a quota, ``RLIMIT_FSIZE``), it stops at that write:
the writer has already cut the failed append away, so every file stays whole.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

#: errno values of a write that failed for want of space: no space, over quota, over the
#: process's file-size limit (Python ignores SIGXFSZ, so the write fails with EFBIG).
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
#: Exit status of a crawl process stopped because its disk is full (ENOSPC's number).
DISK_FULL_EXIT = 28


def is_disk_full(exc: BaseException) -> bool:
    """True if ``exc`` (or what it was raised from) is a write that found no space."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in DISK_FULL_ERRNOS:
            return True
        if "database or disk is full" in str(seen):  # SQLite's words for the same
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def free_bytes(path: str | Path) -> int:
    """Bytes free for this user on the file system holding ``path``."""
    return shutil.disk_usage(path).free


def disk_full_message(path: str | Path) -> str:
    """One line for a crawl stopped by a full disk at ``path``."""
    return (
        f"the disk holding {path} is full (or below LINKARCHIVE_MIN_FREE_SPACE): "
        "free some space, then run `linkarchive crawl --resume`"
    )
