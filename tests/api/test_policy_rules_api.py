"""``PUT /policy`` with the rules as JSON (the rule editor's twin): the same checks as the TOML,
problems named by rule and key, and the stored source the TOML those rules make."""

from __future__ import annotations

from tests.api.client import Browser

RULES = [
    {"bucket": "raw", "prefix": "2026/", "forms": [], "require_session": False,
     "overwrite": "allow", "delete": "owner", "session_ttl": "2d", "max_session_ttl": "10d"},
]  # fmt: skip


def test_rules_as_json(admin: Browser) -> None:
    saved = admin.call("PUT", "/policy", {"rules": RULES})
    assert saved.status == 200, saved.body
    rule = saved.body["rules"][0]
    assert rule["overwrite"] == "allow" and rule["delete"] == "owner"
    assert rule["session_ttl"] == "2d" and rule["require_session"] is False
    assert (
        'bucket = "raw"' in saved.body["source"] and 'overwrite = "allow"' in saved.body["source"]
    )
    # the same checks as a file: each problem names its rule and key
    bad = admin.call("PUT", "/policy", {"rules": [{**RULES[0], "session_ttl": "40d"}]})
    assert bad.status == 400 and bad.error["code"] == "invalid_policy"
    assert bad.error["fields"]["rules"] == [
        "rule 1: session_ttl: 40d is longer than max_session_ttl 10d"
    ]
    unknown = admin.call("PUT", "/policy", {"rules": [{**RULES[0], "forms": ["nope"],
                                                      "require_session": True}]})  # fmt: skip
    assert unknown.status == 400 and "nope" in unknown.error["fields"]["rules"][0]
    assert admin.call("PUT", "/policy", {"rules": "raw"}).status == 400
    both = admin.call("PUT", "/policy", {"rules": RULES, "toml": ""})
    assert both.status == 400 and "rules" in both.error["fields"]
    assert admin.call("GET", "/policy").body["version"] == saved.body["version"]
