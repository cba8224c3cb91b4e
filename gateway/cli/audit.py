"""``minimo audit``: print the audit log, oldest first (admin changes, accepted or refused
writes), filtered by time, principal and action."""

from __future__ import annotations

import json
from pathlib import Path

import click

from gateway.cli.options import data_dir_option, parse_time
from gateway.cli.output import when
from gateway.cli.stores import run_with_services, stores_config
from policy.audit import event_json
from policy.services import Services
from policy.store.base import MAX_PAGE, AuditEvent


@click.command("audit")
@click.option("--since", help="From: 2026-11-25, 2026-11-25T14:30Z or 1d (ago).")
@click.option("--until", help="Before (a date includes that whole day).")
@click.option("--user", "principal", help="Only this principal's events.")
@click.option("--action", help="Only this action, e.g. session.open or PutObject.")
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines, one event per line.")
@data_dir_option
def audit(
    since: str | None,
    until: str | None,
    principal: str | None,
    action: str | None,
    limit: int,
    as_json: bool,
    data_dir: Path,
    secret_key_file: Path | None,
) -> None:
    """Print the audit log (oldest first): admin changes and accepted or refused writes."""
    start = parse_time(since, "--since") if since else None
    end = parse_time(until, "--until", end=True) if until else None

    async def fetch(s: Services) -> list[AuditEvent]:
        events: list[AuditEvent] = []
        cursor: str | None = None
        while len(events) < limit:
            page, cursor = await s.auditor.events(
                since=start,
                until=end,
                principal=principal,
                action=action,
                limit=min(MAX_PAGE, limit - len(events)),
                cursor=cursor,
            )
            events.extend(page)
            if cursor is None or not page:
                break
        return events

    events = run_with_services(stores_config(data_dir, secret_key_file), fetch)
    if as_json:
        for event in events:
            click.echo(json.dumps(event_json(event)))
        return
    for e in events:
        reason = f"  {e.reason}" if e.reason else ""
        click.echo(
            f"{when(e.time)}  {e.principal:<16} {e.action:<16} {e.outcome:<8} {e.target}{reason}"
        )
