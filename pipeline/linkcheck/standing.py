"""A link's standing: what the catalog says about it, from every answer its URL gave.

Every crawl and every check classifies what the link's URL answered with the same
function (:func:`pipeline.linkcheck.classify.classify`); :func:`observe` folds each
answer, in time order, into the link's standing:

- ``dead`` and ``soft404`` answers are *failures*. The first makes the link ``failing``
  at once, counted (``failing (1 of 3)``); it becomes ``dead`` (or ``soft404``) only
  once ``LINKARCHIVE_DEAD_AFTER_CHECKS`` failures in a row (3) span at least
  ``LINKARCHIVE_DEAD_AFTER_DAYS`` (7): one bad night is not a death.
- Any other answer ends a run of failures and is the standing: ``alive``,
  ``redirected``, ``blocked``, ``error``, or ``changed`` (a check found the page differs
  from its last capture; a later crawl of it stays ``changed``, for the page still
  differs from what was first preserved).
- An answer older than the one the link shows is history only.

The indexer calls it for each crawl outcome and each archived check (so a rebuilt
catalog computes the same standings from the WARC files).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.catalog.models import Capture, Link, LinkCheck

# Failures: answers that count towards a death (see the module docstring).
DEAD_STATUSES = frozenset({"dead", "soft404"})


@dataclass
class DeathRule:
    """A link is dead after ``failures`` consecutive dead checks spanning ``min_span``."""

    failures: int = 3
    min_span: timedelta = timedelta(days=7)


def death_rule() -> DeathRule:
    """N failures in a row spanning at least some days: from the environment."""
    return DeathRule(
        failures=int(os.environ.get("LINKARCHIVE_DEAD_AFTER_CHECKS", "3")),
        min_span=timedelta(days=float(os.environ.get("LINKARCHIVE_DEAD_AFTER_DAYS", "7"))),
    )


def observe(link: Link, status: str, when: datetime, rule: DeathRule, *, check: bool) -> bool:
    """Fold one classified answer into ``link``'s standing; False while it is an
    unconfirmed failure (the link is ``failing``)."""
    if link.updated_at is not None and when < link.updated_at:
        return status not in DEAD_STATUSES
    link.updated_at = when
    if status not in DEAD_STATUSES:
        link.failures, link.failing_since = 0, None
        if check or not (status == "alive" and link.status == "changed"):
            link.status = status
        return True
    if not link.failures or link.failing_since is None:
        link.failures, link.failing_since = 0, when
    link.failures += 1
    confirmed = (
        rule.failures >= 1
        and link.failures >= rule.failures
        and when - link.failing_since >= rule.min_span
    )
    link.status = status if confirmed else "failing"
    return confirmed


def last_check(session: Session, link_id: int) -> LinkCheck | None:
    """The link's latest check, if it was ever checked."""
    return session.scalar(
        select(LinkCheck)
        .where(LinkCheck.link_id == link_id)
        .order_by(LinkCheck.checked_at.desc(), LinkCheck.id.desc())
        .limit(1)
    )


def check_label(check: LinkCheck | None) -> str | None:
    """A check's finding in a few words: ``dead (HTTP 404, unconfirmed)``, ``alive``."""
    if check is None:
        return None
    details = [f"HTTP {check.http_status}"] if check.http_status else []
    if not check.confirmed:
        details.append("unconfirmed")
    return check.status + (f" ({', '.join(details)})" if details else "")


def confirmed_dead(history: list[tuple[datetime, str]], rule: DeathRule) -> bool:
    """Whether these answers (in any order) leave a link confirmed dead or soft404."""
    link = Link(status="pending", failures=0)
    for when, status in sorted(history, key=lambda item: item[0]):
        observe(link, status, when, rule, check=True)
    return link.status in DEAD_STATUSES


def standing_label(status: str, failures: int | None, rule: DeathRule | None = None) -> str:
    """A standing as people read it: ``failing (1 of 3)`` for an unconfirmed failure."""
    if status != "failing":
        return status
    return f"failing ({failures or 1} of {(rule or death_rule()).failures})"


def apply_check(session: Session, record_id: str, context: dict[str, Any]) -> bool:
    """Index one archived judgement: its ``link_checks`` row and the link's standing.
    False when its link is not in the catalog or it is indexed already."""
    link = session.get(Link, context.get("link_id") or 0)
    if link is None or session.scalar(
        select(LinkCheck.id).where(LinkCheck.metadata_record_id == record_id)
    ):
        return False
    when = datetime.fromisoformat(context["checked_at"].rstrip("Z"))
    capture_id = (
        session.scalar(select(Capture.id).where(Capture.record_id == context["capture"]))
        if context.get("capture")
        else None
    )
    confirmed = observe(link, context["status"], when, death_rule(), check=True)
    if when >= (link.updated_at or when):
        link.final_url = context.get("final_url")
    session.add(
        LinkCheck(
            link_id=link.id,
            run_id=context.get("run_id"),
            capture_id=capture_id,
            checked_at=when,
            status=context["status"],
            http_status=context.get("http_status"),
            final_url=context.get("final_url"),
            change=context.get("change"),
            confirmed=confirmed,
            metadata_record_id=record_id,
        )
    )
    return True
