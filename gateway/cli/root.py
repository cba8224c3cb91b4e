"""The ``minimo`` group itself: every command group attached, errors as one line.

Errors are printed as one clear line; tracebacks only with ``MINIMO_DEBUG=1``. A closed pipe
(``minimo audit | head -1``) ends a command quietly.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any, NoReturn

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

#: how a shell reports a command ended by SIGPIPE (128 + 13)
SIGPIPE_STATUS = 141


class _OneLineErrors(click.Group):
    """Turns unexpected exceptions into a one-line error instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            result = super().invoke(ctx)
            # flushed here, not at interpreter exit, so a closed pipe is caught below
            sys.stdout.flush()
            return result
        except (click.exceptions.Exit, click.ClickException, click.Abort, KeyboardInterrupt):
            raise
        except BrokenPipeError:
            _quiet_on_closed_pipe()
        except Exception as exc:
            if os.environ.get("MINIMO_DEBUG"):
                traceback.print_exc()
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


def _quiet_on_closed_pipe() -> NoReturn:
    """The reader of our output went away (``minimo audit | head -1``): stop quietly with the
    status a shell gives a command killed by SIGPIPE, as ``cat`` would. stdout points at
    /dev/null first, so the interpreter's last flush has nowhere to fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise click.exceptions.Exit(SIGPIPE_STATUS)


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """minimo: an S3 gateway that refuses raw data without its metadata."""


for _command in (serve, user, key, certs, form, policy, session, audit, reconcile, adopt, verify):
    main.add_command(_command)
