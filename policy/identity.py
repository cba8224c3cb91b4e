"""Users, roles and personal access keys (placeholder interface; see the identity work)."""

from __future__ import annotations

from typing import Protocol

from policy.principal import Credential


class Identity(Protocol):
    async def credential(self, access_key: str) -> Credential | None:
        """The active key's secret and principal, or None for unknown/revoked keys."""
        ...
