"""The ``minimo verify`` command (the walk itself is :mod:`gateway.usecases.verify`).

Output: one line per key that is not ok as the run goes (``--all``: every key), then a summary;
or with ``--json`` one JSON object per line (``{"object": {...}}`` for every key,
``{"summary": {...}}`` last). A progress bar with bytes and an ETA goes to stderr when it is a
terminal (never with ``--json``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from gateway.cli.options import S3Options, data_dir_option, duration_value, s3_options
from gateway.cli.stores import existing_stores_config
from gateway.config import Config
from gateway.protocol.errors import S3Error
from gateway.usecases.verify import (
    DEFAULT_PARALLEL,
    RESULTS,
    Outcome,
    Scope,
    Summary,
    Verifier,
    VerifyError,
)

#: exit status when something is not ok (click's own usage errors are 2)
EXIT_PROBLEMS = 1

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?(?:/s)?\s*$", re.IGNORECASE)


def rate_value(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """``--max-rate``: bytes per second, with an optional K, M, G or T (powers of 1024)."""
    if value is None:
        return None
    match = _RATE.match(value)
    if match is None or float(match.group(1)) <= 0:
        raise click.BadParameter(
            f"{value!r}: use a positive number of bytes per second, e.g. 200M or 1G", ctx, param
        )
    power = " kmgt".index(match.group(2).lower() or " ")
    return float(match.group(1)) * 1024**power


def optional_duration(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> timedelta | None:
    return None if value is None else duration_value(ctx, param, value)


@data_dir_option
@click.command("verify")
@click.option("--bucket", help="Only this bucket (default: every bucket).")
@click.option("--prefix", default="", help="Only keys starting with this.")
@click.option(
    "--session",
    "session_id",
    help="Only this session's objects (its bucket and prefix; --prefix narrows it further).",
)
@click.option(
    "--older-than",
    callback=optional_duration,
    help="Skip objects verified less than this long ago (e.g. 12h, 7d). Each object's result "
    "is kept as soon as it is known, so rerunning an interrupted verify with --older-than "
    "carries on where it stopped.",
)
@click.option(
    "--max-rate",
    callback=rate_value,
    help="Read at most this many bytes per second (e.g. 200M; K, M, G, T are powers of 1024).",
)
@click.option(
    "--parallel",
    default=DEFAULT_PARALLEL,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Objects read at once.",
)
@click.option("--all", "show_all", is_flag=True, help="List ok objects too (text output).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines (no progress bar).")
@s3_options()
def verify(
    bucket: str | None,
    prefix: str,
    session_id: str | None,
    older_than: timedelta | None,
    max_rate: float | None,
    parallel: int,
    show_all: bool,
    as_json: bool,
    s3: S3Options,
    data_dir: Path,
    secret_key_file: Path | None,
) -> None:
    """Re-read objects, recompute their SHA-256 and compare with minimo's records.

    Each object is reported as ok, changed (bytes differ), truncated or size_differs,
    missing (a record without its object), replaced (its ETag is not the recorded one: written
    behind minimo's back) or unrecorded (an object without a record). Each record keeps the
    time and result of its last verify (shown in the web UI).

    Exit status: 0 when every object in scope is ok; 1 when any is missing, changed,
    truncated, size_differs, replaced or unrecorded (or on an error); 2 on a usage error.
    """
    config = existing_stores_config(data_dir, secret_key_file, s3)
    scope = Scope(bucket=bucket, prefix=prefix, session_id=session_id, older_than=older_than)
    try:
        summary = asyncio.run(_verify(config, scope, max_rate, parallel, show_all, as_json))
    except S3Error as exc:
        raise click.ClickException(f"object store: {exc.code}: {exc.message}") from exc
    except VerifyError as exc:
        raise click.ClickException(str(exc)) from exc
    _print_summary(summary, as_json)
    if not summary.all_ok:
        sys.exit(EXIT_PROBLEMS)


async def _verify(
    config: Config,
    scope: Scope,
    max_rate: float | None,
    parallel: int,
    show_all: bool,
    as_json: bool,
) -> Summary:
    from tqdm import tqdm

    from gateway.backends import open_object_store
    from policy.store import open_metadata_store

    logging.getLogger("minimo").addHandler(logging.NullHandler())
    bar: Any = None

    def on_outcome(outcome: Outcome) -> None:
        if as_json:
            click.echo(json.dumps({"object": outcome.as_json()}))
        elif show_all or outcome.problem:
            # tqdm.write keeps the bar on stderr intact while lines go to stdout.
            tqdm.write(_outcome_line(outcome), file=sys.stdout)

    def on_bytes(n: int) -> None:
        if bar is not None:
            bar.update(n)

    metadata = await open_metadata_store(config.sqlite_path, mongo_uri=config.mongo_uri)
    try:
        objects = open_object_store(config)
        await objects.start()
        try:
            verifier = Verifier(
                objects,
                metadata,
                scope,
                parallel=parallel,
                max_rate=max_rate,
                on_outcome=on_outcome,
                on_bytes=on_bytes,
            )
            # disable=None: the bar shows only when stderr is a terminal. Its total is the
            # records' sizes (a walk of the metadata store), which gives the ETA.
            if not as_json and sys.stderr.isatty():
                total = await verifier.planned_bytes()
                bar = tqdm(
                    total=total,
                    desc="verify",
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    file=sys.stderr,
                    leave=False,
                    disable=None,
                )
            try:
                return await verifier.run()
            finally:
                if bar is not None:
                    bar.close()
        finally:
            await objects.close()
    finally:
        await metadata.close()


def _outcome_line(outcome: Outcome) -> str:
    return f"{outcome.result:<12} s3://{outcome.bucket}/{outcome.key}: {outcome.detail}"


def _print_summary(summary: Summary, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"summary": summary.as_json()}))
        return
    checked = sum(summary.counts.values())
    mib = summary.bytes_read / 2**20
    rate = mib / summary.seconds if summary.seconds > 0 else 0.0
    line = f"verified {checked} objects, {mib:.1f} MiB in {summary.seconds:.1f}s ({rate:.1f} MiB/s)"
    if summary.skipped:
        line += f"; {summary.skipped} skipped (verified recently)"
    if summary.in_flight:
        line += f"; {summary.in_flight} being written (skipped)"
    click.echo(line)
    for result in RESULTS:
        if summary.counts[result]:
            click.echo(f"  {result}: {summary.counts[result]}")
    if summary.all_ok:
        click.echo("all ok")
    else:
        n = summary.problems
        click.echo(f"{n} problem" + ("" if n == 1 else "s"))
