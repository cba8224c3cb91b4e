"""Opening the stores for one command: its Config, running one action on them, who acts.

A command opens the metadata store (and the secret key) named by its options, runs one action
with the identity service or all of policy's services, and closes them again; the errors
people can act on become one clear line (or one line per problem) instead of a traceback.

The CLI is the server operator's tool, so it acts with admin rights as ``cli:<OS user>``
(:func:`operator`); the options that name a minimo user instead resolve it with
:func:`user_principal`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click

from gateway.cli.options import S3Options, mongo_uri
from gateway.cli.output import problems
from gateway.config import Config
from policy.audit import operator_name
from policy.catalog import CatalogError
from policy.crypto import SecretKeyError
from policy.forms import FormDefinitionError, FormValidationError
from policy.identity import IdentityError, IdentityService
from policy.principal import Principal, Role
from policy.rules import PolicyError
from policy.services import Services
from policy.sessions import SessionError

T = TypeVar("T")


def stores_config(data_dir: Path, secret_key_file: Path | None) -> Config:
    """The Config of the running command's ``--data-dir``/``--secret-key-file``/``--mongo-uri``."""
    return Config(data_dir=data_dir, secret_key_file=secret_key_file, mongo_uri=mongo_uri())


def existing_stores_config(data_dir: Path, secret_key_file: Path | None, s3: S3Options) -> Config:
    """The Config of a command that works on a server's existing stores (reconcile, adopt,
    closing with a crate): the object store options checked, the metadata store required to
    exist."""
    s3.check()
    config = stores_config(data_dir, secret_key_file)
    s3.apply(config)
    if not config.mongo_uri and not config.sqlite_path.is_file():
        # Opening would create an empty store: every object would look unrecorded.
        raise click.ClickException(
            f"no metadata store at {config.sqlite_path}: check --data-dir (or pass --mongo-uri)"
        )
    return config


async def _on_identity(config: Config, action: Callable[[IdentityService], Awaitable[T]]) -> T:
    from gateway.server import open_identity

    identity = await open_identity(config)
    try:
        return await action(identity)
    finally:
        await identity.store.close()


def run_with_identity(config: Config, action: Callable[[IdentityService], Awaitable[T]]) -> T:
    """Open the stores of ``config``, run ``action``, close them; errors become one line."""
    from gateway.server import ServeError

    try:
        return asyncio.run(_on_identity(config, action))
    except (IdentityError, ServeError, SecretKeyError) as exc:
        raise click.ClickException(str(exc)) from exc


async def on_services(config: Config, action: Callable[[Services], Awaitable[T]]) -> T:
    """Open the stores of ``config``, run ``action`` with policy's services, close them."""
    return await _on_identity(config, lambda identity: action(Services.build(identity)))


def run_with_services(config: Config, action: Callable[[Services], Awaitable[T]]) -> T:
    """:func:`on_services` as a command runs it: known errors become clean lines."""
    from gateway.server import ServeError

    try:
        return asyncio.run(on_services(config, action))
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
        raise problems(exc) from exc


def operator() -> Principal:
    """The CLI's own principal: an admin named after the OS user (``cli:alice``)."""
    return Principal(user=operator_name(), role=Role.ADMIN)


async def user_principal(services: Services, name: str) -> Principal:
    """The active minimo user ``name`` as a principal (SessionError when there is none)."""
    user = await services.identity.get_user(name)
    if user is None or not user.active:
        raise SessionError(f"no user {name!r} (create one with minimo user add)")
    return Principal(user=user.name, role=user.role)
