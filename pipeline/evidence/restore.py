"""Restore the custody ledgers of a rebuilt catalog from the data home's ledger files.

The rebuild's indexing starts every capture's ledger afresh (``captured``, ``indexed``
dated now). For each capture whose lines are in a ledger file (``pipeline.evidence.
ledgerfile``), those lines replace the fresh ones, verbatim: deduplicated (several files
may hold a line), put back in chain order by their ``prev`` hashes and checked with
``verify_lines``. What cannot be restored is reported, one readable line each.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from pipeline.catalog.models import Capture, CustodyEvent
from pipeline.config import Paths
from pipeline.evidence.custody import give_reason, line_sha256, restored_columns, verify_lines
from pipeline.evidence.ledgerfile import FILE, append_lines, ledger_files, ledger_folder, read_lines

STARTED = "ledger started by catalog rebuild: none of its lines was in the ledger files"
MAX_REPORTED = 20  # per-capture lines in a report; more are summed up in one line
_CHUNK = 500
_LINE_NUMBER = re.compile(r"^line (\d+):")


@dataclass(frozen=True)
class _Line:
    prev: str | None
    started: bool  # the 'indexed' line of a ledger an earlier rebuild started afresh


@dataclass
class _Chain:
    lines: list[str]
    why: str = ""  # why lines were left out, if any were
    superseded: bool = False  # only a ledger an earlier rebuild started was left out


def restore_ledgers(session: Session, where: Paths) -> list[str]:
    """Put the ledgers of the data home's ledger files back into the rebuilt catalog of
    ``session`` (captures found by WARC-Record-ID); returns what was not restored.

    A capture with no line in any ledger file keeps the fresh ledger the indexing gave
    it (its ``indexed`` line saying so), and those lines are appended to the data home's
    ledger file: once the rebuilt catalog is in use, its ledgers can be rebuilt again.
    """
    folder = ledger_folder(where)
    found: dict[str, dict[str, _Line]] = {}  # record id -> its lines, in file order
    problems: list[str] = []
    for path in ledger_files(where):
        for number, raw in read_lines(path):
            parsed = _parse(raw)
            if parsed is None:
                problems.append(
                    f"custody ledger {path.name} line {number}: not a custody line "
                    "(torn or altered); skipped"
                )
                continue
            text, record_id, line = parsed
            found.setdefault(record_id, {}).setdefault(text, line)
    captures: dict[str, tuple[int, str]] = {}
    record_ids = list(found)
    for i in range(0, len(record_ids), _CHUNK):
        for capture_id, record_id, url in session.execute(
            select(Capture.id, Capture.record_id, Capture.url).where(
                Capture.record_id.in_(record_ids[i : i + _CHUNK])
            )
        ):
            captures[record_id] = (capture_id, url)
    unknown = [r for r in found if r not in captures]
    if unknown:
        count = sum(len(found[r]) for r in unknown)
        problems.append(
            f"custody ledger: {count} lines of {len(unknown)} captures the WARC files do not "
            f"hold (e.g. {unknown[0]}); they stay in {folder}"
        )
    rows: list[dict[str, Any]] = []
    restored: list[int] = []
    partly: list[str] = []
    superseded = 0
    for record_id, lines in found.items():
        if record_id not in captures:
            continue
        capture_id, url = captures[record_id]
        chain = _chain(lines)
        superseded += chain.superseded
        if chain.why:
            kept = f"{len(chain.lines)} restored" if chain.lines else "its ledger started afresh"
            partly.append(
                f"custody ledger of {record_id} ({url}): {len(lines) - len(chain.lines)} of "
                f"its {len(lines)} lines: {chain.why}; {kept}"
            )
        if chain.lines:
            restored.append(capture_id)
            rows += [restored_columns(capture_id, n, line) for n, line in enumerate(chain.lines, 1)]
    if len(partly) > MAX_REPORTED:
        partly[MAX_REPORTED:] = [
            f"custody ledger: {len(partly) - MAX_REPORTED} more captures whose ledgers were "
            f"not fully restored (their lines stay in {folder})"
        ]
    problems += partly
    if superseded:
        problems.append(
            f"custody ledger: the 'indexed' lines an earlier rebuild started for {superseded} "
            "captures, superseded by their ledgers from before it (restored)"
        )
    for i in range(0, len(restored), _CHUNK):
        session.execute(
            delete(CustodyEvent).where(CustodyEvent.capture_id.in_(restored[i : i + _CHUNK]))
        )
    if rows:
        session.execute(insert(CustodyEvent.__table__), rows)
    with_lines = {captures[r][0] for r in found if r in captures}
    problems += _keep_fresh(session, where, set(restored), with_lines)
    return problems


def _parse(raw: bytes) -> tuple[str, str, _Line] | None:
    """A ledger line's text, capture record id and links; None if it is not one."""
    try:
        text = raw.decode("utf-8")
        fields = json.loads(text)
    except ValueError:
        return None
    if not isinstance(fields, dict):
        return None
    capture, prev = fields.get("capture"), fields.get("prev")
    if not isinstance(capture, str) or not (prev is None or isinstance(prev, str)):
        return None
    started = fields.get("event") == "indexed" and fields.get("reason") == STARTED
    return text, capture, _Line(prev, started)


def _chain(lines: dict[str, _Line]) -> _Chain:
    """The longest chain of ``lines`` from a first line (``prev`` null).

    At a fork (two lines after the same line) the longer branch wins, then one not
    started by an earlier rebuild, then the one written last: a line written by a
    transaction that then failed to commit comes before the line committed in its place.
    A line whose ``prev`` is no line found means a line is missing or the line before it
    was altered, which no hash can tell apart: the chain then stops *before* that line,
    which may be the altered one (for evidence, a line left out and reported beats a
    forged one kept).
    """
    texts = list(lines)
    shas = [line_sha256(text) for text in texts]
    after: dict[str | None, list[int]] = {}
    for i, text in enumerate(texts):
        after.setdefault(lines[text].prev, []).append(i)
    depth: dict[int, int] = {}  # lines in the longest chain from a line on
    for start in range(len(texts)):
        stack = [start]
        while stack:
            i = stack[-1]
            if i in depth:
                stack.pop()
                continue
            nexts = after.get(shas[i], [])
            todo = [n for n in nexts if n not in depth]
            if todo:
                stack += todo
                continue
            depth[i] = 1 + max((depth[n] for n in nexts), default=0)
            stack.pop()
    path: list[int] = []
    heads = after.get(None, [])
    while heads:
        path.append(max(heads, key=lambda n: (depth[n], not lines[texts[n]].started, n)))
        heads = after.get(shas[path[-1]], [])
    reasons: list[str] = []
    superseded = False
    known = set(shas)
    if any(line.prev is not None and line.prev not in known for line in lines.values()):
        if not path:
            reasons.append("its first line is in no ledger file here (on a worker?)")
        else:
            reasons.append(
                f"the chain breaks after its line {len(path)} (a line after it is missing, "
                f"or line {len(path)} was altered)"
            )
            path.pop()
    elif len(path) < len(texts):
        left = set(range(len(texts))) - set(path)
        superseded = all(lines[texts[i]].started for i in left)
        if not superseded:
            reasons.append("lines on a branch of its chain (never committed, or conflicting)")
    kept = [texts[i] for i in path]
    found = verify_lines(kept) if kept else []
    if found:
        first = min((int(m.group(1)) for p in found if (m := _LINE_NUMBER.match(p))), default=1)
        reasons.append(found[0])
        kept = kept[: first - 1]
    return _Chain(kept, "; ".join(reasons), superseded and not reasons)


def _keep_fresh(
    session: Session, where: Paths, restored: set[int], with_lines: set[int]
) -> list[str]:
    """Mark the fresh ledgers (of captures restored from no file) and append them to the
    ledger file; say how many captures had no line in any ledger file."""
    fresh = sorted(set(session.scalars(select(CustodyEvent.capture_id).distinct())) - restored)
    if not fresh:
        return []
    give_reason(session, fresh, STARTED)
    lines: list[str] = []
    for i in range(0, len(fresh), _CHUNK):
        lines += session.scalars(
            select(CustodyEvent.line)
            .where(CustodyEvent.capture_id.in_(fresh[i : i + _CHUNK]))
            .order_by(CustodyEvent.capture_id, CustodyEvent.seq)
        )
    # Written before the rebuild commits: lines of a rebuild that then fails are, to a
    # later rebuild, a ledger started by a rebuild (its 'captured' line is the same).
    append_lines(ledger_folder(where) / FILE, lines)
    missing = len(set(fresh) - with_lines)
    if not missing:
        return []
    total = session.scalar(select(func.count(Capture.id)))
    folder = ledger_folder(where)
    lacking = (
        f"no line in {folder}/*.jsonl for {missing} of {total} captures"
        if with_lines
        else f"no ledger file in {folder}: {missing} of {total} captures"
    )
    return [f"custody ledger: {lacking}: their ledgers were started afresh"]
