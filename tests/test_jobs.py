"""Background jobs: `linkarchive` commands started for the web, as real detached processes."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from archive.recover import process_alive
from pipeline import jobs
from pipeline.catalog import session_scope
from pipeline.catalog.queries import Selection, select_links
from pipeline.config import Paths, paths
from pipeline.jobs import JobBusy, JobError

WAIT = 180.0  # generous: a job is a fresh Python process importing the whole pipeline


@pytest.fixture(scope="module")
def seeded_home(world: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data home into which the replica world's index page was imported (no crawl)."""
    from pipeline.cli import main

    home = tmp_path_factory.mktemp("seeded") / "home"
    assert main(["--home", str(home), "seeds", "import", world.index_url]) == 0
    return home


@pytest.fixture
def where(seeded_home: Path, tmp_path: Path) -> Paths:
    """A private copy of the seeded home (jobs write into it)."""
    shutil.copytree(seeded_home, tmp_path / "home")
    return paths(tmp_path / "home").ensure()


def wait_until_done(where: Paths, job_id: str) -> jobs.Job:
    deadline = time.monotonic() + WAIT
    while True:
        job = jobs.get_job(where, job_id)
        assert job is not None
        if job.state != "running":
            return job
        assert time.monotonic() < deadline, f"job {job_id} still running:\n{job.log_tail}"
        time.sleep(0.2)


def link_count(where: Paths) -> int:
    with session_scope(where.database_url) as session:
        return len(select_links(session, Selection()))


# --- validation -------------------------------------------------------------------------

HOSTILE = [
    "Berlin; rm -rf /",
    "--home=/etc",
    "Germany\n--home=/etc",
    "$(reboot)",
    "x" * 500,
]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("field", ["country", "city"])
def test_hostile_places_are_refused_and_start_nothing(where: Paths, field: str, value: str) -> None:
    with pytest.raises(JobError) as refused:
        jobs.start_crawl(where, "ann", **{field: value})
    assert "\n" not in str(refused.value)
    assert jobs.list_jobs(where) == []


@pytest.mark.parametrize("kind", ["report; ls", "--help", "photo_gallery\n--home=/"])
def test_unknown_kinds_are_refused(where: Paths, kind: str) -> None:
    with pytest.raises(JobError, match="kind"):
        jobs.start_check(where, "ann", kind=kind)
    assert jobs.list_jobs(where) == []


def test_a_selection_becomes_single_option_elements_spelt_as_the_catalog_does(
    where: Paths,
) -> None:
    # A code and a local spelling are resolved by the catalog, then passed as --opt=VALUE.
    assert jobs.selection_args(where, " de ", "münchen", "report") == [
        "--country=Germany",
        "--city=Munich",
        "--kind=report",
    ]
    assert jobs.selection_args(where, "", None, "") == []
    # What the gazetteer resolves is replaced by the catalog's name: the text typed never
    # reaches the command.
    assert jobs.selection_args(where, "Germany`id`") == ["--country=Germany"]
    with pytest.raises(JobError, match="unknown city 'Paris' in Germany"):
        jobs.selection_args(where, "Germany", "Paris")


@pytest.mark.parametrize(
    "source",
    [
        "/etc/passwd",
        "../../../../etc/hosts.csv",
        "file:///etc/passwd",
        "ftp://127.0.0.1/seeds.csv",
        "--home=/etc",
        "http://127.0.0.1/\n--home=/etc",
        "catalog.sqlite",
        "",
    ],
)
def test_seed_sources_outside_the_rules_are_refused(where: Paths, source: str) -> None:
    with pytest.raises(JobError):
        jobs.start_seed_import(where, "ann", source)
    assert jobs.list_jobs(where) == []


def test_a_seed_file_must_lie_inside_the_home(where: Paths, tmp_path: Path) -> None:
    inside = where.home / "seeds.csv"
    inside.write_text("country,city,kind,label,url\n", encoding="utf-8")
    assert jobs.seed_source(where, "seeds.csv") == str(inside.resolve())
    assert jobs.seed_source(where, str(inside)) == str(inside.resolve())
    outside = tmp_path / "outside.csv"
    outside.write_text("country,city,kind,label,url\n", encoding="utf-8")
    (where.home / "link.csv").symlink_to(outside)
    with pytest.raises(JobError, match="inside the data home"):
        jobs.seed_source(where, "link.csv")
    with pytest.raises(JobError, match="inside the data home"):
        jobs.seed_source(where, str(outside))


@pytest.mark.parametrize(
    ("cron", "ok"),
    [
        ("0 3 * * 1", True),
        ("*/15  2-4 1,15 JAN MON", True),
        ("0 3 * *", False),
        ("0 3 * * 1 5", False),
        ("0 3 * * 1; rm -rf /", False),
        ("0 3\n* * 1", False),
        ("--home=/etc * * * *", False),
    ],
)
def test_cron_expressions(cron: str, ok: bool) -> None:
    if ok:
        assert len(jobs.cron_expression(cron).split(" ")) == 5
    else:
        with pytest.raises(JobError, match="cron"):
            jobs.cron_expression(cron)


@pytest.mark.parametrize("name", ["--home=/etc", "-x", "a;b", "weekly\ncheck", "x" * 101, ""])
def test_schedule_names_are_refused_unless_plain(name: str) -> None:
    with pytest.raises(JobError):
        jobs.schedule_name(name)


def test_schedule_names_as_the_cli_makes_them_are_accepted() -> None:
    assert jobs.schedule_name(" check-United Kingdom-London ") == "check-United Kingdom-London"


def test_schedules_without_a_prefect_server_say_so_in_one_line(
    where: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with pytest.raises(JobError, match=r"^schedules need a Prefect server \(PREFECT_API_URL\)$"):
        jobs.start_schedule_add(where, "ann", "0 3 * * 1", "check", country="Germany")
    with pytest.raises(JobError, match="PREFECT_API_URL"):
        jobs.start_schedule_remove(where, "ann", "weekly")
    with pytest.raises(JobError, match="PREFECT_API_URL"):
        jobs.list_schedules(where)
    assert jobs.list_jobs(where) == []


def test_unknown_or_malformed_job_ids_are_not_found(where: Paths) -> None:
    assert jobs.get_job(where, "../catalog") is None
    assert jobs.get_job(where, "20200101-000000000000-abcd") is None


# --- real jobs --------------------------------------------------------------------------


def test_a_seed_import_job_runs_to_success_with_its_log(where: Paths, world: Any) -> None:
    # A CSV inside the home, listing one new link (on the replica world: nothing leaves).
    url = world.url("news", "/fr/paris-solidarite?from=job")
    (where.home / "extra.csv").write_text(
        f"country,city,kind,label,url\nFrance,Lyon,report,from a job,{url}\n", encoding="utf-8"
    )
    before = link_count(where)
    (where.jobs / "run00001-batch0001.json").write_text("{}")  # the crawl flow's, not a job
    started = jobs.start_seed_import(where, "ann", "extra.csv")
    assert started.argv == ["seeds", "import", "--", str((where.home / "extra.csv").resolve())]
    done = wait_until_done(where, started.id)
    assert done.state == "succeeded", done.log_tail
    assert done.exit_code == 0
    assert done.user == "ann" and done.kind == "seeds" and done.finished_at
    assert "Imported 1 entries" in done.log_tail
    assert link_count(where) == before + 1
    (listed,) = jobs.list_jobs(where, tail_lines=5)
    assert listed.id == started.id and listed.state == "succeeded"
    assert "Imported 1 entries" in listed.log_tail


def test_a_failing_job_ends_failed_with_the_one_line_error(where: Paths, world: Any) -> None:
    missing = world.url("index", "/no/such/page")
    done = wait_until_done(where, jobs.start_seed_import(where, "ann", missing).id)
    assert done.state == "failed" and done.exit_code == 1
    assert done.log_tail.splitlines() == [
        f"linkarchive: error: cannot fetch {missing}: HTTP 404 Not Found"
    ]


def test_a_job_outlives_the_process_that_started_it(where: Paths, world: Any) -> None:
    """The web server may restart: the job carries on and its outcome is still recorded."""
    starter = (
        "import sys; from pipeline import jobs; from pipeline.config import paths; "
        "print(jobs.start_seed_import(paths(sys.argv[1]), 'ann', sys.argv[2]).id)"
    )
    started = subprocess.run(
        [sys.executable, "-c", starter, str(where.home), world.index_url],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    done = wait_until_done(where, started.stdout.strip())
    assert done.state == "succeeded", done.log_tail
    assert "Imported 22 entries" in done.log_tail


def test_a_job_is_done_when_its_command_is_though_its_process_lingers(
    where: Paths, world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command's interpreter may take seconds to wind down after its last line (Prefect
    stops its temporary server): the job list must not say running meanwhile."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(
        "import atexit, time\natexit.register(time.sleep, 60)\n"
    )
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(hooks), os.environ.get("PYTHONPATH", "")])
    )
    job = jobs.start_seed_import(where, "ann", world.index_url)
    try:
        done = wait_until_done(where, job.id)
        assert done.state == "succeeded" and done.exit_code == 0, done.log_tail
        assert "Imported 22 entries" in done.log_tail
        assert process_alive(job.pid)  # the supervisor still waits for the lingering process
    finally:
        os.killpg(job.pid, signal.SIGKILL)


def test_a_job_killed_without_an_exit_status_is_lost(where: Paths, world: Any) -> None:
    job = jobs.start_crawl(where, "ann", country="Austria")
    os.killpg(job.pid, signal.SIGKILL)  # the supervisor and its command, as a crash would
    done = wait_until_done(where, job.id)
    assert done.state == "lost" and done.exit_code is None


def test_only_one_crawl_or_check_runs_at_a_time(where: Paths, world: Any) -> None:
    crawl = jobs.start_crawl(where, "ann", country="Austria")
    try:
        with pytest.raises(JobError, match=rf"a crawl is already running \(job {crawl.id}"):
            jobs.start_check(where, "bob")
        with pytest.raises(JobError, match="already running"):
            jobs.start_crawl(where, "bob", country="France")
        # Seed imports are light: they may run beside a crawl.
        seeds = jobs.start_seed_import(where, "bob", world.index_url)
        assert [job.id for job in jobs.list_jobs(where)] == [seeds.id, crawl.id]
        assert [job.id for job in jobs.list_jobs(where, limit=1)] == [seeds.id]
        assert wait_until_done(where, seeds.id).state == "succeeded"
    finally:
        jobs.cancel_job(where, crawl.id, "carol")
    cancelled = wait_until_done(where, crawl.id)
    assert cancelled.state == "cancelled" and cancelled.cancelled_by == "carol"
    with pytest.raises(JobError, match="not running"):
        jobs.cancel_job(where, crawl.id, "carol")
    # The slot is free again.
    check = jobs.start_check(where, "bob", country="Austria")
    jobs.cancel_job(where, check.id, "carol")
    assert wait_until_done(where, check.id).state == "cancelled"


def test_a_crawl_job_logs_its_progress_per_page(where: Paths, world: Any) -> None:
    job = jobs.start_crawl(where, "ann", country="Austria")
    done = wait_until_done(where, job.id)
    assert done.state == "succeeded", done.log_tail
    # The job page shows the log's tail: pages done of the total, rate, bytes, failures.
    progress = [line for line in done.log_tail.splitlines() if line.startswith("progress:")]
    assert progress, done.log_tail
    assert re.search(
        r"progress: \d+/\d+ pages, [\d.]+/s, \d+ requests, [\d.]+ MB, \d+ failed", progress[-1]
    )
    assert "Crawl run" in done.log_tail


def test_other_jobs_are_capped_too(
    where: Paths, world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty seed imports at once took 1 GB: past LINKARCHIVE_MAX_JOBS running, the next
    is refused in one line until one ends."""
    monkeypatch.setattr(jobs, "MAX_OTHER_JOBS", 2)
    started = [jobs.start_seed_import(where, "ann", world.index_url) for _ in range(2)]
    try:
        with pytest.raises(JobBusy, match=r"2 jobs are already running \(at most 2\)"):
            jobs.start_seed_import(where, "bob", world.index_url)
    finally:
        for job in started:
            wait_until_done(where, job.id)
    later = jobs.start_seed_import(where, "bob", world.index_url)  # a slot is free again
    assert wait_until_done(where, later.id).state == "succeeded"
