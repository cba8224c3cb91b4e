"""The ``minimo`` command: ``serve``, ``user``, ``key`` and ``certs``.

Every subcommand acts on the stores of ``--data-dir`` (or ``MINIMO_DATA_DIR``), also while a
server runs on the same directory: SQLite in WAL mode lets both share the file, and running
servers see new keys at once and revocations within 5 s (see :mod:`policy.identity`). With
``--mongo-uri`` (or ``MINIMO_MONGO_URI``) metadata lives in MongoDB instead; the secret key file
stays in the data dir and must be the same for every process using that database.
Errors are printed as one clear line; tracebacks only with ``MINIMO_DEBUG=1``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import traceback
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from gateway.cli_stores import S3Options, s3_options
from gateway.config import Config
from policy.crypto import SecretKeyError
from policy.identity import IdentityError, IdentityService
from policy.principal import Role

T = TypeVar("T")

DEFAULT_DATA_DIR = "minimo-data"


class _Group(click.Group):
    """Turns unexpected exceptions into a one-line error instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("MINIMO_DEBUG"):
                traceback.print_exc()
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


#: where --mongo-uri is kept in ``click.Context.meta`` (shared by a command and its groups)
_MONGO_URI_META = "minimo.mongo_uri"


def _remember_mongo_uri(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    from policy.store import is_mongo_uri

    if value and not is_mongo_uri(value):
        raise click.BadParameter("must start with mongodb:// or mongodb+srv://", ctx, param)
    ctx.meta[_MONGO_URI_META] = value or None


def _mongo_uri() -> str | None:
    """The --mongo-uri (or MINIMO_MONGO_URI) of the running command, None for sqlite."""
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get(_MONGO_URI_META) if ctx is not None else None


def data_dir_option(f: Callable[..., Any]) -> Callable[..., Any]:
    # --mongo-uri is not passed as an argument: every command with this decorator would need a
    # new parameter. _config() and serve read it from the click context instead.
    f = click.option(
        "--mongo-uri",
        metavar="URI",
        envvar="MINIMO_MONGO_URI",
        expose_value=False,
        callback=_remember_mongo_uri,
        help="Keep metadata in this MongoDB (mongodb://HOST:PORT/DATABASE; database default "
        "minimo) instead of DATA_DIR/minimo.sqlite3. All processes sharing it must use the "
        "same secret key file.",
    )(f)
    f = click.option(
        "--secret-key-file",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="MINIMO_SECRET_KEY_FILE",
        help="Key that encrypts S3 secrets at rest (default DATA_DIR/secret.key; created 0600).",
    )(f)
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=DEFAULT_DATA_DIR,
        show_default=True,
        envvar="MINIMO_DATA_DIR",
        help="Where objects (embedded store) and metadata live.",
    )(f)


def _config(data_dir: Path, secret_key_file: Path | None) -> Config:
    return Config(data_dir=data_dir, secret_key_file=secret_key_file, mongo_uri=_mongo_uri())


def _run_with_identity(config: Config, action: Callable[[IdentityService], Awaitable[T]]) -> T:
    """Open the stores of ``config``, run ``action``, close them; errors become one line."""
    from gateway.server import ServeError, open_identity

    async def main() -> T:
        identity = await open_identity(config)
        try:
            return await action(identity)
        finally:
            await identity.store.close()

    try:
        return asyncio.run(main())
    except (IdentityError, ServeError, SecretKeyError) as exc:
        raise click.ClickException(str(exc)) from exc


def _read_password() -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise click.UsageError("--password-stdin: stdin gave no password")
    return password


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """minimo: an S3 gateway that refuses raw data without its metadata."""


# -- serve ---------------------------------------------------------------------------------------
@main.command()
@data_dir_option
@click.option(
    "--listen",
    default="127.0.0.1:9000",
    show_default=True,
    envvar="MINIMO_LISTEN",
    help="HOST:PORT to listen on. Plain HTTP is allowed on loopback only.",
)
@click.option(
    "--region",
    default="us-east-1",
    show_default=True,
    envvar="MINIMO_REGION",
    help="The region clients sign for.",
)
@s3_options("Store objects at this S3 URL.")
@click.option("--tls", is_flag=True, envvar="MINIMO_TLS", help="Serve HTTPS.")
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="MINIMO_TLS_CERT",
    help="Your own certificate (PEM); default: generated in --certs-dir.",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="MINIMO_TLS_KEY",
    help="The private key of --tls-cert (PEM).",
)
@click.option(
    "--certs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default="certs",
    show_default=True,
    envvar="MINIMO_CERTS_DIR",
    help="Where generated TLS material lives.",
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    envvar="MINIMO_HOSTS",
    help="Extra name or address for the generated certificate (repeatable).",
)
@click.option(
    "--insecure-http",
    is_flag=True,
    envvar="MINIMO_INSECURE_HTTP",
    help="Allow plain HTTP on a non-loopback address.",
)
@click.option("--domain", envvar="MINIMO_DOMAIN", help="Accept virtual-hosted-style requests.")
@click.option("--public-url", envvar="MINIMO_PUBLIC_URL", help="How refusals name this server.")
@click.option(
    "--ui-url",
    envvar="MINIMO_UI_URL",
    help="Serve the web UI and its API on this URL's host name only, and no object reads there "
    "(needs --public-url on another host name).",
)
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="MINIMO_POLICY",
    help="Put this policy file (TOML) in force at start (no new version if unchanged).",
)
@click.option(
    "--access-log",
    is_flag=True,
    envvar="MINIMO_ACCESS_LOG",
    help="Log every request (costs throughput).",
)
def serve(
    data_dir: Path,
    secret_key_file: Path | None,
    listen: str,
    region: str,
    s3: S3Options,
    tls: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
    certs_dir: Path,
    hosts: tuple[str, ...],
    insecure_http: bool,
    domain: str | None,
    public_url: str | None,
    ui_url: str | None,
    policy_file: Path | None,
    access_log: bool,
) -> None:
    """Serve S3 (and /_minimo/) on --listen."""
    from gateway.server import ServeError, parse_listen, run
    from gateway.ui_host import check_ui_url

    try:
        host, port = parse_listen(listen)
    except ServeError as exc:
        raise click.BadParameter(str(exc), param_hint="--listen") from exc
    s3.check()
    if ui_url:
        try:
            check_ui_url(ui_url, public_url)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--ui-url") from exc
    if (tls_cert or tls_key) and not tls:
        tls = True  # giving a certificate can only mean HTTPS
    config = Config(
        data_dir=data_dir,
        listen_host=host,
        listen_port=port,
        region=region,
        s3_endpoint=s3.endpoint or None,
        s3_access_key=s3.access_key,
        s3_secret_key=s3.secret_key,
        s3_region=s3.region,
        tls=tls,
        tls_cert=tls_cert,
        tls_key=tls_key,
        certs_dir=certs_dir,
        hosts=list(hosts),
        insecure_http=insecure_http,
        domain=domain,
        public_url=public_url,
        ui_url=ui_url or None,
        secret_key_file=secret_key_file,
        mongo_uri=_mongo_uri(),
        policy_file=policy_file,
    )
    try:
        run(config, access_log=access_log)
    except ServeError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        pass


# -- users ---------------------------------------------------------------------------------------
@main.group()
def user() -> None:
    """Manage users."""


@user.command("add")
@click.argument("name")
@click.option(
    "--role", required=True, type=click.Choice([r.value for r in Role]), help="What they may do."
)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of stdin (default: generate and print one).",
)
@data_dir_option
def user_add(
    name: str, role: str, password_stdin: bool, data_dir: Path, secret_key_file: Path | None
) -> None:
    """Create user NAME."""
    password = _read_password() if password_stdin else None
    created, used = _run_with_identity(
        _config(data_dir, secret_key_file), lambda ident: ident.add_user(name, role, password)
    )
    click.echo(f"user: {created.name}")
    click.echo(f"role: {created.role.value}")
    if password is None:
        click.echo(f"password: {used}")


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@data_dir_option
def user_list(as_json: bool, data_dir: Path, secret_key_file: Path | None) -> None:
    """List users."""
    users = _run_with_identity(_config(data_dir, secret_key_file), lambda i: i.list_users())
    if as_json:
        rows = [
            {
                "name": u.name,
                "role": u.role.value,
                "created": u.created.isoformat(),
                "deleted": u.deleted.isoformat() if u.deleted else None,
            }
            for u in users
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'NAME':<24} {'ROLE':<9} {'CREATED':<24} STATUS")
    for u in users:
        status = "active" if u.active else f"deleted {_when(u.deleted)}"
        click.echo(f"{u.name:<24} {u.role.value:<9} {_when(u.created):<24} {status}")


@user.command("set-role")
@click.argument("name")
@click.argument("role", type=click.Choice([r.value for r in Role]))
@data_dir_option
def user_set_role(name: str, role: str, data_dir: Path, secret_key_file: Path | None) -> None:
    """Give user NAME another ROLE (running servers apply it within 5 s)."""
    _run_with_identity(_config(data_dir, secret_key_file), lambda i: i.set_role(name, role))
    click.echo(f"user {name} is now {role}")


@user.command("passwd")
@click.argument("name")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the new password from the first line of stdin (default: generate and print one).",
)
@data_dir_option
def user_passwd(
    name: str, password_stdin: bool, data_dir: Path, secret_key_file: Path | None
) -> None:
    """Set a new password for user NAME."""
    from policy.passwords import generate_password

    password = _read_password() if password_stdin else generate_password()
    _run_with_identity(_config(data_dir, secret_key_file), lambda i: i.set_password(name, password))
    click.echo(f"user: {name}")
    if not password_stdin:
        click.echo(f"password: {password}")


@user.command("delete")
@click.argument("name")
@data_dir_option
def user_delete(name: str, data_dir: Path, secret_key_file: Path | None) -> None:
    """Delete user NAME: their keys stop working (within 5 s on running servers)."""
    _run_with_identity(_config(data_dir, secret_key_file), lambda i: i.delete_user(name))
    click.echo(f"deleted user {name}")


# -- keys ----------------------------------------------------------------------------------------
@main.group()
def key() -> None:
    """Manage personal S3 access keys."""


@key.command("create")
@click.argument("user_name", metavar="USER")
@click.option(
    "--json", "as_json", is_flag=True, help='Print {"access_key": ..., "secret_key": ...}.'
)
@data_dir_option
def key_create(user_name: str, as_json: bool, data_dir: Path, secret_key_file: Path | None) -> None:
    """Create an access key for USER; its secret is shown only now."""
    credential = _run_with_identity(
        _config(data_dir, secret_key_file), lambda i: i.create_key(user_name)
    )
    if as_json:
        click.echo(
            json.dumps({"access_key": credential.access_key, "secret_key": credential.secret_key})
        )
    else:
        click.echo(f"access_key: {credential.access_key}")
        click.echo(f"secret_key: {credential.secret_key}")


@key.command("list")
@click.option("--user", "owner", help="Only this user's keys.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@data_dir_option
def key_list(
    owner: str | None, as_json: bool, data_dir: Path, secret_key_file: Path | None
) -> None:
    """List access keys (never their secrets)."""
    keys = _run_with_identity(_config(data_dir, secret_key_file), lambda i: i.list_keys(owner))
    if as_json:
        rows = [
            {
                "access_key": k.access_key,
                "user": k.owner,
                "created": k.created.isoformat(),
                "revoked": k.revoked.isoformat() if k.revoked else None,
            }
            for k in keys
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'ACCESS KEY':<22} {'USER':<24} {'CREATED':<24} STATUS")
    for k in keys:
        status = "active" if k.active else f"revoked {_when(k.revoked)}"
        click.echo(f"{k.access_key:<22} {k.owner:<24} {_when(k.created):<24} {status}")


@key.command("revoke")
@click.argument("access_key")
@data_dir_option
def key_revoke(access_key: str, data_dir: Path, secret_key_file: Path | None) -> None:
    """Revoke ACCESS_KEY (running servers refuse it within 5 s)."""
    _run_with_identity(_config(data_dir, secret_key_file), lambda i: i.revoke_key(access_key))
    click.echo(f"revoked {access_key}")


# -- certificates --------------------------------------------------------------------------------
@main.group()
def certs() -> None:
    """TLS material for --tls."""


@certs.command("generate")
@click.option(
    "--certs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default="certs",
    show_default=True,
    envvar="MINIMO_CERTS_DIR",
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    envvar="MINIMO_HOSTS",
    help="Extra name or address to cover (repeatable).",
)
@data_dir_option
def certs_generate(
    certs_dir: Path, hosts: tuple[str, ...], data_dir: Path, secret_key_file: Path | None
) -> None:
    """Write a self-signed cert.pem and key.pem (replacing any there)."""
    from gateway import tls

    try:
        cert, key_path = tls.generate(certs_dir, hosts)
    except (tls.TlsError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"certificate: {cert}")
    click.echo(f"private key: {key_path} (mode 0600)")
    click.echo(f"names: {', '.join(tls.certificate_names(cert))}")
    click.echo(f"clients trust it with e.g. aws --ca-bundle {cert}")


from gateway.cli_adopt import register as _register_adopt  # noqa: E402
from gateway.cli_meta import register as _register_meta  # noqa: E402 - needs the helpers above
from gateway.cli_reconcile import register as _register_reconcile  # noqa: E402

_register_meta(main, data_dir_option, _config)
_register_reconcile(main, data_dir_option, _config)
_register_adopt(main, data_dir_option, _config)

if __name__ == "__main__":
    main(prog_name="minimo")
