"""``minimo form``: create, update, import, show, list the forms sessions are validated with.

Every edit makes a new version; open sessions keep theirs. Running servers see a new version at
once. Problems print one line each (``fields[2].type: unknown type``) and exit with status 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from gateway.cli.options import data_dir_option, read_json, read_text
from gateway.cli.stores import operator, run_with_services, stores_config
from policy.services import Services


@click.group()
def form() -> None:
    """Define the forms sessions are validated with (every edit makes a new version)."""


@form.command("create")
@click.option(
    "--file",
    "path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help='The form as JSON: {"name", "title", "fields": [...]}.',
)
@data_dir_option
def form_create(path: Path, data_dir: Path, secret_key_file: Path | None) -> None:
    """Create a form from a JSON file (version 1)."""
    definition = read_json(path)
    created = run_with_services(
        stores_config(data_dir, secret_key_file), lambda s: s.forms.create(definition, operator())
    )
    click.echo(f"created form {created.name} version {created.version}")


@form.command("update")
@click.option("--file", "path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@data_dir_option
def form_update(path: Path, data_dir: Path, secret_key_file: Path | None) -> None:
    """Store a new version of a form from a JSON file (open sessions keep their version)."""
    definition = read_json(path)

    name = definition.get("name") if isinstance(definition, dict) else None

    async def action(s: Services) -> tuple[int, int]:
        before = await s.forms.find(name) if isinstance(name, str) else None
        updated = await s.forms.update(definition, operator())
        return (before.version if before else 0), updated.version

    before, after = run_with_services(stores_config(data_dir, secret_key_file), action)
    if before == after:
        click.echo(f"form {name} unchanged (version {after})")
    else:
        click.echo(f"updated form {name} to version {after}")


@form.command("import")
@click.argument("name")
@click.option(
    "--text",
    "path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A form file of the original minimo (name, then name/prompt/type blocks).",
)
@data_dir_option
def form_import(name: str, path: Path, data_dir: Path, secret_key_file: Path | None) -> None:
    """Import an original-minimo form file as form NAME."""
    text = read_text(path)
    imported = run_with_services(
        stores_config(data_dir, secret_key_file),
        lambda s: s.forms.import_text(name, text, operator()),
    )
    click.echo(
        f"imported form {imported.name} version {imported.version} ({len(imported.fields)} fields)"
    )


@form.command("show")
@click.argument("name")
@click.option("--version", "version", type=click.IntRange(min=1), help="An older version.")
@click.option("--schema", is_flag=True, help="Print the JSON Schema values are validated with.")
@data_dir_option
def form_show(
    name: str, version: int | None, schema: bool, data_dir: Path, secret_key_file: Path | None
) -> None:
    """Print a form (as a file `form update --file` reads) or its JSON Schema."""
    shown = run_with_services(
        stores_config(data_dir, secret_key_file), lambda s: s.forms.get(name, version)
    )
    click.echo(json.dumps(shown.json_schema() if schema else shown.to_dict(), indent=2))


@form.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@data_dir_option
def form_list(as_json: bool, data_dir: Path, secret_key_file: Path | None) -> None:
    """List forms (latest versions)."""
    forms = run_with_services(stores_config(data_dir, secret_key_file), lambda s: s.forms.list())
    if as_json:
        click.echo(json.dumps([f.to_dict() for f in forms], indent=2))
        return
    click.echo(f"{'NAME':<24} {'VERSION':>7} {'FIELDS':>6}  TITLE")
    for f in forms:
        click.echo(f"{f.name:<24} {f.version:>7} {len(f.fields):>6}  {f.title}")
