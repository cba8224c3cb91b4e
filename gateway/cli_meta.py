"""The ``minimo form``, ``policy``, ``session`` and ``audit`` commands.

Like the rest of the CLI they act on the stores of ``--data-dir`` / ``--mongo-uri``, also while
servers run on them (forms and sessions at once, the policy within 2 s: see
:mod:`policy.catalog`). The CLI is the server operator's tool, so it acts with admin rights and
files its changes in the audit log as ``cli:<OS user>``. Two options name minimo users instead:
``session open --owner USER`` opens a session *for* USER, and USER must be allowed to open
sessions there by the policy (the CLI does not hand out write rights the policy does not give);
``session close --as USER`` closes as USER (only the owner or an admin may); ``--ro-crate``
first writes the session's RO-Crate into its prefix (:mod:`gateway.usecases.session_crate`), which
needs
the server's object store (the ``--s3-*`` options when it is S3).

Problems print one line each (``temp_c: must be at most 50``) and exit with status 1.

These commands are attached to the ``minimo`` group by :func:`register`, which gets the shared
``--data-dir`` options from :mod:`gateway.cli`; importing :mod:`gateway.cli` here instead would
load it twice under ``python -m gateway.cli`` (once as ``__main__``).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from gateway.cli_stores import S3Options, existing_stores_config, s3_options
from gateway.protocol.errors import S3Error
from gateway.usecases.session_crate import CloseResult
from policy.audit import event_json, operator_name
from policy.catalog import CatalogError
from policy.crypto import SecretKeyError
from policy.durations import DurationError, parse_duration
from policy.forms import FormDefinitionError, FormValidationError
from policy.identity import IdentityError
from policy.principal import Principal, Role
from policy.rules import PolicyError
from policy.services import Services
from policy.sessions import SessionError, parse_where, session_status
from policy.store.base import MAX_PAGE, AuditEvent, SessionRecord
from policy.timestamps import utc_text_or_none

T = TypeVar("T")

# -- wiring --------------------------------------------------------------------------------------

#: set by register(): gateway.cli's ``data_dir_option`` and config factory
_data_dir_option: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None
_make_config: Callable[[Path, Path | None], Any] | None = None
#: commands that open the stores; register() gives each the shared --data-dir options
_STORE_COMMANDS: list[click.Command] = []


def _uses_store(command: click.Command) -> click.Command:
    _STORE_COMMANDS.append(command)
    return command


def register(
    main: click.Group,
    data_dir_option: Callable[[Callable[..., Any]], Callable[..., Any]],
    make_config: Callable[[Path, Path | None], Any],
) -> None:
    """Add the groups to ``main``; ``data_dir_option``/``make_config`` are gateway.cli's."""
    global _data_dir_option, _make_config
    _data_dir_option, _make_config = data_dir_option, make_config
    for command in _STORE_COMMANDS:
        if any(p.name == "data_dir" for p in command.params):
            continue

        def holder() -> None: ...

        data_dir_option(holder)
        # Same order click itself gives decorator options (they are collected bottom-up).
        command.params.extend(reversed(holder.__click_params__))  # type: ignore[attr-defined]
    for group in (form, policy, session):
        main.add_command(group)
    main.add_command(audit)


class Problems(click.ClickException):
    """One or more problems, printed one per line (no "Error:" prefix on field messages)."""

    def __init__(self, lines: list[str], heading: str | None = None) -> None:
        self.lines = [line for line in lines if line]
        self.heading = heading
        super().__init__("; ".join(self.lines))

    def show(self, file: IO[Any] | None = None) -> None:
        out = file or sys.stderr
        if self.heading:
            click.echo(self.heading, file=out)
        for line in self.lines:
            click.echo(line, file=out)


def _problems(exc: Exception) -> click.ClickException:
    if isinstance(exc, FormValidationError):
        lines = [
            f"{name}: {message}" if name else message
            for name, messages in exc.errors.items()
            for message in messages
        ]
        return Problems(lines)
    if isinstance(exc, FormDefinitionError):
        return Problems(exc.problems, "invalid form definition:")
    if isinstance(exc, PolicyError):
        return Problems(exc.problems, "invalid policy:")
    return click.ClickException(str(exc))


def _run(
    data_dir: Path, secret_key_file: Path | None, action: Callable[[Services], Awaitable[T]]
) -> T:
    """Open the stores, build the services, run ``action``; known errors become clean lines."""
    assert _make_config is not None, "gateway.cli_meta.register() was not called"
    return _run_config(_make_config(data_dir, secret_key_file), action)


def _run_config(config: Any, action: Callable[[Services], Awaitable[T]]) -> T:
    """:func:`_run` with a configuration made by the caller (one with object store options)."""
    from gateway.server import ServeError, open_identity

    async def main() -> T:
        identity = await open_identity(config)
        try:
            return await action(Services.build(identity))
        finally:
            await identity.store.close()

    try:
        return asyncio.run(main())
    except (
        FormValidationError,
        FormDefinitionError,
        PolicyError,
        SessionError,
        CatalogError,
        IdentityError,
        ServeError,
        SecretKeyError,
    ) as exc:
        raise _problems(exc) from exc


def _operator() -> Principal:
    return Principal(user=operator_name(), role=Role.ADMIN)


async def _user_principal(services: Services, name: str) -> Principal:
    user = await services.identity.get_user(name)
    if user is None or not user.active:
        raise SessionError(f"no user {name!r} (create one with minimo user add)")
    return Principal(user=user.name, role=user.role)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from exc


def _read_json(path: Path) -> Any:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{path}: not valid JSON: {exc}") from exc


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def _parse_time(text: str, option: str, *, end: bool = False) -> datetime:
    """An ISO date or date-time (UTC unless it says otherwise), or a duration ago ("7d")."""
    raw = text.strip()
    try:
        return datetime.now(UTC) - parse_duration(raw)
    except DurationError:
        pass
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            # --until 2026-11-25 means "through that day", --since "from its start".
            moment = datetime.combine(day, time.max if end else time.min)
        else:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: use a date (2026-11-25), a date-time (2026-11-25T14:30Z) or a duration "
            "ago (7d, 12h)",
            param_hint=option,
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


# -- forms ---------------------------------------------------------------------------------------
@click.group()
def form() -> None:
    """Define the forms sessions are validated with (every edit makes a new version)."""


@_uses_store
@form.command("create")
@click.option(
    "--file",
    "path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help='The form as JSON: {"name", "title", "fields": [...]}.',
)
def form_create(path: Path, data_dir: Path, secret_key_file: Path | None) -> None:
    """Create a form from a JSON file (version 1)."""
    definition = _read_json(path)
    created = _run(data_dir, secret_key_file, lambda s: s.forms.create(definition, _operator()))
    click.echo(f"created form {created.name} version {created.version}")


@_uses_store
@form.command("update")
@click.option("--file", "path", required=True, type=click.Path(dir_okay=False, path_type=Path))
def form_update(path: Path, data_dir: Path, secret_key_file: Path | None) -> None:
    """Store a new version of a form from a JSON file (open sessions keep their version)."""
    definition = _read_json(path)

    name = definition.get("name") if isinstance(definition, dict) else None

    async def action(s: Services) -> tuple[int, int]:
        before = await s.forms.find(name) if isinstance(name, str) else None
        updated = await s.forms.update(definition, _operator())
        return (before.version if before else 0), updated.version

    before, after = _run(data_dir, secret_key_file, action)
    if before == after:
        click.echo(f"form {name} unchanged (version {after})")
    else:
        click.echo(f"updated form {name} to version {after}")


@_uses_store
@form.command("import")
@click.argument("name")
@click.option(
    "--text",
    "path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A form file of the original minimo (name, then name/prompt/type blocks).",
)
def form_import(name: str, path: Path, data_dir: Path, secret_key_file: Path | None) -> None:
    """Import an original-minimo form file as form NAME."""
    text = _read_text(path)
    imported = _run(
        data_dir, secret_key_file, lambda s: s.forms.import_text(name, text, _operator())
    )
    click.echo(
        f"imported form {imported.name} version {imported.version} ({len(imported.fields)} fields)"
    )


@_uses_store
@form.command("show")
@click.argument("name")
@click.option("--version", "version", type=click.IntRange(min=1), help="An older version.")
@click.option("--schema", is_flag=True, help="Print the JSON Schema values are validated with.")
def form_show(
    name: str, version: int | None, schema: bool, data_dir: Path, secret_key_file: Path | None
) -> None:
    """Print a form (as a file `form update --file` reads) or its JSON Schema."""
    shown = _run(data_dir, secret_key_file, lambda s: s.forms.get(name, version))
    click.echo(json.dumps(shown.json_schema() if schema else shown.to_dict(), indent=2))


@_uses_store
@form.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def form_list(as_json: bool, data_dir: Path, secret_key_file: Path | None) -> None:
    """List forms (latest versions)."""
    forms = _run(data_dir, secret_key_file, lambda s: s.forms.list())
    if as_json:
        click.echo(json.dumps([f.to_dict() for f in forms], indent=2))
        return
    click.echo(f"{'NAME':<24} {'VERSION':>7} {'FIELDS':>6}  TITLE")
    for f in forms:
        click.echo(f"{f.name:<24} {f.version:>7} {len(f.fields):>6}  {f.title}")


# -- policy --------------------------------------------------------------------------------------
@click.group()
def policy() -> None:
    """The rules: which bucket/prefix needs which forms (no rule = writes refused)."""


@_uses_store
@policy.command("set")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))
def policy_set(path: Path, data_dir: Path, secret_key_file: Path | None) -> None:
    """Put the policy in FILE (TOML, [[rule]] tables) in force (servers: within 2 s)."""
    text = _read_text(path)

    async def action(s: Services) -> tuple[int | None, int, int]:
        before = await s.policies.stored()
        after = await s.policies.set(text, _operator())
        return (before.version if before else None), after.version, len(after.policy.rules)

    before, after, rules = _run(data_dir, secret_key_file, action)
    if before == after:
        click.echo(f"policy unchanged (version {after})")
    else:
        click.echo(f"policy version {after} in force ({rules} rules)")


@_uses_store
@policy.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print the parsed rules as JSON.")
@click.option("--version", "version", type=click.IntRange(min=1), help="An older version.")
def policy_show(
    as_json: bool, version: int | None, data_dir: Path, secret_key_file: Path | None
) -> None:
    """Print the policy in force (as the TOML it was set from)."""
    stored = _run(data_dir, secret_key_file, lambda s: s.policies.stored(version))
    if stored is None:
        if version is not None:
            raise click.ClickException(f"no policy version {version}")
        if as_json:
            click.echo(json.dumps({"version": None, "rules": []}, indent=2))
        else:
            click.echo("# No policy set: every write is refused. Set one with minimo policy set.")
        return
    if as_json:
        document = {
            "version": stored.version,
            "created": utc_text_or_none(stored.created),
            "created_by": stored.created_by,
            **stored.policy.to_dict(),
        }
        click.echo(json.dumps(document, indent=2))
        return
    click.echo(
        f"# policy version {stored.version}, set {_when(stored.created)} by {stored.created_by}"
    )
    click.echo(stored.source.rstrip("\n"))


# -- sessions ------------------------------------------------------------------------------------
@click.group()
def session() -> None:
    """Metadata sessions: open one to upload, close it when done."""


def _parse_sets(pairs: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{pair!r}: use FIELD=VALUE", param_hint="--set")
        name = name.strip()
        if name in values:
            # Repeating a field gives a list: --set stain=DAPI --set stain=GFP (multichoice).
            previous = values[name]
            values[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            values[name] = value
    return values


def _session_json(record: SessionRecord, usage: tuple[int, int] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": record.id,
        "form": record.form_name,
        "form_version": record.form_version,
        "values": record.values,
        "bucket": record.bucket,
        "prefix": record.prefix,
        "scope": f"s3://{record.bucket}/{record.prefix}",
        "owner": record.owner,
        "state": session_status(record),
        "created": utc_text_or_none(record.created),
        "expires": utc_text_or_none(record.expires),
        "closed": utc_text_or_none(record.closed),
        "closed_by": record.closed_by,
        "access_key": record.access_key,
    }
    if usage is not None:
        out["objects"], out["bytes"] = usage
    return out


@_uses_store
@session.command("open")
@click.option("--form", "form_name", required=True, help="The form the values follow.")
@click.option("--bucket", required=True)
@click.option("--prefix", help="The key prefix uploads go under (default: '<session id>/').")
@click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE", help="A value (repeatable).")
@click.option("--ttl", help="How long it stays open, e.g. 7d, 12h (default: the policy rule's).")
@click.option("--owner", default="admin", show_default=True, help="The user it is opened for.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (id, access_key, secret_key...).")
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
    values = _parse_sets(sets)

    async def action(s: Services) -> tuple[SessionRecord, Any]:
        principal = await _user_principal(s, owner)
        return await s.sessions.open(principal, form_name, bucket, prefix, values, ttl)

    record, credential = _run(data_dir, secret_key_file, action)
    if as_json:
        out = _session_json(record)
        out["secret_key"] = credential.secret_key
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"id: {record.id}")
    click.echo(f"access_key: {credential.access_key}")
    click.echo(f"secret_key: {credential.secret_key}")
    click.echo(f"scope: s3://{record.bucket}/{record.prefix}")
    click.echo(f"form: {record.form_name} v{record.form_version}")
    click.echo(f"expires: {_when(record.expires)}")


@_uses_store
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
    assert _make_config is not None, "gateway.cli_meta.register() was not called"
    config = existing_stores_config(_make_config, data_dir, secret_key_file, s3)

    async def action(s: Services) -> CloseResult:
        from gateway.backends import open_object_store
        from gateway.usecases.session_crate import close_with_crate
        from gateway.usecases.writes import WritePath
        from policy.enforce import Enforcer
        from ui import session_link

        principal = await _user_principal(s, as_user) if as_user else _operator()
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

    result = _run_config(config, action)
    record = result.session
    if as_json:
        out = _session_json(record)
        out["ro_crate"] = (
            {"url": result.crate, "written": result.crate_written} if result.crate else None
        )
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"closed session {record.id} ({_when(record.closed)} by {record.closed_by})")
    if result.crate_written:
        click.echo(f"RO-Crate written to {result.crate}")
    elif result.crate:
        click.echo(f"RO-Crate (written earlier): {result.crate}")


@_uses_store
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
    created_from = _parse_time(since, "--since") if since else None
    created_to = _parse_time(until, "--until", end=True) if until else None

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

    page = _run(data_dir, secret_key_file, action)
    if as_json:
        document = {
            "sessions": [_session_json(r) for r in page.sessions],
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
            f"{_when(r.created):<23}  s3://{r.bucket}/{r.prefix}"
        )
    click.echo(f"{len(page.sessions)} of {page.total} sessions", err=True)
    if page.next_cursor:
        click.echo(f"more: --cursor {page.next_cursor}", err=True)


@_uses_store
@session.command("show")
@click.argument("session_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def session_show(
    session_id: str, as_json: bool, data_dir: Path, secret_key_file: Path | None
) -> None:
    """Show a session: its values, form version, scope, state, expiry and what was written."""

    async def action(s: Services) -> tuple[SessionRecord, tuple[int, int]]:
        record = await s.sessions.require(session_id)
        return record, await s.sessions.usage(record.id)

    record, usage = _run(data_dir, secret_key_file, action)
    if as_json:
        click.echo(json.dumps(_session_json(record, usage), indent=2))
        return
    click.echo(f"id: {record.id}")
    click.echo(f"form: {record.form_name} v{record.form_version}")
    click.echo(f"scope: s3://{record.bucket}/{record.prefix}")
    click.echo(f"owner: {record.owner}")
    click.echo(f"state: {session_status(record)}")
    click.echo(f"created: {_when(record.created)}")
    click.echo(f"expires: {_when(record.expires)}")
    if record.closed:
        click.echo(f"closed: {_when(record.closed)} by {record.closed_by}")
    click.echo(f"session key: {record.access_key or '-'}")
    click.echo(f"objects: {usage[0]} ({_human_size(usage[1])})")
    click.echo("values:")
    for name, value in record.values.items():
        if isinstance(value, list):
            shown = ", ".join(map(str, value))
        else:
            shown = value if isinstance(value, str) else json.dumps(value)
        click.echo(f"  {name}: {shown}")


# -- audit ---------------------------------------------------------------------------------------


@_uses_store
@click.command("audit")
@click.option("--since", help="From: 2026-11-25, 2026-11-25T14:30Z or 1d (ago).")
@click.option("--until", help="Before (a date includes that whole day).")
@click.option("--user", "principal", help="Only this principal's events.")
@click.option("--action", help="Only this action, e.g. session.open or PutObject.")
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines, one event per line.")
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
    start = _parse_time(since, "--since") if since else None
    end = _parse_time(until, "--until", end=True) if until else None

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

    events = _run(data_dir, secret_key_file, fetch)
    if as_json:
        for event in events:
            click.echo(json.dumps(event_json(event)))
        return
    for e in events:
        reason = f"  {e.reason}" if e.reason else ""
        click.echo(
            f"{_when(e.time)}  {e.principal:<16} {e.action:<16} {e.outcome:<8} {e.target}{reason}"
        )
