"""The archivist's work: seed imports, crawls, checks and schedules, as background jobs.

Every action starts a ``linkarchive`` command through :mod:`pipeline.jobs` (validated
arguments, never a shell) and answers at once; the jobs table shows how it went.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from pipeline import jobs
from pipeline.catalog import session_scope
from pipeline.catalog.models import City, Country, User
from pipeline.catalog.runs import active_units
from pipeline.config import Paths
from pipeline.jobs import Job, JobBusy, JobError
from pipeline.seeds import LINK_KINDS
from pipeline.web.auth import form_data, require, verify_csrf
from pipeline.web.templating import render

router = APIRouter()

Manager = Annotated[User, Depends(require("manage"))]
JobId = Annotated[str, Query(max_length=40)]
JOBS_SHOWN = 50
TAIL_LINES = 12


def _where(request: Request) -> Paths:
    return request.app.state.paths


def _places(where: Paths) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Country names, and each country's city names, for the selects."""
    with session_scope(where.database_url) as session:
        countries = list(session.scalars(select(Country).order_by(Country.name)))
        cities = list(session.scalars(select(City).order_by(City.name)))
        by_country = {c.id: c.name for c in countries}
        grouped: dict[str, list[str]] = {c.name: [] for c in countries}
        for city in cities:
            if city.name not in grouped[by_country[city.country_id]]:
                grouped[by_country[city.country_id]].append(city.name)
    return [c.name for c in countries], [(k, v) for k, v in grouped.items() if v]


def _page(request: Request, status_code: int = 200, **context: Any) -> Response:
    """The manage page (blocking: reads the catalog, the jobs and maybe the schedules)."""
    where = _where(request)
    countries, cities = _places(where)
    schedules: list[dict[str, Any]] = []
    schedules_note = ""
    try:
        schedules = jobs.list_schedules(where)
    except JobError as exc:
        schedules_note = str(exc)
    workers: list[dict[str, Any]] = []
    workers_note = ""
    try:
        workers = jobs.cluster_workers(where)
    except JobError as exc:
        workers_note = str(exc)
    with session_scope(where.database_url) as session:
        units = active_units(session)
    return render(
        request,
        "manage.html",
        status_code,
        jobs=jobs.list_jobs(where, tail_lines=TAIL_LINES, limit=JOBS_SHOWN),
        countries=countries,
        cities=cities,
        kinds=LINK_KINDS,
        schedules=schedules,
        schedules_note=schedules_note,
        workers=workers,
        workers_note=workers_note,
        pool=os.environ.get("LINKARCHIVE_WORK_POOL"),
        units=units,
        form=context.pop("form", {}),
        **context,
    )


def _flash(request: Request, started: str, cancelled: str) -> str:
    """A message about a job this page was redirected for (read from its record, so no
    text from the address is ever shown)."""
    job_id, verb = (started, "Started") if started else (cancelled, "Cancelled")
    job = jobs.get_job(_where(request), job_id, tail_lines=0) if job_id else None
    return f"{verb} job {job.id}: {job.command}" if job else ""


@router.get("/manage", include_in_schema=False)
def manage_page(
    request: Request, _u: Manager, started: JobId = "", cancelled: JobId = ""
) -> Response:
    """Forms for seeds, crawls, checks and schedules; the jobs and their logs."""
    return _page(request, flash=_flash(request, started, cancelled))


JOB_REFRESH_SECONDS = 3  # how often a running job's page reloads itself


@router.get("/manage/jobs/{job_id}", include_in_schema=False)
def job_page(request: Request, job_id: str, _u: Manager) -> Response:
    """One job with the end of its log."""
    job = jobs.get_job(_where(request), job_id, tail_lines=200)
    if job is None:
        raise HTTPException(404, "There is no such job.")
    return render(request, "job.html", job=job, refresh_seconds=JOB_REFRESH_SECONDS)


def _blank(value: str | None) -> str | None:
    return value.strip() or None if value else None


async def _start(request: Request, user: User, start: Any, *args: Any) -> Response:
    """Start a job from a form: 303 back to /manage, or the page with the error."""
    fields = await form_data(request)
    values = [_blank(fields.get(name)) for name in args]
    try:
        job = await run_in_threadpool(start, _where(request), user.name, *values)
    except JobError as exc:
        status = 409 if isinstance(exc, JobBusy) else 400
        form = {k: v for k, v in fields.items() if k != "csrf_token"}
        return await run_in_threadpool(_page, request, status, error=str(exc), form=form)
    return RedirectResponse(f"/manage?started={job.id}", 303)


@router.post("/manage/seeds", dependencies=[Depends(verify_csrf)], include_in_schema=False)
async def seeds_form(request: Request, user: Manager) -> Response:
    """Import a seed source (an http(s) URL or a file in the data home)."""
    return await _start(request, user, jobs.start_seed_import, "source")


@router.post("/manage/crawls", dependencies=[Depends(verify_csrf)], include_in_schema=False)
async def crawl_form(request: Request, user: Manager) -> Response:
    """Crawl a selection of links."""
    return await _start(request, user, jobs.start_crawl, "country", "city", "kind", "browser")


@router.post("/manage/checks", dependencies=[Depends(verify_csrf)], include_in_schema=False)
async def check_form(request: Request, user: Manager) -> Response:
    """Check a selection of links."""
    return await _start(request, user, jobs.start_check, "country", "city", "kind")


@router.post("/manage/schedules", dependencies=[Depends(verify_csrf)], include_in_schema=False)
async def schedule_form(request: Request, user: Manager) -> Response:
    """Add (or replace) a scheduled crawl or check."""
    fields = ("cron", "what", "country", "city", "kind", "name")
    return await _start(request, user, jobs.start_schedule_add, *fields)


@router.post(
    "/manage/schedules/{name}/delete", dependencies=[Depends(verify_csrf)], include_in_schema=False
)
async def schedule_delete(request: Request, name: str, user: Manager) -> Response:
    """Remove a schedule."""
    try:
        job = await run_in_threadpool(jobs.start_schedule_remove, _where(request), user.name, name)
    except JobError as exc:
        return await run_in_threadpool(_page, request, 400, error=str(exc))
    return RedirectResponse(f"/manage?started={job.id}", 303)


@router.post(
    "/manage/jobs/{job_id}/cancel", dependencies=[Depends(verify_csrf)], include_in_schema=False
)
def job_cancel(request: Request, job_id: str, user: Manager) -> Response:
    """Stop a running job (its whole process group)."""
    try:
        job = jobs.cancel_job(_where(request), job_id, user.name)
    except JobError as exc:
        return _page(request, 400, error=str(exc))
    return RedirectResponse(f"/manage?cancelled={job.id}", 303)


# --- JSON API ---------------------------------------------------------------------------


class SelectionBody(BaseModel):
    """Which links: every one when nothing is given."""

    model_config = ConfigDict(extra="forbid")
    country: str | None = Field(None, max_length=200)
    city: str | None = Field(None, max_length=200)
    kind: str | None = Field(None, max_length=40)


class CrawlBody(SelectionBody):
    """Which links, and which pages a browser renders (None: the server's default)."""

    browser: Literal["auto", "always", "never"] | None = None


class SeedsBody(BaseModel):
    """A seed source: an http(s) URL, or a .html/.csv file inside the data home."""

    model_config = ConfigDict(extra="forbid")
    source: str = Field(max_length=2000)


def _job_json(job: Job, status_code: int = 200, detail: bool = True) -> JSONResponse:
    data = job.as_dict()
    if not detail:
        data.pop("log_tail")
    headers = {"Location": f"/api/v1/jobs/{job.id}"} if status_code == 202 else None
    return JSONResponse(data, status_code, headers=headers)


def _api_start(request: Request, user: User, start: Any, *values: Any) -> JSONResponse:
    try:
        job = start(_where(request), user.name, *values)
    except JobError as exc:
        return JSONResponse({"detail": str(exc)}, 409 if isinstance(exc, JobBusy) else 400)
    return _job_json(job, 202, detail=False)


@router.post("/api/v1/crawls", dependencies=[Depends(verify_csrf)], status_code=202, tags=["jobs"])
def api_crawl(request: Request, body: CrawlBody, user: Manager) -> JSONResponse:
    """Start a crawl of the selected links (409 while a crawl or check runs)."""
    return _api_start(
        request, user, jobs.start_crawl, body.country, body.city, body.kind, body.browser
    )


@router.post("/api/v1/checks", dependencies=[Depends(verify_csrf)], status_code=202, tags=["jobs"])
def api_check(request: Request, body: SelectionBody, user: Manager) -> JSONResponse:
    """Start a check of the selected links (409 while a crawl or check runs)."""
    return _api_start(request, user, jobs.start_check, body.country, body.city, body.kind)


@router.post("/api/v1/seeds", dependencies=[Depends(verify_csrf)], status_code=202, tags=["jobs"])
def api_seeds(request: Request, body: SeedsBody, user: Manager) -> JSONResponse:
    """Start a seed import."""
    return _api_start(request, user, jobs.start_seed_import, body.source)


@router.get("/api/v1/jobs", tags=["jobs"])
def api_jobs(request: Request, _u: Manager) -> JSONResponse:
    """Every job, newest first: who started it, when, the command, its state."""
    listed = [job.as_dict() for job in jobs.list_jobs(_where(request))]
    for job in listed:
        job.pop("log_tail")
    return JSONResponse({"jobs": listed})


@router.get("/api/v1/jobs/{job_id}", tags=["jobs"])
def api_job(request: Request, job_id: str, _u: Manager) -> JSONResponse:
    """One job, with the last lines of its log."""
    job = jobs.get_job(_where(request), job_id)
    if job is None:
        raise HTTPException(404, "There is no such job.")
    return _job_json(job)
