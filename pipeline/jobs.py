"""Seed imports, crawls, checks and schedule changes started from the web, as background jobs.

A job is one ``linkarchive`` command run as a detached subprocess (``python -m pipeline.cli
--home HOME ...``), never through a shell. Every value a user typed is checked first and
passed as a single ``--option=VALUE`` element (or after ``--``), so it can never become
another option. Each job leaves three files in the home's ``jobs/`` folder:

- ``ID.json``: who started it, when, what (argv) and the supervisor's pid;
- ``ID.log``: the command's output (stdout and stderr);
- ``ID.exit``: its exit status, written by the command when its work is done and again by
  the supervisor (``python -m pipeline.jobs``) when the command's process ends;
  ``ID.cancel``: who cancelled it, if anyone did.

The files are the state, so a job survives the web server restarting (the supervisor leads
a session of its own): it is ``running`` while its supervisor lives, ``succeeded`` or
``failed`` once ``ID.exit`` exists, ``cancelled`` once stopped on request, and ``lost``
when the supervisor is gone without leaving an exit status (killed, machine restarted).

Seed sources are an http(s) URL, or an existing ``.html``/``.htm``/``.csv`` file inside the
data home (a web user must not make the server read files elsewhere on its disk).
Only one crawl or check runs at a time: each uses every core.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from archive.recover import process_alive
from pipeline.catalog import CatalogError, session_scope
from pipeline.catalog.queries import QueryError, find_cities, find_country
from pipeline.config import Paths
from pipeline.seeds import LINK_KINDS

KINDS = ("seeds", "crawl", "check", "schedule-add", "schedule-remove")
EXCLUSIVE = ("crawl", "check")  # at most one of these runs at a time
# Jobs of any other kind running at once (each is a Python process of ~50-100 MB): the
# rest are refused with JobBusy until one ends.
MAX_OTHER_JOBS = int(os.environ.get("LINKARCHIVE_MAX_JOBS", 4))
SEED_SUFFIXES = (".html", ".htm", ".csv")
STATES = ("running", "succeeded", "failed", "cancelled", "lost")
SCHEDULE_LIST_TIMEOUT = 60.0
SCHEDULE_CACHE_SECONDS = 30.0
NO_PREFECT_SERVER = "schedules need a Prefect server (PREFECT_API_URL)"

# Set by the supervisor for its command: where the command writes its exit status when
# its work is done, before its interpreter winds down.
EXIT_ENV = "LINKARCHIVE_JOB_EXIT"
_JOB_ID = re.compile(r"^\d{8}-\d{12}-[0-9a-f]{4}$")  # started (UTC, to the µs), random
# Five fields of cron characters: digits, names (JAN, MON), * , / -
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*,/-]{1,40}$")
_NAME = re.compile(r"^\w[\w .-]{0,99}$")  # as `schedule add` makes them: crawl-United Kingdom
_LOG_TAIL_BYTES = 8192
_schedules_cache: dict[str, tuple[Any, float, list[dict[str, Any]] | str]] = {}


class JobError(Exception):
    """A job that cannot be started (bad input, one already running...), in one line."""


class JobBusy(JobError):
    """A crawl or check was asked for while one runs."""


@dataclass
class Job:
    """One background job, as read back from its files."""

    id: str
    kind: str
    user: str
    started_at: str
    argv: list[str]
    pid: int | None = None
    state: str = "running"
    exit_code: int | None = None
    finished_at: str | None = None
    cancelled_by: str | None = None
    log_tail: str = field(default="", repr=False)

    @property
    def command(self) -> str:
        """The command as the user would type it (for display only, never executed)."""
        return "linkarchive " + " ".join(self.argv)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "command": self.command}


# --- validation -------------------------------------------------------------------------


def _text(value: str | None, what: str, limit: int = 200) -> str | None:
    """A user's value stripped, or None when empty; refused when not one printable line."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > limit:
        raise JobError(f"{what} is too long (at most {limit} characters)")
    if not value.isprintable():
        raise JobError(f"{what} must be one line of printable characters")
    return value


def selection_args(
    where: Paths, country: str | None = None, city: str | None = None, kind: str | None = None
) -> list[str]:
    """``--country=… --city=… --kind=…`` for a selection the catalog knows, else JobError.

    Places are passed on as the catalog spells them, after they were found in it.
    """
    country, city, kind = _text(country, "country"), _text(city, "city"), _text(kind, "kind")
    args: list[str] = []
    if kind is not None and kind not in LINK_KINDS:
        raise JobError(f"unknown kind {kind!r}: use one of {', '.join(LINK_KINDS)}")
    if country is not None or city is not None:
        try:
            with session_scope(where.database_url) as session:
                found = find_country(session, country) if country is not None else None
                if found is not None:
                    args.append(f"--country={found.name}")
                if city is not None:
                    args.append(f"--city={find_cities(session, city, found)[0].name}")
        except (QueryError, CatalogError) as exc:
            raise JobError(str(exc)) from None
    if kind is not None:
        args.append(f"--kind={kind}")
    return args


def seed_source(where: Paths, source: str | None) -> str:
    """An http(s) URL, or the absolute path of a seed file inside the data home."""
    text = _text(source, "source", limit=2000)
    if text is None:
        raise JobError("give a seed source: an http(s) URL or a .html/.csv file in the data home")
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname or " " in text:
            raise JobError(f"{text!r} is not an http(s) URL")
        return text
    home = where.home.resolve()
    path = Path(text) if Path(text).is_absolute() else home / text
    path = path.resolve()
    if not path.is_relative_to(home):
        raise JobError(f"{text!r}: a seed file must lie inside the data home {home}")
    if path.suffix.lower() not in SEED_SUFFIXES or not path.is_file():
        raise JobError(f"{text!r}: no .html, .htm or .csv file of that name in the data home")
    return str(path)


def cron_expression(cron: str | None) -> str:
    """Five cron fields (minute hour day month weekday), else JobError."""
    text = _text(cron, "cron", limit=200)
    fields = text.split() if text else []
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise JobError(f"{cron!r} is not a cron expression of five fields, e.g. '0 3 * * 1'")
    return " ".join(fields)


def schedule_name(name: str | None) -> str:
    """A schedule's name: letters, digits, spaces, '.', '_' and '-', starting with a letter
    or digit (``schedule add`` makes names such as ``check-United Kingdom-London``)."""
    text = _text(name, "name", limit=100)
    if text is None or not _NAME.match(text):
        raise JobError(
            f"{name!r} is not a schedule name: use letters, digits, spaces, '.', '_' and '-'"
        )
    return text


def require_prefect_server() -> None:
    """Schedules live on a Prefect server: refuse at once (one line) when none is set."""
    if not os.environ.get("PREFECT_API_URL"):
        raise JobError(NO_PREFECT_SERVER)


# --- starting jobs ----------------------------------------------------------------------


def start_seed_import(where: Paths, user: str, source: str | None) -> Job:
    """Start ``linkarchive seeds import SOURCE``."""
    return start_job(where, user, "seeds", ["seeds", "import", "--", seed_source(where, source)])


def start_crawl(
    where: Paths,
    user: str,
    country: str | None = None,
    city: str | None = None,
    kind: str | None = None,
    browser: str | None = None,
) -> Job:
    """Start ``linkarchive crawl`` over a selection (every link when nothing is selected);
    ``browser`` (auto, always, never) as ``--browser``, else the server's default."""
    argv = ["crawl", *selection_args(where, country, city, kind)]
    if browser:
        if browser not in BROWSER_MODES:
            raise JobError(f"browser must be one of {', '.join(BROWSER_MODES)}, not {browser!r}")
        argv.append(f"--browser={browser}")
    return start_job(where, user, "crawl", argv)


BROWSER_MODES = ("auto", "always", "never")


def start_check(
    where: Paths,
    user: str,
    country: str | None = None,
    city: str | None = None,
    kind: str | None = None,
) -> Job:
    """Start ``linkarchive check`` over a selection (every link when nothing is selected)."""
    return start_job(where, user, "check", ["check", *selection_args(where, country, city, kind)])


def start_schedule_add(
    where: Paths,
    user: str,
    cron: str | None,
    what: str | None,
    country: str | None = None,
    city: str | None = None,
    kind: str | None = None,
    name: str | None = None,
) -> Job:
    """Start ``linkarchive schedule add --cron EXPR --crawl|--check [selection] [--name]``."""
    require_prefect_server()
    if what not in EXCLUSIVE:
        raise JobError("say what to schedule: crawl or check")
    argv = ["schedule", "add", f"--cron={cron_expression(cron)}", f"--{what}"]
    argv += selection_args(where, country, city, kind)
    if _text(name, "name") is not None:
        argv.append(f"--name={schedule_name(name)}")
    return start_job(where, user, "schedule-add", argv)


def start_schedule_remove(where: Paths, user: str, name: str | None) -> Job:
    """Start ``linkarchive schedule remove NAME``."""
    require_prefect_server()
    argv = ["schedule", "remove", "--", schedule_name(name)]
    return start_job(where, user, "schedule-remove", argv)


def start_job(where: Paths, user: str, kind: str, argv: list[str]) -> Job:
    """Record and start one job: ``python -m pipeline.cli --home HOME *argv``, supervised.

    ``argv`` must already be validated; it is passed on as a list, never to a shell.
    """
    if kind not in KINDS:
        raise JobError(f"unknown job kind {kind!r}")
    where.ensure()
    with _jobs_lock(where, fcntl.LOCK_EX):
        if kind in EXCLUSIVE:
            for job in _list_jobs(where, 0):
                if job.kind in EXCLUSIVE and job.state == "running":
                    raise JobBusy(
                        f"a {job.kind} is already running (job {job.id}, started by {job.user});"
                        " wait for it to finish"
                    )
        else:
            running = [j for j in _list_jobs(where, 0) if j.kind not in EXCLUSIVE
                       and j.state == "running"]  # fmt: skip
            if len(running) >= MAX_OTHER_JOBS:
                raise JobBusy(
                    f"{len(running)} jobs are already running (at most {MAX_OTHER_JOBS}); "
                    "wait for one to finish"
                )
        now = datetime.now(UTC)
        job = Job(
            id=f"{now:%Y%m%d-%H%M%S%f}-{secrets.token_hex(2)}",
            kind=kind,
            user=user,
            started_at=now.isoformat(timespec="seconds"),
            argv=list(argv),
        )
        record = where.jobs / f"{job.id}.json"
        command = [sys.executable, "-m", "pipeline.cli", "--home", str(where.home), *argv]
        _write_json(record, {**_stored(job), "command": command})
        with open(where.jobs / f"{job.id}.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "pipeline.jobs", str(record)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=where.home,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,  # not killed with the web server, nor by its Ctrl-C
                close_fds=True,
            )
        job.pid = process.pid
        # Not reaped before the thread below starts: this pid is still the supervisor's.
        began = _process_start(process.pid)
        _write_json(record, {**_stored(job), "command": command, "pid_start": began})
    # Reap the supervisor when it ends, so it never lingers as a zombie of this process.
    threading.Thread(target=process.wait, name=f"job-{job.id}", daemon=True).start()
    return job


def _stored(job: Job) -> dict[str, Any]:
    keys = ("id", "kind", "user", "started_at", "argv", "pid")
    return {k: getattr(job, k) for k in keys}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` so that readers see the old file or the new one, never half of one."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    partial.replace(path)


@contextmanager
def _jobs_lock(where: Paths, mode: int) -> Iterator[None]:
    """Job starts are exclusive (the crawl cap must hold across threads and processes);
    readers share, so they never see a job recorded but not yet started."""
    with open(where.jobs / ".lock", "a") as handle:
        fcntl.flock(handle, mode)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- reading jobs back ------------------------------------------------------------------


def list_jobs(where: Paths, tail_lines: int = 0, limit: int | None = None) -> list[Job]:
    """The home's jobs (the newest ``limit``), newest first, with their state (and their
    logs' last lines)."""
    if not where.jobs.is_dir():
        return []
    with _jobs_lock(where, fcntl.LOCK_SH):
        return _list_jobs(where, tail_lines, limit)


def _list_jobs(where: Paths, tail_lines: int, limit: int | None = None) -> list[Job]:
    # The folder also holds the crawl flow's batch files. Ids begin with the time started,
    # so the newest records sort first in reverse.
    records = [p for p in where.jobs.glob("*.json") if _JOB_ID.match(p.stem)]
    records.sort(key=lambda p: p.name, reverse=True)
    jobs = (_read(record, tail_lines) for record in records[:limit])
    return [job for job in jobs if job is not None]


def get_job(where: Paths, job_id: str, tail_lines: int = 40, locked: bool = False) -> Job | None:
    """The job ``job_id`` with the last lines of its log, or None."""
    if not _JOB_ID.match(job_id):
        return None
    record = where.jobs / f"{job_id}.json"
    if not record.is_file():
        return None
    if locked:
        return _read(record, tail_lines)
    with _jobs_lock(where, fcntl.LOCK_SH):
        return _read(record, tail_lines)


def _read(record: Path, tail_lines: int) -> Job | None:
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        job = Job(**{k: data[k] for k in ("id", "kind", "user", "started_at", "argv", "pid")})
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a record being written, or not ours
    # Alive first: a supervisor writes the exit status before it ends, so a dead one with
    # no exit status file never wrote one.
    alive = job.pid is not None and _supervising(job.pid, data.get("pid_start"))
    ended = record.with_suffix(".exit")
    if ended.is_file():
        try:
            outcome = json.loads(ended.read_text(encoding="utf-8"))
            job.exit_code = int(outcome["exit_code"])
            job.finished_at = outcome.get("finished_at")
        except (OSError, ValueError, KeyError, TypeError):
            job.exit_code = -1
        job.state = "succeeded" if job.exit_code == 0 else "failed"
    else:
        job.state = "running" if alive else "lost"
    cancel = record.with_suffix(".cancel")
    if cancel.is_file() and job.state != "running":
        # Killed on request: whatever its exit status (the supervisor may have been
        # stopped before it could record one).
        job.state = "cancelled"
        with contextlib.suppress(OSError, ValueError, TypeError):
            job.cancelled_by = json.loads(cancel.read_text(encoding="utf-8")).get("user")
    if tail_lines:
        job.log_tail = log_tail(record.with_suffix(".log"), tail_lines)
    return job


def cancel_job(where: Paths, job_id: str, user: str) -> Job:
    """Stop a running job: SIGTERM to its process group (the command, its crawl processes
    and the Prefect server it started). It ends ``cancelled``, noting by whom."""
    with _jobs_lock(where, fcntl.LOCK_EX):
        job = get_job(where, job_id, tail_lines=0, locked=True)
        if job is None:
            raise JobError(f"no job {job_id!r}")
        if job.state != "running" or job.pid is None:
            raise JobError(f"job {job.id} is not running ({job.state})")
        when = datetime.now(UTC).isoformat(timespec="seconds")
        _write_json(where.jobs / f"{job.id}.cancel", {"user": user, "at": when})
        with contextlib.suppress(ProcessLookupError):
            os.killpg(job.pid, signal.SIGTERM)  # the supervisor leads its own session
    return job


def _process_start(pid: int) -> str | None:
    """When a live process started (in clock ticks since boot), or None when it has ended
    (a zombie included) or this is not Linux."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (name) "
    return None if fields[0] in ("Z", "X", "x") else fields[19]


def _supervising(pid: int, started: str | None) -> bool:
    """Whether ``pid`` is still the job's supervisor: alive and started when it did (a pid
    can be reused after a restart)."""
    if Path("/proc/self/stat").exists():
        return started is not None and _process_start(pid) == started
    return process_alive(pid)


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log, as text (undecodable bytes replaced)."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - _LOG_TAIL_BYTES))
            data = handle.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace").replace("\r", "\n")
    return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])


# --- schedules --------------------------------------------------------------------------


def list_schedules(where: Paths, timeout: float = SCHEDULE_LIST_TIMEOUT) -> list[dict[str, Any]]:
    """``linkarchive schedule list``, run now: name, flow, cron, paused, parameters of each.

    Raises JobError (one line) without a Prefect server, or when it does not answer.
    Answers are kept until a schedule job changes state or ``SCHEDULE_CACHE_SECONDS`` pass:
    each listing is a Python process talking to the server.
    """
    require_prefect_server()
    changes = tuple(
        (job.id, job.state) for job in list_jobs(where) if job.kind.startswith("schedule")
    )
    key = (str(where.home), os.environ["PREFECT_API_URL"], changes)
    cached = _schedules_cache.get(key[0])
    if cached and cached[0] == key and time.monotonic() - cached[1] < SCHEDULE_CACHE_SECONDS:
        answer = cached[2]
    else:
        answer = _schedule_list(where, timeout)
        _schedules_cache[key[0]] = (key, time.monotonic(), answer)
    if isinstance(answer, str):  # a problem, remembered too: a server that is down is slow
        raise JobError(answer)
    return answer


def _schedule_list(where: Paths, timeout: float) -> list[dict[str, Any]] | str:
    answer = _cli_json(where, ["schedule", "list", "--format=json"], timeout)
    return answer if isinstance(answer, list | str) else []


def _cli_json(where: Paths, args: list[str], timeout: float) -> Any:
    """A ``linkarchive`` command's JSON answer (it talks to the Prefect server, which this
    process does not import), or its one-line problem as a string."""
    command = [sys.executable, "-m", "pipeline.cli", "--home", str(where.home), *args]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        return f"the Prefect server did not answer within {timeout:.0f} s"
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return lines[-1] if lines else f"{args[0]} failed ({done.returncode})"
    text = done.stdout.strip()
    return json.loads(text) if text[:1] in ("[", "{") else None


def cluster_workers(where: Paths, timeout: float = SCHEDULE_LIST_TIMEOUT) -> list[dict[str, Any]]:
    """The workers of the cluster's pool (``LINKARCHIVE_WORK_POOL``) as ``linkarchive
    workers`` lists them, kept ``SCHEDULE_CACHE_SECONDS``; [] when crawls run here only.
    Raises JobError (one line) when the server does not answer."""
    pool = os.environ.get("LINKARCHIVE_WORK_POOL")
    if not pool or not os.environ.get("PREFECT_API_URL"):
        return []
    key = f"workers:{where.home}"
    cached = _schedules_cache.get(key)
    if cached and time.monotonic() - cached[1] < SCHEDULE_CACHE_SECONDS:
        answer = cached[2]
    else:
        answer = _cli_json(where, ["workers", "--pool", pool, "--format=json"], timeout)
        answer = answer["workers"] if isinstance(answer, dict) else answer
        _schedules_cache[key] = (key, time.monotonic(), answer)
    if isinstance(answer, str):
        raise JobError(answer)
    return answer or []


# --- the supervisor ---------------------------------------------------------------------


def supervise(record: Path) -> int:
    """Run a job's command (output to the log, which is our stdout), then write ``ID.exit``.

    A SIGTERM is passed on to the command, whose exit status is then recorded as usual.
    """
    data = json.loads(record.read_text(encoding="utf-8"))
    sys.stdout.flush()
    exit_file = str(record.with_suffix(".exit"))
    child = subprocess.Popen(
        data["command"], stdin=subprocess.DEVNULL, env={**os.environ, EXIT_ENV: exit_file}
    )

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    record_exit(Path(exit_file), child.wait())  # the last word, should it differ
    return 0


def record_exit(path: Path, code: int) -> None:
    """Write a job's exit status. The command writes it itself as soon as it has done its
    work (see :data:`EXIT_ENV`): its process may take seconds more to end (Prefect's
    temporary server stopping), and the job is not running any more."""
    finished = datetime.now(UTC).isoformat(timespec="seconds")
    _write_json(path, {"exit_code": code, "finished_at": finished})


if __name__ == "__main__":
    sys.exit(supervise(Path(sys.argv[1])))
