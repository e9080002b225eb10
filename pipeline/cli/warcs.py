"""The preserved files: ``warc``, ``catalog``, ``export``, ``replay``, ``evidence``."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import click
from rich.console import Console

from pipeline.catalog import session_scope
from pipeline.cli.base import (
    ID,
    UserError,
    _home,
    capture_target,
    cli,
    console,
    say,
)
from pipeline.config import paths
from pipeline.seeds import LINK_KINDS


@cli.group()
def catalog() -> None:
    """The catalog: an index over the WARC files, rebuildable from them alone."""


@catalog.command("reindex")
@click.pass_context
def catalog_reindex(ctx: click.Context) -> None:
    """Build the search index anew from the catalog (resumable: run it again if stopped).

    Search keeps its index current by itself, building it on first use; this builds it
    ahead of time, e.g. after restoring a large catalog and before serving it."""
    from pipeline.catalog.fulltext import open_index

    started = time.perf_counter()
    with session_scope(_home(ctx).database_url) as session:
        with console.status("Indexing every link's search document"):
            index = open_index(session, anew=True)
        documents = index.searcher().num_docs
    say(f"Search index of {documents} links built in {time.perf_counter() - started:.0f} s: "
        f"{index.path}")  # fmt: skip


@catalog.command("rebuild")
@click.option(
    "--into",
    "target",
    help="SQLAlchemy URL of an empty database (default: a new SQLite file in the data home).",
)
@click.option(
    "--store",
    metavar="URI",
    help="Also the WARC files of this store that are not in the data home (fetched, "
    "verified, into cache/warcs/; default: $LINKARCHIVE_WARC_STORE).",
)
@click.pass_context
def catalog_rebuild(ctx: click.Context, target: str | None, store: str | None) -> None:
    """Re-create the catalog from the WARC files and the data home's ledgers; the current
    catalog is left untouched. Prints what it could not restore."""
    from archive.store import StoreError, open_storage
    from pipeline.rebuild import RebuildError, rebuild_catalog
    from pipeline.storage import configured_storage, fetch_missing

    where = _home(ctx)
    if target is None:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        target = f"sqlite:///{where.home / f'catalog-rebuilt-{stamp}.sqlite'}"
    if target == where.database_url:
        raise UserError("--into must name another database than the current catalog")
    files = sorted(where.warcs.glob("*.warc.gz"))
    fetched: list[Path] = []
    try:
        storage = open_storage(store) if store else configured_storage()
        if storage is not None:
            with console.status(f"Fetching WARC files missing here from {storage.uri}"):
                fetched = fetch_missing(storage, where, {p.name for p in files})
    except StoreError as exc:
        raise UserError(str(exc)) from None
    files = sorted(files + fetched, key=lambda p: p.name)  # names are in time order
    with session_scope(target) as session:
        try:
            with console.status(f"Indexing {len(files)} WARC files"):
                report = rebuild_catalog(
                    session,
                    where,
                    files,
                    storage=storage,
                    fetched=fetched,
                    compare_with=where.database_url,
                )
        except RebuildError as exc:
            raise UserError(f"{target} {exc}") from None
    result = report.indexed
    say(
        f"Rebuilt from {result.files} WARC files: {result.captures} captures, "
        f"{result.outcomes} link outcomes, into {target}"
    )
    for lost in report.lost:
        Console(stderr=True).print(
            f"linkarchive: not restored: {lost}", markup=False, soft_wrap=True
        )
    say(f"Use it with LINKARCHIVE_DATABASE_URL={target}")


@cli.group()
def warc() -> None:
    """Look after the WARC files of the data home."""


@warc.command("recover")
@click.pass_context
def warc_recover(ctx: click.Context) -> None:
    """Close WARC files left open by killed crawls (torn tails kept aside) and index them."""
    from archive import recover_open_file, stale_open_files
    from pipeline.evidence.ledgerfile import keep_ledger
    from pipeline.indexer import index_files

    where = _home(ctx)
    stale = stale_open_files(where.warcs)
    for path in stale:
        say(recover_open_file(path).describe())
    with session_scope(where.database_url) as session:
        keep_ledger(session, where)
        result = index_files(session, where.warcs.glob("*.warc.gz"), where.indexes)
    say(f"{len(stale)} files recovered; {result.files} files indexed ({result.captures} captures).")


@warc.command("push")
@click.option("--store", metavar="URI", help="s3://bucket/prefix or a folder "
              "(default: $LINKARCHIVE_WARC_STORE).")  # fmt: skip
@click.pass_context
def warc_push(ctx: click.Context, store: str | None) -> None:
    """Copy indexed WARC files (with CDXJ and timestamp tokens) into the WARC store.

    Each copy is verified (size, SHA-256) and recorded in the catalog; stores never
    overwrite, so pushing again is harmless. Local files are kept.
    """
    from archive.store import StoreError, open_storage
    from pipeline.storage import configured_storage, push_files

    where = _home(ctx)
    try:
        storage = open_storage(store) if store else configured_storage()
    except StoreError as exc:
        raise UserError(str(exc)) from None
    if storage is None:
        raise UserError("no WARC store: set LINKARCHIVE_WARC_STORE or give --store")
    with session_scope(where.database_url) as session:
        result = push_files(session, where, storage, anywhere=True)
    for problem in result.problems:
        say(f"not stored: {problem}")
    say(f"{len(result.stored)} WARC files stored in {storage.uri}.")
    if result.problems:
        raise click.exceptions.Exit(1)


@warc.command("import")
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True))
@click.pass_context
def warc_import(ctx: click.Context, sources: tuple[str, ...]) -> None:
    """Index WARC and ARC files written by other tools (wget, warcprox, Heritrix, pywb...)
    where they are, without copying or altering them. A bad record is skipped with a
    warning naming its offset; the exit status is 1 only if a file could not be read."""
    from pipeline.evidence.ledgerfile import keep_ledger
    from pipeline.foreign import IMPORT_SUFFIXES, IMPORTED_SOURCE, import_files, ledger_path

    files: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            files += [p for p in sorted(source.rglob("*")) if p.name.endswith(IMPORT_SUFFIXES)]
        else:
            files.append(source)
    if not files:
        raise UserError(
            f"no WARC or ARC files (*.warc, *.warc.gz, *.arc, *.arc.gz) in {', '.join(sources)}"
        )
    where = _home(ctx)
    with session_scope(where.database_url) as session:
        keep_ledger(session, where)
        result = import_files(session, files, ledger=ledger_path(where))
    err = Console(stderr=True)
    for line in _capped(result.warnings):
        err.print(f"linkarchive: warning: {line}", markup=False, soft_wrap=True)
    for problem in result.problems:
        err.print(f"linkarchive: skipped: {problem}", markup=False, soft_wrap=True)
    say(
        f"Imported {result.files} files ({result.skipped} already in the catalog): "
        f"{result.captures} captures, {result.bytes / 1e6:.1f} MB; "
        f"{result.links_added} new links of the '{IMPORTED_SOURCE}' source"
        + (f"; {result.duplicates} records indexed already." if result.duplicates else ".")
    )
    if result.problems:
        raise click.exceptions.Exit(1)


def _capped(warnings: list[str], per_file: int = 20) -> list[str]:
    """At most ``per_file`` warnings of each file, then how many more it had."""
    shown: list[str] = []
    counts: dict[str, int] = {}
    for line in warnings:
        name = line.split(": offset ", 1)[0]
        counts[name] = counts.get(name, 0) + 1
        if counts[name] <= per_file:
            shown.append(line)
    shown += [f"{name}: {n - per_file} more warnings" for name, n in counts.items() if n > per_file]
    return shown


@cli.group()
def export() -> None:
    """Package archived links for sharing and replay."""


@export.command("wacz")
@click.option("--country", help="Only links of this country.")
@click.option("--city", help="Only links of this city.")
@click.option("--kind", type=click.Choice(LINK_KINDS), help="Only links of this kind.")
@click.option("--run", "run_id", type=ID, help="Only captures of this crawl run.")
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .wacz file."
)
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
@click.pass_context
def export_wacz(
    ctx: click.Context,
    country: str | None,
    city: str | None,
    kind: str | None,
    run_id: int | None,
    output: str,
    force: bool,
) -> None:
    """Write the selected links' captures as a WACZ package (ReplayWeb.page, pywb)."""
    from archive.wacz import WaczError, write_wacz
    from pipeline.catalog.queries import Selection
    from pipeline.export import ExportError, plan_export

    target = _wacz_output(output, force)
    where = _home(ctx)
    try:
        with session_scope(where.database_url) as session:
            plan = plan_export(
                session, Selection(country=country, city=city, kind=kind), where.warcs, run_id
            )
        with console.status(f"Packaging {len(plan.members)} WARC records"):
            summary = write_wacz(
                target,
                plan.members,
                plan.pages,
                title=plan.title,
                description=plan.description,
                overwrite=force,
            )
    except (ExportError, WaczError) as exc:
        raise UserError(str(exc)) from exc
    except FileExistsError:
        raise UserError(f"{output} exists; use --force to replace it") from None
    for warning in plan.warnings:
        Console(stderr=True).print(f"linkarchive: warning: {warning}", markup=False, soft_wrap=True)
    say(
        f"Wrote {output}: {plan.links} links, {summary.pages} pages, {summary.records} WARC "
        f"records ({summary.warc_bytes / 1e6:.1f} MB) from {len(plan.files)} WARC files."
    )


@cli.command()
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.pass_context
def replay(ctx: click.Context, port: int) -> None:
    """Serve the archive for viewing in pywb on 127.0.0.1, until Ctrl-C."""
    import signal
    import subprocess

    from pipeline.replay import archived_pages, find_wayback, prepare, replay_url

    wayback = find_wayback()
    if wayback is None:
        raise UserError(
            "pywb is not installed: pip install -e '.[replay]' (or set LINKARCHIVE_WAYBACK)"
        )
    where = _home(ctx)
    base = f"http://127.0.0.1:{port}"
    with session_scope(where.database_url) as session:
        root = prepare(where, session)
        for link, capture in archived_pages(session):
            say(f"{link.id:>5}  {replay_url(base, capture)}")
    say(f"Replaying {where.warcs} at {base}/linkarchive/ (Ctrl-C to stop)")
    server = subprocess.Popen([wayback, "--bind", "127.0.0.1", "--port", str(port)], cwd=root)

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)  # a terminated replay takes its server along
    try:
        server.wait()
    except KeyboardInterrupt:
        server.terminate()
        server.wait(10)


def _wacz_output(output: str, force: bool) -> Path:
    """Where a package may be written: a .wacz name, in a folder that exists, not in the
    way of an existing file unless --force."""
    target = Path(output)
    if target.suffix != ".wacz":
        raise UserError(f"{output}: a WACZ package's name must end in .wacz")
    if target.exists() and not force:
        raise UserError(f"{output} exists; use --force to replace it")
    if not target.absolute().parent.is_dir():
        raise UserError(f"cannot write {output}: no directory {target.absolute().parent}")
    return target


@cli.group()
def evidence() -> None:
    """Evidence packages for legal teams: export, verify, the archive's key."""


@evidence.command("export")
@capture_target
@click.option("--reason", required=True, help="Why this evidence is exported (recorded).")
@click.option("--requested-by", help="Who asked for it (recorded; default: you).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
@click.pass_context
def evidence_export(
    ctx: click.Context,
    target: str | None,
    capture_id: int | None,
    at: datetime | None,
    reason: str,
    requested_by: str | None,
    output: str,
    force: bool,
) -> None:
    """Export a link's last full capture (LINK_ID or URL, --at a time) or --capture ID as a
    signed evidence package, with every resource archived with the page."""
    from pipeline.retrieval import export_package, tsa_url

    path = _wacz_output(output, force)
    where = _home(ctx)
    with console.status("Packaging, signing" + (" and timestamping" if tsa_url() else "")):
        result = export_package(
            where,
            path,
            reason=reason,
            requested_by=requested_by,
            target=target,
            capture_id=capture_id,
            at=at,
            overwrite=force,
        )
    say(
        f"Wrote {output}: capture {result.capture_id}, {result.records} WARC records, signed by "
        f"{result.fingerprint}" + (", timestamped." if result.timestamped else ".")
    )


@evidence.command("verify")
@click.argument("package", type=click.Path(exists=True, dir_okay=False))
@click.option("--public-key", type=click.Path(exists=True, dir_okay=False))
@click.option("--tsa-cert", type=click.Path(exists=True, dir_okay=False))
@click.pass_context
def evidence_verify(
    ctx: click.Context, package: str, public_key: str | None, tsa_cert: str | None
) -> None:
    """Check a package offline: file hashes, signature, custody chain, WARC digests, timestamp.

    Needs no catalog; where this data home's catalog holds the capture, the verification
    is added to its custody ledger.
    """
    from pipeline.evidence.package import record_verification, verify_package

    verdict = verify_package(
        Path(package),
        public_key=Path(public_key) if public_key else None,
        tsa_cert=Path(tsa_cert) if tsa_cert else None,
    )
    for name, value in verdict.facts.items():
        say(f"  {name}: {value}")
    for note in verdict.notes:
        say(f"  note: {note}")
    where = paths(ctx.obj.get("home"))
    if where.home.exists() and record_verification(where, Path(package), verdict):
        say("  custody: this verification is recorded in the catalog's ledger")
    if verdict.problems:
        raise UserError(f"NOT VERIFIED: {verdict.problems[0]}")
    say(f"VERIFIED: {package}")


@evidence.command("key")
@click.pass_context
def evidence_key(ctx: click.Context) -> None:
    """Print the archive's public key and its fingerprint (created on first use)."""
    from archive.signing import fingerprint, load_or_create_key, public_key_pem
    from pipeline.evidence.package import key_path

    key = load_or_create_key(key_path(_home(ctx)))
    click.echo(public_key_pem(key).rstrip("\n"))
    say(f"fingerprint: {fingerprint(key)}")
