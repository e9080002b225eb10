"""archive.store: closed WARC files kept in a store named by URI (a folder, or S3-compatible
object storage served by moto on 127.0.0.1), never overwritten, read back by byte range."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from archive import RecordFactory, RotatingWarcWriter, iter_records, read_record
from archive.store import (
    AlreadyStored,
    FileStorage,
    S3Storage,
    StoreError,
    WarcStorage,
    file_sha256,
    open_storage,
    read_stored_record,
)


@pytest.fixture(scope="module")
def s3_client() -> Iterator[Any]:
    """A real S3 API (moto's server) on 127.0.0.1, and a boto3 client for it."""
    boto3 = pytest.importorskip("boto3")
    server_module = pytest.importorskip("moto.server")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    client = boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        aws_access_key_id="linkarchive",
        aws_secret_access_key="linkarchive",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket="warcs")
    yield client
    server.stop()


@pytest.fixture(params=["file", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> WarcStorage:
    if request.param == "file":
        return FileStorage(tmp_path / "store")
    client = request.getfixturevalue("s3_client")
    return S3Storage("warcs", f"test/{tmp_path.name}", client=client)


def _warc(directory: Path, label: str = "report") -> Path:
    factory = RecordFactory()
    writer = RotatingWarcWriter(directory, prefix=label, factory=factory, fsync=False)
    for number in range(5):
        body = f"<html><p>{label} {number}</p>{'x' * 5000 * number}</html>".encode()
        writer.write(factory.response(
            f"http://127.0.0.1/{label}/{number}", 200, "OK", "HTTP/1.1",
            [("Content-Type", "text/html")], body,
        ))  # fmt: skip
    [path] = writer.close()
    return path


def test_every_record_read_by_range_from_the_store_equals_the_local_one(
    storage: WarcStorage, tmp_path: Path
) -> None:
    path = _warc(tmp_path / "local")
    stored = storage.put(path)
    assert stored.size == path.stat().st_size and stored.sha256 == file_sha256(path)
    assert stored.uri == f"{storage.uri}/{path.name}"
    assert list(storage.names()) == [path.name]
    locations = list(iter_records(path))
    assert len(locations) == 6  # warcinfo and five responses
    for location, record in locations:
        again = read_stored_record(storage, path.name, location.offset, location.length)
        assert again == record == read_record(path, location.offset)


def test_a_store_never_overwrites_and_a_retried_put_is_harmless(
    storage: WarcStorage, tmp_path: Path
) -> None:
    first = _warc(tmp_path / "a", "report")
    assert storage.put(first) == storage.put(first)  # a retried upload changes nothing
    other = _warc(tmp_path / "b", "other")
    with pytest.raises(AlreadyStored):
        storage.put(other, name=first.name)
    assert storage.stat(first.name).sha256 == file_sha256(first)  # type: ignore[union-attr]
    assert storage.stat("missing.warc.gz") is None


def test_two_writers_racing_for_one_name_cannot_both_win(
    storage: WarcStorage, tmp_path: Path
) -> None:
    files = [_warc(tmp_path / str(n), f"racer{n}") for n in range(6)]
    outcomes: list[str] = []

    def put(path: Path) -> None:
        try:
            storage.put(path, name="contested.warc.gz")
            outcomes.append(file_sha256(path))
        except AlreadyStored:
            outcomes.append("refused")

    threads = [threading.Thread(target=put, args=(path,)) for path in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [o for o in outcomes if o != "refused"]
    assert len(winners) == 1
    assert storage.stat("contested.warc.gz").sha256 == winners[0]  # type: ignore[union-attr]


def test_stores_are_named_by_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(open_storage(tmp_path.as_uri()), FileStorage)
    folder = open_storage(tmp_path / "warcs")
    assert isinstance(folder, FileStorage) and folder.uri == (tmp_path / "warcs").as_uri()
    pytest.importorskip("boto3")
    monkeypatch.setenv("LINKARCHIVE_S3_ENDPOINT", "http://127.0.0.1:9")
    bucket = open_storage("s3://archive/linkarchive/warcs/")
    assert isinstance(bucket, S3Storage) and bucket.uri == "s3://archive/linkarchive/warcs"
    for bad in ("s3:///no-bucket", "ftp://example.org/warcs"):
        with pytest.raises(StoreError):
            open_storage(bad)
    with pytest.raises(StoreError, match="not a file name"):
        FileStorage(tmp_path).put(tmp_path, name="../escape.warc.gz")


def test_pushed_warcs_are_read_from_the_store_when_the_local_files_are_gone(
    s3_client: Any, crawled: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`warc push` copies the crawled home's files to S3; with the WARC folder gone (a
    machine that has the catalog only), `get` and the web app's archived view read each
    record from the store by byte range."""
    import shutil

    from sqlalchemy import func, select
    from webkit import client_as, make_app

    from pipeline.catalog import session_scope
    from pipeline.catalog.models import Capture, Link, WarcFile
    from pipeline.cli import main
    from pipeline.config import paths

    home = tmp_path / "home"
    shutil.copytree(crawled["home"], home)
    endpoint = s3_client.meta.endpoint_url
    monkeypatch.setenv("LINKARCHIVE_S3_ENDPOINT", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "linkarchive")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "linkarchive")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("LINKARCHIVE_WARC_STORE", f"s3://warcs/push/{tmp_path.name}")
    where = paths(home)
    with session_scope(where.database_url) as session:
        capture_id = session.scalar(
            select(Link.last_capture_id).where(Link.status == "alive").limit(1)
        )
        for warc in session.scalars(select(WarcFile)):  # this copy's files, not the session's
            warc.path = str(where.warcs.resolve() / warc.name)
        local_files = {w.name: Path(w.path) for w in session.scalars(select(WarcFile))}
    assert all(path.is_relative_to(home.resolve()) for path in local_files.values())
    before = tmp_path / "before.bin"
    assert main(["--home", str(home), "get", "--capture", str(capture_id), "-o", str(before)]) == 0
    assert main(["--home", str(home), "warc", "push"]) == 0
    with session_scope(where.database_url) as session:
        rows = list(session.scalars(select(WarcFile)))
        assert rows and all(w.store_uri and w.sha256 and w.stored_at for w in rows)
        for w in rows:
            assert w.store_uri == f"s3://warcs/push/{tmp_path.name}/{w.name}"
            assert w.sha256 == file_sha256(local_files[w.name])
        capture = session.get(Capture, capture_id)
        assert capture is not None
    assert main(["--home", str(home), "warc", "push"]) == 0  # again: nothing to do, no error
    stored = S3Storage("warcs", f"push/{tmp_path.name}", client=s3_client)
    assert {f"{name}.cdxj" for name in local_files} <= set(stored.names())

    for path in local_files.values():  # the files are gone from this machine
        path.rename(path.with_name(path.name + ".elsewhere"))
    after = tmp_path / "after.bin"
    assert main(["--home", str(home), "get", "--capture", str(capture_id), "-o", str(after)]) == 0
    assert after.read_bytes() == before.read_bytes()
    client = client_as(make_app(home), "researcher")
    shown = client.get(f"/archived/{capture_id}/")
    assert shown.status_code == 200 and shown.headers["x-archived-status"] == "200"
    # Exports scan whole files: each is fetched once, verified, into cache/warcs/.
    with session_scope(where.database_url) as session:
        link_id = session.scalar(select(Capture.link_id).where(Capture.id == capture_id))
    package = tmp_path / "evidence.wacz"
    assert main(["--home", str(home), "evidence", "export", str(link_id), "--reason", "test",
                 "-o", str(package)]) == 0  # fmt: skip
    cached = {p.name: file_sha256(p) for p in (home / "cache" / "warcs").iterdir()}
    assert cached and all(cached[n] == file_sha256(local_files[n].with_name(n + ".elsewhere"))
                          for n in cached)  # fmt: skip
    assert main(["--home", str(home), "evidence", "verify", str(package)]) == 0

    # A catalog rebuilt on a machine with the store only: the same captures.
    shutil.rmtree(home / "cache")
    rebuilt = f"sqlite:///{tmp_path / 'rebuilt.sqlite'}"
    assert main(["--home", str(home), "catalog", "rebuild", "--into", rebuilt]) == 0
    with session_scope(where.database_url) as old, session_scope(rebuilt) as new:
        count = select(func.count(Capture.id))
        assert new.scalar(count) == old.scalar(count) > 0
        files = list(new.scalars(select(WarcFile)))
        assert len(files) == len(local_files)
        assert all(w.store_uri and w.sha256 == file_sha256(Path(w.path)) for w in files)


def test_a_copy_that_does_not_match_its_digest_is_refused(
    storage: WarcStorage, tmp_path: Path
) -> None:
    path = _warc(tmp_path / "local")
    stored = storage.put(path)
    target = tmp_path / "copy" / path.name
    assert storage.fetch(path.name, target) == stored and file_sha256(target) == stored.sha256
    from archive.store import _verified_copy

    forged = type(stored)(stored.name, stored.size, "0" * 64, stored.uri)
    with pytest.raises(StoreError, match="SHA-256"):
        _verified_copy(forged, tmp_path / "bad" / path.name, lambda out: out.write(b"x"))
    assert not (tmp_path / "bad" / path.name).exists()


def test_a_store_that_cannot_be_reached_loses_nothing_and_is_tried_again(
    tmp_path: Path,
) -> None:
    """`warc push` to a store that fails (here a folder that cannot be made: a file is in
    the way, as with an unmounted share) stores nothing, says so, exits non-zero, and
    records nothing; once the store is back, the same push stores every file."""
    from sqlalchemy import select

    from pipeline.catalog import session_scope
    from pipeline.catalog.models import WarcFile
    from pipeline.cli import main
    from pipeline.config import paths
    from pipeline.indexer import index_files

    where = paths(tmp_path / "home").ensure()
    local = _warc(where.warcs)
    with session_scope(where.database_url) as session:
        index_files(session, [local], where.indexes)
    blocked = tmp_path / "share"
    blocked.write_text("not a folder")
    store = str(blocked / "warcs")
    assert main(["--home", str(where.home), "warc", "push", "--store", store]) == 1
    with session_scope(where.database_url) as session:
        assert session.scalars(select(WarcFile.store_uri)).all() == [None]
    assert local.is_file() and file_sha256(local)
    blocked.unlink()  # the share is back
    assert main(["--home", str(where.home), "warc", "push", "--store", store]) == 0
    with session_scope(where.database_url) as session:
        [stored] = session.scalars(select(WarcFile)).all()
    assert stored.store_uri == (blocked / "warcs" / local.name).as_uri()
    assert stored.sha256 == file_sha256(blocked / "warcs" / local.name) == file_sha256(local)


def test_a_worker_stores_each_file_before_the_catalog_lists_it(tmp_path: Path) -> None:
    """A worker's pass (`move_into_store`): while the store fails, the closed file stays
    here and the catalog does not list it (no row pointing at a file only this machine
    has); once the store is back, the file is stored (with its CDXJ), indexed with its
    stored copy recorded, and only then deleted here."""
    from sqlalchemy import select

    from pipeline.catalog import session_scope
    from pipeline.catalog.models import Capture, WarcFile
    from pipeline.config import paths
    from pipeline.storage import move_into_store

    where = paths(tmp_path / "home").ensure()
    local = _warc(where.warcs)
    digest = file_sha256(local)
    blocked = tmp_path / "share"
    blocked.write_text("not a folder")
    store = open_storage(blocked / "warcs")
    moved = move_into_store(where, store, where.database_url)
    assert moved.stored == [] and len(moved.problems) == 1
    assert local.is_file() and file_sha256(local) == digest
    with session_scope(where.database_url) as session:
        assert session.scalars(select(WarcFile)).all() == []
    blocked.unlink()  # the share is back
    moved = move_into_store(where, open_storage(blocked / "warcs"), where.database_url)
    assert moved.stored == [local.name] and not moved.problems
    assert not local.exists() and not list(where.indexes.glob("*.cdxj"))  # moved, not copied
    kept = blocked / "warcs" / local.name
    assert file_sha256(kept) == digest and (blocked / "warcs" / f"{local.name}.cdxj").is_file()
    with session_scope(where.database_url) as session:
        [row] = session.scalars(select(WarcFile)).all()
        assert row.store_uri == kept.as_uri() and row.sha256 == digest
        assert session.scalars(select(Capture)).all()  # indexed
    assert move_into_store(where, open_storage(blocked / "warcs"), where.database_url).stored == []


@pytest.mark.e2e
def test_a_crawl_copies_its_warc_files_into_the_store(
    world: Any, prefect_server: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import select

    from flows.crawl import crawl_flow
    from pipeline.catalog import session_scope
    from pipeline.catalog.models import WarcFile
    from pipeline.config import paths

    store = tmp_path / "store"
    monkeypatch.setenv("LINKARCHIVE_WARC_STORE", store.as_uri())
    home = tmp_path / "home"
    crawl_flow(source=world.index_url, home=str(home), country="Austria")
    with session_scope(paths(home).database_url) as session:
        rows = session.scalars(select(WarcFile)).all()
        assert len(rows) >= 2  # the seed import's file and the crawl's
        for warc in rows:
            assert warc.store_uri == (store / warc.name).resolve().as_uri()
            assert warc.sha256 == file_sha256(store / warc.name) == file_sha256(Path(warc.path))
    assert {f"{w.name}.cdxj" for w in rows} <= {p.name for p in store.iterdir()}
