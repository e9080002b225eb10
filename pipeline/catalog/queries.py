"""Read-side queries of the catalog: link selection, status, a link's captures.

Search is ``pipeline.catalog.fulltext``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from pipeline.catalog.models import (
    LINK_STATUSES,
    Capture,
    City,
    Country,
    Link,
    LinkCheck,
    LinkSource,
    Source,
)
from pipeline.gazetteer import default_gazetteer
from pipeline.seeds import LINK_KINDS, BadLink, web_url


class QueryError(ValueError):
    """A selection the catalog cannot answer (unknown country, city, kind, status...)."""


@dataclass(frozen=True)
class Selection:
    """Which links a crawl or a search is about; every field optional."""

    country: str | None = None
    city: str | None = None
    kind: str | None = None
    source: str | None = None
    status: str | None = None
    link_ids: tuple[int, ...] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in self.__dict__.items()
            if v is not None
        }


def _fold(value: str) -> str:
    return value.strip().casefold()


def find_country(session: Session, text: str) -> Country:
    """The catalog's country for a name, original spelling, ISO code or gazetteer alias."""
    wanted = _fold(text)
    countries = list(session.scalars(select(Country)))
    for country in countries:
        if wanted in (_fold(country.name), _fold(country.original_name), _fold(country.code)):
            return country
    resolved = default_gazetteer().country(text)
    for country in countries:
        if resolved and country.code == resolved[1]:
            return country
    raise QueryError(f"unknown country {text!r}: not in the catalog (see `linkarchive seeds list`)")


def find_cities(session: Session, text: str, country: Country | None = None) -> list[City]:
    """Catalog cities matching a name or original spelling (or a gazetteer alias)."""
    query = select(City)
    if country is not None:
        query = query.where(City.country_id == country.id)
    cities = list(session.scalars(query))
    wanted = _fold(text)
    found = [c for c in cities if wanted in (_fold(c.name), _fold(c.original_name))]
    if not found:
        place = default_gazetteer().city(text, country.code if country else None)
        if place is not None:
            found = [c for c in cities if _fold(c.name) == _fold(place.city or "")]
    if not found:
        where = f" in {country.name}" if country else ""
        raise QueryError(f"unknown city {text!r}{where}: not in the catalog")
    return found


def known_links(session: Session, link_ids: Iterable[int]) -> list[int]:
    """``link_ids``, once each, checked to be the catalog's (QueryError naming one if not)."""
    wanted = sorted(set(link_ids))
    known = set(session.scalars(select(Link.id).where(Link.id.in_(wanted))))
    if missing := [i for i in wanted if i not in known]:
        raise QueryError(f"no link with id {missing[0]}")
    return wanted


def check_kind(kind: str) -> str:
    """``kind`` if it is a link kind (QueryError listing them if not)."""
    if kind not in LINK_KINDS:
        raise QueryError(f"unknown kind {kind!r}: use one of {', '.join(LINK_KINDS)}")
    return kind


def check_status(status: str) -> str:
    """``status`` if it is a link status (QueryError listing them if not)."""
    if status not in LINK_STATUSES:
        raise QueryError(f"unknown status {status!r}: use one of {', '.join(LINK_STATUSES)}")
    return status


def _filtered(session: Session, query: Select, selection: Selection) -> Select:
    country = find_country(session, selection.country) if selection.country else None
    if country is not None:
        query = query.where(Link.country_id == country.id)
    if selection.city:
        cities = find_cities(session, selection.city, country)
        query = query.where(Link.city_id.in_([c.id for c in cities]))
    if selection.link_ids is not None:
        query = query.where(Link.id.in_(known_links(session, selection.link_ids)))
    if selection.kind:
        query = query.where(Link.kind == check_kind(selection.kind))
    if selection.status:
        query = query.where(Link.status == check_status(selection.status))
    if selection.source:
        source = session.scalar(select(Source).where(Source.location == selection.source))
        if source is None:
            raise QueryError(f"unknown source {selection.source!r}: never imported")
        query = query.where(
            Link.id.in_(select(LinkSource.link_id).where(LinkSource.source_id == source.id))
        )
    return query


def select_links(session: Session, selection: Selection) -> list[Link]:
    """Links matching the selection, in catalog order."""
    query = _filtered(session, select(Link).order_by(Link.id), selection)
    return list(session.scalars(query))


def link_context(link: Link) -> dict[str, Any]:
    """What a crawl job needs to know about a link (also written into the WARC)."""
    return {
        "link_id": link.id,
        "url": link.url,
        "kind": link.kind,
        "label": link.label,
        "country": link.country.name,
        "city": link.city.name if link.city else None,
        "sources": [s.source.location for s in link.sources],
    }


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds") + "Z"


def status_summary(session: Session) -> list[dict[str, Any]]:
    """Per country and city: links, how many are archived, a count per link status, and the
    last check and capture.

    ``archived`` counts links whose page is preserved and live (alive, redirected, changed).
    Cities without links (listed on the page with no link) appear with zero links.
    """
    rows: dict[tuple[str, str | None], dict[str, Any]] = {}

    def row(country: str, city: str | None) -> dict[str, Any]:
        blank = dict.fromkeys(("links", "archived", *LINK_STATUSES), 0)
        return rows.setdefault(
            (country, city),
            {"country": country, "city": city, **blank, "last_check": None, "last_capture": None},
        )

    for country, city in session.execute(
        select(Country.name, City.name).outerjoin(City, City.country_id == Country.id)
    ):
        if city is not None:
            row(country, city)
    last_check = (
        select(func.max(LinkCheck.checked_at)).where(LinkCheck.link_id == Link.id)
    ).scalar_subquery()
    links = (
        select(Country.name, City.name, Link.status, Capture.captured_at, last_check)
        .join(Country, Link.country_id == Country.id)
        .outerjoin(City, Link.city_id == City.id)
        .outerjoin(Capture, Capture.id == Link.last_capture_id)
    )
    for country, city, status, captured_at, checked_at in session.execute(links):
        entry = row(country, city)
        entry["links"] += 1
        entry[status] += 1
        entry["archived"] += status in ("alive", "redirected", "changed")
        for key, moment in (("last_capture", captured_at), ("last_check", checked_at)):
            if moment and (entry[key] is None or _iso(moment) > entry[key]):
                entry[key] = _iso(moment)
    return sorted(rows.values(), key=lambda r: (r["country"], r["city"] or ""))


def link_captures(session: Session, link_id: int) -> tuple[Link, list[Capture]]:
    """A link and every capture that belongs to it, oldest first."""
    link = session.get(Link, link_id)
    if link is None:
        raise QueryError(f"no link with id {link_id}")
    captures = list(
        session.scalars(
            select(Capture).where(Capture.link_id == link_id).order_by(Capture.captured_at)
        )
    )
    return link, captures


def get_capture(session: Session, capture_id: int) -> Capture:
    """One capture by id."""
    capture = session.get(Capture, capture_id)
    if capture is None:
        raise QueryError(f"no capture with id {capture_id}")
    return capture


def payload_capture(session: Session, capture: Capture) -> Capture:
    """The capture whose record holds this capture's payload: itself, or a revisit's original."""
    if capture.record_type != "revisit":
        return capture
    original = session.scalar(select(Capture).where(Capture.record_id == capture.refers_to))
    if original is None:
        raise QueryError(
            f"capture {capture.id} revisits record {capture.refers_to}, which is not indexed"
        )
    return original


def full_captures(session: Session, link_id: int) -> list[Capture]:
    """A link's full page captures (crawls', not the page-only fetches of checks), oldest
    first."""
    checked = select(LinkCheck.capture_id).where(
        LinkCheck.link_id == link_id, LinkCheck.capture_id.is_not(None)
    )
    return list(
        session.scalars(
            select(Capture)
            .where(Capture.link_id == link_id, Capture.role == "page", Capture.id.not_in(checked))
            .order_by(Capture.captured_at, Capture.id)
        )
    )


def _closest(captures: list[Capture], at: datetime) -> Capture:
    moment = at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo else at
    return min(captures, key=lambda c: (abs((c.captured_at - moment).total_seconds()), -c.id))


def resolve_capture(
    session: Session,
    target: str | None = None,
    capture_id: int | None = None,
    at: datetime | None = None,
) -> Capture:
    """The capture people mean by a link id, a URL or ``--capture ID``.

    A link (by id, or by its URL) means its last full capture, or with ``at`` the full
    capture closest to that time: never a check's page-only fetch, which only
    ``--capture`` names. A URL no link has means the latest capture of that URL (or the
    closest to ``at``), such as one imported from another tool's WARC file.
    """
    if capture_id is not None:
        if target:
            raise QueryError("name a link (id or URL) or a capture (--capture ID), not both")
        return get_capture(session, capture_id)
    if not target:
        raise QueryError("name a link (id or URL) or a capture (--capture ID)")
    number = target.isascii() and target.isdigit()
    if number:
        link = session.get(Link, int(target)) if int(target) < 2**63 else None
        if link is None:
            raise QueryError(f"no link with id {target} (a capture id? use --capture {target})")
    else:
        try:
            url = web_url(target)
        except BadLink as exc:
            raise QueryError(f"{target!r} is neither a link id nor a URL: {exc}") from None
        link = session.scalar(select(Link).where(Link.url.in_({target, url})).limit(1))
        if link is None:
            found = list(session.scalars(select(Capture).where(Capture.url.in_({target, url}))))
            if not found:
                raise QueryError(f"no link or capture for {target!r}")
            if at is not None:
                return _closest(found, at)
            return max(found, key=lambda c: (c.captured_at, c.id))
    if at is None and link.last_capture_id is not None:
        return get_capture(session, link.last_capture_id)
    pages = full_captures(session, link.id)
    if not pages:
        raise QueryError(f"link {link.id} has no full capture yet: crawl it first")
    return _closest(pages, at) if at is not None else pages[-1]
