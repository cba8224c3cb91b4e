"""The ``minimo`` group itself: every command group attached, errors as one line.

Errors are printed as one clear line; tracebacks only with ``MINIMO_DEBUG=1``.
"""

from __future__ import annotations

import os
import traceback
from typing import Any

import click

from gateway.cli.adopt import adopt
from gateway.cli.audit import audit
from gateway.cli.certs import certs
from gateway.cli.form import form
from gateway.cli.key import key
from gateway.cli.policy import policy
from gateway.cli.reconcile import reconcile
from gateway.cli.serve import serve
from gateway.cli.session import session
from gateway.cli.user import user
from gateway.cli.verify import verify


class _OneLineErrors(click.Group):
    """Turns unexpected exceptions into a one-line error instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("MINIMO_DEBUG"):
                traceback.print_exc()
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """minimo: an S3 gateway that refuses raw data without its metadata."""


for _command in (serve, user, key, certs, form, policy, session, audit, reconcile, adopt, verify):
    main.add_command(_command)
