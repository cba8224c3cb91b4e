"""A session as JSON: the one shape ``minimo session ... --json`` and the JSON API print.

Both used to build it on their own, and one derived "expired" by hand; the state here is always
:func:`policy.sessions.session_status`, so a session past its expiry reads "expired" everywhere.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from policy.sessions import scope_url, session_status, title_of
from policy.store.base import SessionRecord
from policy.timestamps import utc_text_or_none


def session_json(
    record: SessionRecord, now: datetime | None = None, *, with_scope: bool = False
) -> dict[str, Any]:
    """``record`` as a JSON object; its state judged at ``now`` (default: the clock).

    ``with_scope`` adds ``"scope": "s3://bucket/prefix"`` after the prefix: the CLI prints it
    for people who paste it into an S3 client; the API leaves it out (its clients have bucket
    and prefix).
    """
    out: dict[str, Any] = {
        "id": record.id,
        "title": title_of(record),
        "form": record.form_name,
        "form_version": record.form_version,
        "values": record.values,
        "bucket": record.bucket,
        "prefix": record.prefix,
    }
    if with_scope:
        out["scope"] = scope_url(record.bucket, record.prefix)
    out.update(
        {
            "owner": record.owner,
            "state": session_status(record, now),
            "created": utc_text_or_none(record.created),
            "expires": utc_text_or_none(record.expires),
            "closed": utc_text_or_none(record.closed),
            "closed_by": record.closed_by,
            "access_key": record.access_key,
        }
    )
    return out
