"""Evidence packages: one capture as a signed, timestamped WACZ with its chain of custody.

Export writes a WACZ 1.1.1 package (every record of the capture copied unchanged) plus
``evidence/summary.html`` and ``.md`` for a lawyer, ``evidence/custody.jsonl`` (the
capture's hash-chained ledger, this export included) and ``evidence/manifest-sha256.txt``
(``sha256sum -c``); ``datapackage-digest.json`` is signed with the archive's own key and,
when ``LINKARCHIVE_TSA_URL`` is set, timestamped (``evidence/timestamp.tsr``). Verification
needs nothing but the package: see :func:`verify_package` and docs/EVIDENCE.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from archive import iter_records, read_record, verify_record, warc_fields
from archive.signing import (
    fingerprint,
    load_or_create_key,
    load_public_key,
    sign_digest,
    verify_signed_data,
)
from archive.timestamp import request_token, token_time, verify_token
from archive.wacz import Page, rfc3339, write_wacz
from pipeline.catalog.models import Capture, Link, Media, PageMetadataRow
from pipeline.config import Paths
from pipeline.crawlcontext import BROWSER_FORMAT
from pipeline.evidence.custody import (
    append_event,
    current_actor,
    ledger_lines,
    line_sha256,
    tool_version,
    verify_lines,
)
from pipeline.evidence.ledgerfile import keep_ledger
from pipeline.evidence.summary import MANIFEST, TIMESTAMP_TOKEN, render_html, render_markdown
from pipeline.export import plan_links

SUMMARY_HTML = "evidence/summary.html"
SUMMARY_MD = "evidence/summary.md"
CUSTODY = "evidence/custody.jsonl"
# The ledger's length and last line hash: signed with the package, so a cut end shows.
CUSTODY_HEAD = "evidence/custody-head.json"


class EvidenceError(ValueError):
    """An export that cannot be made, or a package that does not verify (one line)."""


def key_path(where: Paths) -> Path:
    """The archive's private signing key (created on first use, mode 0600)."""
    return where.home / "keys" / "evidence-key.pem"


ASSET_ROLES = ("requisite", "image", "media")


def nearest_resources(session: Session, link: Link, capture: Capture) -> list[Capture]:
    """What the page was archived with that ``capture``'s crawl did not fetch again: for
    each requisite, image or media URL of the link archived in any other run, its capture
    nearest in time to ``capture`` (as pywb resolves a page's resources on replay)."""
    shared = select(Media.capture_id).where(Media.link_id == link.id)
    owned = or_(Capture.link_id == link.id, Capture.id.in_(shared))
    assets = select(Capture).where(owned, Capture.role.in_(ASSET_ROLES))
    fetched = {
        url
        for url in session.scalars(
            select(Capture.url).where(owned, Capture.run_id == capture.run_id)
        )
    }
    nearest: dict[str, Capture] = {}
    for other in session.scalars(assets.where(Capture.run_id != capture.run_id)):
        if other.url in fetched or not (other.http_status or 0) < 400:
            continue
        distance = abs((other.captured_at - capture.captured_at).total_seconds())
        best = nearest.get(other.url)
        if best is None or distance < abs((best.captured_at - capture.captured_at).total_seconds()):
            nearest[other.url] = other
    return list(nearest.values())


def _utc(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds") + "Z"


@dataclass
class Exported:
    """What an export wrote."""

    path: Path
    capture_id: int
    records: int
    fingerprint: str
    timestamped: bool


def export_evidence(
    session: Session,
    where: Paths,
    capture: Capture,
    *,
    reason: str,
    requested_by: str | None,
    output: Path,
    overwrite: bool = False,
    tsa_url: str | None = None,
    actor: str | None = None,
) -> Exported:
    """Write the evidence package of ``capture`` to ``output`` and record the export.

    The ``exported`` event's actor is ``actor`` (who exports, e.g. a signed-in user), else
    ``requested_by``, else the operator; given ``actor``, ``requested_by`` is recorded too.
    """
    if not reason.strip():
        raise EvidenceError("--reason is required: say why this evidence is exported")
    link = session.get(Link, capture.link_id) if capture.link_id else None
    if link is None:
        raise EvidenceError(f"capture {capture.id} belongs to no link of the catalog")
    borrowed = nearest_resources(session, link, capture)
    plan = plan_links(
        session, [link], where.warcs, capture.run_id, f"Evidence: {link.url}", extra=borrowed
    )
    page_id = capture.record_id.strip("<>").removeprefix("urn:uuid:")
    pages = [p for p in plan.pages if p.id == page_id] or [
        Page(capture.url, capture.captured_at, None, page_id)
    ]
    details: dict[str, Any] = {"package": output.name}
    if actor and requested_by:
        details["requested_by"] = requested_by
    actor = actor or requested_by or current_actor()
    append_event(session, capture.id, "exported", actor=actor, reason=reason, details=details)
    ledger = ledger_lines(session, capture.id)
    key = load_or_create_key(key_path(where))
    created = datetime.now(UTC).replace(microsecond=0)
    facts = _facts(session, link, capture, plan.members, ledger, actor, output.name)
    facts["borrowed"] = [
        {"url": c.url, "record_id": c.record_id, "captured_at": _utc(c.captured_at)}
        for c in sorted(borrowed, key=lambda c: c.url)
    ]
    facts["signature"] = {
        "fingerprint": fingerprint(key),
        "algorithm": "ECDSA P-256 over SHA-256 (WACZ signing spec, anonymous mode)",
        "signer": "this archive's key (see `linkarchive evidence key`)",
        "signed_at": rfc3339(created),
        "file": "datapackage-digest.json",
    }
    if tsa_url:
        facts["timestamp"] = {"authority": tsa_url, "token": TIMESTAMP_TOKEN, "data": MANIFEST}

    def extra(resources: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
        facts["files"] = [
            {"path": r["path"], "sha256": r["hash"].split(":", 1)[1], "bytes": r["bytes"]}
            for r in resources
        ]
        files = [
            (SUMMARY_HTML, render_html(facts).encode("utf-8")),
            (SUMMARY_MD, render_markdown(facts).encode("utf-8")),
            (CUSTODY, "".join(line + "\n" for line in ledger).encode("utf-8")),
            (
                CUSTODY_HEAD,
                json.dumps({"count": len(ledger), "last_sha256": line_sha256(ledger[-1])}).encode(
                    "utf-8"
                ),
            ),
        ]
        sums = [(r["hash"].split(":", 1)[1], r["path"]) for r in resources]
        sums += [(hashlib.sha256(data).hexdigest(), name) for name, data in files]
        manifest = "".join(f"{digest}  {name}\n" for digest, name in sums).encode("utf-8")
        files.append((MANIFEST, manifest))
        if tsa_url:  # anchors every file's hash in time; the token is then signed too
            files.append(
                (TIMESTAMP_TOKEN, request_token(tsa_url, hashlib.sha256(manifest).digest()))
            )
        return files

    def seal(digest: str) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
        signed = sign_digest(key, digest, created=created, software=f"linkarchive {tool_version()}")
        return {"signedData": signed}, []

    summary = write_wacz(
        output,
        plan.members,
        pages,
        title=f"Evidence: {link.url}",
        description=f"Capture {capture.record_id} of {capture.url}, exported for: {reason}",
        created=created,
        overwrite=overwrite,
        extra=extra,
        seal=seal,
    )
    return Exported(output, capture.id, summary.records, fingerprint(key), bool(tsa_url))


def _facts(
    session: Session,
    link: Link,
    capture: Capture,
    members: list[Any],
    ledger: list[str],
    actor: str,
    package: str,
) -> dict[str, Any]:
    records = []
    browser: dict[str, Any] = {}
    for member in members:
        record = read_record(member.path, member.offset)
        payload = record.get("WARC-Payload-Digest") or ""
        if _renders(record, capture.record_id):
            browser.update(_browser_facts(record))
        records.append(
            {
                "record_id": record.record_id,
                "type": record.rec_type,
                "url": record.target_uri or "",
                "payload_sha256": payload.removeprefix("sha256:") if payload else None,
                "block_sha256": (record.get("WARC-Block-Digest") or "").removeprefix("sha256:"),
                "warc_file": Path(member.path).name,
            }
        )
    redirects = session.scalars(
        select(Capture)
        .where(
            Capture.link_id == link.id,
            Capture.run_id == capture.run_id,
            Capture.role == "redirect",
        )
        .order_by(Capture.captured_at, Capture.id)
    )
    source = next((m.path for m in members if Path(m.path).name == capture.warc_file), None)
    info = warc_fields(read_record(Path(source), 0).payload) if source else {}
    meta = session.get(PageMetadataRow, capture.id)
    return {
        "title": f"Evidence summary: {link.country.name}"
        + (f", {link.city.name}" if link.city else ""),
        "generated_at": rfc3339(datetime.now(UTC)),
        "generated_by": actor,
        "package": package,
        "link": {
            "id": link.id,
            "country": link.country.name,
            "city": link.city.name if link.city else None,
            "kind": link.kind,
            "label": link.label,
            "url": link.url,
        },
        "capture": {
            "record_id": capture.record_id,
            "requested_url": link.url,
            "final_url": capture.url,
            "redirects": [{"url": r.url, "status": r.http_status} for r in redirects],
            "captured_at": capture.captured_at.isoformat(timespec="microseconds") + "Z",
            "host": info.get("hostname"),
            "software": info.get("software"),
            "http_status": capture.http_status,
            "content_type": capture.content_type,
        },
        "records": records,
        "metadata": {
            "title": meta.title if meta else None,
            "author": meta.author if meta else None,
            "published": meta.published.isoformat() if meta and meta.published else None,
            "language": meta.language if meta else None,
            "description": meta.description if meta else None,
        },
        "custody": [{"record_id": capture.record_id, "url": capture.url, "lines": ledger}],
        **({"browser": browser} if browser else {}),
    }


def _renders(record: Any, page_record_id: str) -> bool:
    """Whether ``record`` is part of the page's browser capture (screenshot, DOM, text,
    browser metadata)."""
    if record.rec_type == "resource":
        return record.get("WARC-Concurrent-To") == page_record_id
    return record.rec_type == "metadata" and record.get("WARC-Refers-To") == page_record_id


def _browser_facts(record: Any) -> dict[str, Any]:
    """What the summary says about a browser capture, from one of its records."""
    url = record.target_uri or ""
    digest = (record.get("WARC-Payload-Digest") or "").removeprefix("sha256:")
    if url.startswith("urn:view:"):
        return {"screenshot_record": record.record_id, "screenshot_url": url,
                "screenshot_sha256": digest, "screenshot_bytes": len(record.payload)}  # fmt: skip
    if url.startswith("urn:dom:"):
        return {"dom_record": record.record_id, "dom_sha256": digest}
    if record.rec_type != "metadata":
        return {}
    try:
        info = json.loads(record.payload)
    except ValueError:
        return {}
    if not isinstance(info, dict) or info.get("format") != BROWSER_FORMAT:
        return {}
    viewport = info.get("viewport") or {}
    return {
        "browser": f"{info.get('browser', '')} {info.get('version', '')}".strip(),
        "user_agent": info.get("user_agent"),
        "viewport": f"{viewport.get('width')}×{viewport.get('height')}" if viewport else None,
        "behaviours": ", ".join(info.get("behaviours") or []),
    }


# --- verification -----------------------------------------------------------------------


@dataclass
class Verdict:
    """The outcome of verifying a package: problems (first is the first failure) and facts."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_package(
    path: Path, *, public_key: Path | None = None, tsa_cert: Path | None = None
) -> Verdict:
    """Check an evidence package with nothing but the package (no catalog, no network)."""
    verdict = Verdict()
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        verdict.problems.append(f"not a readable WACZ (zip) file: {exc}")
        return verdict
    with archive:
        names = set(archive.namelist())
        for required in ("datapackage.json", "datapackage-digest.json", CUSTODY, MANIFEST):
            if required not in names:
                verdict.problems.append(f"{required} is missing from the package")
        if verdict.problems:
            return verdict
        manifest = archive.read("datapackage.json")
        digest = json.loads(archive.read("datapackage-digest.json"))
        expected = "sha256:" + _sha(manifest)
        if digest.get("hash") != expected:
            verdict.problems.append("datapackage.json does not match datapackage-digest.json")
        signed = digest.get("signedData")
        if not signed:
            verdict.problems.append("datapackage-digest.json is not signed")
        else:
            trusted = load_public_key(public_key) if public_key else None
            for problem in verify_signed_data(signed, expected, trusted):
                verdict.problems.append(f"signature: {problem}")
            verdict.facts["signer"] = fingerprint(load_public_key(signed["publicKey"]))
            if trusted is None:
                verdict.notes.append(
                    "signature checked against the key inside the package: compare its "
                    "fingerprint with the archive's published one, or pass --public-key"
                )
        for resource in json.loads(manifest).get("resources", []):
            name = resource.get("path")
            if name not in names:
                verdict.problems.append(f"{name} is listed in datapackage.json but missing")
                continue
            data = archive.read(name)
            if "sha256:" + _sha(data) != resource.get("hash") or len(data) != resource.get("bytes"):
                verdict.problems.append(f"{name} does not match its hash in datapackage.json")
        for line in archive.read(MANIFEST).decode("utf-8").splitlines():
            match = re.fullmatch(r"([0-9a-f]{64})  (.+)", line)
            if not match or match[2] not in names:
                verdict.problems.append(f"{MANIFEST}: bad line {line!r}")
            elif _sha(archive.read(match[2])) != match[1]:
                verdict.problems.append(f"{match[2]} does not match {MANIFEST}")
        ledger = archive.read(CUSTODY).decode("utf-8").splitlines()
        head = json.loads(archive.read(CUSTODY_HEAD)) if CUSTODY_HEAD in names else {}
        if not head:
            verdict.problems.append(f"{CUSTODY_HEAD} is missing from the package")
        for problem in verify_lines(
            ledger, count=head.get("count"), last_sha256=head.get("last_sha256")
        ):
            verdict.problems.append(f"custody: {problem}")
        verdict.facts["custody_events"] = len(ledger)
        if ledger:
            with contextlib.suppress(ValueError, KeyError):
                verdict.facts["capture_record_id"] = json.loads(ledger[0])["capture"]
        _verify_records(archive, verdict)
        if TIMESTAMP_TOKEN in names:
            token = archive.read(TIMESTAMP_TOKEN)
            imprint = hashlib.sha256(archive.read(MANIFEST)).digest()
            verdict.facts["timestamp"] = rfc3339(token_time(token))
            if tsa_cert is None:
                verdict.notes.append("timestamp not checked against an authority: --tsa-cert")
            for problem in verify_token(token, imprint, tsa_cert=tsa_cert) if tsa_cert else []:
                verdict.problems.append(f"timestamp: {problem}")
    return verdict


def _verify_records(archive: zipfile.ZipFile, verdict: Verdict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        warc = Path(tmp) / "data.warc.gz"
        warc.write_bytes(archive.read("archive/data.warc.gz"))
        count = 0
        try:
            for _, record in iter_records(warc):
                count += 1
                for problem in verify_record(record):
                    verdict.problems.append(f"WARC record {record.record_id}: {problem}")
                # The page is the capture the ledger is about, not the first response
                # (which may be a script or stylesheet fetched before it).
                if record.record_id == verdict.facts.get("capture_record_id"):
                    verdict.facts["page"] = record.target_uri
        except Exception as exc:  # noqa: BLE001 - a damaged file is a finding, not a crash
            verdict.problems.append(f"archive/data.warc.gz: {exc}")
        verdict.facts["records"] = count
    pages = archive.read("pages/pages.jsonl").decode("utf-8").splitlines()[1:]
    for line in pages:
        page = json.loads(line)
        verdict.facts.setdefault("pages", []).append(f"{page.get('url')} at {page.get('ts')}")


def record_verification(where: Paths, package: Path, verdict: Verdict) -> bool:
    """Append a ``verified`` event to the ledger of the package's capture, if this data
    home's catalog holds it; True if recorded. Never fails a verification."""
    from pipeline.catalog import session_scope

    record_id = verdict.facts.get("capture_record_id")
    if not record_id:
        return False
    try:
        with session_scope(where.database_url, write_lock=True) as session:
            keep_ledger(session, where)
            capture = session.scalar(select(Capture).where(Capture.record_id == record_id))
            if capture is None:
                return False
            append_event(
                session,
                capture.id,
                "verified",
                actor=current_actor(),
                details={
                    "package": package.name,
                    "package_sha256": hashlib.sha256(package.read_bytes()).hexdigest(),
                    "verified": not verdict.problems,
                    "first_problem": verdict.problems[0] if verdict.problems else None,
                },
            )
        return True
    except Exception:  # noqa: BLE001 - the verdict stands whatever the catalog says
        return False
