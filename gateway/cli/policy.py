"""``minimo policy``: set and show the rules (which bucket/prefix needs which forms).

A new policy is in force on running servers within 2 s (see :mod:`policy.catalog`); without one
every write is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from gateway.cli.options import data_dir_option, read_text
from gateway.cli.output import when
from gateway.cli.stores import operator, run_with_services, stores_config
from policy.services import Services
from policy.timestamps import utc_text_or_none


@click.group()
def policy() -> None:
    """The rules: which bucket/prefix needs which forms (no rule = writes refused)."""


@policy.command("set")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))
@data_dir_option
def policy_set(path: Path, data_dir: Path, secret_key_file: Path | None) -> None:
    """Put the policy in FILE (TOML, [[rule]] tables) in force (servers: within 2 s)."""
    text = read_text(path)

    async def action(s: Services) -> tuple[int | None, int, int]:
        before = await s.policies.stored()
        after = await s.policies.set(text, operator())
        return (before.version if before else None), after.version, len(after.policy.rules)

    before, after, rules = run_with_services(stores_config(data_dir, secret_key_file), action)
    if before == after:
        click.echo(f"policy unchanged (version {after})")
    else:
        click.echo(f"policy version {after} in force ({rules} rules)")


@policy.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print the parsed rules as JSON.")
@click.option("--version", "version", type=click.IntRange(min=1), help="An older version.")
@data_dir_option
def policy_show(
    as_json: bool, version: int | None, data_dir: Path, secret_key_file: Path | None
) -> None:
    """Print the policy in force (as the TOML it was set from)."""
    stored = run_with_services(
        stores_config(data_dir, secret_key_file), lambda s: s.policies.stored(version)
    )
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
        f"# policy version {stored.version}, set {when(stored.created)} by {stored.created_by}"
    )
    click.echo(stored.source.rstrip("\n"))
