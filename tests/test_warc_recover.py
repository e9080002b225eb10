"""A writer killed with SIGKILL leaves an .open file; recovery keeps every complete record."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from archive import iter_records, recover_open_file, stale_open_files, verify_record, writer_alive


def test_recovers_the_file_of_a_writer_killed_with_sigkill(
    tmp_path: Path, killed_writer: Callable[[Path], Path]
) -> None:
    open_file = killed_writer(tmp_path)
    assert writer_alive(open_file) is False
    assert stale_open_files(tmp_path) == [open_file]

    recovery = recover_open_file(open_file)

    assert recovery.final is not None and recovery.final.exists()
    assert not open_file.exists()
    records = [record for _, record in iter_records(recovery.final)]  # strict: no torn tail
    assert len(records) == recovery.records >= 21  # warcinfo + at least 20 responses
    assert records[0].rec_type == "warcinfo"
    assert all(verify_record(record) == [] for record in records)
    check = subprocess.run(
        [sys.executable, "-m", "warcio.cli", "check", str(recovery.final)], capture_output=True
    )
    assert check.returncode == 0


def test_torn_tail_is_cut_and_kept_aside(
    tmp_path: Path, killed_writer: Callable[[Path], Path]
) -> None:
    open_file = killed_writer(tmp_path)
    whole = open_file.read_bytes()
    torn = b"\x1f\x8b\x08\x00" + os.urandom(300)  # the start of a record that never finished
    open_file.write_bytes(whole + torn)

    recovery = recover_open_file(open_file)

    assert recovery.torn_file is not None
    assert recovery.torn_file.read_bytes() == torn
    assert recovery.torn_bytes == len(torn)
    assert recovery.final is not None
    assert recovery.final.read_bytes() == whole
    assert "moved to" in recovery.describe()


def test_a_live_writer_is_left_alone(tmp_path: Path) -> None:
    live = tmp_path / f"x-20261121000000000-00000-{os.getpid()}~{os.uname().nodename}.warc.gz.open"
    live.write_bytes(b"")
    assert writer_alive(live) is True
    assert stale_open_files(tmp_path) == []
    foreign = tmp_path / "x-20261121000000000-00000-1~some-other-host.warc.gz.open"
    foreign.write_bytes(b"")
    assert writer_alive(foreign) is None
    assert stale_open_files(tmp_path) == []


def test_never_overwrites_a_closed_file(
    tmp_path: Path, killed_writer: Callable[[Path], Path]
) -> None:
    open_file = killed_writer(tmp_path)
    final = open_file.with_name(open_file.name.removesuffix(".open"))
    final.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        recover_open_file(open_file)
    assert final.read_bytes() == b"precious"


def test_a_zombie_writer_is_not_alive() -> None:
    """A writer that ended but was never reaped (an orphan where init does not reap) is
    gone: its .open files are stale, not "still being written"."""
    from archive.recover import process_alive

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert process_alive(os.getpid()) and not process_alive(child.pid)
    child.wait()
