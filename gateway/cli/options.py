"""The options several commands share, and the parsing of values several commands take.

* ``--data-dir``, ``--secret-key-file`` and ``--mongo-uri`` (:func:`data_dir_option`): where the
  stores are. Every command that opens them has these three.
* ``--s3-endpoint/--s3-access-key/--s3-secret-key/--s3-region`` (:func:`s3_options`), gathered
  into one :class:`S3Options`: the object store of ``serve`` and of the commands that work on a
  server's objects (``reconcile``, ``adopt``, ``session close --ro-crate``).
* Values: durations (``7d``), ``--set FIELD=VALUE``, ``--since``/``--until`` instants, and the
  files ``--file``/``--text``/``FILE`` name.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import click

from gateway.config import Config
from policy.durations import DurationError, parse_duration

#: what a decorator adding options to a command looks like
OptionsDecorator = Callable[[Callable[..., Any]], Callable[..., Any]]

DEFAULT_DATA_DIR = "minimo-data"

#: where --mongo-uri is kept in ``click.Context.meta`` (shared by a command and its groups)
_MONGO_URI_META = "minimo.mongo_uri"


# -- where the stores are ------------------------------------------------------------------------
def _remember_mongo_uri(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    from policy.store import is_mongo_uri

    if value and not is_mongo_uri(value):
        raise click.BadParameter("must start with mongodb:// or mongodb+srv://", ctx, param)
    ctx.meta[_MONGO_URI_META] = value or None


def mongo_uri() -> str | None:
    """The --mongo-uri (or MINIMO_MONGO_URI) of the running command, None for sqlite."""
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get(_MONGO_URI_META) if ctx is not None else None


def data_dir_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--data-dir`` and ``--secret-key-file`` (passed to the command) and ``--mongo-uri``
    (read back with :func:`mongo_uri`)."""
    # --mongo-uri is not passed as an argument: every command with this decorator would need a
    # new parameter. stores_config() and serve read it from the click context instead.
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


# -- the object store ----------------------------------------------------------------------------
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
) -> OptionsDecorator:
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


# -- values --------------------------------------------------------------------------------------
def duration_value(ctx: click.Context, param: click.Parameter, value: str) -> timedelta:
    """Callback of an option that takes a duration (``30m``, ``7d``): a bad one is a usage
    error naming the option."""
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise click.BadParameter(str(exc), ctx, param) from exc


def parse_sets(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``--set FIELD=VALUE`` options as form values (a repeated field gives a list)."""
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{pair!r}: use FIELD=VALUE", param_hint="--set")
        name = name.strip()
        if name in values:
            # Repeating a field gives a list: --set stain=DAPI --set stain=GFP (multichoice).
            previous = values[name]
            values[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            values[name] = value
    return values


def parse_time(text: str, option: str, *, end: bool = False) -> datetime:
    """An ISO date or date-time (UTC unless it says otherwise), or a duration ago ("7d")."""
    raw = text.strip()
    try:
        return datetime.now(UTC) - parse_duration(raw)
    except DurationError:
        pass
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            # --until 2026-11-25 means "through that day", --since "from its start".
            moment = datetime.combine(day, time.max if end else time.min)
        else:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: use a date (2026-11-25), a date-time (2026-11-25T14:30Z) or a duration "
            "ago (7d, 12h)",
            param_hint=option,
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def read_text(path: Path) -> str:
    """The file an option names, as text; unreadable is one clear error."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from exc


def read_json(path: Path) -> Any:
    """The JSON file an option names; not JSON is one clear error."""
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{path}: not valid JSON: {exc}") from exc
