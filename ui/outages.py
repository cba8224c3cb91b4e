"""Store outages as the UI and the JSON API answer them (docs/failures.md).

Which exceptions are outages is decided by ``gateway.usecases.outages`` (a metadata store
unavailable or full, an object store answering 503/507): the API answers ``503`` (with
``Retry-After``) or ``507`` as JSON, the pages a friendly page with the same status. The
message says which store, never an address, a URI or driver text (those go to the log).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.usecases.outages import RETRY_AFTER_SECONDS, S3Error, is_outage, outage_error


@dataclass(frozen=True, slots=True)
class Outage:
    status: int
    #: the JSON API's error code
    code: str
    #: for people: which store, and what to do
    message: str
    headers: dict[str, str]

    @property
    def title(self) -> str:
        return "Storage is full" if self.status == 507 else "Temporarily unavailable"


def outage_of(exc: BaseException) -> Outage | None:
    """The outage ``exc`` stands for (logging its detail), or None for any other error."""
    err = outage_error(exc)
    if err is None:
        return None
    if err.status == 507:
        return Outage(507, "storage_full", err.message, {})
    return Outage(
        503, "unavailable", err.message, {"Retry-After": str(RETRY_AFTER_SECONDS), **err.headers}
    )


def pass_outage(err: S3Error) -> None:
    """Re-raise an object-store outage unchanged (for the error middlewares to answer), where a
    handler would otherwise turn any ``S3Error`` into a 502."""
    if is_outage(err):
        raise err
