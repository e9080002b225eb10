"""`catalog rebuild` restores everything the catalog knows but user accounts: compared
with the catalog it rebuilds, table by table, column by column."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from pipeline.catalog import session_scope
from pipeline.catalog.models import Base, Capture, City, Country, Link, Source
from pipeline.cli import main
from pipeline.config import paths
from pipeline.rebuild import NOT_RESTORED
from pipeline.replica import ReplicaWorld
from pipeline.replica.content import Resource

pytestmark = pytest.mark.e2e

# Columns that point at a row by its id, compared by what identifies that row instead.
CAPTURE_FKS = ("capture_id", "last_capture_id")


def _keys(session: Any) -> dict[str, dict[int, Any]]:
    """For each column naming a row by id: what identifies that row, by id."""
    captures = dict(session.execute(select(Capture.id, Capture.record_id)).all())
    return {
        **dict.fromkeys(CAPTURE_FKS, captures),
        "country_id": dict(session.execute(select(Country.id, Country.name)).all()),
        "city_id": {c.id: (c.country.name, c.name) for c in session.scalars(select(City))},
        "source_id": dict(session.execute(select(Source.id, Source.location)).all()),
    }


def _tables(url: str) -> dict[str, list[tuple]]:
    """Every table's rows, sorted, each column as what it means (not as a row id)."""
    found: dict[str, list[tuple]] = {}
    with session_scope(url) as session:
        keys = _keys(session)
        for table in Base.metadata.sorted_tables:
            if table.name in NOT_RESTORED or f"{table.name}.*" in NOT_RESTORED:
                continue
            columns = [
                c for c in table.columns
                if f"{table.name}.{c.name}" not in NOT_RESTORED
                and not (c.primary_key and c.autoincrement is not False and c.name == "id"
                         and table.name != "links")
            ]  # fmt: skip
            rows = []
            for row in session.execute(select(*columns)).tuples():
                cells = []
                for column, value in zip(columns, row, strict=True):
                    if column.name in keys:
                        value = keys[column.name].get(value, value)
                    if isinstance(value, dict | list):  # JSON: what it says, not its key order
                        value = json.dumps(value, sort_keys=True)
                    cells.append((column.name, repr(value)))
                rows.append(tuple(cells))
            found[table.name] = sorted(rows)
    return found


def test_a_rebuilt_catalog_equals_the_original_table_by_table(
    prefect_server: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.crawl import check_flow, crawl_flow

    monkeypatch.setenv("LINKARCHIVE_DEAD_AFTER_DAYS", "0")
    home = tmp_path / "home"
    with ReplicaWorld() as world:
        source = tmp_path / "seeds.csv"
        pages = [("news", "/lv/riga-solidaritate"), ("news", "/no/oslo-solidaritet"),
                 ("blog", "/ja/tokyo-solidarity")]  # fmt: skip
        source.write_text(
            "country,city,kind,label,url\n"
            + "".join(
                f"Latvia,Riga,report,page {n},{world.url(*p)}\n" for n, p in enumerate(pages)
            ),
            encoding="utf-8",
        )
        assert crawl_flow(source=str(source), home=str(home))["status"] == "finished"
        world.override(*pages[0], Resource("<title>Not Found</title>", "text/html", 404))
        check_flow(home=str(home))  # a failing link, two alive, all archived
        check_flow(home=str(home))
    where = paths(home)
    with session_scope(where.database_url) as session:
        link = session.scalars(select(Link).where(Link.url == world.url(*pages[0]))).one()
        assert (link.status, link.failures) == ("failing", 2)
        capture_id = link.last_capture_id
    base = ["--home", str(home)]
    assert main([*base, "get", "--capture", str(capture_id), "-o", str(tmp_path / "p")]) == 0
    package = str(tmp_path / "e.wacz")
    assert main([*base, "evidence", "export", str(link.id), "--reason", "r", "-o", package]) == 0
    assert main([*base, "evidence", "verify", package]) == 0
    capsys.readouterr()

    rebuilt = f"sqlite:///{tmp_path / 'rebuilt.sqlite'}"
    assert main([*base, "catalog", "rebuild", "--into", rebuilt]) == 0
    assert "not restored" not in capsys.readouterr().err
    original, copy = _tables(where.database_url), _tables(rebuilt)
    assert original.keys() == copy.keys()
    assert {"link_checks", "custody_events", "links", "captures"} <= original.keys()
    assert len(original["link_checks"]) == 6  # two checks of three links
    differ = {
        name: (
            [row for row in original[name] if row not in copy[name]][:2],
            [row for row in copy[name] if row not in original[name]][:2],
        )
        for name in original
        if original[name] != copy[name]
    }
    assert differ == {}

    # What the files do not hold is said: here, a check's judgements, gone with its file.
    for judged in where.warcs.glob("linkarchive-check-*.warc.gz"):
        judged.unlink()
        break
    again = f"sqlite:///{tmp_path / 'again.sqlite'}"
    assert main([*base, "catalog", "rebuild", "--into", again]) == 0
    err = capsys.readouterr().err
    assert "not restored: link_checks: 3 of the current catalog's 6 rows" in err
