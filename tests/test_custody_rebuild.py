"""The custody ledger survives `catalog rebuild`: every line is also in the data home's
append-only ledger file, and a rebuild restores the ledgers from it verbatim."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from archive.store import open_storage
from pipeline.catalog import session_scope
from pipeline.catalog.models import Capture, CustodyEvent
from pipeline.cli import main
from pipeline.config import Paths, paths
from pipeline.evidence.custody import append_event, ledger_lines, verify_lines
from pipeline.evidence.ledgerfile import keep_ledger, ledger_folder
from pipeline.retrieval import retrieve_payload
from pipeline.storage import move_into_store

Ledgers = dict[str, list[str]]  # capture record id -> its lines, in seq order


def _ledgers(url: str) -> Ledgers:
    """The custody_events table of a catalog, by (record id, seq, line)."""
    found: Ledgers = {}
    with session_scope(url) as session:
        rows = session.execute(
            select(Capture.record_id, CustodyEvent.seq, CustodyEvent.line)
            .join(Capture, Capture.id == CustodyEvent.capture_id)
            .order_by(Capture.record_id, CustodyEvent.seq)
        )
        for record_id, seq, line in rows:
            found.setdefault(record_id, []).append(line)
            assert seq == len(found[record_id])
    return found


def _file_lines(where: Paths) -> list[str]:
    return (ledger_folder(where) / "ledger.jsonl").read_bytes().decode().split("\n")[:-1]


def _rebuild(home: Path, target: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    """``catalog rebuild --into`` target; returns what it printed to stderr."""
    url = f"sqlite:///{target}"
    assert main(["--home", str(home), "catalog", "rebuild", "--into", url, *extra]) == 0
    return capsys.readouterr().err


def _index(home: Path, warcs: list[Path]) -> None:
    (home / "warcs").mkdir(parents=True)
    for warc in warcs:
        shutil.copy2(warc, home / "warcs")
    assert main(["--home", str(home), "warc", "recover"]) == 0


@pytest.fixture(scope="module")
def handled(crawled: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A data home indexed from the crawl's WARC files, then one page retrieved twice,
    exported as evidence and the package verified, all through the CLI."""
    home = tmp_path_factory.mktemp("handled") / "home"
    _index(home, sorted(paths(crawled["home"]).warcs.glob("*.warc.gz")))
    where = paths(home)
    with session_scope(where.database_url) as session:
        page = session.scalars(
            select(Capture)
            .where(Capture.role == "page", Capture.http_status == 200)
            .order_by(Capture.id)
            .limit(1)
        ).one()
    out = home.parent
    for reason in ("one", "two"):  # what `get` and the web app's downloads call
        retrieve_payload(where, page.id, actor="ana", reason=reason, output=str(out / reason))
    cli = ["--home", str(home)]
    package = str(out / "page.wacz")
    export = ["evidence", "export", "--capture", str(page.id), "--reason", "counsel", "-o"]
    assert main([*cli, *export, package]) == 0
    assert main([*cli, "evidence", "verify", package]) == 0
    return {"home": home, "page": page.record_id}


@pytest.fixture
def home(handled: dict[str, Any], tmp_path: Path) -> Path:
    """A copy of the handled data home, for a test to damage."""
    copy = tmp_path / "home"
    shutil.copytree(handled["home"], copy)
    return copy


def test_the_crawl_flow_appends_every_line_it_indexes_to_the_ledger_file(
    crawled: dict[str, Any],
) -> None:
    where = paths(crawled["home"])
    written = set(_file_lines(where))
    with session_scope(where.database_url) as session:
        started = session.scalars(
            select(CustodyEvent.line).where(CustodyEvent.event.in_(("captured", "indexed")))
        ).all()
    assert started and set(started) <= written


def test_the_ledger_file_holds_every_line_byte_for_byte_in_chain_order(home: Path) -> None:
    where = paths(home)
    ledgers = _ledgers(where.database_url)
    lines = _file_lines(where)
    assert sorted(lines) == sorted(line for chain in ledgers.values() for line in chain)
    for record_id, chain in ledgers.items():
        assert [line for line in lines if json.loads(line)["capture"] == record_id] == chain


def test_rebuild_restores_every_ledger_verbatim(
    home: Path, handled: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = _ledgers(paths(home).database_url)
    events = [json.loads(line)["event"] for line in original[handled["page"]]]
    assert events == ["captured", "indexed", "retrieved", "retrieved", "exported", "verified"]
    before = _file_lines(paths(home))
    err = _rebuild(home, tmp_path / "rebuilt.sqlite", capsys)
    assert "custody" not in err
    assert _ledgers(f"sqlite:///{tmp_path / 'rebuilt.sqlite'}") == original
    assert _file_lines(paths(home)) == before  # restoring appends nothing


def test_a_tampered_line_is_reported_and_the_rest_restored(
    home: Path, handled: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = _ledgers(paths(home).database_url)
    ledger = ledger_folder(paths(home)) / "ledger.jsonl"
    lines = ledger.read_text(encoding="utf-8").split("\n")
    first_retrieval = next(
        i
        for i, line in enumerate(lines)
        if line
        and json.loads(line)["capture"] == handled["page"]
        and json.loads(line)["event"] == "retrieved"
    )
    fields = json.loads(lines[first_retrieval])
    fields["actor"] = "someone else"  # still canonical JSON: only the chain tells
    lines[first_retrieval] = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    ledger.write_text("\n".join(lines) + '{"torn', encoding="utf-8")
    err = _rebuild(home, tmp_path / "rebuilt.sqlite", capsys)
    torn = len(lines)
    assert f"not restored: custody ledger ledger.jsonl line {torn}: not a custody line" in err
    assert f"not restored: custody ledger of {handled['page']} (" in err
    assert "4 of its 6 lines: the chain breaks after its line 3" in err
    assert "Traceback" not in err
    rebuilt = _ledgers(f"sqlite:///{tmp_path / 'rebuilt.sqlite'}")
    # The altered line and all after it are left out; nothing else is touched.
    assert rebuilt.pop(handled["page"]) == original.pop(handled["page"])[:2]
    assert rebuilt == original


def test_a_line_written_by_a_transaction_that_never_committed_is_left_out(
    home: Path, handled: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = paths(home)
    with session_scope(where.database_url) as session:
        capture_id = session.scalar(select(Capture.id).where(Capture.record_id == handled["page"]))
    with pytest.raises(RuntimeError), session_scope(where.database_url) as session:
        keep_ledger(session, where)
        append_event(session, capture_id, "retrieved", actor="rolled back")
        raise RuntimeError
    with session_scope(where.database_url) as session:  # a savepoint rolled back
        keep_ledger(session, where)
        with pytest.raises(RuntimeError), session.begin_nested():
            append_event(session, capture_id, "retrieved", actor="rolled back too")
            raise RuntimeError
    assert not any("rolled back" in line for line in _file_lines(where))
    # A commit that fails after its lines were written: the file has a line the catalog
    # never had, a branch of the chain beside the next line committed.
    with session_scope(where.database_url) as session:
        phantom = append_event(session, capture_id, "retrieved", actor="phantom")
        session.flush()
        line = phantom.line
        session.rollback()
    with (ledger_folder(where) / "ledger.jsonl").open("a", encoding="utf-8") as file:
        file.write(line + "\n")
    retrieve_payload(where, capture_id, actor="ana", reason=None, output=str(tmp_path / "x"))
    original = _ledgers(where.database_url)
    err = _rebuild(home, tmp_path / "rebuilt.sqlite", capsys)
    assert "1 of its 8 lines: lines on a branch of its chain" in err
    assert _ledgers(f"sqlite:///{tmp_path / 'rebuilt.sqlite'}") == original


def test_a_lost_ledger_file_gives_fresh_ledgers_and_says_so(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = paths(home)
    original = _ledgers(where.database_url)
    shutil.rmtree(ledger_folder(where))
    err = _rebuild(home, tmp_path / "rebuilt.sqlite", capsys)
    count = len(original)
    assert (
        f"not restored: custody ledger: no ledger file in {ledger_folder(where)}: "
        f"{count} of {count} captures: their ledgers were started afresh"
    ) in err.replace("\n", " ")
    rebuilt = _ledgers(f"sqlite:///{tmp_path / 'rebuilt.sqlite'}")
    assert rebuilt.keys() == original.keys()
    for record_id, lines in rebuilt.items():
        assert verify_lines(lines) == []
        assert [json.loads(line)["event"] for line in lines] == ["captured", "indexed"]
        assert lines[0] == original[record_id][0]  # 'captured' comes from the WARC record
    # The fresh ledgers are in the file now: the rebuilt catalog can be rebuilt again.
    assert sorted(_file_lines(where)) == sorted(sum(rebuilt.values(), []))


def test_a_workers_ledger_file_copied_into_the_data_home_is_restored(
    crawled: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    warcs = sorted(paths(crawled["home"]).warcs.glob("*.warc.gz"))
    main_home, worker = tmp_path / "main", paths(tmp_path / "worker").ensure()
    _index(main_home, warcs[:-1])
    shutil.copy2(warcs[-1], worker.warcs)
    store = open_storage(str(tmp_path / "store"))
    catalog = paths(main_home).database_url
    moved = move_into_store(worker, store, catalog)  # indexed into the shared catalog
    assert moved.stored == [warcs[-1].name] and not moved.problems
    original = _ledgers(catalog)
    with session_scope(catalog) as session:
        ids = session.scalars(select(Capture.id).where(Capture.warc_file == warcs[-1].name))
        on_worker = [line for i in ids for line in ledger_lines(session, i)]
    assert on_worker and _file_lines(worker) == on_worker  # the worker's own ledger file
    # Rebuilt from the main data home (the worker's file fetched from the store) without
    # the worker's ledger file, its captures' ledgers start afresh, and the output says so.
    err = _rebuild(main_home, tmp_path / "first.sqlite", capsys, "--store", store.uri)
    assert f"for {len(on_worker) // 2} of {len(original)} captures" in err.replace("\n", " ")
    # Copied in beside the main one (and the first rebuild's fresh lines), they come back.
    copied = ledger_folder(paths(main_home)) / "worker-b.jsonl"
    shutil.copy2(ledger_folder(worker) / "ledger.jsonl", copied)
    err = _rebuild(main_home, tmp_path / "second.sqlite", capsys, "--store", store.uri)
    assert _ledgers(f"sqlite:///{tmp_path / 'second.sqlite'}") == original
    assert "no line in" not in err
    assert f"an earlier rebuild started for {len(on_worker) // 2} captures" in err
