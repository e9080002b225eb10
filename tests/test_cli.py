"""The command line: results on a crawled catalog, and one clear line for bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.catalog.fulltext import EXPORT_COLUMNS
from pipeline.cli import main
from pipeline.replica.content import LINKS


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def search_json(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> list[dict]:
    code, out, err = run(capsys, "--home", str(home), "search", "--format", "json", *args)
    assert code == 0, err
    return json.loads(out)


FIELDS = {
    "link_id", "country", "city", "kind", "label", "url", "status", "http_status", "final_url",
    "captured_at", "capture_id", "title", "description", "author", "published", "language",
    "images", "warc_file",
}  # fmt: skip


def test_search_json_has_every_field_for_every_link(
    crawled: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    rows = search_json(capsys, crawled["home"], "--limit", "1000")
    assert len(rows) == len({(s.site, s.path) for s in LINKS})
    assert all(set(row) >= FIELDS for row in rows)
    moscow = next(r for r in rows if r["city"] == "Moscow")
    assert moscow["title"].startswith("В Москве")
    assert moscow["published"] == "2020-10-10"
    assert moscow["language"] == "ru"
    assert moscow["warc_file"].endswith(".warc.gz")
    tallinn = next(r for r in rows if r["city"] == "Tallinn")
    assert tallinn["kind"] == "photo_gallery"
    assert tallinn["images"] >= 12  # every full-size photo of its three pages


def test_search_filters(crawled: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    home = crawled["home"]
    germany = search_json(capsys, home, "--country", "Germany")
    assert {r["city"] for r in germany} == {"Berlin", "Munich", "Hamburg"}
    assert [r["city"] for r in search_json(capsys, home, "--city", "München")] == ["Munich"]
    (hamburg,) = search_json(capsys, home, "--status", "failing")  # one 404 so far
    assert (hamburg["city"], hamburg["status"]) == ("Hamburg", "failing (1 of 3)")
    assert search_json(capsys, home, "--status", "dead") == []
    later = search_json(capsys, home, "--since", "2020-10-11")
    assert [r["city"] for r in later] == ["Ottawa"]
    galleries = search_json(capsys, home, "--kind", "photo_gallery")
    assert {r["city"] for r in galleries} == {"Tallinn", "London"}


def test_a_link_id_or_url_names_its_last_full_capture(
    crawled: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    home = ["--home", str(crawled["home"])]
    (row,) = search_json(capsys, crawled["home"], "--city", "Berlin", "--kind", "report")
    by_capture = run(capsys, *home, "cite", "--capture", str(row["capture_id"]))
    assert by_capture[0] == 0 and "Archived copy: " in by_capture[1]
    # The same citation whether the link is named by its id, its URL, or a time near it.
    for target in (
        [str(row["link_id"])],
        [row["url"]],
        [str(row["link_id"]), "--at", "2000-01-01"],
    ):
        assert run(capsys, *home, "cite", *target) == by_capture, target
    outputs = []
    for n, target in enumerate(([row["url"]], ["--capture", str(row["capture_id"])])):
        out = tmp_path / f"page{n}.html"
        assert run(capsys, *home, "get", *target, "-o", str(out))[0] == 0
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] and b"<html" in outputs[0].lower()
    code, _, err = run(capsys, *home, "cite", str(row["link_id"]), "--capture", "1")
    assert code == 1 and "not both" in err
    # Cited at this machine's address unless told the public one: said, not silently.
    assert "set LINKARCHIVE_PUBLIC_URL" in by_capture[2]


def test_search_text_is_unicode_case_insensitive(
    crawled: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    rows = search_json(capsys, crawled["home"], "МОСКВЕ")
    assert [r["city"] for r in rows] == ["Moscow"]
    assert search_json(capsys, crawled["home"], "no such words anywhere") == []


def test_search_csv(crawled: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--home", str(crawled["home"]), "search", "--format", "csv")
    assert code == 0
    header = out.splitlines()[0].split(",")
    assert header[:3] == ["link_id", "country", "city"]
    assert tuple(header) == EXPORT_COLUMNS  # the web app's and the API's columns too


def test_status_lists_every_place_even_without_links(
    crawled: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--home", str(crawled["home"]), "status", "--format", "json")
    assert code == 0
    rows = {(r["country"], r["city"]): r for r in json.loads(out)}
    assert rows[("Belgium", "Brussels")]["links"] == 0
    assert rows[("Germany", "Hamburg")]["failing"] == 1
    assert rows[("Lithuania", "Vilnius")]["archived"] == 3
    assert rows[("Switzerland", None)]["archived"] == 1
    assert all(r["pending"] == 0 for r in rows.values())
    code, table, _ = run(capsys, "--home", str(crawled["home"]), "status")
    assert code == 0 and "Belgium" in table


def test_show_lists_captures(crawled: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    rows = search_json(capsys, crawled["home"], "--city", "Ottawa")
    code, out, _ = run(capsys, "--home", str(crawled["home"]), "show", str(rows[0]["link_id"]))
    assert code == 0
    assert "redirect" in out and "301" in out and "ottawa-solidarity-rally" in out


def test_show_as_json_and_csv_keeps_everything_whole(
    crawled: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Machine-readable `show`: URLs and WARC names never cut, ids named as what they are."""
    import csv
    import io

    link_id = search_json(capsys, crawled["home"], "--city", "Ottawa")[0]["link_id"]
    code, out, _ = run(capsys, "--home", str(crawled["home"]), "show", str(link_id),
                       "--format", "json")  # fmt: skip
    shown = json.loads(out)
    assert code == 0 and shown["link_id"] == link_id and shown["captures"]
    first = shown["captures"][0]
    assert first["warc_file"].endswith(".warc.gz") and first["capture_url"].startswith("http")
    code, out, _ = run(capsys, "--home", str(crawled["home"]), "show", str(link_id),
                       "--format", "csv")  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == len(shown["captures"])
    assert [int(r["capture_id"]) for r in rows] == [c["capture_id"] for c in shown["captures"]]
    assert {r["link_id"] for r in rows} == {str(link_id)}
    assert rows[0]["warc_file"] == first["warc_file"]
    # The table, piped (as here), cuts nothing either: long URLs and WARC names whole.
    code, out, _ = run(capsys, "--home", str(crawled["home"]), "show", str(link_id))
    for capture in shown["captures"]:
        assert f"{capture['warc_file']}@{capture['warc_offset']}" in out
        assert capture["capture_url"] in out
    assert "…" not in out


def test_get_writes_decoded_payload(
    crawled: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    world = crawled["world"]
    spec = next(s for s in LINKS if "gzip" in s.demonstrates)
    rows = search_json(capsys, crawled["home"], "--city", "Copenhagen", "--kind", "report")
    target = tmp_path / "page.html"
    code, _, err = run(
        capsys,
        "--home",
        str(crawled["home"]),
        "get",
        "--capture",
        str(rows[0]["capture_id"]),
        "-o",
        str(target),
    )
    assert code == 0, err
    sent = world.sent(spec.site, spec.path)[-1]
    body = sent.split(b"\r\n\r\n", 1)[1]
    assert target.read_bytes() == gzip.decompress(body)


def test_seeds_import_is_idempotent_and_lists(
    world: Any, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "seeds", "import", world.index_url)
    assert code == 0, err
    assert "new links" in out
    code, again, _ = run(capsys, "seeds", "import", world.index_url)
    assert code == 0
    assert "0 new countries, 0 new cities, 0 new links" in again
    code, listed, _ = run(capsys, "seeds", "list", "--format", "json")
    links = json.loads(listed)
    assert len(links) == len({(s.site, s.path) for s in LINKS})
    copenhagen = {r["kind"] for r in links if r["city"] == "Copenhagen"}
    assert copenhagen == {"report", "video"}
    assert next(r for r in links if r["city"] == "Copenhagen")["city_original"] == "Kopenhagen"


def test_seeds_import_csv(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "seeds.csv"
    source.write_text(
        "country,city,kind,label,url\n"
        "Germany,Berlin,report,link report,http://127.0.0.1:9/berlin\n"
        "Poland,Warsaw,photo_gallery,photo gallery,http://127.0.0.1:9/warsaw\n",
        encoding="utf-8",
    )
    code, _, err = run(capsys, "seeds", "import", str(source))
    assert code == 0, err
    code, listed, _ = run(capsys, "seeds", "list", "--format", "json")
    assert {(r["country"], r["city"], r["kind"]) for r in json.loads(listed)} == {
        ("Germany", "Berlin", "report"),
        ("Poland", "Warsaw", "photo_gallery"),
    }


def test_archived_text_is_printed_literally_not_as_markup(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "seeds.csv"
    source.write_text(
        "country,city,kind,label,url\n"
        "Germany,Berlin,report,[bold red]not markup[/],http://127.0.0.1:9/x\n",
        encoding="utf-8",
    )
    assert run(capsys, "seeds", "import", str(source))[0] == 0
    code, out, err = run(capsys, "seeds", "list")
    assert code == 0, err
    assert "[bold red]not markup[/]" in out


def test_warc_recover_closes_killed_files_and_indexes_them(
    home: Path, capsys: pytest.CaptureFixture[str], killed_writer: Any
) -> None:
    warcs = home / "warcs"
    warcs.mkdir(parents=True)
    open_file = killed_writer(warcs)
    code, out, err = run(capsys, "warc", "recover")
    assert code == 0, err
    assert f"{open_file.name}: " in out and "complete records kept" in out
    assert "1 files recovered; 1 files indexed" in out
    assert not list(warcs.glob("*.open"))


BAD_INPUT = [
    ("seeds", "import", "/no/such/file.html"),
    ("seeds", "import", "notes.txt"),
    ("seeds", "import", "http://127.0.0.1:9/refused"),
    ("seeds", "import", "htp:/broken url"),
    ("seeds", "list", "--country", "Atlantis"),
    ("crawl", "--country", "Atlantis"),
    ("crawl", "--kind", "podcast"),
    ("search", "--since", "10/10/2020"),
    ("search", "--since", "2020-10-12", "--until", "2020-10-01"),
    ("search", "--city", "Atlantis"),
    ("search", "--status", "lost"),
    ("search", "--limit", "0"),
    ("show", "999999"),
    ("show", "abc"),
    ("get", "999999", "-o", "out.html"),
    ("get", "1"),
    ("no-such-command",),
    ("warc", "import", "/no/such/dir"),
    ("catalog", "rebuild", "--into", "nosuchdb://nowhere"),
    ("catalog", "rebuild", "--store", "ftp://example.org/warcs"),
    ("crawl", "--browser", "sometimes"),
    ("warc", "push"),
    ("warc", "push", "--store", "s3:///no-bucket"),
    ("export", "wacz", "-o", "out.zip"),
    ("check", "--country", "Atlantis"),
    ("check", "--link", "0"),
]


@pytest.mark.parametrize("args", BAD_INPUT, ids=" ".join)
def test_bad_input_gives_one_clear_line(
    args: tuple[str, ...], home: Path, capsys: pytest.CaptureFixture[str], world: Any
) -> None:
    run(capsys, "seeds", "import", world.index_url)
    code, _, err = run(capsys, *args)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("linkarchive: error: ")
    assert "Traceback" not in err


def test_rebuild_refuses_a_catalog_that_is_not_empty(
    home: Path, world: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "seeds", "import", world.index_url)[0] == 0
    current = f"sqlite:///{home / 'catalog.sqlite'}"
    code, _, err = run(capsys, "catalog", "rebuild", "--into", current)
    assert code == 1 and "another database than the current catalog" in err
    other = f"sqlite:///{home / 'other.sqlite'}"
    assert run(capsys, "catalog", "rebuild", "--into", other)[0] == 0
    code, _, err = run(capsys, "catalog", "rebuild", "--into", other)
    assert code == 1 and "is not empty" in err


def test_replay_without_pywb_says_how_to_install_it(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LINKARCHIVE_WAYBACK", "/no/such/wayback")
    code, _, err = run(capsys, "replay")
    assert code == 1
    assert err.startswith("linkarchive: error: pywb is not installed")


def test_crawl_of_an_empty_catalog_fails_cleanly(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "crawl")
    assert code == 1
    assert err == "linkarchive: error: no links match the selection: import seeds first\n"


def test_get_to_missing_directory_fails_cleanly(
    crawled: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    rows = search_json(capsys, crawled["home"], "--city", "Riga")
    code, _, err = run(
        capsys,
        "--home", str(crawled["home"]), "get", "--capture", str(rows[0]["capture_id"]),
        "-o", "/no/such/dir/x",
    )  # fmt: skip
    assert code != 0
    assert err.startswith("linkarchive: error: ") and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [("LINKARCHIVE_BROWSER", "sometimes"), ("LINKARCHIVE_WARC_STORE", "ftp://example.org/w")],
)
def test_a_bad_crawl_setting_is_refused_before_any_crawl_starts(
    name: str, value: str, home: Path, capsys: pytest.CaptureFixture[str], world: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    run(capsys, "seeds", "import", world.index_url)
    monkeypatch.setenv(name, value)
    code, _, err = run(capsys, "crawl", "--country", "Austria")
    assert code != 0 and err.strip().startswith("linkarchive: error: ") and name in err
    assert not list((home / "jobs").glob("run*"))  # no crawl run was opened


def test_a_read_only_data_home_answers_reads_and_refuses_writes_in_one_line(
    crawled: dict[str, Any], tmp_path: Path
) -> None:
    """A data home on a read-only mount (an archive copy): status, search, show and seeds
    list answer; crawl, check, get, seeds import and users add each say why in one line,
    with no traceback before it."""
    import shutil
    import subprocess
    import sys

    copy = tmp_path / "copy"
    shutil.copytree(crawled["home"], copy)
    mounted = tmp_path / "ro"
    mounted.mkdir()
    bind = subprocess.run(["mount", "--bind", str(copy), str(mounted)], capture_output=True)
    if bind.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {bind.stderr.decode().strip()}")
    try:
        ro = subprocess.run(["mount", "-o", "remount,bind,ro", str(mounted)], capture_output=True)
        assert ro.returncode == 0, ro.stderr
        linkarchive = [str(Path(sys.executable).with_name("linkarchive")), "--home", str(mounted)]
        for args in (["status"], ["search", "Berlin"], ["show", "1"], ["seeds", "list"]):
            done = subprocess.run([*linkarchive, *args], capture_output=True, text=True)
            assert done.returncode == 0, (args, done.stderr)
        for args in (["crawl"], ["check", "--link", "1"], ["get", "1", "-o", str(tmp_path / "g")],
                     ["seeds", "import", str(tmp_path / "x.csv")],
                     ["users", "add", "zed", "--role", "researcher"]):  # fmt: skip
            done = subprocess.run([*linkarchive, *args], capture_output=True, text=True)
            assert done.returncode == 1, (args, done.stdout, done.stderr)
            assert done.stderr.count("\n") == 1 and "read-only" in done.stderr, (args, done.stderr)
            assert "Traceback" not in done.stdout + done.stderr
    finally:
        subprocess.run(["umount", str(mounted)], capture_output=True)


def test_a_damaged_warc_file_gives_one_clear_line(
    crawled: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bytes flipped in an archived file: `get` and `evidence export` of a capture in it
    name the file, the offset and what to run, in one line; nothing raw is printed."""
    import shutil

    from sqlalchemy import select

    from pipeline.catalog import session_scope
    from pipeline.catalog.models import Capture, Link, WarcFile
    from pipeline.config import paths

    home = tmp_path / "home"
    shutil.copytree(crawled["home"], home)
    where = paths(home)
    with session_scope(where.database_url) as session:
        for warc in session.scalars(select(WarcFile)):  # this copy's files
            warc.path = str(where.warcs.resolve() / warc.name)
        capture = session.scalars(
            select(Capture).join(Link, Link.last_capture_id == Capture.id)
            .where(Capture.record_type == "response")
        ).first()  # fmt: skip
        assert capture is not None
        capture_id, link_id, name = capture.id, capture.link_id, capture.warc_file
        offset = capture.warc_offset
    damaged = where.warcs / name
    data = bytearray(damaged.read_bytes())
    for i in range(offset + 20, offset + 400, 7):
        data[i] ^= 0x5A
    damaged.write_bytes(bytes(data))
    assert (
        main(["--home", str(home), "get", "--capture", str(capture_id), "-o", str(tmp_path / "g")])
        == 1
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"at offset {offset} cannot be read" in err
    assert "warcio check" in err and "\\x" not in err
    package = str(tmp_path / "e.wacz")
    assert main(["--home", str(home), "evidence", "export", str(link_id), "--reason", "t",
                 "-o", package]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and name in err and "unreadable record" in err
    assert "\\x" not in err and "unexpected" not in err


HUGE = str(2**64)  # beyond the catalog's 64-bit integers
RANGE = f"{HUGE} is not in the range"
OUT_OF_RANGE = [
    (("show", HUGE), RANGE),
    (("cite", "--capture", HUGE), RANGE),
    (("get", "--capture", HUGE, "-o", "out.html"), RANGE),
    (("cite", HUGE), f"no link with id {HUGE}"),
    (("get", HUGE, "-o", "out.html"), f"no link with id {HUGE}"),
    (("search", "--limit", HUGE), RANGE),
    (("check", "--link", HUGE), RANGE),
    (("crawl", "--resume", HUGE), RANGE),
    (("export", "wacz", "--run", HUGE, "-o", "out.wacz"), RANGE),
    (("evidence", "export", "--capture", HUGE, "--reason", "r", "-o", "out.wacz"), RANGE),
    (("evidence", "export", HUGE, "--reason", "r", "-o", "out.wacz"), f"no link with id {HUGE}"),
    (("search", "--since", "2020-02-30"), "'2020-02-30' is not a date (use YYYY-MM-DD)"),
    (("search", "--until", "2020-13-01"), "'2020-13-01' is not a date"),
    (("search", "--published", "2020-00"), "--published '2020-00': no month 00"),
    (("evidence", "export", "1", "--at", "2020-10-10T25:00", "--reason", "r", "-o", "x.wacz"),
     "'2020-10-10T25:00' is not a date or time"),
    (("serve", "--port", "70000"), "70000 is not in the range 1<=x<=65535"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"), OUT_OF_RANGE, ids=[" ".join(a) for a, _ in OUT_OF_RANGE]
)
def test_numbers_out_of_range_and_bad_dates_give_one_line(
    args: tuple[str, ...], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """On a fresh data home, no crawl needed: a readable line, never an overflow deep in
    the database driver ("unexpected OverflowError")."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "--home", str(tmp_path / "home"), *args)
    assert code != 0
    assert err.count("\n") == 1 and err.startswith("linkarchive: error: "), err
    assert message in err and "unexpected" not in err


def test_tables_say_which_id_they_show(
    crawled: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Link ids and capture ids are different numbers: every table names the one it shows."""
    code, out, _ = run(capsys, "--home", str(crawled["home"]), "search", "Berlin")
    assert code == 0 and any("Link id" in line for line in out.splitlines()[:4])
    link_id = search_json(capsys, crawled["home"], "--city", "Ottawa")[0]["link_id"]
    code, out, _ = run(capsys, "--home", str(crawled["home"]), "show", str(link_id))
    assert code == 0 and "Capture id" in out
