"""Who made a request."""

from __future__ import annotations

from dataclasses import dataclass, field

# Roles are kept on user records, so they are the stores' vocabulary (the stores import nothing
# from policy's services); this is where everyone else finds them.
from policy.store.records import Role as Role


@dataclass(frozen=True, slots=True)
class Principal:
    """A user acting through a personal access key or a session key."""

    user: str
    role: Role
    access_key: str | None = None
    #: set when the key is a session key: the session its writes belong to
    session_id: str | None = None
    #: authenticated from the last known good credential while the metadata store was down
    #: (policy.identity): such a principal may read, never write
    stale: bool = field(default=False, compare=False)

    @property
    def may_write(self) -> bool:
        return self.role in (Role.ADMIN, Role.UPLOADER)


@dataclass(frozen=True, slots=True)
class Credential:
    """An active access key with its plaintext secret, as SigV4 verification needs it."""

    access_key: str
    secret_key: str
    principal: Principal
