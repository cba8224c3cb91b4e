"""``minimo user``: add, list, set-role, passwd, delete (the accounts of :mod:`policy.identity`).

Running servers see role changes and deletions within 5 s.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from gateway.cli.options import data_dir_option
from gateway.cli.output import when
from gateway.cli.stores import run_with_identity, stores_config
from policy.principal import Role


def _read_password() -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise click.UsageError("--password-stdin: stdin gave no password")
    return password


@click.group()
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
    created, used = run_with_identity(
        stores_config(data_dir, secret_key_file), lambda ident: ident.add_user(name, role, password)
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
    users = run_with_identity(stores_config(data_dir, secret_key_file), lambda i: i.list_users())
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
        status = "active" if u.active else f"deleted {when(u.deleted)}"
        click.echo(f"{u.name:<24} {u.role.value:<9} {when(u.created):<24} {status}")


@user.command("set-role")
@click.argument("name")
@click.argument("role", type=click.Choice([r.value for r in Role]))
@data_dir_option
def user_set_role(name: str, role: str, data_dir: Path, secret_key_file: Path | None) -> None:
    """Give user NAME another ROLE (running servers apply it within 5 s)."""
    run_with_identity(stores_config(data_dir, secret_key_file), lambda i: i.set_role(name, role))
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
    run_with_identity(
        stores_config(data_dir, secret_key_file), lambda i: i.set_password(name, password)
    )
    click.echo(f"user: {name}")
    if not password_stdin:
        click.echo(f"password: {password}")


@user.command("delete")
@click.argument("name")
@data_dir_option
def user_delete(name: str, data_dir: Path, secret_key_file: Path | None) -> None:
    """Delete user NAME: their keys stop working (within 5 s on running servers)."""
    run_with_identity(stores_config(data_dir, secret_key_file), lambda i: i.delete_user(name))
    click.echo(f"deleted user {name}")
