"""The audit log: who changed what, and which writes were accepted or refused.

Every service that changes something (forms, policy, sessions; users and keys later) and the
write path record an :class:`~policy.store.base.AuditEvent` through one :class:`Auditor`.

Recording is best-effort on purpose: an event is appended *after* the change it describes has
happened (or the refusal was decided), so failing the caller because the audit store hiccupped
would report a change as failed that in fact took place, and would turn a clear refusal into an
unrelated storage error. A failed append is logged at ERROR level on ``minimo.audit`` instead;
``strict=True`` makes it raise (tests, and callers that must not continue unaudited).
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from policy.principal import Principal
from policy.store.base import AuditEvent, AuditOutcome, MetadataStore, StoreUnavailable
from policy.timestamps import utc_text

log = logging.getLogger("minimo.audit")

#: the principal name of events nobody authenticated for
ANONYMOUS = "-"


def operator_name() -> str:
    """How changes made from the command line are filed: ``cli:<OS user>``.

    The CLI runs on the server's data directory with admin rights and no minimo login, so the
    operating-system account is the most truthful name there is for who made the change.
    """
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (some containers) and no $USER
        return "cli"


def principal_name(who: Principal | str | None) -> str:
    """The user name an event is filed under (session keys are filed under their owner)."""
    if who is None:
        return ANONYMOUS
    return who if isinstance(who, str) else who.user


def principal_details(who: Principal | str | None) -> dict[str, Any]:
    """What else identifies the principal: the access key and the session of a session key."""
    if not isinstance(who, Principal):
        return {}
    details: dict[str, Any] = {}
    if who.access_key:
        details["access_key"] = who.access_key
    if who.session_id:
        details["via_session"] = who.session_id
    return details


class Auditor:
    """Appends audit events to the metadata store; see the module docstring for failures."""

    def __init__(
        self,
        store: MetadataStore,
        *,
        strict: bool = False,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self._strict = strict
        self._clock = clock or (lambda: datetime.now(UTC))

    async def record(
        self,
        who: Principal | str | None,
        action: str,
        target: str,
        outcome: AuditOutcome,
        reason: str | None = None,
        **details: Any,
    ) -> AuditEvent | None:
        """Append one event; returns it as stored, or None when the append failed."""
        event = AuditEvent(
            time=self._clock(),
            principal=principal_name(who),
            action=action,
            target=target,
            outcome=outcome,
            reason=reason,
            details={**principal_details(who), **details},
        )
        try:
            return await self.store.append_audit(event)
        except StoreUnavailable as exc:
            # an outage: one line per event, not a traceback (the store's failure is logged
            # where it is translated)
            if self._strict:
                raise
            log.error("could not record audit event %s %s %s: %s", action, target, outcome, exc)
            return None
        except Exception:
            if self._strict:
                raise
            log.exception("could not record audit event %s %s %s", action, target, outcome)
            return None

    async def ok(
        self, who: Principal | str | None, action: str, target: str, **details: Any
    ) -> AuditEvent | None:
        """An admin change (or other action) that was done."""
        return await self.record(who, action, target, "ok", **details)

    async def refused(
        self, who: Principal | str | None, action: str, target: str, reason: str, **details: Any
    ) -> AuditEvent | None:
        """Something refused, with the reason given to the requester."""
        return await self.record(who, action, target, "refused", reason, **details)

    async def events(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        principal: str | None = None,
        action: str | None = None,
        outcome: AuditOutcome | None = None,
        limit: int = 100,
        cursor: str | None = None,
        descending: bool = False,
    ) -> tuple[list[AuditEvent], str | None]:
        """One page of events (oldest first unless ``descending``) and the next cursor."""
        return await self.store.list_audit(
            since=since,
            until=until,
            principal=principal,
            action=action,
            outcome=outcome,
            limit=limit,
            cursor=cursor,
            descending=descending,
        )

    async def actions(self) -> list[str]:
        """Every action the log holds, sorted: what the audit page's action list offers."""
        return await self.store.list_audit_actions()


def event_json(event: AuditEvent) -> dict[str, Any]:
    """An audit event as JSON, as the API serves it and ``minimo audit --json`` prints it."""
    return {
        "time": utc_text(event.time),
        "principal": event.principal,
        "action": event.action,
        "target": event.target,
        "outcome": event.outcome,
        "reason": event.reason,
        "details": event.details,
    }
