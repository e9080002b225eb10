"""A throwaway PostgreSQL server on loopback, for the tests, the benches and the cluster.

One way to start it, used by ``tests/conftest.py`` (the ``postgres_url`` fixture),
``bench/run.py`` (the search bench) and ``bench/cluster.py``: the newest installed
PostgreSQL's binaries (Debian's ``/usr/lib/postgresql/N/bin``; ``.ci/run`` installs them),
``initdb`` as the ``postgres`` user when run as root (PostgreSQL refuses to run as root),
trust authentication for the ``linkarchive`` user, UTF-8 with the C.UTF-8 locale, fsync
off, a free port on 127.0.0.1 only (its Unix socket in the server's own folder, not
/var/run), in a temporary folder removed when the server stops.

    with PostgresServer() as server:
        url = server.createdb("catalog")   # postgresql+psycopg://linkarchive@127.0.0.1:N/catalog
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

NOT_INSTALLED = "PostgreSQL is not installed (`.ci/run` installs it)"


def bindir() -> Path | None:
    """The newest installed PostgreSQL's ``bin`` folder that has ``initdb``, if any."""
    found = [
        Path(path)
        for path in glob.glob("/usr/lib/postgresql/*/bin")
        if Path(path, "initdb").exists() and path.split("/")[-2].isdigit()
    ]
    return max(found, key=lambda path: int(path.parent.name), default=None)


def installed() -> bool:
    return bindir() is not None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """``with PostgresServer() as server:`` a running server; ``server.createdb(name)`` makes
    a database and gives its URL. ``settings`` are more ``-c name=value`` server settings
    (e.g. ``max_connections=300``); ``stop_mode`` is pg_ctl's (``fast``, or ``immediate``
    when nothing needs a clean shut-down); ``keep`` leaves the folder (data, ``server.log``)
    after the stop, to look into."""

    def __init__(
        self,
        settings: Sequence[str] = (),
        stop_mode: str = "fast",
        keep: bool = False,
        prefix: str = "linkarchive-pg-",
    ) -> None:
        self.settings = list(settings)
        self.stop_mode = stop_mode
        self.keep = keep
        self.prefix = prefix
        self.root: Path | None = None
        self.port = 0
        self._bin: Path | None = None
        self._as: list[str] = []
        self._running = False

    def _pg(self, program: str, *args: str) -> None:
        assert self._bin is not None
        subprocess.run([*self._as, str(self._bin / program), *args], check=True,
                       capture_output=True)  # fmt: skip

    def start(self) -> PostgresServer:
        self._bin = bindir()
        if self._bin is None:
            raise RuntimeError(NOT_INSTALLED)
        # Not under pytest's own temp folder: that one is private to root.
        self.root = Path(tempfile.mkdtemp(prefix=self.prefix))
        try:
            data, sockets = self.root / "data", self.root / "sockets"
            sockets.mkdir()
            if os.geteuid() == 0:  # PostgreSQL refuses to run as root
                shutil.chown(self.root, "postgres")
                shutil.chown(sockets, "postgres")
                self._as = ["runuser", "-u", "postgres", "--"]
            self.port = _free_port()
            self._pg("initdb", "-D", str(data), "-U", "linkarchive", "--auth=trust",
                     "--encoding=UTF8", "--locale=C.UTF-8")  # fmt: skip
            options = [f"-p {self.port}", f"-k {sockets}", "-c listen_addresses=127.0.0.1",
                       "-c fsync=off", *(f"-c {setting}" for setting in self.settings)]  # fmt: skip
            self._pg("pg_ctl", "-D", str(data), "-w", "-l", str(self.root / "server.log"),
                     "-o", " ".join(options), "start")  # fmt: skip
            self._running = True
        except BaseException:
            self.stop()
            raise
        return self

    def url(self, database: str, driver: str = "psycopg") -> str:
        return f"postgresql+{driver}://linkarchive@127.0.0.1:{self.port}/{database}"

    def createdb(self, database: str, driver: str = "psycopg") -> str:
        """Make an empty database; its SQLAlchemy URL (``driver``: psycopg, asyncpg...)."""
        self._pg("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "linkarchive",
                 database)  # fmt: skip
        return self.url(database, driver)

    def stop(self) -> None:
        """Stop the server (if it started) and remove its folder (unless ``keep``). Raises
        ``CalledProcessError`` when pg_ctl could not stop it, after removing nothing."""
        if self.root is None:
            return
        if self._running:
            self._running = False
            self._pg("pg_ctl", "-D", str(self.root / "data"), "-m", self.stop_mode, "stop")
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
