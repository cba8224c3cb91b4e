"""The metadata services of one process, built the same way everywhere.

The gateway's write path, the JSON API and the CLI all need the same graph (an auditor, forms,
policies, sessions over one metadata store and identity service); building it in one place keeps
their caches and audit behaviour identical.
"""

from __future__ import annotations

from dataclasses import dataclass

from policy.audit import Auditor
from policy.catalog import FormService, PolicyService
from policy.identity import IdentityService
from policy.logins import LoginService
from policy.sessions import SessionService
from policy.store.base import MetadataStore


@dataclass(frozen=True, slots=True)
class Services:
    store: MetadataStore
    identity: IdentityService
    auditor: Auditor
    forms: FormService
    policies: PolicyService
    sessions: SessionService
    logins: LoginService

    @classmethod
    def build(cls, identity: IdentityService) -> Services:
        """Fresh services over ``identity``'s metadata store."""
        store = identity.store
        auditor = Auditor(store)
        forms = FormService(store, auditor)
        policies = PolicyService(store, forms, auditor)
        sessions = SessionService(store, identity, policies, forms, auditor)
        return cls(store, identity, auditor, forms, policies, sessions, LoginService(store))

    @classmethod
    def around(cls, sessions: SessionService) -> Services:
        """The services an existing session service was built with (shares its caches)."""
        return cls(
            sessions.store,
            sessions.identity,
            sessions.auditor,
            sessions.forms,
            sessions.policies,
            sessions,
            # Sign-outs are not the write path's business: this process's one login cache lives
            # in the Services the API keeps (ui.api.common.services builds this once).
            LoginService(sessions.store),
        )
