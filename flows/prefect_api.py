"""One local Prefect API server per Prefect home, started by the first CLI call and reused.

Unset, ``PREFECT_API_URL`` makes Prefect start a temporary server inside every process that
runs a flow and stop it at exit: seconds of start-up (and shutdown) per CLI call. Instead,
:func:`use_local_server` starts ``prefect server start --host 127.0.0.1 --port <free port>``
once, under a small supervisor process (``python -m flows.prefect_api supervise``), records
``{pid, port, url}`` in ``$PREFECT_HOME/linkarchive-server/state.json`` and points this
process at it; later calls find it there and reuse it. The supervisor stops the server once
no call has used it for ``LINKARCHIVE_PREFECT_IDLE_SECONDS`` (default 900): every call that
uses it touches the ``last-used`` file at its start, every few seconds while it runs, and at
exit.

Left alone: an API URL already set (``PREFECT_API_URL`` in the environment or the Prefect
profile, or a test harness), and ``LINKARCHIVE_PREFECT_SERVER=ephemeral`` (Prefect's own
temporary server, as before).

This module imports only the standard library at import time: the supervisor runs on it
alone. Prefect itself is imported inside :func:`use_local_server` and :func:`prefect_home`.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from archive.recover import process_alive

MODE_VARIABLE = "LINKARCHIVE_PREFECT_SERVER"
IDLE_VARIABLE = "LINKARCHIVE_PREFECT_IDLE_SECONDS"
DEFAULT_IDLE_SECONDS = 900.0
START_TIMEOUT = 120.0  # a first start migrates a new database; two busy cores are slow
STATE_DIR = "linkarchive-server"
REPO_ROOT = Path(__file__).resolve().parent.parent

# Supervisors this process started: kept referenced so that no Popen is collected (and warns)
# while its process runs on.
_SPAWNED: list[subprocess.Popen[bytes]] = []
_IN_USE: set[Path] = set()


class PrefectServerError(Exception):
    """A local server setting that cannot be honoured (one line)."""


# --- where things are -------------------------------------------------------------------


def prefect_home() -> Path:
    """Prefect's home folder, as Prefect resolves it (``PREFECT_HOME``, default ~/.prefect)."""
    from prefect.settings import get_current_settings

    return Path(get_current_settings().home).expanduser()


def state_dir(home: Path | None = None) -> Path:
    """The folder holding the local server's state, lock, last-used mark and log."""
    return (home if home is not None else prefect_home()).expanduser().resolve() / STATE_DIR


def read_state(directory: Path) -> dict[str, Any] | None:
    """The recorded server (``pid``, ``server_pid``, ``port``, ``url``, …), or None."""
    try:
        state = json.loads((directory / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and {"pid", "port", "url"} <= state.keys() else None


def _write_state(directory: Path, state: dict[str, Any]) -> None:
    temporary = directory / f"state.json.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(state, indent=2), encoding="utf-8")
    os.replace(temporary, directory / "state.json")


def _remove_state(directory: Path, pid: int | None = None) -> None:
    """Forget the recorded server (only if it is ``pid``'s, when given)."""
    state = read_state(directory)
    if state is not None and (pid is None or state["pid"] == pid):
        with contextlib.suppress(FileNotFoundError):
            (directory / "state.json").unlink()


@contextlib.contextmanager
def _locked(directory: Path, stop: threading.Event | None = None) -> Iterator[bool]:
    """Hold the state folder's lock (an flock); yields False if ``stop`` was set first."""
    import fcntl

    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with (directory / "lock").open("a") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if stop is not None and stop.is_set():
                    yield False
                    return
                time.sleep(0.1)
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def touch(directory: Path) -> None:
    """Mark the server as used now."""
    mark = directory / "last-used"
    try:
        os.utime(mark)
    except FileNotFoundError:
        mark.touch()


def idle_for(directory: Path) -> float:
    """Seconds since the server was last used (0 if it never was marked)."""
    try:
        return max(0.0, time.time() - (directory / "last-used").stat().st_mtime)
    except FileNotFoundError:
        return 0.0


# --- probing ------------------------------------------------------------------------------


def healthy(url: str, timeout: float = 3.0) -> bool:
    """Whether the Prefect API at ``url`` answers its health check (no proxies)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url}/health", timeout=timeout) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


def _is_supervisor(pid: int, directory: Path) -> bool:
    """Whether ``pid`` is still the supervisor of ``directory`` (not a reused pid)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        found = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
        )
        command = found.stdout
    return "flows.prefect_api" in command and str(directory) in command


def _stop_group(pid: int, grace: float = 10.0) -> None:
    """SIGTERM the process group led by ``pid``, then SIGKILL it if it lingers."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
            if not process_alive(pid):
                return
            time.sleep(0.1)


def _answers(state: dict[str, Any], directory: Path, patience: float = 10.0) -> bool:
    """Whether the recorded server is ours and answers; a busy one gets ``patience`` s."""
    if not (process_alive(state["pid"]) and _is_supervisor(state["pid"], directory)):
        return False
    deadline = time.monotonic() + patience
    while True:
        if healthy(state["url"]):
            return True
        if time.monotonic() > deadline or not process_alive(state.get("server_pid", state["pid"])):
            return False
        time.sleep(0.5)


# --- the caller's side --------------------------------------------------------------------


def _idle_seconds() -> float:
    raw = os.environ.get(IDLE_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_IDLE_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise PrefectServerError(f"{IDLE_VARIABLE} must be a number of seconds > 0, not {raw!r}")
    return seconds


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(directory: Path, idle: float) -> dict[str, Any]:
    """Start a supervised server (the caller holds the lock) and wait until it answers."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ}
    env.pop("PREFECT_API_URL", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    command = [sys.executable, "-m", "flows.prefect_api", "supervise", "--state-dir",
               str(directory), "--port", str(port), "--idle", str(idle)]  # fmt: skip
    touch(directory)
    with (directory / "server.log").open("ab") as log:
        supervisor = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=directory,
            env=env,
            start_new_session=True,  # its own process group: never the caller's pipes or signals
        )
    _SPAWNED.append(supervisor)
    deadline = time.monotonic() + START_TIMEOUT
    while not healthy(url, timeout=2.0):
        if supervisor.poll() is not None or time.monotonic() > deadline:
            _stop_group(supervisor.pid)
            raise OSError(f"the local Prefect server did not start; see {directory / 'server.log'}")
        time.sleep(0.2)
    touch(directory)
    server_pid = _read_int(directory / "server.pid")
    state = {
        "pid": supervisor.pid,
        "server_pid": server_pid or supervisor.pid,
        "port": port,
        "url": url,
        "idle_seconds": idle,
        "started": time.time(),
        "prefect_home": str(directory.parent),
    }
    _write_state(directory, state)
    with (directory / "starts.log").open("a", encoding="utf-8") as starts:
        starts.write(json.dumps(state) + "\n")
    return {**state, "new": True}


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def ensure_server(directory: Path) -> dict[str, Any]:
    """The running local server recorded in ``directory``, started or replaced if need be."""
    idle = _idle_seconds()
    with _locked(directory):
        state = read_state(directory)
        if state is not None:
            touch(directory)  # before the check: the supervisor will not stop it now
            if _answers(state, directory):
                return state
            if process_alive(state["pid"]) and _is_supervisor(state["pid"], directory):
                _stop_group(state["pid"])
            _remove_state(directory)
        return _start(directory, idle)


def _keep_marked(directory: Path, interval: float) -> None:
    """Touch ``last-used`` every ``interval`` s while this process runs, and at its exit."""
    if directory in _IN_USE:
        return
    _IN_USE.add(directory)

    def beat() -> None:
        while True:
            time.sleep(interval)
            with contextlib.suppress(OSError):
                touch(directory)

    threading.Thread(target=beat, name="prefect-server-heartbeat", daemon=True).start()
    atexit.register(_touch_quietly, directory)


def _touch_quietly(directory: Path) -> None:
    with contextlib.suppress(OSError):
        touch(directory)


def use_local_server() -> str:
    """Point this process's Prefect at the local server; returns the API URL in use.

    An API URL already set is returned unchanged ("" when none is set and
    ``LINKARCHIVE_PREFECT_SERVER=ephemeral`` keeps Prefect's temporary server). If the local
    server cannot be started, says so on stderr and returns "" (the temporary server runs).
    """
    mode = os.environ.get(MODE_VARIABLE, "local").strip().lower() or "local"
    if mode not in ("local", "ephemeral"):
        raise PrefectServerError(f"{MODE_VARIABLE} must be 'local' or 'ephemeral', not {mode!r}")
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url:  # the Prefect profile, or a test harness
        return str(settings.api.url)
    if mode == "ephemeral" or os.name != "posix":  # sessions, signals and flock are POSIX
        return ""
    directory = state_dir(Path(settings.home))
    try:
        state = ensure_server(directory)
    except OSError as exc:
        print(f"linkarchive: {exc}; using a temporary one", file=sys.stderr)
        return ""
    if state.get("new"):
        print(
            f"linkarchive: started a local Prefect server, UI http://127.0.0.1:{state['port']}"
            f" (stops after {state['idle_seconds']:g} s unused; `linkarchive prefect-server"
            " stop` stops it now)",
            file=sys.stderr,
        )
    os.environ["PREFECT_API_URL"] = state["url"]
    from prefect.context import refresh_global_settings_context

    refresh_global_settings_context()  # Prefect may have read its settings already
    _keep_marked(directory, max(0.2, min(30.0, float(state["idle_seconds"]) / 3)))
    return state["url"]


def _supervisors(directory: Path) -> list[int]:
    """Every live supervisor of ``directory``, recorded or not (one whose record was lost)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, ValueError):
            if _is_supervisor(int(proc.name), directory):
                found.append(int(proc.name))
    return found


def stop_local_server(home: Path | None = None, started_after: float | None = None) -> bool:
    """Stop the local server of ``home`` (default: this Prefect home); False if none ran.

    With ``started_after`` (a ``time.time()``), a server started earlier is left running;
    without, any other supervisor of this home left without a record is stopped too."""
    directory = state_dir(home)
    if not directory.exists():
        return False
    with _locked(directory):
        state = read_state(directory)
        if started_after is not None and (state is None or state["started"] < started_after):
            return False
        stopped = False
        recorded = [state["pid"]] if state is not None else []
        for pid in recorded + ([] if started_after is not None else _supervisors(directory)):
            if process_alive(pid) and _is_supervisor(pid, directory):
                _stop_group(pid)
                stopped = True
        _remove_state(directory)
        return stopped


def server_status(home: Path | None = None) -> dict[str, Any] | None:
    """The recorded server with ``healthy`` and ``idle_seconds_now``, or None if none runs."""
    directory = state_dir(home)
    state = read_state(directory)
    if state is None:
        return None
    ours = process_alive(state["pid"]) and _is_supervisor(state["pid"], directory)
    return {
        **state,
        "healthy": ours and healthy(state["url"]),
        "idle_seconds_now": round(idle_for(directory), 1),
        "log": str(directory / "server.log"),
    }


# --- the supervisor -----------------------------------------------------------------------


def supervise(directory: Path, port: int, idle: float) -> int:
    """Run ``prefect server start`` until it has been idle ``idle`` s, or is told to stop."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
    # Its output goes where the supervisor's goes: server.log.
    server = subprocess.Popen([*command, "--port", str(port)], stdin=subprocess.DEVNULL)
    (directory / "server.pid").write_text(str(server.pid))
    url = f"http://127.0.0.1:{port}/api"
    tick = min(5.0, max(0.2, idle / 10))
    started, ready = time.monotonic(), None  # idle time counts from when it first answers
    reason = "stopped"

    def idle_now() -> float:
        return min(idle_for(directory), time.monotonic() - ready) if ready else 0.0

    while not stop.wait(tick):
        if server.poll() is not None:
            reason = f"server exited with status {server.returncode}"
            break
        if ready is None:
            if healthy(url, timeout=1.0):
                ready = time.monotonic()
            elif time.monotonic() - started > START_TIMEOUT:
                reason = f"server did not answer within {START_TIMEOUT:g} s"
                break
            continue
        if idle_now() >= idle:
            with _locked(directory, stop) as got:
                if got and idle_now() >= idle:
                    _remove_state(directory, os.getpid())  # no caller can pick it up now
                    reason = f"idle for {idle:g} s"
                    break
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    with _locked(directory, stop) as got:
        if got:
            _remove_state(directory, os.getpid())
    print(f"linkarchive: local Prefect server on port {port} stopped ({reason})", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.prefect_api supervise --state-dir D --port P --idle S``."""
    parser = argparse.ArgumentParser(prog="python -m flows.prefect_api")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("supervise", help="run a local Prefect server until idle")
    run.add_argument("--state-dir", type=Path, required=True)
    run.add_argument("--port", type=int, required=True)
    run.add_argument("--idle", type=float, default=DEFAULT_IDLE_SECONDS)
    args = parser.parse_args(argv)
    return supervise(args.state_dir, args.port, args.idle)


if __name__ == "__main__":
    sys.exit(main())
