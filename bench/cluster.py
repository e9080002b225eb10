"""A linkarchive cluster on one machine, for the distributed tests and the bench.

Real parts, all on 127.0.0.1 and in temporary folders: PostgreSQL (Debian's binaries:
one database for the shared catalog, one for Prefect), ``prefect server start`` on
PostgreSQL, an S3 store (SeaweedFS's ``weed mini`` if installed, else moto's server) and
``linkarchive worker`` processes, each with a data home of its own. Every process runs in
a session of its own, so a worker can be killed with everything it started.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.postgres import PostgresServer
from bench.seaweed import s3_client, weed_binary, weed_s3
from bench.site import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BUCKET = "warcs"


def parent_of(pid: int) -> int:
    """The parent process of ``pid`` (from /proc)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), children first."""
    children: dict[int, list[int]] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.split("/")[2]))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal ``pid`` and every process below it (the tree is read first)."""
    for target in [pid, *descendants(pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, sig)


def _wait_for(url: str, proc: subprocess.Popen[bytes], log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer in {seconds:.0f} s: {log.read_text()[-2000:]}")


class Cluster:
    """``with Cluster() as cluster:`` the shared services; ``cluster.worker(name)`` starts
    a worker, ``cluster.env`` is what every linkarchive process of the cluster needs."""

    def __init__(self, allowed_hosts: list[str], pool: str = "linkarchive") -> None:
        self.pool = pool
        self.allowed_hosts = allowed_hosts
        self.root = Path(tempfile.mkdtemp(prefix="linkarchive-cluster-"))
        self.env: dict[str, str] = {}
        self.store = ""
        self._procs: list[subprocess.Popen[bytes]] = []
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self._pg: PostgresServer | None = None
        self._stack = ExitStack()  # the S3 server, when SeaweedFS's

    # --- services -------------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        try:
            catalog, prefect_db = self._postgres()
            api = self._prefect(prefect_db)
            endpoint = self._s3()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.env = {
            **os.environ,
            "PREFECT_API_URL": api,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_WORKER_PREFETCH_SECONDS": "1",
            "LINKARCHIVE_DATABASE_URL": catalog,
            "LINKARCHIVE_WARC_STORE": f"s3://{BUCKET}/cluster",
            "LINKARCHIVE_S3_ENDPOINT": endpoint,
            "AWS_ACCESS_KEY_ID": "linkarchive",
            "AWS_SECRET_ACCESS_KEY": "linkarchive",
            "AWS_DEFAULT_REGION": "us-east-1",
            "LINKARCHIVE_ALLOWED_HOSTS": ",".join(self.allowed_hosts),
            "LINKARCHIVE_ALLOW_ADDRESSES": "127.0.0.0/8",
            "LINKARCHIVE_WORK_POOL": self.pool,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        self.env.pop("LINKARCHIVE_HOME", None)
        self.store = f"s3://{BUCKET}/cluster"
        return self

    def _postgres(self) -> tuple[str, str]:
        self._pg = PostgresServer(
            settings=["max_connections=300"],
            stop_mode="immediate",
            keep=bool(os.environ.get("LINKARCHIVE_KEEP_CLUSTER")),
            prefix="linkarchive-cluster-pg-",
        ).start()
        return self._pg.createdb("catalog"), self._pg.createdb("prefect", driver="asyncpg")

    def _start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = (self.root / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.close()
        self._procs.append(proc)
        return proc

    def _prefect(self, database: str) -> str:
        port = free_port()
        env = {
            **os.environ,
            "PREFECT_HOME": str(self.root / "prefect-server"),
            "PREFECT_API_DATABASE_CONNECTION_URL": database,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            # Expired leases (a killed worker's hosts) freed within a second or two.
            "PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS": "1",
            "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
        }
        env.pop("PREFECT_API_URL", None)
        proc = self._start(
            "prefect-server",
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env,
        )
        _wait_for(f"http://127.0.0.1:{port}/api/health", proc, self.root / "prefect-server.log",
                  180)  # fmt: skip
        return f"http://127.0.0.1:{port}/api"

    def _s3(self) -> str:
        if weed_binary() and os.environ.get("LINKARCHIVE_CLUSTER_S3") != "moto":
            endpoint = self._stack.enter_context(weed_s3(self.root / "weed"))
        else:
            port = free_port()
            proc = self._start(
                "s3", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], {**os.environ}
            )
            endpoint = f"http://127.0.0.1:{port}"
            _wait_for(endpoint, proc, self.root / "s3.log", 90)
        client = s3_client(endpoint)
        deadline = time.monotonic() + 60
        while True:  # the gateway may answer before its volume servers are ready
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        return endpoint

    # --- workers and commands -------------------------------------------------------------

    def home(self, name: str) -> Path:
        """The data home of ``name`` (a worker, or the archivist's machine)."""
        return self.root / "homes" / name

    def worker(self, name: str, limit: int = 1, **env: str) -> subprocess.Popen[bytes]:
        """Start ``linkarchive worker`` as a machine of its own would run it."""
        proc = self._start(
            f"worker-{name}",
            [
                str(BIN / "linkarchive"),
                "--home",
                str(self.home(name)),
                "worker",
                "--name",
                name,
                "--limit",
                str(limit),
            ],  # fmt: skip
            {**self.env, "PREFECT_HOME": str(self.root / f"prefect-{name}"), **env},
        )
        self.workers[name] = proc
        return proc

    def wait_for_workers(self, names: set[str], seconds: float = 120) -> None:
        """Until every worker in ``names`` is online (has polled the pool)."""
        deadline = time.monotonic() + seconds
        while True:
            listed = self.linkarchive("workers", "--format", "json")
            if listed.returncode != 0:
                raise RuntimeError(listed.stderr)
            online = {w["name"] for w in json.loads(listed.stdout)["workers"]
                      if w["status"] == "ONLINE"}  # fmt: skip
            if names <= online:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers {sorted(names - online)} did not come online")
            time.sleep(1)

    def kill_worker(self, name: str) -> None:
        """SIGKILL a worker and every process it started (a machine lost)."""
        proc = self.workers.pop(name)
        kill_tree(proc.pid)
        proc.wait()

    def linkarchive(
        self, *args: str, home: str = "archivist", timeout: float = 600, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run a linkarchive command on the archivist's machine of the cluster."""
        return subprocess.run(
            [str(BIN / "linkarchive"), "--home", str(self.home(home)), *args],
            env={**self.env, "PREFECT_HOME": str(self.root / f"prefect-{home}"), **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def popen(self, *args: str, home: str = "archivist", **env: str) -> subprocess.Popen[str]:
        """Start a linkarchive command on the archivist's machine without waiting for it."""
        proc: subprocess.Popen[str] = subprocess.Popen(
            [str(BIN / "linkarchive"), "--home", str(self.home(home)), *args],
            env={**self.env, "PREFECT_HOME": str(self.root / f"prefect-{home}"), **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        return proc

    def log(self, name: str) -> str:
        """The output so far of a service or worker (``worker-NAME``)."""
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                kill_tree(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self._procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                kill_tree(proc.pid)
                proc.wait()
        self._stack.close()
        if self._pg is not None:
            with contextlib.suppress(subprocess.CalledProcessError):
                self._pg.stop()
        if not os.environ.get("LINKARCHIVE_KEEP_CLUSTER"):
            shutil.rmtree(self.root, ignore_errors=True)

    def describe(self) -> dict[str, Any]:
        """What the cluster runs on (for a bench's report)."""
        weed = weed_binary() and os.environ.get("LINKARCHIVE_CLUSTER_S3") != "moto"
        return {"store": "SeaweedFS (weed mini)" if weed else "moto", "root": str(self.root)}
