"""What the commands that reach a server's stores share: the ``--s3-*`` options, gathered into
one :class:`S3Options`, and the Config of a command working on existing stores."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from gateway.config import Config

DataDirOption = Callable[[Callable[..., Any]], Callable[..., Any]]
MakeConfig = Callable[[Path, Path | None], Config]


@dataclass(frozen=True, slots=True)
class S3Options:
    """``--s3-endpoint/--s3-access-key/--s3-secret-key/--s3-region`` as given."""

    endpoint: str | None
    access_key: str | None
    secret_key: str | None
    region: str

    def check(self) -> None:
        """An endpoint needs both keys, and keys need an endpoint (a usage error otherwise)."""
        if self.endpoint and not (self.access_key and self.secret_key):
            raise click.UsageError("--s3-endpoint needs --s3-access-key and --s3-secret-key")
        if not self.endpoint and (self.access_key or self.secret_key):
            raise click.UsageError("--s3-access-key/--s3-secret-key need --s3-endpoint")

    def apply(self, config: Config) -> None:
        config.s3_endpoint = self.endpoint or None
        config.s3_access_key = self.access_key
        config.s3_secret_key = self.secret_key
        config.s3_region = self.region


def s3_options(
    endpoint_help: str = "The S3 object store the server uses (default: DATA_DIR/objects).",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The four ``--s3-*`` options (with their MINIMO_S3_* variables), handed to the command as
    one ``s3: S3Options`` argument."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def with_s3(
            *args: Any,
            s3_endpoint: str | None,
            s3_access_key: str | None,
            s3_secret_key: str | None,
            s3_region: str,
            **kwargs: Any,
        ) -> Any:
            s3 = S3Options(s3_endpoint, s3_access_key, s3_secret_key, s3_region)
            return command(*args, s3=s3, **kwargs)

        options = (
            click.option("--s3-endpoint", envvar="MINIMO_S3_ENDPOINT", help=endpoint_help),
            click.option("--s3-access-key", envvar="MINIMO_S3_ACCESS_KEY"),
            click.option("--s3-secret-key", envvar="MINIMO_S3_SECRET_KEY"),
            click.option(
                "--s3-region", default="us-east-1", show_default=True, envvar="MINIMO_S3_REGION"
            ),
        )
        for option in reversed(options):  # listed in --help in the order above
            with_s3 = option(with_s3)
        return with_s3

    return decorate


def existing_stores_config(
    make_config: MakeConfig, data_dir: Path, secret_key_file: Path | None, s3: S3Options
) -> Config:
    """The Config of a command that works on a server's existing stores (reconcile, adopt,
    closing with a crate): the object store options checked, the metadata store required to
    exist."""
    s3.check()
    config = make_config(data_dir, secret_key_file)
    s3.apply(config)
    if not config.mongo_uri and not config.sqlite_path.is_file():
        # Opening would create an empty store: every object would look unrecorded.
        raise click.ClickException(
            f"no metadata store at {config.sqlite_path}: check --data-dir (or pass --mongo-uri)"
        )
    return config
