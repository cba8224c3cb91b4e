"""``minimo certs generate``: a self-signed certificate for ``serve --tls`` (:mod:`gateway.tls`)."""

from __future__ import annotations

from pathlib import Path

import click

from gateway.cli.options import data_dir_option


@click.group()
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
