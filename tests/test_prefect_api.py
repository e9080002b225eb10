"""The local Prefect API server: started by the first CLI call, reused, replaced, idled out.

Real `linkarchive` subprocesses, a real `prefect server start`, a real HTTP site on
127.0.0.1, and a Prefect home of this module's own; every server started here is stopped.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.prefect_api import healthy, read_state, state_dir, stop_local_server

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
PAGE = b"<html><head><title>Rally in Berlin</title></head><body><p>Report.</p></body></html>"


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """One page served on 127.0.0.1."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/rally.html"
    server.shutdown()
    server.server_close()


def _kill_every_server(prefect_home: Path) -> None:
    """Stop the recorded server, then SIGKILL every supervisor group ever started here."""
    stop_local_server(prefect_home)
    starts = state_dir(prefect_home) / "starts.log"
    lines = starts.read_text().splitlines() if starts.exists() else []
    for line in lines:
        pid = json.loads(line)["pid"]
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"flows.prefect_api" in command:  # still ours, not a reused pid
            os.killpg(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment of a CLI call: a Prefect home of this module's, no API URL set."""
    prefect_home = tmp_path_factory.mktemp("prefect-home")
    environment = {**os.environ, "PREFECT_HOME": str(prefect_home)}
    for name in (
        "PREFECT_API_URL",
        "LINKARCHIVE_PREFECT_SERVER",
        "LINKARCHIVE_PREFECT_IDLE_SECONDS",
    ):
        environment.pop(name, None)
    try:
        yield environment
    finally:
        _kill_every_server(prefect_home)


@pytest.fixture(scope="module")
def data_home(site: str, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """A data home holding one link, to the site."""
    folder = tmp_path_factory.mktemp("linkarchive")
    seeds = folder / "seeds.csv"
    seeds.write_text(f"country,city,kind,label,url\nGermany,Berlin,report,Rally,{site}\n")
    home = str(folder / "data")
    imported = linkarchive(env, "--home", home, "seeds", "import", str(seeds))
    assert imported.returncode == 0, imported.stderr
    return home


def linkarchive(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI; its output captured (a server holding the pipes would hang this)."""
    return subprocess.run(
        [str(BIN / "linkarchive"), *args], env=env, capture_output=True, text=True, timeout=300
    )


def crawl(env: dict[str, str], home: str, run: str | None = None) -> str:
    """Crawl the one link; returns what the call said on stderr."""
    result = linkarchive(env, "--home", home, "crawl")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Crawl run {run or ''}" in result.stdout and "1 of 1 links" in result.stdout
    return result.stderr


def use_local_server(env: dict[str, str]) -> subprocess.Popen[str]:
    """`use_local_server()` in a process of its own, which prints the URL it got."""
    code = "from flows.prefect_api import use_local_server; print(use_local_server())"
    return subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True
    )


def here(env: dict[str, str]) -> Path:
    return state_dir(Path(env["PREFECT_HOME"]))


def starts(env: dict[str, str]) -> int:
    log = here(env) / "starts.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def alive(pid: int) -> bool:
    try:
        return b"flows.prefect_api" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def wait_for(condition: Callable[[], bool], seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)
    return True


def test_consecutive_crawls_share_one_server(env: dict[str, str], data_home: str) -> None:
    said = crawl(env, data_home, "1")
    first = read_state(here(env))
    assert first is not None and healthy(first["url"])
    assert starts(env) == 1
    assert f"started a local Prefect server, UI http://127.0.0.1:{first['port']}" in said

    assert "started a local Prefect server" not in crawl(env, data_home, "2")
    assert read_state(here(env)) == first  # same pid, port, start
    assert starts(env) == 1  # the second call started no server
    assert alive(first["pid"])

    status = linkarchive(env, "prefect-server", "status")
    assert status.returncode == 0 and "running" in status.stdout
    assert first["url"] in status.stdout


def test_a_killed_server_is_replaced(env: dict[str, str], data_home: str) -> None:
    crawl(env, data_home)
    before, count = read_state(here(env)), starts(env)
    assert before is not None
    os.kill(before["server_pid"], signal.SIGKILL)  # the `prefect server start` process

    crawl(env, data_home)
    after = read_state(here(env))
    assert after is not None and healthy(after["url"])
    assert after["pid"] != before["pid"] and starts(env) == count + 1
    assert wait_for(lambda: not alive(before["pid"]))  # its supervisor went with it

    os.killpg(after["pid"], signal.SIGKILL)  # supervisor and server, leaving a stale record
    assert wait_for(lambda: not alive(after["pid"]))
    assert read_state(here(env)) == after
    again = use_local_server(env)
    url = again.communicate(timeout=300)[0].strip()
    replaced = read_state(here(env))
    assert replaced is not None and replaced["pid"] != after["pid"]
    assert url == replaced["url"] and healthy(url)


def test_two_calls_at_once_start_one_server(env: dict[str, str]) -> None:
    stop_local_server(Path(env["PREFECT_HOME"]))
    count = starts(env)
    calls = [use_local_server(env) for _ in range(2)]
    urls = {call.communicate(timeout=300)[0].strip() for call in calls}
    state = read_state(here(env))
    assert state is not None and urls == {state["url"]}
    assert starts(env) == count + 1


def test_an_idle_server_stops_by_itself(env: dict[str, str], data_home: str) -> None:
    stop_local_server(Path(env["PREFECT_HOME"]))
    # The crawl outlasts 3 s: it keeps the server in use while it runs.
    crawl({**env, "LINKARCHIVE_PREFECT_IDLE_SECONDS": "3"}, data_home)
    state = read_state(here(env))
    assert state is not None and state["idle_seconds"] == 3
    assert wait_for(lambda: not alive(state["pid"]) and read_state(here(env)) is None)
    assert not healthy(state["url"], timeout=1)
    status = linkarchive(env, "prefect-server", "status")
    assert "No local Prefect server runs" in status.stdout


def test_ephemeral_and_an_explicit_url_are_left_alone(
    env: dict[str, str], data_home: str, tmp_path: Path
) -> None:
    stop_local_server(Path(env["PREFECT_HOME"]))
    count = starts(env)
    crawl({**env, "LINKARCHIVE_PREFECT_SERVER": "ephemeral"}, data_home)
    assert read_state(here(env)) is None and starts(env) == count

    # An explicit URL (here: the local server of another Prefect home) is used as it is.
    url = use_local_server(env).communicate(timeout=300)[0].strip()
    other = {**env, "PREFECT_HOME": str(tmp_path / "other"), "PREFECT_API_URL": url}
    crawl(other, data_home)
    assert not (tmp_path / "other" / "linkarchive-server").exists()
    assert starts(env) == count + 1

    bad = linkarchive({**env, "LINKARCHIVE_PREFECT_SERVER": "sometimes"}, "--home", data_home,
                      "crawl")  # fmt: skip
    assert bad.returncode == 1
    assert bad.stderr.startswith("linkarchive: error: LINKARCHIVE_PREFECT_SERVER must be")


def test_stop_stops_it(env: dict[str, str]) -> None:
    url = use_local_server(env).communicate(timeout=300)[0].strip()
    state = read_state(here(env))
    assert state is not None and state["url"] == url
    stopped = linkarchive(env, "prefect-server", "stop")
    assert stopped.returncode == 0 and "Stopped" in stopped.stdout
    assert not alive(state["pid"]) and read_state(here(env)) is None
    again = linkarchive(env, "prefect-server", "stop")
    assert "No local Prefect server was running" in again.stdout
