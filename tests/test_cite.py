"""Citations of real captures in four styles, and BibTeX / JSON that survive hostile titles."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from pipeline.catalog import session_scope
from pipeline.catalog.fulltext import SearchQuery, search
from pipeline.catalog.models import Capture, PageMetadataRow
from pipeline.catalog.queries import QueryError
from pipeline.citation import STYLES, archived_url, citation_facts, cite
from pipeline.cli import main
from pipeline.config import paths

pytestmark = pytest.mark.e2e

BIBTEX_FIELD = re.compile(r"  ([a-z]+) = \{(.*)\},?")


def parse_bibtex(entry: str) -> tuple[str, dict[str, str]]:
    """A strict reading of one @misc entry as we write it: key, and fields with balanced
    braces and no unescaped TeX specials outside \\url{...}."""
    lines = entry.splitlines()
    head = re.fullmatch(r"@misc\{([A-Za-z0-9]+),", lines[0])
    assert head is not None, lines[0]
    assert lines[-1] == "}"
    fields = {}
    for line in lines[1:-1]:
        match = BIBTEX_FIELD.fullmatch(line)
        assert match is not None, line
        value = match.group(2)
        plain = re.sub(r"\\url\{[^{}]*\}", "", value) if match.group(1) != "url" else ""
        plain = re.sub(r"\\(textbackslash|textasciitilde|textasciicircum)\{\}", "", plain)
        plain = re.sub(r"\\[{}%&$#_]", "", plain)
        assert not re.search(r"[%&$#_~^\\]", plain), (match.group(1), value)
        depth = 0
        for char in re.sub(r"\\[{}]", "", value):
            depth += {"{": 1, "}": -1}.get(char, 0)
            assert depth >= 0, value
        assert depth == 0, value
        fields[match.group(1)] = value
    return head.group(1), fields


@pytest.fixture(scope="module")
def berlin(crawled: dict[str, Any]) -> dict[str, Any]:
    """The facts of the capture of the Berlin report (it has an author and a site name)."""
    url = paths(crawled["home"]).database_url
    with session_scope(url) as session:
        (row,) = search(session, SearchQuery(city="Berlin", kind="report")).rows
        return citation_facts(session, row["capture_id"], base="https://archive.example.org/")


def test_facts_of_a_report(berlin: dict[str, Any]) -> None:
    assert berlin["title"] == "Berlin: Frauen in Weiß für ein freies Belarus"
    assert berlin["author"] == "Anna Weber"
    assert berlin["published"] == "2020-10-10"
    assert berlin["url"].endswith("/de/berlin-demo")
    stamp = datetime.fromisoformat(berlin["captured_at"].removesuffix("Z"))
    assert berlin["archived_url"] == (
        f"https://archive.example.org/archived/web/{stamp:%Y%m%d%H%M%S}/{berlin['url']}"
    )
    assert berlin["record_id"].startswith("<urn:uuid:") and len(berlin["payload_sha256"]) == 64


def test_apa_and_chicago(berlin: dict[str, Any]) -> None:
    apa = cite(berlin, "apa")
    assert apa.startswith(
        "Weber, A. (2020, October 10). Berlin: Frauen in Weiß für ein freies Belarus. "
        f"{berlin['site_name']}. Retrieved "
    )
    assert f"from {berlin['url']}." in apa and apa.endswith(berlin["archived_url"])
    chicago = cite(berlin, "chicago")
    assert chicago.startswith(
        "Weber, Anna. \u201cBerlin: Frauen in Weiß für ein freies Belarus.\u201d "
        f"{berlin['site_name']}, October 10, 2020. {berlin['url']}. Archived "
    )
    assert chicago.endswith(f" UTC, at {berlin['archived_url']}.")


def test_bibtex(berlin: dict[str, Any]) -> None:
    key, fields = parse_bibtex(cite(berlin, "bibtex"))
    assert key.startswith("weber2020berlin")
    assert fields["author"] == "Weber, Anna"
    assert fields["title"] == "{Berlin: Frauen in Weiß für ein freies Belarus}"
    assert (fields["year"], fields["month"], fields["url"]) == ("2020", "10", berlin["url"])
    assert berlin["record_id"] in fields["note"] and berlin["payload_sha256"] in fields["note"]
    assert f"\\url{{{berlin['archived_url']}}}" in fields["note"]


def test_csl_json(berlin: dict[str, Any]) -> None:
    (item,) = json.loads(cite(berlin, "csl-json"))
    captured = datetime.fromisoformat(berlin["captured_at"].removesuffix("Z"))
    assert item["type"] == "webpage"
    assert item["author"] == [{"family": "Weber", "given": "Anna"}]
    assert item["issued"] == {"date-parts": [[2020, 10, 10]]}
    assert item["accessed"] == {"date-parts": [[captured.year, captured.month, captured.day]]}
    assert item["URL"] == berlin["url"]
    assert item["archive_location"] == berlin["archived_url"]
    assert berlin["record_id"] in item["note"] and berlin["payload_sha256"] in item["note"]


def test_revisits_and_captures_without_metadata(crawled_twice: Path) -> None:
    url = paths(crawled_twice).database_url
    with session_scope(url) as session:
        revisit = session.scalars(select(Capture).where(Capture.record_type == "revisit")).first()
        assert revisit is not None
        facts = citation_facts(session, revisit.id)
        assert facts["record_id"] == revisit.record_id  # itself, not the record it revisits
        assert facts["captured_at"] == revisit.captured_at.isoformat(timespec="seconds") + "Z"
        bare = session.scalars(
            select(Capture).where(
                Capture.id.not_in(select(PageMetadataRow.capture_id)),
                Capture.record_type == "response",
            )
        ).first()
        assert bare is not None
        plain = citation_facts(session, bare.id)
        with pytest.raises(QueryError):
            citation_facts(session, 999_999)
    assert plain["title"] is None and plain["author"] is None
    for style in STYLES:
        text = cite(plain, style)
        assert bare.url in text and plain["archived_url"].split("/archived/")[1] in text
    parse_bibtex(cite(plain, "bibtex"))
    with pytest.raises(QueryError):
        cite(plain, "mla")


def test_hostile_titles_are_escaped() -> None:
    facts = {
        "capture_id": 7,
        "url": "http://127.0.0.1:9/a%20b?x={1}&y=#top",
        "title": "50% off } {\\input{/etc/passwd}} & $x$ #1 under_score ~ ^\n@misc{evil,",
        "author": "Bobby } Tables",
        "site_name": "R&D {news}",
        "published": "2021-02-03",
        "language": "en",
        "captured_at": "2021-02-04T05:06:07Z",
        "archived_url": archived_url(
            "http://127.0.0.1:8000/", datetime(2021, 2, 4, 5, 6, 7), "http://127.0.0.1:9/a%20b"
        ),
        "record_id": "<urn:uuid:00000000-0000-0000-0000-000000000000>",
        "record_type": "response",
        "payload_sha256": "0" * 64,
    }
    assert facts["archived_url"] == (
        "http://127.0.0.1:8000/archived/web/20210204050607/http://127.0.0.1:9/a%20b"
    )
    entry = cite(facts, "bibtex")
    key, fields = parse_bibtex(entry)
    assert key == "capture2021inputetcpasswd7"
    assert entry.count("@misc{") == 1
    assert fields["title"].startswith(r"{50\% off \} \{\textbackslash{}input\{/etc/passwd\}\}")
    assert (
        r"\& \$x\$ \#1 under\_score \textasciitilde{} \textasciicircum{} @misc\{evil,}"
        in (fields["title"])
    )
    assert fields["organization"] == r"R\&D \{news\}"
    assert fields["url"] == "http://127.0.0.1:9/a%20b?x=%7B1%7D&y=#top"
    assert (
        r"\url{http://127.0.0.1:8000/archived/web/20210204050607/http://127.0.0.1:9/a\%20b}"
        in (fields["note"])
    )
    (item,) = json.loads(cite(facts, "csl-json"))
    assert item["title"] == facts["title"] and item["author"] == [{"literal": "Bobby } Tables"}]
    assert "\n" not in cite(facts, "apa").replace(facts["title"], "")


def test_cli_cite(crawled: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    home = ["--home", str(crawled["home"])]
    with session_scope(paths(crawled["home"]).database_url) as session:
        (row,) = search(session, SearchQuery(city="Berlin", kind="report")).rows
    assert main([*home, "cite", "--capture", str(row["capture_id"])]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Weber, A. (2020, October 10).")
    assert "http://127.0.0.1:8000/archived/web/" in out
    assert main([*home, "cite", "--capture", str(row["capture_id"]), "--style", "csl-json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["type"] == "webpage"
    for bad in (["cite", "999999"], ["cite", "1", "--style", "mla"]):
        assert main([*home, *bad]) != 0
        err = capsys.readouterr().err
        assert err.startswith("linkarchive: error: ") and len(err.strip().splitlines()) == 1
