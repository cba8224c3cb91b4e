"""``minimo key``: create, list, revoke a user's personal S3 access keys.

A secret is shown once, at creation, and never listed; running servers refuse a revoked key
within 5 s.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from gateway.cli.options import data_dir_option
from gateway.cli.output import when
from gateway.cli.stores import run_with_identity, stores_config


@click.group()
def key() -> None:
    """Manage personal S3 access keys."""


@key.command("create")
@click.argument("user_name", metavar="USER")
@click.option("--label", help="A name for people (up to 64 characters), shown in key lists.")
@click.option("--read-only", is_flag=True, help="The key only reads (a reader's keys always do).")
@click.option(
    "--json", "as_json", is_flag=True, help='Print {"access_key": ..., "secret_key": ...}.'
)
@data_dir_option
def key_create(
    user_name: str,
    label: str | None,
    read_only: bool,
    as_json: bool,
    data_dir: Path,
    secret_key_file: Path | None,
) -> None:
    """Create an access key for USER; its secret is shown only now."""
    credential = run_with_identity(
        stores_config(data_dir, secret_key_file),
        lambda i: i.create_key(user_name, label=label, read_only=read_only),
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
    keys = run_with_identity(stores_config(data_dir, secret_key_file), lambda i: i.list_keys(owner))
    if as_json:
        rows = [
            {
                "access_key": k.access_key,
                "user": k.owner,
                "created": k.created.isoformat(),
                "revoked": k.revoked.isoformat() if k.revoked else None,
                "label": k.label,
                "read_only": k.read_only,
            }
            for k in keys
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'ACCESS KEY':<22} {'USER':<24} {'CREATED':<24} {'STATUS':<32} LABEL")
    for k in keys:
        status = "active" if k.active else f"revoked {when(k.revoked)}"
        status += ", read-only" if k.read_only else ""
        line = (
            f"{k.access_key:<22} {k.owner:<24} {when(k.created):<24} {status:<32} {k.label or ''}"
        )
        click.echo(line.rstrip())


@key.command("revoke")
@click.argument("access_key")
@data_dir_option
def key_revoke(access_key: str, data_dir: Path, secret_key_file: Path | None) -> None:
    """Revoke ACCESS_KEY (running servers refuse it within 5 s)."""
    run_with_identity(stores_config(data_dir, secret_key_file), lambda i: i.revoke_key(access_key))
    click.echo(f"revoked {access_key}")
