"""The audit page's JSON twin: ``outcome`` (e.g. refused only) and the list of actions."""

from __future__ import annotations

from tests.api.client import Browser
from tests.servers import Gateway


def test_outcome_filter_and_actions(gw: Gateway, admin: Browser) -> None:
    for _ in range(2):
        assert Browser(gw.endpoint).login("admin", "not the password").status == 401
    refused = admin.call("GET", "/audit?outcome=refused").body["events"]
    assert len(refused) == 2 and {e["outcome"] for e in refused} == {"refused"}
    assert {e["action"] for e in refused} == {"login"}
    ok = admin.call("GET", "/audit?outcome=ok&action=login").body["events"]
    assert ok and {e["outcome"] for e in ok} == {"ok"}
    bad = admin.call("GET", "/audit?outcome=maybe")
    assert bad.status == 400 and "outcome" in bad.error["fields"]
    actions = admin.call("GET", "/audit/actions").body["actions"]
    assert "login" in actions and actions == sorted(actions)
