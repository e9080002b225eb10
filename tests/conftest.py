"""Shared fixtures: the replica world, one Prefect test server, and one crawled data home.

Everything is real: HTTP servers on 127.0.0.1, SQLite files, a Prefect API server, and
Scrapy subprocesses. The crawler is confined to loopback by LINKARCHIVE_ALLOWED_HOSTS.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

# Before Prefect is imported anywhere: a private Prefect home, quiet, no telemetry.
_PREFECT_HOME = tempfile.mkdtemp(prefix="linkarchive-prefect-")
os.environ.setdefault("PREFECT_HOME", _PREFECT_HOME)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# The crawler must never leave this machine, and needn't be slow on loopback.
os.environ["LINKARCHIVE_ALLOWED_HOSTS"] = "127.0.0.1"
# Loopback is not public: the test servers are reachable only because this allows them.
os.environ["LINKARCHIVE_ALLOW_ADDRESSES"] = "127.0.0.0/8"
os.environ["LINKARCHIVE_AUTOTHROTTLE_START_DELAY"] = "0.05"
os.environ["LINKARCHIVE_WARC_FSYNC"] = "0"
os.environ.pop("LINKARCHIVE_DATABASE_URL", None)
os.environ.pop("PREFECT_API_URL", None)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if it tries to open any network connection, loopback included."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


_WRITER = """
import sys
from archive import RecordFactory, RotatingWarcWriter
factory = RecordFactory()
writer = RotatingWarcWriter(sys.argv[1], factory=factory, fsync=True)
i = 0
while True:  # until killed
    body = (b"<p>rally report %d</p>" % i) * 200
    writer.write(factory.response(f"http://127.0.0.1/{i}", 200, "OK", "HTTP/1.1",
                                  [("Content-Type", "text/html")], body))
    i += 1
    if i == 20:
        print("written", flush=True)
"""


@pytest.fixture
def killed_writer() -> Callable[[Path], Path]:
    """Run a WARC writer in a process, SIGKILL it mid-stream; returns its .open file."""

    def run(directory: Path) -> Path:
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(directory)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "written"
        time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        (open_file,) = directory.glob("*.open")
        return open_file

    return run


@pytest.fixture(scope="session", autouse=True)
def search_indexes(tmp_path_factory: pytest.TempPathFactory) -> None:
    """PostgreSQL catalogs' search indexes in the session's temporary folder (a SQLite
    catalog's is beside its file), not in the working directory's data home."""
    from pipeline.catalog import searchindex

    searchindex.SERVER_INDEXES = tmp_path_factory.mktemp("search-indexes")


@pytest.fixture(scope="session")
def world() -> Iterator[Any]:
    """The offline replica world, served for the whole test session."""
    from pipeline.replica import ReplicaWorld

    with ReplicaWorld() as replica:
        yield replica


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One temporary Prefect API server (and database) for the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def crawled(
    world: Any, prefect_server: None, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A data home into which the real flow has archived the whole replica world."""
    from flows.crawl import crawl_flow

    home = tmp_path_factory.mktemp("home")
    result = crawl_flow(source=world.index_url, home=str(home))
    return {"home": home, "result": result, "world": world}


@pytest.fixture(scope="session")
def crawled_twice(crawled: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of ``crawled`` whose links with PNG images were crawled again: unchanged
    payloads became revisit records. (Within one run, a payload two crawl units fetch at
    once is stored by both: revisits are made against what is already indexed.)"""
    import shutil

    from sqlalchemy import select

    from flows.crawl import crawl_flow
    from pipeline.catalog import session_scope
    from pipeline.catalog.models import Media
    from pipeline.config import paths

    copy = tmp_path_factory.mktemp("twice") / "home"
    shutil.copytree(crawled["home"], copy)
    with session_scope(paths(copy).database_url) as session:
        ids = sorted(set(session.scalars(select(Media.link_id).where(Media.url.like("%.png")))))
    assert ids, "the replica world has PNG images"
    crawl_flow(link_ids=ids, home=str(copy))
    return copy


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data home, set as LINKARCHIVE_HOME."""
    monkeypatch.setenv("LINKARCHIVE_HOME", str(tmp_path / "data"))
    return tmp_path / "data"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL catalog URL: $LINKARCHIVE_TEST_POSTGRES_URL, else a throwaway
    server started from the installed PostgreSQL binaries (`.ci/run` installs them)."""
    from bench.postgres import NOT_INSTALLED, PostgresServer, installed

    given = os.environ.get("LINKARCHIVE_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    if not installed():
        pytest.skip(NOT_INSTALLED)
    with PostgresServer() as server:
        yield server.createdb("catalog")


_SESSION_STARTED = time.time()


@pytest.fixture(scope="session", autouse=True)
def _stop_the_local_prefect_server() -> Iterator[None]:
    """Stop the local Prefect server that CLI subprocesses of this session started, if any."""
    yield
    from flows.prefect_api import stop_local_server

    if os.environ.get("PREFECT_HOME") == _PREFECT_HOME:  # this session's own: every server in it
        stop_local_server()
    else:
        stop_local_server(started_after=_SESSION_STARTED)


@contextmanager
def replay_server(home: Path) -> Iterator[tuple[int, list[str]]]:
    """`linkarchive replay` (pywb) over ``home`` on a free port, once it answers: the port,
    and the replay URL of every archived page it printed."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "--home", str(home), "replay", "--port",
         str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        urls = []
        for line in server.stdout:
            if line.startswith("Replaying"):
                break
            urls.append(line.split()[1])
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline, "pywb did not start"
                time.sleep(0.3)
        yield port, urls
    finally:
        server.terminate()
        server.wait(10)
