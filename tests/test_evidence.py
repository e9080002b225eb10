"""Evidence packages: export -> verify round trips, every tamper case named, standard tools."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from tsa import LocalTSA

from archive.signing import sign_digest
from pipeline.cli import main
from pipeline.config import paths
from pipeline.replica.content import LINKS

pytestmark = pytest.mark.e2e
WACZ = Path(sys.executable).with_name("wacz")


@pytest.fixture(scope="module")
def tsa() -> Iterator[LocalTSA]:
    with LocalTSA() as authority:
        yield authority


@pytest.fixture(scope="module")
def exported(
    crawled: dict[str, Any], tsa: LocalTSA, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """One package per kind of link: a report, a gallery, a redirected link, a dead link."""
    world, home = crawled["world"], crawled["home"]
    out = tmp_path_factory.mktemp("evidence")
    wanted = {
        "report": next(s for s in LINKS if s.kind == "article"),
        "gallery": next(s for s in LINKS if s.gallery),
        "redirect": next(s for s in LINKS if s.kind == "redirect"),
        "dead": next(s for s in LINKS if s.status == 404),
    }
    packages = {}
    mp = pytest.MonkeyPatch()
    mp.setenv("LINKARCHIVE_TSA_URL", tsa.url)
    try:
        for name, spec in wanted.items():
            target = out / f"{name}.wacz"
            code = main(
                ["--home", str(home), "evidence", "export", world.url(spec.site, spec.path),
                 "--reason", f"court request about {name}", "--requested-by", "Counsel A",
                 "-o", str(target)]
            )  # fmt: skip
            assert code == 0
            packages[name] = target
    finally:
        mp.undo()
    packages["public_key"] = paths(home).home / "keys" / "evidence-key.pub.pem"
    return packages


def verify(package: Path, *extra: str) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "evidence", "verify", str(package), *extra],
        capture_output=True,
        text=True,
    )
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["report", "gallery", "redirect", "dead"])
def test_export_then_verify(exported: dict[str, Path], tsa: LocalTSA, name: str) -> None:
    code, out = verify(
        exported[name], "--public-key", str(exported["public_key"]), "--tsa-cert", str(tsa.ca_cert)
    )
    assert code == 0, out
    assert "VERIFIED" in out and "timestamp:" in out


def test_a_verification_joins_the_catalog_ledger(
    exported: dict[str, Path], crawled: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from sqlalchemy import select

    from pipeline.catalog import session_scope
    from pipeline.catalog.models import CustodyEvent

    home = crawled["home"]
    assert main(["--home", str(home), "evidence", "verify", str(exported["report"])]) == 0
    assert "recorded in the catalog's ledger" in capsys.readouterr().out
    with session_scope(paths(home).database_url) as session:
        last = session.scalars(select(CustodyEvent).order_by(CustodyEvent.id.desc())).first()
    assert last is not None and last.event == "verified"
    assert last.details["verified"] is True and last.details["package"] == "report.wacz"


def test_package_holds_what_was_archived_with_the_capture(
    exported: dict[str, Path], crawled: dict[str, Any]
) -> None:
    with zipfile.ZipFile(exported["gallery"]) as package:
        names = set(package.namelist())
        assert {"evidence/summary.html", "evidence/summary.md", "evidence/custody.jsonl",
                "evidence/manifest-sha256.txt", "evidence/timestamp.tsr"} <= names  # fmt: skip
        index = package.read("indexes/index.cdxj").decode()
        custody = package.read("evidence/custody.jsonl").decode().splitlines()
    assert index.count("image/jpeg") >= 12  # the gallery's photos came with it
    events = [json.loads(line)["event"] for line in custody]
    assert events[:2] == ["captured", "indexed"] and events[-1] == "exported"
    assert json.loads(custody[-1])["actor"] == "Counsel A"
    with zipfile.ZipFile(exported["redirect"]) as package:
        assert '"status": "301"' in package.read("indexes/index.cdxj").decode()
    with zipfile.ZipFile(exported["dead"]) as package:
        assert '"status": "404"' in package.read("indexes/index.cdxj").decode()


def test_standard_tools_verify_the_package(
    exported: dict[str, Path], tsa: LocalTSA, tmp_path: Path
) -> None:
    package = exported["report"]
    with zipfile.ZipFile(package) as archive:
        archive.extractall(tmp_path)
    sums = subprocess.run(
        ["sha256sum", "-c", "evidence/manifest-sha256.txt"], cwd=tmp_path, capture_output=True
    )
    assert sums.returncode == 0, sums.stdout
    check = subprocess.run(
        [sys.executable, "-m", "warcio.cli", "check", "archive/data.warc.gz"], cwd=tmp_path
    )
    assert check.returncode == 0
    validate = subprocess.run([str(WACZ), "validate", "-f", str(package)], capture_output=True)
    assert validate.returncode == 0, validate.stdout
    stamp = subprocess.run(
        ["openssl", "ts", "-verify", "-data", "evidence/manifest-sha256.txt",
         "-in", "evidence/timestamp.tsr", "-CAfile", str(tsa.ca_cert)],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert stamp.returncode == 0 and "Verification: OK" in stamp.stdout, stamp.stderr


def _repack(
    source: Path,
    target: Path,
    change: Callable[[dict[str, bytes]], None],
    resign: ec.EllipticCurvePrivateKey | None = None,
) -> Path:
    """Rewrite a package with ``change`` applied; with ``resign``, also recompute every hash
    and sign with that key, as a forger who does not hold the archive's key would."""
    with zipfile.ZipFile(source) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    change(files)
    if resign is not None:
        manifest = json.loads(files["datapackage.json"])
        for resource in manifest["resources"]:
            data = files[resource["path"]]
            resource["hash"] = "sha256:" + hashlib.sha256(data).hexdigest()
            resource["bytes"] = len(data)
        sums = "".join(
            f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n"
            for n in [line.split("  ", 1)[1]
                      for line in files["evidence/manifest-sha256.txt"].decode().splitlines()]
        )  # fmt: skip
        files["evidence/manifest-sha256.txt"] = sums.encode()
        data = files["evidence/manifest-sha256.txt"]
        for resource in manifest["resources"]:
            if resource["path"] == "evidence/manifest-sha256.txt":
                resource["hash"] = "sha256:" + hashlib.sha256(data).hexdigest()
                resource["bytes"] = len(data)
        files["datapackage.json"] = json.dumps(manifest, indent=2).encode() + b"\n"
        digest = json.loads(files["datapackage-digest.json"])
        digest["hash"] = "sha256:" + hashlib.sha256(files["datapackage.json"]).hexdigest()
        created = digest["signedData"]["created"]
        from datetime import datetime

        digest["signedData"] = sign_digest(
            resign, digest["hash"], created=datetime.fromisoformat(created.replace("Z", "+00:00")),
            software="forger",
        )  # fmt: skip
        files["datapackage-digest.json"] = json.dumps(digest).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return target


def _flip_byte(name: str, at: int = 100) -> Callable[[dict[str, bytes]], None]:
    def change(files: dict[str, bytes]) -> None:
        data = bytearray(files[name])
        data[at] ^= 0x01
        files[name] = bytes(data)

    return change


@pytest.mark.parametrize(
    ("name", "change", "expected"),
    [
        ("warc-byte", _flip_byte("archive/data.warc.gz", 2000), "archive/data.warc.gz does not"),
        ("pages", _flip_byte("pages/pages.jsonl", 30), "pages/pages.jsonl does not"),
        ("summary", _flip_byte("evidence/summary.html", 300), "evidence/summary.html does not"),
    ],
)
def test_tampering_is_detected_and_named(
    exported: dict[str, Path], tmp_path: Path, name: str, change: Any, expected: str
) -> None:
    forged = _repack(exported["report"], tmp_path / f"{name}.wacz", change)
    code, out = verify(forged)
    assert code != 0
    assert f"NOT VERIFIED: {expected}" in out


def _drop_record(files: dict[str, bytes]) -> None:
    data = files["archive/data.warc.gz"]
    cut = data.find(b"\x1f\x8b", 10)  # the second gzip member: drop the first record
    files["archive/data.warc.gz"] = data[cut:]


def _edit_custody(files: dict[str, bytes]) -> None:
    lines = files["evidence/custody.jsonl"].decode().splitlines()
    entry = json.loads(lines[1])
    entry["actor"] = "someone else"
    lines[1] = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    files["evidence/custody.jsonl"] = ("\n".join(lines) + "\n").encode()


def _drop_custody(files: dict[str, bytes]) -> None:
    lines = files["evidence/custody.jsonl"].decode().splitlines()
    del lines[1]
    files["evidence/custody.jsonl"] = ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize(
    ("name", "change", "expected"),
    [
        ("record-removed", _drop_record, "archive/data.warc.gz does not"),
        ("custody-edited", _edit_custody, "custody:"),
        ("custody-dropped", _drop_custody, "custody:"),
    ],
)
def test_forgeries_with_recomputed_hashes_are_caught(
    exported: dict[str, Path], tmp_path: Path, name: str, change: Any, expected: str
) -> None:
    # Without recomputing, the hashes give it away:
    code, out = verify(_repack(exported["report"], tmp_path / f"{name}-plain.wacz", change))
    assert code != 0 and "NOT VERIFIED" in out
    # With every hash recomputed and a signature by another key:
    forger = ec.generate_private_key(ec.SECP256R1())
    forged = _repack(exported["report"], tmp_path / f"{name}.wacz", change, resign=forger)
    code, out = verify(forged, "--public-key", str(exported["public_key"]))
    assert code != 0
    assert "NOT VERIFIED: signature:" in out
    if name.startswith("custody"):
        code, out = verify(forged)  # even trusting the key inside: the chain is broken
        assert code != 0 and f"NOT VERIFIED: {expected}" in out


def test_signature_from_another_key_is_caught(exported: dict[str, Path], tmp_path: Path) -> None:
    forger = ec.generate_private_key(ec.SECP256R1())
    forged = _repack(exported["report"], tmp_path / "resigned.wacz", lambda f: None, forger)
    code, out = verify(forged, "--public-key", str(exported["public_key"]))
    assert code != 0 and "NOT VERIFIED: signature:" in out


def test_timestamp_for_another_digest_is_caught(
    exported: dict[str, Path], tsa: LocalTSA, tmp_path: Path
) -> None:
    from archive.timestamp import request_token

    other = request_token(tsa.url, hashlib.sha256(b"some other package").digest())

    def swap(files: dict[str, bytes]) -> None:
        files["evidence/timestamp.tsr"] = other

    code, out = verify(_repack(exported["report"], tmp_path / "plain.wacz", swap))
    assert code != 0 and "evidence/timestamp.tsr does not match" in out  # it is signed
    # A forger who recomputes every hash (and signs with a key of their own):
    forger = ec.generate_private_key(ec.SECP256R1())
    forged = _repack(exported["report"], tmp_path / "stamp.wacz", swap, resign=forger)
    code, out = verify(forged, "--tsa-cert", str(tsa.ca_cert))
    assert code != 0 and "NOT VERIFIED: timestamp:" in out


def test_private_key_is_readable_by_its_owner_only(
    exported: dict[str, Path], crawled: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    private = paths(crawled["home"]).home / "keys" / "evidence-key.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert main(["--home", str(crawled["home"]), "evidence", "key"]) == 0
    out = capsys.readouterr().out
    assert "BEGIN PUBLIC KEY" in out and "fingerprint: sha256:" in out


def test_export_needs_a_reason_and_a_known_link(
    crawled: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = str(crawled["home"])
    assert main(["--home", home, "evidence", "export", "1", "-o", str(tmp_path / "x.wacz")]) == 2
    assert main(["--home", home, "evidence", "export", "99999", "--reason", "r",
                 "-o", str(tmp_path / "x.wacz")]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "linkarchive: error:" in err and "Traceback" not in err


def test_each_warc_file_is_timestamped_when_it_closes(
    world: Any, prefect_server: None, tsa: LocalTSA, tmp_path: Path, monkeypatch: Any
) -> None:
    """The time of capture is anchored at capture, not only at a later export."""
    from archive.timestamp import token_time, verify_token
    from flows.crawl import crawl_flow

    monkeypatch.setenv("LINKARCHIVE_TSA_URL", tsa.url)
    source = tmp_path / "seeds.csv"
    source.write_text(
        "country,city,kind,label,url\n"
        f"Latvia,Riga,report,link report,{world.url('news', '/lv/riga-solidaritate')}\n"
    )
    home = tmp_path / "home"
    assert crawl_flow(source=str(source), home=str(home))["status"] == "finished"
    crawled_files = [
        p for p in paths(home).warcs.glob("*.warc.gz") if (p.parent / f"{p.name}.tsr").exists()
    ]
    assert crawled_files  # the crawl's files (the seed import is stamped at export only)
    for warc in crawled_files:
        token = (warc.parent / f"{warc.name}.tsr").read_bytes()
        digest = hashlib.sha256(warc.read_bytes()).digest()
        assert verify_token(token, digest, ca_cert=tsa.ca_cert) == []
        assert abs((token_time(token) - datetime.now(UTC)).total_seconds()) < 300


def test_the_verified_page_is_the_exported_capture(crawled: dict[str, Any], tmp_path: Path) -> None:
    """Not the first response in the package: the Berlin report's script precedes it."""
    from pipeline.evidence.package import verify_package

    url = crawled["world"].url("blog", "/de/berlin-demo")
    target = tmp_path / "berlin.wacz"
    code = main(["--home", str(crawled["home"]), "evidence", "export", url,
                 "--reason", "which page is it", "-o", str(target)])  # fmt: skip
    assert code == 0
    assert verify_package(target).facts["page"] == url
