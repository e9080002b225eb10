"""A self-contained HTML report of the watch: status per place, health over time, and the
surviving copy of every dead or changed link. No network is needed to view it."""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.catalog.models import Capture, Country, Link, LinkCheck
from pipeline.catalog.queries import status_summary

HEALTHY = ("alive", "changed", "redirected")
COLOURS = {"healthy": "#2e7d32", "failing": "#ef6c00", "gone": "#c62828"}
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px}
th{background:#f3f3f3}td.n{text-align:right}h2{margin-top:2em}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px}
code{background:#f3f3f3;padding:1px 4px}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _bucket(status: str) -> str:
    if status in HEALTHY:
        return "healthy"
    return "gone" if status in ("dead", "soft404") else "failing"


def health_over_time(session: Session) -> dict[str, list[tuple[str, Counter[str]]]]:
    """Per country: for each day with checks, how many links were healthy, failing, gone."""
    rows = session.execute(
        select(Country.name, LinkCheck.checked_at, LinkCheck.link_id, LinkCheck.status)
        .join(Link, Link.id == LinkCheck.link_id)
        .join(Country, Country.id == Link.country_id)
        .order_by(LinkCheck.checked_at)
    )
    latest: dict[tuple[str, str], dict[int, str]] = defaultdict(dict)
    for country, checked_at, link_id, status in rows:
        latest[(country, checked_at.date().isoformat())][link_id] = status
    series: dict[str, list[tuple[str, Counter[str]]]] = defaultdict(list)
    for (country, day), statuses in sorted(latest.items()):
        series[country].append((day, Counter(_bucket(s) for s in statuses.values())))
    return dict(series)


def bar_chart(
    points: list[tuple[str, Counter[str]]],
    colours: dict[str, str] = COLOURS,
    label: Callable[[str], str] = lambda day: day[5:],
    aria: str = "link health over time",
) -> str:
    """Stacked bars as inline SVG: one bar per point (a day, a country), one colour per
    bucket of ``colours``; ``label`` shortens the point's name under its bar."""
    width, height, bar = 40 * max(len(points), 1) + 40, 140, 24
    top = max((sum(c.values()) for _, c in points), default=1) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 30}" '
             f'role="img" aria-label="{_e(aria)}">']  # fmt: skip
    for index, (day, counts) in enumerate(points):
        x, y = 30 + index * 40, height
        for bucket, colour in colours.items():
            h = round(counts[bucket] / top * (height - 10))
            if h:
                y -= h
                parts.append(
                    f'<rect x="{x}" y="{y}" width="{bar}" height="{h}" fill="{colour}">'
                    f"<title>{_e(day)}: {counts[bucket]} {_e(bucket)}</title></rect>"
                )
        parts.append(f'<text x="{x}" y="{height + 14}" font-size="9">{_e(label(day))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_report(session: Session) -> str:
    """The report as one HTML document."""
    summary = status_summary(session)
    columns = ["links", "archived", "alive", "changed", "redirected", "failing", "soft404",
               "dead", "blocked", "error", "pending"]  # fmt: skip
    out = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">",
        f"<title>linkarchive report</title><style>{STYLE}</style></head><body>",
        "<h1>Link health</h1>",
        f"<p>Generated {_e(datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC'))}.</p>",
        "<table><tr><th>Country</th><th>City</th>",
        *(f"<th>{_e(c)}</th>" for c in columns),
        "<th>Last check</th><th>Last capture</th></tr>",
    ]
    for row in summary:
        out.append(f"<tr><td>{_e(row['country'])}</td><td>{_e(row['city'] or '—')}</td>")
        out += [f"<td class='n'>{row[c]}</td>" for c in columns]
        out.append(f"<td>{_e(row['last_check'] or '—')}</td>")
        out.append(f"<td>{_e(row['last_capture'] or '—')}</td></tr>")
    out.append("</table><h2>Health over time</h2><p class='legend'>")
    out += [f"<span style='background:{c}'></span>{_e(b)}" for b, c in COLOURS.items()]
    out.append("</p>")
    for country, points in health_over_time(session).items():
        out.append(f"<h3>{_e(country)}</h3>{bar_chart(points)}")
    out.append("<h2>Dead and changed links, and their surviving copies</h2>")
    out.append("<table><tr><th>Link</th><th>Place</th><th>Status</th><th>URL</th>"
               "<th>Last good capture</th><th>Get it</th></tr>")  # fmt: skip
    for link, good in _lost_or_changed(session):
        place = ", ".join(filter(None, [link.country.name, link.city.name if link.city else None]))
        copy = f"{good.id} ({good.captured_at:%Y-%m-%d %H:%M} UTC)" if good else "none"
        how = (
            f"<code>linkarchive evidence export --capture {good.id} --reason … -o x.wacz</code>"
            if good
            else ""
        )
        out.append(
            f"<tr><td>{link.id}</td><td>{_e(place)}</td><td>{_e(link.status)}</td>"
            f"<td>{_e(link.url)}</td><td>{_e(copy)}</td><td>{how}</td></tr>"
        )
    out.append("</table></body></html>")
    return "".join(out)


def _lost_or_changed(session: Session) -> list[tuple[Link, Any]]:
    links = session.scalars(
        select(Link).where(Link.status.in_(("dead", "soft404", "changed"))).order_by(Link.id)
    )
    found = []
    for link in links:
        good = session.scalar(
            select(Capture)
            .where(
                Capture.link_id == link.id,
                Capture.role == "page",
                Capture.http_status.between(200, 299),
            )
            .order_by(Capture.captured_at.desc())
            .limit(1)
        )
        found.append((link, good))
    return found
