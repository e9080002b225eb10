"""The chain of custody: every capture's ledger, how it grows, and what tampering it shows."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from archive import RecordFactory, RotatingWarcWriter
from pipeline.catalog import session_scope
from pipeline.catalog.db import forget_engine
from pipeline.catalog.models import Capture, CustodyEvent
from pipeline.cli import main
from pipeline.config import paths
from pipeline.evidence.custody import (
    EVENTS,
    CustodyError,
    append_event,
    current_actor,
    event_line,
    ledger_lines,
    line_sha256,
    record_capture_events,
    verify_lines,
)
from pipeline.foreign import import_files

T0 = datetime(2020, 10, 10, 10, 0, 0)


def _db(crawled: dict[str, Any]) -> str:
    return paths(crawled["home"]).database_url


def ledger(events: list[str], *, capture: str = "<urn:uuid:1>", start: datetime = T0) -> list[str]:
    """A chained ledger of ``events``, one minute apart, built with the pure line builder."""
    lines: list[str] = []
    for i, event in enumerate(events):
        lines.append(
            event_line(
                capture_record_id=capture,
                event=event,
                at=start + timedelta(minutes=i),
                actor="ana@host",
                tool="linkarchive",
                tool_version="0.1.0",
                reason=f"step {i}",
                details={"n": i, "note": "Kraków ✓"},
                prev_sha256=line_sha256(lines[-1]) if lines else None,
            )
        )
    return lines


LEDGER = ledger(["captured", "indexed", "retrieved", "exported", "verified"])


# --- the ledgers the indexer writes -----------------------------------------------------


def test_every_indexed_capture_has_a_valid_ledger(crawled: dict[str, Any]) -> None:
    with session_scope(_db(crawled)) as session:
        captures = list(session.scalars(select(Capture)))
        assert captures
        for capture in captures:
            lines = ledger_lines(session, capture.id)
            assert verify_lines(lines) == [], capture.url
            first, second = (json.loads(line) for line in lines[:2])
            assert (first["event"], second["event"]) == ("captured", "indexed")
            assert first["capture"] == capture.record_id
            assert first["at"].startswith(capture.captured_at.strftime("%Y-%m-%dT%H:%M:%S"))
            assert first["actor"].startswith("linkarchive@")  # the crawl's operator@host
            assert first["details"] == {
                "url": capture.url,
                "warc_file": capture.warc_file,
                "warc_offset": capture.warc_offset,
                "warc_length": capture.warc_length,
                "warc_record_id": capture.record_id,
                "record_type": capture.record_type,
                "payload_sha256": capture.payload_sha256,
                **({"refers_to": capture.refers_to} if capture.refers_to else {}),
                "software": first["details"]["software"],
            }
            assert first["tool"] == "linkarchive" and first["tool_version"]
            assert second["prev"] == line_sha256(lines[0])
            rows = session.scalars(
                select(CustodyEvent)
                .where(CustodyEvent.capture_id == capture.id)
                .order_by(CustodyEvent.seq)
            ).all()
            assert [r.seq for r in rows] == list(range(1, len(lines) + 1))
            assert all(r.line_sha256 == line_sha256(r.line) for r in rows)


def test_get_appends_a_retrieved_event_that_chains(
    crawled: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with session_scope(_db(crawled)) as session:
        capture_id = session.scalar(
            select(Capture.id).where(Capture.http_status == 200).order_by(Capture.id).limit(1)
        )
        assert capture_id is not None
        before = ledger_lines(session, capture_id)
    target = tmp_path / "page.bin"
    home = str(crawled["home"])
    code = main(["--home", home, "get", "--capture", str(capture_id), "-o", str(target),
                 "--reason", "court filing 12/3", "--requested-by", "Counsel <x@y>"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    monkeypatch.setenv("LINKARCHIVE_ACTOR", "paralegal on duty")
    assert main(["--home", home, "get", "--capture", str(capture_id), "-o", "-"]) == 0
    capsys.readouterr()
    with session_scope(_db(crawled)) as session:
        after = ledger_lines(session, capture_id)
    assert after[: len(before)] == before
    assert verify_lines(after) == []
    first, second = (json.loads(line) for line in after[len(before) :])
    assert first["event"] == "retrieved" and first["prev"] == line_sha256(before[-1])
    assert first["actor"] == "Counsel <x@y>" and first["reason"] == "court filing 12/3"
    written = target.read_bytes()
    assert first["details"]["sha256"] == hashlib.sha256(written).hexdigest()
    assert first["details"]["bytes"] == len(written)
    assert first["details"]["output"] == str(target.resolve())
    assert second["actor"] == "paralegal on duty" and second["reason"] is None
    assert second["details"]["output"] == "-"


def test_a_failed_get_appends_nothing(
    crawled: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    with session_scope(_db(crawled)) as session:
        capture_id = session.scalar(select(Capture.id).order_by(Capture.id).limit(1))
        before = ledger_lines(session, capture_id)
    code = main(
        [
            "--home",
            str(crawled["home"]),
            "get",
            "--capture",
            str(capture_id),
            "-o",
            "/no/such/dir/x",
        ]
    )
    _, err = capsys.readouterr()
    assert code != 0 and len(err.strip().splitlines()) == 1
    with session_scope(_db(crawled)) as session:
        assert ledger_lines(session, capture_id) == before


def test_imported_warc_files_get_ledgers_naming_their_operator_and_host(tmp_path: Path) -> None:
    factory = RecordFactory()
    with RotatingWarcWriter(
        tmp_path / "in", factory=factory, hostname="field-laptop",
        warcinfo_fields={"operator": "ana"}, fsync=False,
    ) as writer:  # fmt: skip
        writer.write(factory.response("http://127.0.0.1:9/a", 200, "OK", "HTTP/1.1",
                                      [("Content-Type", "text/plain")], b"rally"))  # fmt: skip
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    with session_scope(url) as session:
        result = import_files(session, (tmp_path / "in").glob("*.warc.gz"))
        assert result.captures == 1
        capture = session.scalars(select(Capture)).one()
        lines = ledger_lines(session, capture.id)
    forget_engine(url)
    assert verify_lines(lines) == []
    captured = json.loads(lines[0])
    assert captured["actor"] == "ana@field-laptop"
    assert captured["details"]["payload_sha256"] == hashlib.sha256(b"rally").hexdigest()
    assert captured["details"]["warc_file"].endswith(".warc.gz")


# --- appending ---------------------------------------------------------------------------


@pytest.fixture
def catalog(tmp_path: Path) -> Any:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    with session_scope(url) as session:
        session.add(
            Capture(
                record_id="<urn:uuid:c1>",
                url="http://127.0.0.1/x",
                captured_at=T0,
                size=5,
                payload_sha256="ab" * 32,
                warc_file="f.warc.gz",
                warc_offset=0,
                warc_length=10,
            )  # fmt: skip
        )
    yield url
    forget_engine(url)


def test_ledger_is_started_once_and_appended_in_order(catalog: str) -> None:
    with session_scope(catalog) as session:
        capture = session.scalars(select(Capture)).one()
        with pytest.raises(CustodyError, match="must start 'captured'"):
            append_event(session, capture.id, "retrieved", actor="x")
        record_capture_events(session, capture)
        record_capture_events(session, capture)  # idempotent
        assert len(ledger_lines(session, capture.id)) == 2
        row = append_event(session, capture.id, "verified", actor="auditor", reason="spot check",
                           details={"ok": True})  # fmt: skip
        assert row.seq == 3 and row.event == "verified" and row.actor == "auditor"
        with pytest.raises(CustodyError, match="precede"):
            append_event(session, capture.id, "exported", actor="x", at=T0)
        with pytest.raises(CustodyError, match="unknown custody event"):
            append_event(session, capture.id, "shredded", actor="x")
        with pytest.raises(CustodyError, match="already has a 'captured'"):
            append_event(session, capture.id, "captured", actor="x")
        lines = ledger_lines(session, capture.id)
        count = session.scalar(select(func.count()).select_from(CustodyEvent))
    assert count == 3
    assert verify_lines(lines) == []
    assert [json.loads(line)["event"] for line in lines] == ["captured", "indexed", "verified"]
    assert json.loads(lines[0])["actor"] == "linkarchive crawler"  # no warcinfo to name one


def test_an_aware_time_is_stored_in_utc(catalog: str) -> None:
    with session_scope(catalog) as session:
        capture = session.scalars(select(Capture)).one()
        record_capture_events(session, capture)
        later = datetime(2099, 1, 1, 12, 0, tzinfo=UTC).astimezone()
        row = append_event(session, capture.id, "verified", actor="x", at=later)
    assert json.loads(row.line)["at"] == "2099-01-01T12:00:00.000000Z"
    assert row.at == datetime(2099, 1, 1, 12, 0)


def test_a_capture_dated_ahead_of_this_clock_keeps_its_ledger_in_order(catalog: str) -> None:
    with session_scope(catalog) as session:
        capture = session.scalars(select(Capture)).one()
        capture.captured_at = datetime(2999, 1, 1)  # the capturing host's clock ran ahead
        record_capture_events(session, capture)
        lines = ledger_lines(session, capture.id)
    assert verify_lines(lines) == []
    indexed = json.loads(lines[1])
    assert indexed["at"] == "2999-01-01T00:00:00.000000Z"
    assert "before the record's WARC-Date" in indexed["details"]["clock"]


def test_current_actor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKARCHIVE_ACTOR", "Investigator A")
    assert current_actor() == "Investigator A"
    monkeypatch.delenv("LINKARCHIVE_ACTOR")
    assert "@" in current_actor()


# --- the pure line format and its verification ------------------------------------------


def test_lines_are_canonical_json_chained_by_sha256() -> None:
    first = json.loads(LEDGER[0])
    assert first["prev"] is None and first["at"] == "2020-10-10T10:00:00.000000Z"
    assert "Kraków ✓" in LEDGER[0]  # UTF-8, not \\u escapes
    assert all("\n" not in line and ": " not in line for line in LEDGER)
    for earlier, later in zip(LEDGER, LEDGER[1:], strict=False):
        assert json.loads(later)["prev"] == hashlib.sha256(earlier.encode()).hexdigest()
    assert set(EVENTS) == {json.loads(line)["event"] for line in LEDGER}
    assert verify_lines(LEDGER) == []
    assert verify_lines([line + "\n" for line in LEDGER]) == []  # as read from a file


def _edit(line: str, **changes: Any) -> str:
    fields = json.loads(line) | changes
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_an_edited_middle_line_breaks_the_chain_at_the_next_line() -> None:
    lines = list(LEDGER)
    lines[2] = _edit(lines[2], actor="someone else")
    problems = verify_lines(lines)
    assert len(problems) == 1 and problems[0].startswith("line 4: prev")


def test_a_non_canonical_edit_is_named_on_its_own_line() -> None:
    lines = list(LEDGER)
    lines[1] = lines[1].replace('"reason":', '"reason": ')
    problems = verify_lines(lines)
    assert problems[0].startswith("line 2: not in canonical form")
    assert problems[1].startswith("line 3: prev")


def test_a_dropped_middle_line_is_found() -> None:
    problems = verify_lines(LEDGER[:2] + LEDGER[3:])
    assert len(problems) == 1 and problems[0].startswith("line 3: prev")


def test_a_dropped_first_line_is_found() -> None:
    problems = verify_lines(LEDGER[1:])
    assert problems == [
        "line 1: the first event is 'indexed', not 'captured'",
        "line 1: prev is not null: lines before it were removed",
    ]


def test_a_cut_end_needs_the_count_and_last_hash_recorded_elsewhere() -> None:
    """The chain alone cannot show lines cut from its end, nor a re-made last line: the
    exporter records the count and the last line's SHA-256 beside the ledger."""
    cut = LEDGER[:-1]
    assert verify_lines(cut) == []  # undetectable by the chain alone
    problems = verify_lines(cut, count=len(LEDGER), last_sha256=line_sha256(LEDGER[-1]))
    assert len(problems) == 1 and problems[0].startswith("line 5: the ledger has 4 lines")
    remade = LEDGER[:-1] + [_edit(LEDGER[-1], reason="rewritten")]
    assert verify_lines(remade) == []
    problems = verify_lines(remade, count=len(LEDGER), last_sha256=line_sha256(LEDGER[-1]))
    assert len(problems) == 1 and problems[0].startswith("line 5: the last line's SHA-256")
    full = verify_lines(LEDGER, count=len(LEDGER), last_sha256=line_sha256(LEDGER[-1]))
    assert full == []


def test_reordered_lines_are_found() -> None:
    lines = [LEDGER[0], LEDGER[2], LEDGER[1], *LEDGER[3:]]
    problems = verify_lines(lines)
    assert problems[0].startswith("line 2: prev")
    assert any(p.startswith("line 3: time") for p in problems)


def test_a_non_json_line_is_found() -> None:
    lines = [LEDGER[0], "this is not json", *LEDGER[1:]]
    problems = verify_lines(lines)
    assert problems[0] == "line 2: unparsable (not a JSON object)"
    assert problems[1].startswith("line 3: prev")
    assert verify_lines([LEDGER[0], '["a list"]'])[0] == "line 2: unparsable (not a JSON object)"
    assert verify_lines([LEDGER[0], "{}"])[0].startswith("line 2: not a custody event (missing")


def test_unknown_event_time_going_back_and_a_foreign_line_are_found() -> None:
    lines = list(LEDGER)
    lines[1] = _edit(lines[1], event="shredded")
    assert "line 2: unknown event 'shredded'" in verify_lines(lines)
    back = ledger(["captured", "indexed"]) + ledger(["retrieved"], start=T0 - timedelta(days=1))
    back[2] = _edit(back[2], prev=line_sha256(back[1]))
    assert verify_lines(back) == [
        "line 3: time 2020-10-09T10:00:00.000000Z is earlier than the line before"
    ]
    other = ledger(["captured", "indexed"], capture="<urn:uuid:2>")
    spliced = [other[0], _edit(LEDGER[1], prev=line_sha256(other[0]))]
    assert verify_lines(spliced) == [
        "line 2: belongs to capture '<urn:uuid:1>', not '<urn:uuid:2>'"
    ]
    assert verify_lines([]) == ["the ledger is empty: it has no 'captured' event"]


def test_event_line_refuses_unknown_events() -> None:
    with pytest.raises(CustodyError):
        ledger(["captured", "deleted"])


def test_concurrent_retrievals_of_one_capture_all_chain(
    crawled: dict[str, Any], tmp_path: Path
) -> None:
    """Several `get`s of one capture at once (the web app serves many users): each waits
    its turn for the ledger, none fails, and the chain stays whole."""
    import shutil
    import subprocess
    import sys

    home = tmp_path / "home"
    shutil.copytree(crawled["home"], home)
    db = paths(home).database_url
    with session_scope(db) as session:
        capture_id = session.scalar(
            select(Capture.id).where(Capture.http_status == 200).order_by(Capture.id).limit(1)
        )
        before = ledger_lines(session, capture_id)
    linkarchive = str(Path(sys.executable).parent / "linkarchive")
    runs = [
        subprocess.Popen(
            [
                linkarchive,
                "--home",
                str(home),
                "get",
                "--capture",
                str(capture_id),
                "-o",
                str(tmp_path / f"{n}"),
                "--reason",
                f"request {n}",
                "--requested-by",
                f"clerk {n}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for n in range(6)
    ]
    errors = [run.communicate(timeout=120)[1] for run in runs]
    assert [run.returncode for run in runs] == [0] * 6, errors
    forget_engine(db)
    with session_scope(db) as session:
        after = ledger_lines(session, capture_id)
    assert verify_lines(after) == []
    added = [json.loads(line) for line in after[len(before) :]]
    assert sorted(event["actor"] for event in added) == [f"clerk {n}" for n in range(6)]
    assert all(event["event"] == "retrieved" for event in added)
