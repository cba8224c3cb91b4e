"""The ``minimo adopt`` command: link existing data (the work is :mod:`gateway.usecases.adopt`).

It opens the server's stores directly, like ``reconcile``, so it takes the same object store
options. Attached to the ``minimo`` group by :func:`register` rather than importing
:mod:`gateway.cli`, which would load that module twice under ``python -m gateway.cli``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from gateway.cli_meta import _parse_sets
from gateway.cli_stores import (
    DataDirOption,
    MakeConfig,
    S3Options,
    existing_stores_config,
    s3_options,
)
from gateway.config import Config
from gateway.protocol.errors import S3Error
from policy.forms import FormValidationError
from policy.principal import Principal, Role
from policy.sessions import SessionError

_make_config: MakeConfig | None = None


def register(main: click.Group, data_dir_option: DataDirOption, make_config: MakeConfig) -> None:
    """Add ``adopt`` to ``main``; ``data_dir_option``/``make_config`` are gateway.cli's."""
    global _make_config
    _make_config = make_config
    main.add_command(data_dir_option(adopt))


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
    values = _parse_sets(sets)
    assert _make_config is not None, "gateway.cli_adopt.register() was not called"
    config = existing_stores_config(_make_config, data_dir, secret_key_file, s3)
    try:
        out = asyncio.run(_adopt(config, as_user, bucket, prefix, form_name, values))
    except FormValidationError as exc:
        lines = [f"{name}: {m}" if name else m for name, ms in exc.errors.items() for m in ms]
        raise click.ClickException("\n".join(lines)) from exc
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
    from gateway.server import open_identity
    from gateway.usecases.adopt import adopt as run_adopt
    from policy.services import Services

    identity = await open_identity(config)
    try:
        services = Services.build(identity)
        user = await identity.get_user(as_user)
        if user is None or not user.active:
            raise SessionError(f"no user {as_user!r} (create one with minimo user add)")
        principal = Principal(user=user.name, role=Role(user.role))
        objects = open_object_store(config)
        await objects.start()
        try:
            result = await run_adopt(
                objects, services, principal, bucket, prefix, form_name, values
            )
        finally:
            await objects.close()
    finally:
        await identity.store.close()
    return {
        "session": result.session.id,
        "counts": result.counts(),
        "skipped": [[key, why] for key, why in result.skipped],
    }
