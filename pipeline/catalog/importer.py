"""Store parsed seed entries in the catalog, idempotently."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from pipeline.catalog.fulltext import refresh_documents
from pipeline.catalog.models import City, Country, Link, LinkSource, Source
from pipeline.seeds import SeedEntry, SeedLink

_BATCH = 5000  # rows per INSERT statement


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

    listed = set(
        session.scalars(select(LinkSource.link_id).where(LinkSource.source_id == source.id))
    )
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
        city_id = city.id if city else None
        ids = link_ids or {}
        _import_links(session, entry, country.id, city_id, source.id, listed, ids, result)
    refresh_documents(session, result.link_ids.values())
    return result


def _import_links(
    session: Session,
    entry: SeedEntry,
    country_id: int,
    city_id: int | None,
    source_id: int,
    listed: set[int],
    link_ids: Mapping[str, int],
    result: ImportResult,
) -> None:
    """Add an entry's new links and their listing by the source, in a few statements
    whatever their number (a large CSV holds hundreds of thousands)."""
    city_clause = Link.city_id.is_(None) if city_id is None else Link.city_id == city_id
    known: dict[str, int] = {}
    for link_id, url in session.execute(
        select(Link.id, Link.url)
        .where(Link.country_id == country_id, city_clause)
        .order_by(Link.id.desc())  # the first of equal URLs wins, as a lookup would
    ):
        known[url] = link_id
    new: dict[str, SeedLink] = {}  # each new URL once, with its first label
    for link in entry.links:
        if link.url not in known:
            new.setdefault(link.url, link)
    rows = [
        {
            "id": link_ids.get(link_key(entry.country, entry.city, link.url)),
            "country_id": country_id,
            "city_id": city_id,
            "kind": link.kind,
            "label": link.label,
            "url": link.url,
            "status": "pending",
        }
        for link in new.values()
    ]
    given = [row for row in rows if row["id"] is not None]  # a rebuild keeps known ids
    fresh = [{k: v for k, v in row.items() if k != "id"} for row in rows if row["id"] is None]
    for group in (given, fresh):
        for start in range(0, len(group), _BATCH):
            inserted = session.execute(
                insert(Link).returning(Link.id, Link.url), group[start : start + _BATCH]
            )
            known.update((url, link_id) for link_id, url in inserted)
    result.links_added += len(rows)
    sources = []
    for link in entry.links:
        link_id = known[link.url]
        result.link_ids[link_key(entry.country, entry.city, link.url)] = link_id
        if link_id not in listed:
            listed.add(link_id)
            sources.append({"link_id": link_id, "source_id": source_id, "label": link.label})
        result.links_total += 1
    for start in range(0, len(sources), _BATCH):
        session.execute(insert(LinkSource), sources[start : start + _BATCH])
