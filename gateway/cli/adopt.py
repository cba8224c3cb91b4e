"""``minimo adopt``: link existing data (the work is :mod:`gateway.usecases.adopt`).

It opens the server's stores directly, like ``reconcile``, so it takes the same object store
options.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from gateway.cli.options import S3Options, data_dir_option, parse_sets, s3_options
from gateway.cli.output import validation_lines
from gateway.cli.stores import existing_stores_config, on_services, user_principal
from gateway.config import Config
from gateway.protocol.errors import S3Error
from policy.forms import FormValidationError
from policy.services import Services
from policy.sessions import SessionError


# The store options are added to the finished command (not its function), which lists them
# last in --help, after the object store options, as this command always has.
@data_dir_option
@click.command("adopt")
@click.option("--bucket", required=True)
@click.option("--prefix", required=True, help="Adopt the objects under this key prefix.")
@click.option("--form", "form_name", required=True, help="The form of the new session.")
@click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE", help="A value (repeatable).")
@click.option(
    "--as",
    "as_user",
    default="admin",
    show_default=True,
    help="The admin who owns the new session and is recorded as the objects' principal.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (session id and counts).")
@s3_options()
def adopt(
    bucket: str,
    prefix: str,
    form_name: str,
    sets: tuple[str, ...],
    as_user: str,
    as_json: bool,
    s3: S3Options,
    data_dir: Path,
    secret_key_file: Path | None,
) -> None:
    """Link objects under BUCKET/PREFIX that have no metadata to a new session."""
    values = parse_sets(sets)
    config = existing_stores_config(data_dir, secret_key_file, s3)
    try:
        out = asyncio.run(_adopt(config, as_user, bucket, prefix, form_name, values))
    except FormValidationError as exc:
        raise click.ClickException("\n".join(validation_lines(exc))) from exc
    except SessionError as exc:
        raise click.ClickException(str(exc)) from exc
    except S3Error as exc:
        raise click.ClickException(f"object store: {exc.code}: {exc.message}") from exc
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    for key, why in out["skipped"]:
        click.echo(f"skipped s3://{bucket}/{key}: {why}")
    counts = out["counts"]
    click.echo(f"session: {out['session']}")
    click.echo(
        f"adopted {counts['adopted']} objects ({counts['bytes']} bytes); skipped "
        f"{counts['skipped_recorded']} recorded, {counts['skipped_stamped']} stamped, "
        f"{counts['skipped_busy']} busy"
    )


async def _adopt(
    config: Config,
    as_user: str,
    bucket: str,
    prefix: str,
    form_name: str,
    values: dict[str, object],
) -> dict[str, object]:
    from gateway.backends import open_object_store
    from gateway.usecases.adopt import AdoptResult
    from gateway.usecases.adopt import adopt as run_adopt

    async def action(services: Services) -> AdoptResult:
        principal = await user_principal(services, as_user)
        objects = open_object_store(config)
        await objects.start()
        try:
            return await run_adopt(objects, services, principal, bucket, prefix, form_name, values)
        finally:
            await objects.close()

    result = await on_services(config, action)
    return {
        "session": result.session.id,
        "counts": result.counts(),
        "skipped": [[key, why] for key, why in result.skipped],
    }
