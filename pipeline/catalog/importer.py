"""Store parsed seed entries in the catalog, idempotently."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.catalog.fulltext import refresh_documents
from pipeline.catalog.models import City, Country, Link, LinkSource, Source
from pipeline.seeds import SeedEntry


@dataclass
class ImportResult:
    """What an import added; all zeros when the same source is imported twice."""

    source: str
    entries: int
    countries_added: int = 0
    cities_added: int = 0
    links_added: int = 0
    links_total: int = 0
    link_ids: dict[str, int] = field(default_factory=dict)  # link_key -> catalog id


def utcnow() -> datetime:
    """Naive UTC now: the catalog stores UTC throughout."""
    return datetime.now(UTC).replace(tzinfo=None)


def link_key(country: str, city: str | None, url: str) -> str:
    """How an import names a link: its place and URL."""
    return f"{country}|{city or ''}|{url}"


def import_entries(
    session: Session,
    location: str,
    entries: list[SeedEntry],
    raw: bytes | None = None,
    link_ids: Mapping[str, int] | None = None,
    sha256: str | None = None,
) -> ImportResult:
    """Merge ``entries`` from ``location`` into the catalog; re-importing changes nothing.

    New links take their id from ``link_ids`` (by :func:`link_key`) when given, so a
    catalog rebuilt from the WARC files keeps the ids users know.
    """
    result = ImportResult(source=location, entries=len(entries))
    source = session.scalar(select(Source).where(Source.location == location))
    digest = hashlib.sha256(raw).hexdigest() if raw is not None else sha256
    if source is None:
        source = Source(location=location, imported_at=utcnow(), sha256=digest)
        session.add(source)
        session.flush()
    elif digest and source.sha256 != digest:
        source.sha256, source.imported_at = digest, utcnow()

    for entry in entries:
        country = session.scalar(select(Country).where(Country.name == entry.country))
        if country is None:
            country = Country(
                name=entry.country, code=entry.country_code, original_name=entry.country_original
            )
            session.add(country)
            session.flush()
            result.countries_added += 1
        city = None
        if entry.city:
            city = session.scalar(
                select(City).where(City.country_id == country.id, City.name == entry.city)
            )
            if city is None:
                city = City(
                    country_id=country.id,
                    name=entry.city,
                    original_name=entry.city_original or entry.city,
                )
                session.add(city)
                session.flush()
                result.cities_added += 1
        for seed_link in entry.links:
            city_clause = Link.city_id.is_(None) if city is None else Link.city_id == city.id
            link = session.scalar(
                select(Link).where(
                    Link.url == seed_link.url, Link.country_id == country.id, city_clause
                )
            )
            if link is None:
                link = Link(
                    id=(link_ids or {}).get(link_key(entry.country, entry.city, seed_link.url)),
                    country_id=country.id,
                    city_id=city.id if city else None,
                    kind=seed_link.kind,
                    label=seed_link.label,
                    url=seed_link.url,
                    status="pending",
                )
                session.add(link)
                session.flush()
                result.links_added += 1
            result.link_ids[link_key(entry.country, entry.city, seed_link.url)] = link.id
            if session.get(LinkSource, (link.id, source.id)) is None:
                session.add(LinkSource(link_id=link.id, source_id=source.id, label=seed_link.label))
            result.links_total += 1
    refresh_documents(session, result.link_ids.values())
    return result
