"""``minimo session``: open, close, list, show metadata sessions.

Like the rest of the CLI these act with admin rights as ``cli:<OS user>``, with two options that
name minimo users instead: ``session open --owner USER`` opens a session *for* USER, and USER
must be allowed to open sessions there by the policy (the CLI does not hand out write rights the
policy does not give); ``session close --as USER`` closes as USER (only the owner or an admin
may). ``--ro-crate`` first writes the session's RO-Crate into its prefix
(:mod:`gateway.usecases.session_crate`), which needs the server's object store (the ``--s3-*``
options when it is S3).

Problems print one line each (``temp_c: must be at most 50``) and exit with status 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from gateway.cli.options import S3Options, data_dir_option, parse_sets, parse_time, s3_options
from gateway.cli.output import human_size, when
from gateway.cli.stores import (
    existing_stores_config,
    operator,
    run_with_services,
    stores_config,
    user_principal,
)
from gateway.protocol.errors import S3Error
from gateway.usecases.session_crate import CloseResult
from policy.services import Services
from policy.session_view import session_json
from policy.sessions import SessionError, parse_where, session_status
from policy.store.base import MAX_PAGE, SessionRecord


@click.group()
def session() -> None:
    """Metadata sessions: open one to upload, close it when done."""


def _as_json(record: SessionRecord, usage: tuple[int, int] | None = None) -> dict[str, Any]:
    """The session as ``--json`` prints it: policy's shape with its scope (and, for ``show``,
    the objects and bytes written)."""
    out = session_json(record, with_scope=True)
    if usage is not None:
        out["objects"], out["bytes"] = usage
    return out


@session.command("open")
@click.option("--form", "form_name", required=True, help="The form the values follow.")
@click.option("--bucket", required=True)
@click.option("--prefix", help="The key prefix uploads go under (default: '<session id>/').")
@click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE", help="A value (repeatable).")
@click.option("--ttl", help="How long it stays open, e.g. 7d, 12h (default: the policy rule's).")
@click.option("--owner", default="admin", show_default=True, help="The user it is opened for.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (id, access_key, secret_key...).")
@data_dir_option
def session_open(
    form_name: str,
    bucket: str,
    prefix: str | None,
    sets: tuple[str, ...],
    ttl: str | None,
    owner: str,
    as_json: bool,
    data_dir: Path,
    secret_key_file: Path | None,
) -> None:
    """Open a session and print its id and session key (the secret is shown only now)."""
    values = parse_sets(sets)

    async def action(s: Services) -> tuple[SessionRecord, Any]:
        principal = await user_principal(s, owner)
        return await s.sessions.open(principal, form_name, bucket, prefix, values, ttl)

    record, credential = run_with_services(stores_config(data_dir, secret_key_file), action)
    if as_json:
        out = _as_json(record)
        out["secret_key"] = credential.secret_key
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"id: {record.id}")
    click.echo(f"access_key: {credential.access_key}")
    click.echo(f"secret_key: {credential.secret_key}")
    click.echo(f"scope: s3://{record.bucket}/{record.prefix}")
    click.echo(f"form: {record.form_name} v{record.form_version}")
    click.echo(f"expires: {when(record.expires)}")


@session.command("close")
@click.argument("session_id", metavar="ID")
@click.option("--as", "as_user", help="Close as this user (only the owner or an admin may).")
@click.option(
    "--ro-crate/--no-ro-crate",
    default=None,
    help="Write PREFIX/ro-crate-metadata.json into the session's prefix first (default: the "
    "ro_crate_on_close of the policy rule covering its scope).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the session and ro_crate).")
@s3_options()
@data_dir_option
def session_close(
    session_id: str,
    as_user: str | None,
    ro_crate: bool | None,
    as_json: bool,
    s3: S3Options,
    data_dir: Path,
    secret_key_file: Path | None,
) -> None:
    """Close session ID and revoke its key (servers refuse it within 5 s).

    With an RO-Crate the crate is written into the object store first, so the object store
    options must name the server's (--s3-endpoint... when it keeps objects in S3).
    """
    config = existing_stores_config(data_dir, secret_key_file, s3)

    async def action(s: Services) -> CloseResult:
        from gateway.backends import open_object_store
        from gateway.usecases.session_crate import close_with_crate
        from gateway.usecases.writes import WritePath
        from policy.enforce import Enforcer
        from ui import session_link

        principal = await user_principal(s, as_user) if as_user else operator()
        writes = WritePath(
            s.store,
            Enforcer(s.policies, s.sessions, s.store, s.auditor, session_link(config.base_url)),
            s.auditor,
            config.base_url,
        )
        objects = open_object_store(config)
        await objects.start()
        try:
            return await close_with_crate(s, writes, objects, principal, session_id, ro_crate)
        except S3Error as exc:
            where = config.s3_endpoint or config.objects_dir
            hint = " (does the server keep its objects there? see --s3-endpoint)"
            raise SessionError(
                f"the RO-Crate could not be written to the object store at {where}: "
                f"{exc.code}: {exc.message}{hint if exc.code == 'NoSuchBucket' else ''}; the "
                "session is still open"
            ) from None
        finally:
            await objects.close()

    result = run_with_services(config, action)
    record = result.session
    if as_json:
        out = _as_json(record)
        out["ro_crate"] = (
            {"url": result.crate, "written": result.crate_written} if result.crate else None
        )
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"closed session {record.id} ({when(record.closed)} by {record.closed_by})")
    if result.crate_written:
        click.echo(f"RO-Crate written to {result.crate}")
    elif result.crate:
        click.echo(f"RO-Crate (written earlier): {result.crate}")


@session.command("list")
@click.option("--form", "form_name", help="Only sessions of this form.")
@click.option("--owner", help="Only this user's sessions.")
@click.option("--bucket", help="Only sessions in this bucket.")
@click.option("--state", type=click.Choice(["open", "closed", "expired"]))
@click.option("--since", help="Opened at or after: 2026-11-25, 2026-11-25T14:30Z or 7d (ago).")
@click.option("--until", help="Opened at or before (a date includes that whole day).")
@click.option(
    "--where",
    "wheres",
    multiple=True,
    metavar="COND",
    help="FIELD=VALUE, FIELD>=V, FIELD<=V or FIELD~TEXT (repeatable; with --form values get "
    "the field's type).",
)
@click.option("--limit", type=click.IntRange(1, MAX_PAGE), default=50, show_default=True)
@click.option("--cursor", help="Continue after the page that printed this cursor.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@data_dir_option
def session_list(
    form_name: str | None,
    owner: str | None,
    bucket: str | None,
    state: str | None,
    since: str | None,
    until: str | None,
    wheres: tuple[str, ...],
    limit: int,
    cursor: str | None,
    as_json: bool,
    data_dir: Path,
    secret_key_file: Path | None,
) -> None:
    """Search sessions, newest first."""
    created_from = parse_time(since, "--since") if since else None
    created_to = parse_time(until, "--until", end=True) if until else None

    async def action(s: Services) -> Any:
        typed = await s.forms.get(form_name) if form_name and wheres else None
        filters = tuple(parse_where(text, typed) for text in wheres)
        return await s.sessions.search(
            form_name=form_name,
            owner=owner,
            bucket=bucket,
            state=state,
            created_from=created_from,
            created_to=created_to,
            fields=filters,
            limit=limit,
            cursor=cursor,
        )

    page = run_with_services(stores_config(data_dir, secret_key_file), action)
    if as_json:
        document = {
            "sessions": [_as_json(r) for r in page.sessions],
            "total": page.total,
            "next_cursor": page.next_cursor,
        }
        click.echo(json.dumps(document, indent=2))
        return
    click.echo(f"{'ID':<36}  {'FORM':<20} {'OWNER':<16} {'STATE':<7} {'CREATED':<23}  SCOPE")
    for r in page.sessions:
        form_label = f"{r.form_name} v{r.form_version}"
        click.echo(
            f"{r.id:<36}  {form_label:<20} {r.owner:<16} {session_status(r):<7} "
            f"{when(r.created):<23}  s3://{r.bucket}/{r.prefix}"
        )
    click.echo(f"{len(page.sessions)} of {page.total} sessions", err=True)
    if page.next_cursor:
        click.echo(f"more: --cursor {page.next_cursor}", err=True)


@session.command("show")
@click.argument("session_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@data_dir_option
def session_show(
    session_id: str, as_json: bool, data_dir: Path, secret_key_file: Path | None
) -> None:
    """Show a session: its values, form version, scope, state, expiry and what was written."""

    async def action(s: Services) -> tuple[SessionRecord, tuple[int, int]]:
        record = await s.sessions.require(session_id)
        return record, await s.sessions.usage(record.id)

    record, usage = run_with_services(stores_config(data_dir, secret_key_file), action)
    if as_json:
        click.echo(json.dumps(_as_json(record, usage), indent=2))
        return
    click.echo(f"id: {record.id}")
    click.echo(f"form: {record.form_name} v{record.form_version}")
    click.echo(f"scope: s3://{record.bucket}/{record.prefix}")
    click.echo(f"owner: {record.owner}")
    click.echo(f"state: {session_status(record)}")
    click.echo(f"created: {when(record.created)}")
    click.echo(f"expires: {when(record.expires)}")
    if record.closed:
        click.echo(f"closed: {when(record.closed)} by {record.closed_by}")
    click.echo(f"session key: {record.access_key or '-'}")
    click.echo(f"objects: {usage[0]} ({human_size(usage[1])})")
    click.echo("values:")
    for name, value in record.values.items():
        if isinstance(value, list):
            shown = ", ".join(map(str, value))
        else:
            shown = value if isinstance(value, str) else json.dumps(value)
        click.echo(f"  {name}: {shown}")
