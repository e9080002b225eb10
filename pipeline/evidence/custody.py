"""The chain of custody of every capture (Berkeley Protocol: hash at capture, preserve the
original, document every handling).

Each capture has a ledger: one event per line, canonical JSON, with its UTC time, the actor,
the tool and its version, the reason and details, and ``prev``, the SHA-256 of the previous
line's exact UTF-8 bytes (``null`` on the first line). Editing, removing, inserting or
moving a line therefore breaks the chain at the line after it.

What the chain alone cannot show: that lines were cut from its *end* (or that the last
line was edited and re-hashed into nothing after it). Whoever carries a ledger out of the
catalog (the evidence exporter) therefore also records the number of lines and the SHA-256
of the last one somewhere protected (a signed or timestamped manifest), and checks them
with ``verify_lines(lines, count=..., last_sha256=...)``.

A line looks like (one line, keys sorted)::

    {"actor":"ana@host","at":"2026-11-22T10:00:00.000000Z","capture":"<urn:uuid:...>",
     "details":{...},"event":"captured","format":"linkarchive-custody-1","prev":null,
     "reason":null,"tool":"linkarchive","tool_version":"0.1.0"}
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import socket
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from importlib import metadata
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from pipeline.catalog.models import Capture, CustodyEvent
from pipeline.evidence.ledgerfile import note_lines

EVENTS = ("captured", "indexed", "exported", "retrieved", "verified")
FORMAT = "linkarchive-custody-1"
TOOL = "linkarchive"
CRAWLER_ACTOR = "linkarchive crawler"
FIELDS = frozenset(
    {"actor", "at", "capture", "details", "event", "format", "prev", "reason", "tool",
     "tool_version"}
)  # fmt: skip
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class CustodyError(ValueError):
    """An event that cannot be appended (unknown event, wrong order, time going back)."""


@lru_cache(maxsize=1)
def tool_version() -> str:
    """The installed linkarchive version ("0.1.0" when not installed as a package)."""
    try:
        return metadata.version("linkarchive")
    except metadata.PackageNotFoundError:
        return "0.1.0"


@lru_cache(maxsize=1)
def _user_at_host() -> str:
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        user = f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


def current_actor() -> str:
    """Who is handling evidence here: $LINKARCHIVE_ACTOR, else the OS user name @ host."""
    return os.environ.get("LINKARCHIVE_ACTOR", "").strip() or _user_at_host()


def line_sha256(line: str) -> str:
    """Hex SHA-256 of a ledger line's exact UTF-8 bytes (without a line ending)."""
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


def _utc_naive(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo is not None else at


def _format_at(at: datetime) -> str:
    return _utc_naive(at).strftime(_TIME_FORMAT)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _canonical(value: Mapping[str, Any]) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def event_line(
    *,
    capture_record_id: str,
    event: str,
    at: datetime,
    actor: str,
    tool: str,
    tool_version: str,
    reason: str | None,
    details: dict,
    prev_sha256: str | None,
) -> str:
    """One ledger line: canonical JSON (sorted keys, no spaces, UTF-8), no newline.

    ``at`` is stored as UTC (a naive datetime is taken to be UTC already).
    """
    if event not in EVENTS:
        raise CustodyError(f"unknown custody event {event!r} (one of {', '.join(EVENTS)})")
    return _canonical(
        {
            "format": FORMAT,
            "capture": capture_record_id,
            "event": event,
            "at": _format_at(at),
            "actor": actor,
            "tool": tool,
            "tool_version": tool_version,
            "reason": reason,
            "details": details,
            "prev": prev_sha256,
        }
    )


def _columns(
    capture_id: int,
    record_id: str,
    seq: int,
    event: str,
    at: datetime,
    actor: str,
    reason: str | None,
    details: dict,
    prev: str | None,
) -> dict[str, Any]:
    """The ``custody_events`` row of a new event, its line built and hashed."""
    version = tool_version()
    line = event_line(
        capture_record_id=record_id,
        event=event,
        at=at,
        actor=actor,
        tool=TOOL,
        tool_version=version,
        reason=reason,
        details=details,
        prev_sha256=prev,
    )
    return {
        "capture_id": capture_id,
        "seq": seq,
        "at": _utc_naive(at),
        "event": event,
        "actor": actor,
        "tool": TOOL,
        "tool_version": version,
        "reason": reason,
        "details": details,
        "prev_sha256": prev,
        "line": line,
        "line_sha256": line_sha256(line),
    }


def restored_columns(capture_id: int, seq: int, line: str) -> dict[str, Any]:
    """The ``custody_events`` row of a ledger line as written (restored from a ledger file);
    the line must be one ``verify_lines`` accepts."""
    fields = json.loads(line)
    at = _parse_at(fields["at"])
    if at is None:
        raise CustodyError(f"unparsable time {fields['at']!r}")
    return {
        "capture_id": capture_id,
        "seq": seq,
        "at": at,
        "event": fields["event"],
        "actor": fields["actor"],
        "tool": fields["tool"],
        "tool_version": fields["tool_version"],
        "reason": fields["reason"],
        "details": fields["details"],
        "prev_sha256": fields["prev"],
        "line": line,
        "line_sha256": line_sha256(line),
    }


def append_event(
    session: Session,
    capture_id: int,
    event: str,
    *,
    actor: str,
    reason: str | None = None,
    details: dict | None = None,
    at: datetime | None = None,
) -> CustodyEvent:
    """Append an event to a capture's ledger, chained to its last line; returns the row.

    The first event of a ledger must be ``captured`` (see ``record_capture_events``), and
    no event may be dated before the one it follows.
    """
    if event not in EVENTS:
        raise CustodyError(f"unknown custody event {event!r} (one of {', '.join(EVENTS)})")
    # Lock the capture's row (PostgreSQL): concurrent appends to one ledger take turns.
    capture = session.get(Capture, capture_id, with_for_update=True)
    if capture is None:
        raise CustodyError(f"no capture with id {capture_id}")
    last = session.scalar(
        select(CustodyEvent)
        .where(CustodyEvent.capture_id == capture_id)
        .order_by(CustodyEvent.seq.desc())
        .limit(1)
    )
    at = _utc_naive(at) if at is not None else _now()
    if last is None and event != "captured":
        raise CustodyError(f"capture {capture_id} has no custody ledger: it must start 'captured'")
    if last is not None and event == "captured":
        raise CustodyError(f"capture {capture_id} already has a 'captured' event")
    if last is not None and at < last.at:
        raise CustodyError(
            f"custody event at {_format_at(at)} would precede the ledger's last event "
            f"({_format_at(last.at)})"
        )
    row = CustodyEvent(
        **_columns(
            capture_id,
            capture.record_id,
            last.seq + 1 if last is not None else 1,
            event,
            at,
            actor,
            reason,
            dict(details or {}),
            last.line_sha256 if last is not None else None,
        )
    )
    session.add(row)
    note_lines(session, [(capture_id, row.line)])
    return row


def ledger_lines(session: Session, capture_id: int) -> list[str]:
    """A capture's ledger, its lines in order (empty if it has none)."""
    return list(
        session.scalars(
            select(CustodyEvent.line)
            .where(CustodyEvent.capture_id == capture_id)
            .order_by(CustodyEvent.seq)
        )
    )


def crawl_actor(warcinfo: Mapping[str, str] | None) -> str:
    """Who captured: the WARC file's ``operator@hostname`` (either alone if only one is
    given), else ``linkarchive crawler``."""
    info = warcinfo or {}
    named = [info.get(k, "").strip() for k in ("operator", "hostname")]
    return "@".join(v for v in named if v) or CRAWLER_ACTOR


def _capture_events(
    capture: Capture, warcinfo: Mapping[str, str] | None, reason: str | None, now: datetime
) -> list[dict[str, Any]]:
    details: dict[str, Any] = {
        "url": capture.url,
        "warc_file": capture.warc_file,
        "warc_offset": capture.warc_offset,
        "warc_length": capture.warc_length,
        "warc_record_id": capture.record_id,
        "record_type": capture.record_type,
        "payload_sha256": capture.payload_sha256,
    }
    if capture.refers_to:
        details["refers_to"] = capture.refers_to
    if warcinfo and warcinfo.get("software"):
        details["software"] = warcinfo["software"]
    captured = _columns(
        capture.id, capture.record_id, 1, "captured", capture.captured_at,
        crawl_actor(warcinfo), None, details, None,
    )  # fmt: skip
    indexed_details: dict[str, Any] = {"capture_id": capture.id, "warc_file": capture.warc_file}
    indexed_at = now
    if capture.captured_at > now:  # the capturing host's clock ran ahead of this one
        indexed_at = capture.captured_at
        indexed_details["clock"] = (
            f"indexed at {_format_at(now)} by this host's clock, before the record's WARC-Date"
        )
    indexed = _columns(
        capture.id, capture.record_id, 2, "indexed", indexed_at, current_actor(), reason,
        indexed_details, captured["line_sha256"],
    )  # fmt: skip
    return [captured, indexed]


def record_captures(
    session: Session,
    captures: Iterable[tuple[Capture, Mapping[str, str] | None]],
    *,
    reason: str | None = None,
) -> int:
    """``record_capture_events`` for many captures (each with its file's warcinfo fields):
    one query for the ledgers that exist, one bulk insert; returns the ledgers started."""
    todo = list(captures)
    if any(c.id is None for c, _ in todo):
        session.flush()
    started: set[int] = set()
    ids = [c.id for c, _ in todo]
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        started.update(
            session.scalars(
                select(CustodyEvent.capture_id).where(CustodyEvent.capture_id.in_(chunk)).distinct()
            )
        )
    now = _now()
    rows: list[dict[str, Any]] = []
    for capture, info in todo:
        if capture.id not in started:
            rows += _capture_events(capture, info, reason, now)
            started.add(capture.id)
    if rows:
        session.execute(insert(CustodyEvent.__table__), rows)  # one executemany
        note_lines(session, [(row["capture_id"], row["line"]) for row in rows])
    return len(rows) // 2


def record_capture_events(
    session: Session,
    capture: Capture,
    *,
    warcinfo: Mapping[str, str] | None = None,
    reason: str | None = None,
) -> None:
    """Start a capture's ledger: ``captured`` then ``indexed``; nothing if it has one.

    ``captured`` is dated at the capture's time (WARC-Date), its actor is the capturing
    crawl's ``operator@hostname`` from ``warcinfo`` when known (else ``linkarchive
    crawler``), and its details name the URL, the WARC file, offset, length, the
    WARC-Record-ID and the payload SHA-256. ``indexed`` is dated now, by
    ``current_actor()``, with ``reason`` (e.g. why a ledger is started late).
    """
    record_captures(session, [(capture, warcinfo)], reason=reason)


def give_reason(session: Session, capture_ids: list[int], reason: str) -> None:
    """Give the ``indexed`` line of fresh ledgers (``captured``, ``indexed``, nothing after
    them: e.g. started by a catalog rebuild) ``reason``; its line is written anew."""
    for i in range(0, len(capture_ids), 500):
        rows = session.scalars(
            select(CustodyEvent).where(
                CustodyEvent.capture_id.in_(capture_ids[i : i + 500]),
                CustodyEvent.seq == 2,
                CustodyEvent.event == "indexed",
            )
        )
        for row in rows:
            row.reason = reason
            row.line = event_line(
                capture_record_id=json.loads(row.line)["capture"],
                event=row.event,
                at=row.at,
                actor=row.actor,
                tool=row.tool,
                tool_version=row.tool_version,
                reason=reason,
                details=row.details,
                prev_sha256=row.prev_sha256,
            )
            row.line_sha256 = line_sha256(row.line)
    session.flush()


def _parse_at(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, _TIME_FORMAT)
    except ValueError:
        return None


def verify_lines(
    lines: list[str], *, count: int | None = None, last_sha256: str | None = None
) -> list[str]:
    """Problems with a ledger's lines (empty if none), each naming the bad line's number.

    Pure: needs no catalog. A trailing ``\\n`` on a line is ignored. Found: a line that is
    not a ledger event (unparsable, fields missing or not canonical), an unknown event, a
    broken ``prev`` chain (a line edited, removed, inserted or moved), time going back, a
    line of another capture, and a first line that is not ``captured``. Lines cut from the
    end are only found against the ``count`` and ``last_sha256`` recorded elsewhere.
    """
    problems: list[str] = []
    texts = [line[:-1] if line.endswith("\n") else line for line in lines]
    if not texts:
        problems.append("the ledger is empty: it has no 'captured' event")
    capture: object = None
    previous_at: datetime | None = None
    for number, text in enumerate(texts, start=1):
        try:
            fields = json.loads(text)
        except ValueError:
            fields = None
        if not isinstance(fields, dict):
            problems.append(f"line {number}: unparsable (not a JSON object)")
            continue
        missing = sorted(FIELDS - set(fields))
        if missing:
            problems.append(f"line {number}: not a custody event (missing {', '.join(missing)})")
            continue
        if fields["format"] != FORMAT:
            problems.append(f"line {number}: unknown ledger format {fields['format']!r}")
        try:
            canonical = _canonical(fields) == text
        except ValueError:
            canonical = False
        if not canonical:
            problems.append(f"line {number}: not in canonical form (altered)")
        event = fields["event"]
        if event not in EVENTS:
            problems.append(f"line {number}: unknown event {event!r}")
        if number == 1:
            capture = fields["capture"]
            if event != "captured":
                problems.append(f"line 1: the first event is {event!r}, not 'captured'")
            if fields["prev"] is not None:
                problems.append("line 1: prev is not null: lines before it were removed")
        else:
            if fields["prev"] != line_sha256(texts[number - 2]):
                problems.append(
                    f"line {number}: prev is not the SHA-256 of line {number - 1}: a line "
                    f"was edited, removed, inserted or moved before line {number}"
                )
            if event == "captured":
                problems.append(f"line {number}: a second 'captured' event")
            if fields["capture"] != capture:
                problems.append(
                    f"line {number}: belongs to capture {fields['capture']!r}, not {capture!r}"
                )
        at = _parse_at(fields["at"])
        if at is None:
            problems.append(f"line {number}: unparsable time {fields['at']!r}")
        elif previous_at is not None and at < previous_at:
            problems.append(f"line {number}: time {fields['at']} is earlier than the line before")
        previous_at = at or previous_at
    if count is not None and count != len(texts):
        problems.append(
            f"line {min(count, len(texts)) + 1}: the ledger has {len(texts)} lines where "
            f"{count} were recorded: lines were removed from or added to its end"
        )
    elif last_sha256 is not None and texts and line_sha256(texts[-1]) != last_sha256:
        problems.append(
            f"line {len(texts)}: the last line's SHA-256 is not the one recorded: "
            "it was edited, or the ledger's end was replaced"
        )
    return problems
