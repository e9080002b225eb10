"""`linkarchive demo`, as the README promises it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.catalog import session_scope
from pipeline.cli import main
from pipeline.config import paths
from pipeline.users import authenticate

pytestmark = pytest.mark.e2e


def test_demo_archives_the_replica_world_and_reports(
    prefect_server: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--home", str(tmp_path), "demo"]) == 0
    out = capsys.readouterr().out
    assert "Links per country and city" in out
    assert "Crawl run 1 finished: 25 of 25 links" in out
    demo_home = tmp_path / "demo"
    assert list((demo_home / "warcs").glob("*.warc.gz"))
    # Run again: the demo starts afresh in the folder it made itself, keeping its users.
    assert main(["--home", str(demo_home), "users", "add", "ana", "--role", "researcher"]) == 0
    token = capsys.readouterr().out.strip().split()[-1]
    assert main(["--home", str(tmp_path), "demo"]) == 0
    assert "Crawl run 1 finished" in capsys.readouterr().out
    with session_scope(paths(demo_home).database_url) as session:
        assert authenticate(session, "ana", token) is not None  # the same token signs in


def test_demo_never_deletes_a_folder_it_did_not_create(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    precious = tmp_path / "demo" / "precious.warc.gz"
    precious.parent.mkdir()
    precious.write_bytes(b"archived evidence")
    assert main(["--home", str(tmp_path), "demo"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("linkarchive: error: ") and "not created by the demo" in err
    assert precious.read_bytes() == b"archived evidence"


def test_unreadable_catalog_url_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LINKARCHIVE_DATABASE_URL", "nosuchdb://nowhere")
    assert main(["--home", str(tmp_path), "status"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("linkarchive: error: cannot open catalog") and err.count("\n") == 1
