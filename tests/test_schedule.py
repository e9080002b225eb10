"""Schedules are real Prefect deployments on a real Prefect server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """`prefect server start --host 127.0.0.1`, and the environment that points at it."""
    port = free_port()
    home = tmp_path_factory.mktemp("prefect-server")
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):  # noqa: S310 - loopback
                break
        except OSError:
            assert time.time() < deadline, "the Prefect server did not start"
            time.sleep(0.5)
    client_home = tmp_path_factory.mktemp("prefect-client")
    yield {**env, "PREFECT_API_URL": url, "PREFECT_HOME": str(client_home)}
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)


def run(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "linkarchive"), *args], env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def test_a_schedule_is_a_deployment_whose_triggered_run_completes(
    server: dict[str, str], tmp_path: Path
) -> None:
    home = str(tmp_path / "data")
    added = run(server, "--home", home, "schedule", "add", "--cron", "0 3 * * 1", "--check",
                "--country", "Germany", "--name", "weekly-check")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "linkarchive-check/weekly-check" in added.stdout
    listed = run(server, "schedule", "list")
    assert "weekly-check" in listed.stdout and "0 3 * * 1" in listed.stdout

    serving = subprocess.Popen(
        [str(BIN / "linkarchive"), "--home", home, "schedule", "serve"],
        env=server, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        # A triggered run, not a wait for a real cron minute.
        triggered = subprocess.run(
            [str(BIN / "prefect"), "deployment", "run", "linkarchive-check/weekly-check",
             "--param", "country=null", "--watch", "--watch-timeout", "150"],
            env=server, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert "Completed" in triggered.stdout, triggered.stdout + triggered.stderr
    finally:
        os.killpg(serving.pid, signal.SIGTERM)
        serving.wait(30)
    # Stopping `schedule serve` leaves the schedule active (Prefect would pause it).
    listed = json.loads(run(server, "schedule", "list", "--format", "json").stdout)
    assert [s["paused"] for s in listed if s["name"] == "weekly-check"] == [False]

    removed = run(server, "schedule", "remove", "weekly-check")
    assert removed.returncode == 0, removed.stderr
    assert "weekly-check" not in run(server, "schedule", "list").stdout
    missing = run(server, "schedule", "remove", "weekly-check")
    assert missing.returncode == 1 and "no schedule named" in missing.stderr


def test_schedules_need_a_real_server(tmp_path: Path) -> None:
    env = {**os.environ, "PREFECT_HOME": str(tmp_path)}
    env.pop("PREFECT_API_URL", None)
    result = run(env, "--home", str(tmp_path / "d"), "schedule", "add", "--cron", "0 3 * * *",
                 "--crawl")  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("linkarchive: error: schedules need a real Prefect server")
    bad = run(env, "schedule", "add", "--cron", "0 3 * * *")
    assert bad.returncode == 1 and "--crawl or --check" in bad.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--cron", "0 3 * * 1", "--check", "--crawl"], "--crawl or --check (one each"),
        (["--cron", "every monday", "--crawl"], "invalid cron 'every monday': Invalid cron"),
        (["--cron", "0 25 * * *", "--check"], "invalid cron '0 25 * * *'"),
    ],
)
def test_bad_schedules_are_refused_in_one_line_before_anything_is_asked(
    tmp_path: Path, args: list[str], words: str
) -> None:
    """Both flags at once (only one was scheduled, silently) and a bad cron (a pydantic
    dump) are one line, before a server is even needed."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path)}
    env.pop("PREFECT_API_URL", None)
    result = run(env, "--home", str(tmp_path / "d"), "schedule", "add", *args)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and words in result.stderr, result.stderr
    assert "validation error" not in result.stderr and "real Prefect server" not in result.stderr


def test_workers_and_pool_crawls_need_a_real_server_and_a_store(tmp_path: Path) -> None:
    """A worker or a crawl on a work pool without a Prefect server, or a worker without a
    WARC store other machines can read: one line each, exit 1, nothing started."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path)}
    env.pop("PREFECT_API_URL", None)
    home = str(tmp_path / "d")
    for args in (["worker"], ["crawl", "--pool", "linkarchive"], ["workers"]):
        result = run(env, "--home", home, *args)
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith("linkarchive: error: "), result.stderr
        assert "need a real Prefect server" in result.stderr and result.stderr.count("\n") == 1
    env["PREFECT_API_URL"] = "http://127.0.0.1:9/api"  # never reached: the store is missing
    env.pop("LINKARCHIVE_WARC_STORE", None)
    result = run(env, "--home", home, "worker")
    assert result.returncode == 1
    assert "a worker needs a WARC store" in result.stderr and result.stderr.count("\n") == 1
