"""The ``minimo reconcile`` command (the walk itself is :mod:`gateway.usecases.reconcile`).

Output: one line per finding on stdout while the walk goes on, then a summary; or with
``--json`` one JSON object per line (``{"finding": {...}}`` each, ``{"summary": {...}}`` last),
so a huge store never has to be held in memory to print one document. A progress bar goes to
stderr when it is a terminal (never with ``--json``).

Exit status: 0 when the stores agree (or every problem found was repaired), 1 when problems
remain: any problem without ``--repair``; with it, those reconcile must not fix on its own
(unlinked objects, unstamped mismatches).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from gateway.cli.options import S3Options, data_dir_option, duration_value, s3_options
from gateway.cli.stores import existing_stores_config
from gateway.config import Config
from gateway.protocol.errors import S3Error
from gateway.usecases.reconcile import FINDING_KINDS, Finding, Reconciler, Summary


# The store options are added to the finished command (not its function), which lists them
# last in --help, after the object store options, as this command always has.
@data_dir_option
@click.command("reconcile")
@click.option(
    "--repair",
    is_flag=True,
    help="Fix what can be fixed: rebuild records from stamped objects, drop records of missing "
    "objects, refresh records of changed stamped objects, and recover crash leftovers as a "
    "gateway does (roll back dead writes, remove their temp files, put back interrupted "
    "uploads, abort expired uploads, release orphaned claims).",
)
@click.option("--bucket", help="Only this bucket (default: every bucket).")
@click.option(
    "--stale-after",
    default="1h",
    show_default=True,
    callback=duration_value,
    help="Intents of an unknown writer (no registered gateway: the CLI, an older version) "
    "older than this are writes that never finished (e.g. 30m, 1h, 2d). Intents of a gateway "
    "that is gone count at any age.",
)
@click.option(
    "--multipart-expiry",
    default="7d",
    show_default=True,
    callback=duration_value,
    help="Multipart uploads unfinished for longer than this are expired.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines (no progress bar).")
@s3_options()
def reconcile(
    repair: bool,
    bucket: str | None,
    stale_after: timedelta,
    multipart_expiry: timedelta,
    as_json: bool,
    s3: S3Options,
    data_dir: Path,
    secret_key_file: Path | None,
) -> None:
    """Compare the object store with the metadata store's records and report (or --repair)
    what disagrees."""
    config = existing_stores_config(data_dir, secret_key_file, s3)
    try:
        summary = asyncio.run(
            _reconcile(config, repair, bucket, stale_after, multipart_expiry, as_json)
        )
    except S3Error as exc:
        raise click.ClickException(f"object store: {exc.code}: {exc.message}") from exc
    _print_summary(summary, repair, as_json)
    if not summary.consistent:
        sys.exit(1)


async def _reconcile(
    config: Config,
    repair: bool,
    bucket: str | None,
    stale_after: timedelta,
    multipart_expiry: timedelta,
    as_json: bool,
) -> Summary:
    from tqdm import tqdm

    from gateway.backends import open_object_store
    from policy.store import open_metadata_store

    bars: list[Any] = []
    # What recovery and rollback log as they repair is in the findings already; without a
    # handler Python would print their warnings to stderr (and into --json's clean stream).
    logging.getLogger("minimo").addHandler(logging.NullHandler())

    def progress(phase: str) -> Any:
        # disable=None: tqdm shows the bar only when stderr is a terminal; leave=False: the
        # findings and the summary are what stays on screen.
        bar = tqdm(
            desc=phase,
            unit=" items",
            file=sys.stderr,
            leave=False,
            disable=True if as_json else None,
        )
        bars.append(bar)
        return bar

    def on_finding(finding: Finding) -> None:
        if as_json:
            click.echo(json.dumps({"finding": finding.as_json()}))
        else:
            # tqdm.write keeps the bar on stderr intact while lines go to stdout.
            tqdm.write(_finding_line(finding), file=sys.stdout)

    metadata = await open_metadata_store(config.sqlite_path, mongo_uri=config.mongo_uri)
    try:
        objects = open_object_store(config)
        await objects.start()
        try:
            reconciler = Reconciler(
                objects,
                metadata,
                repair=repair,
                bucket=bucket,
                stale_after=stale_after,
                multipart_expiry=multipart_expiry,
                on_finding=on_finding,
                progress=progress,
            )
            return await reconciler.run()
        finally:
            for bar in bars:
                bar.close()
            await objects.close()
    finally:
        await metadata.close()


def _finding_line(finding: Finding) -> str:
    state = "repaired" if finding.repaired else "found"
    where = f"s3://{finding.bucket}/{finding.key}" if finding.bucket else finding.key
    line = f"{finding.kind:<14} {state:<8} {where}: {finding.detail}"
    if finding.sha256:
        line += f" (sha256 {finding.sha256})"
    return line


def _print_summary(summary: Summary, repair: bool, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"summary": summary.as_json()}))
        return
    click.echo(
        f"checked {summary.objects_checked} objects, {summary.records_checked} records, "
        f"{summary.intents_checked} intents"
        + (f" ({summary.in_flight} writes in flight skipped)" if summary.in_flight else "")
    )
    for kind in FINDING_KINDS:
        found = summary.found[kind]
        if found:
            fixed = f", {summary.repaired[kind]} repaired" if repair else ""
            click.echo(f"  {kind}: {found}{fixed}")
    if summary.more_expired_uploads:
        click.echo("  (more expired uploads than one report lists; --repair goes through all)")
    if summary.consistent:
        click.echo("consistent" if not summary.problems else "consistent after repair")
    elif repair:
        click.echo(f"{_count(summary.remaining)} remain that reconcile does not fix on its own")
    else:
        click.echo(f"{_count(summary.problems)}; run with --repair to fix what can be fixed")


def _count(problems: int) -> str:
    return f"{problems} problem" + ("" if problems == 1 else "s")
