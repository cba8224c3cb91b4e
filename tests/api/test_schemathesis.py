"""schemathesis against the OpenAPI document the gateway serves: every operation, positive and
negative data, all default checks, three times: signed in as an admin (login cookie + CSRF
header), signed with SigV4 like a script, and signed out (every protected operation answers 401
with a JSON error, whatever it is sent).

The gateway is real (``minimo serve``). It starts with state (a form, a policy, a bucket, an open
session with one object, a second user with a personal key) and half of the positive cases name
those in their path and body, so generated requests reach the handlers' success paths, not only
"not found".
"""

from __future__ import annotations

import itertools
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import boto3
import pytest
import requests
import schemathesis
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, settings
from jsonschema import Draft202012Validator
from schemathesis.core.parameters import ParameterLocation

from policy.forms import RESERVED_FORM_NAMES
from tests.api.client import API, Browser, Signer
from tests.api.conftest import POLICY, RUN_FORM
from tests.servers import Gateway, run_gateway
from ui.api import all_routes
from ui.api.openapi import build_document

#: the admin the fuzzer signs in as. Not the gateway's first admin: that one prepares the state.
#: The API refuses an admin's change of their own role and their own deletion (it answers 400);
#: a change of their own password would end the fuzzer's login, so _name_known_things never
#: lets a case name the fuzzer in /users/{name} (the victim takes its place).
FUZZER = "fuzzer"
#: a user the fuzzer may change, delete, and whose key it may revoke
VICTIM = "victim"
PASSWORD = "fuzz-password-1234"
OBJECT_KEY = "fuzz/data.txt"
#: values that satisfy RUN_FORM
RUN = {"sample": "S1"}
#: per operation and pass; ~35 operations, positive and negative: well under a minute on CI
MAX_EXAMPLES = 12

#: Operations whose input has rules JSON Schema cannot state: a form definition's consistency
#: (choices only for choice fields, min <= max, ...), policy TOML, values checked against the
#: form a session names (one session or several), a duration and the policy's maximum
#: (extend), search conditions on that form's fields, opaque page cursors, S3's bucket naming
#: rules beyond the characters (no "..", not like an IP address, ...). For them
#: a schema-valid request may rightly get a 400 (its body still has to be the documented JSON
#: error); every other operation must accept whatever its schema allows.
SEMANTIC_400 = (
    "create_form",
    "update_form",
    "import_form",
    "set_policy",
    "open_session",
    "open_several_sessions",
    "extend_session",
    "preview_form",
    "adopt_prefix",
    "search_sessions",
    "export_sessions",
    "list_audit",
    "session_objects",
    "verify_session",
    "make_bucket",
)
_WITH_400 = '["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]'

CONFIG = f"""
[generation]
mode = "all"
max-examples = {MAX_EXAMPLES}
deterministic = true
# the cookie and the CSRF header are the test's own (see call); generated credentials would only
# replace them with junk (the signed-out pass covers requests without them)
with-security-parameters = false
""" + "".join(
    f"""
[[operations]]
include-operation-id = "{operation_id}"
checks.positive_data_acceptance.expected-statuses = {_WITH_400}
"""
    for operation_id in SEMANTIC_400
)


def _document() -> dict[str, Any]:
    """The document the gateway serves, built from the same route list it serves.

    schemathesis parametrizes at collection time, before any gateway runs, so it reads the
    document from the code; test_the_fuzzed_document_is_the_served_one proves it is the same.
    (schemathesis.pytest.from_fixture would load it from the server, but fails under pytest 9.)
    """
    return json.loads(json.dumps(build_document(all_routes())))


schema = schemathesis.openapi.from_dict(
    _document(), config=schemathesis.config.SchemathesisConfig.from_str(CONFIG)
)
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,  # a real server on a shared CI box: its speed is not what is tested
    derandomize=True,  # the same cases on every run, so a red CI run can be replayed
    # "too slow" and "filters too much" are about the generator, not findings about the API
    suppress_health_check=list(HealthCheck),
)


@dataclass
class Fuzzing:
    gw: Gateway
    cookies: dict[str, str]
    csrf: str
    #: path parameter -> a value naming something that exists
    known: dict[str, str]


@pytest.fixture(scope="module")
def fuzz_gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with run_gateway(tmp_path_factory.mktemp("fuzz-gw")) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def fuzzing(fuzz_gw: Gateway) -> Fuzzing:
    admin = Browser(fuzz_gw.endpoint)
    assert admin.login("admin", fuzz_gw.admin_password).status == 200
    assert admin.call("POST", "/forms", RUN_FORM).status == 201
    assert admin.call("PUT", "/policy", {"toml": POLICY}).status == 200
    for name, role in ((FUZZER, "admin"), (VICTIM, "uploader")):
        reply = admin.call("POST", "/users", {"name": name, "role": role, "password": PASSWORD})
        assert reply.status == 201, reply.body
    victim_key = admin.call("POST", "/keys", {"user": VICTIM})
    assert victim_key.status == 201, victim_key.body
    s3 = boto3.client(
        "s3",
        endpoint_url=fuzz_gw.endpoint,
        aws_access_key_id=fuzz_gw.access_key,
        aws_secret_access_key=fuzz_gw.secret_key,
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket="raw")
    opened = admin.call(
        "POST",
        "/sessions",
        {"form": "run", "bucket": "raw", "prefix": "fuzz/", "values": {"sample": "S1"}},
    )
    assert opened.status == 201, opened.body
    session_s3 = boto3.client(
        "s3",
        endpoint_url=fuzz_gw.endpoint,
        aws_access_key_id=opened.body["session_key"]["access_key"],
        aws_secret_access_key=opened.body["session_key"]["secret_key"],
        region_name="us-east-1",
    )
    session_s3.put_object(Bucket="raw", Key=OBJECT_KEY, Body=b"fuzzed")
    # requests, not the urllib Browser: the fuzzer's cookie goes to every case explicitly; a
    # generated POST /logout ends this login on the server, so _restore_state signs in again
    login = requests.post(
        fuzz_gw.endpoint + API + "/login", json={"user": FUZZER, "password": PASSWORD}, timeout=30
    )
    assert login.status_code == 200, login.text
    known = {
        "id": opened.body["session"]["id"],
        "bucket": "raw",
        "key": OBJECT_KEY,
        "access_key": victim_key.body["access_key"],
        "version": "1",
    }
    return Fuzzing(fuzz_gw, dict(login.cookies), login.json()["csrf_token"], known)


_positive_cases: defaultdict[str, itertools.count] = defaultdict(itertools.count)


def _name_known_things(case: schemathesis.Case, fuzzing: Fuzzing) -> None:
    """Every other positive case of an operation names existing things in its path.

    Random names almost never exist, so without this the fuzzer would only ever see "not found"
    from the handlers of /forms/{name}, /sessions/{id}, /users/{name} and the like.
    """
    params = case.path_parameters or {}
    users = case.path.startswith(f"{API}/users/")
    if users and params.get("name") == FUZZER:
        params["name"] = VICTIM  # see FUZZER
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return  # a negative case must keep its invalid value
    if next(_positive_cases[case.operation.label]) % 2:
        return
    for name in params:
        if name == "name":
            params[name] = VICTIM if users else "run"
        elif name in fuzzing.known:
            params[name] = fuzzing.known[name]
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("form"), str):
        # a session (or a draft, or adopted data) on the real form and bucket, with values
        # that satisfy it: the success paths of POST /sessions and friends
        body["form"] = "run"
        if "bucket" in body:
            body["bucket"] = "raw"
        if "values" in body:
            body["values"] = {"sample": "fuzz"}


#: what a case may change that the cases after it rely on, and how to put it back
_RESTORE = {
    "set_policy": ("PUT", "/policy", {"toml": POLICY}),
    "update_form": ("PUT", "/forms/run", RUN_FORM),
}


def _sign_in_again(fuzzing: Fuzzing) -> None:
    """A generated POST /logout that succeeded ended the fuzzer's login on the server (every
    copy of its cookie is refused after it): the cases after it need a fresh login."""
    if requests.get(fuzzing.gw.endpoint + API + "/me", cookies=fuzzing.cookies, timeout=30).ok:
        return
    login = requests.post(
        fuzzing.gw.endpoint + API + "/login",
        json={"user": FUZZER, "password": PASSWORD},
        timeout=30,
    )
    assert login.status_code == 200, login.text
    fuzzing.cookies = dict(login.cookies)
    fuzzing.csrf = login.json()["csrf_token"]


def _restore_state(case: schemathesis.Case, fuzzing: Fuzzing) -> None:
    """Put back the policy and the form "run" after a case replaced them.

    Otherwise the first accepted PUT /policy (an empty TOML is a valid policy: no rules) leaves
    every later POST /sessions refused, and their success paths unfuzzed.
    """
    operation = case.operation.definition.raw.get("operationId", "")
    if operation == "logout":
        _sign_in_again(fuzzing)
        return
    restore = _RESTORE.get(operation)
    if restore is None:
        return
    method, path, body = restore
    reply = requests.request(
        method,
        fuzzing.gw.endpoint + API + path,
        json=body,
        cookies=fuzzing.cookies,
        headers={"X-CSRF-Token": fuzzing.csrf},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text


def test_the_fuzzed_document_is_the_served_one(fuzzing: Fuzzing) -> None:
    served = requests.get(fuzzing.gw.endpoint + API + "/openapi.json", timeout=30)
    assert served.status_code == 200
    assert served.json() == _document()


def _schemas(node: object) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if isinstance(node.get("schema"), dict):
            yield node["schema"]
        for value in node.values():
            yield from _schemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schemas(value)


def test_the_document_is_valid_openapi() -> None:
    schema.validate()  # against the OpenAPI 3.1 meta-schema schemathesis ships
    document = _document()
    found = [*_schemas(document["paths"]), *document["components"]["schemas"].values()]
    assert len(found) > 100
    for one in found:
        Draft202012Validator.check_schema(one)


def test_a_signed_admin_creates_a_key_for_another_user(fuzzing: Fuzzing) -> None:
    """What the SigV4 pass found: the signature check reads the body, and the handler then
    took the body for absent, so the key went to the signer instead of the user named."""
    gw = fuzzing.gw
    script = Signer(gw.endpoint, gw.access_key, gw.secret_key)
    reply = script.call("POST", "/keys", {"user": FUZZER})
    assert reply.status == 201, reply.body
    assert reply.body["owner"] == FUZZER
    assert script.call("POST", "/keys", {"user": FUZZER, "owner": "x"}).status == 400


def test_a_signed_close_reads_its_body(fuzzing: Fuzzing) -> None:
    """The same reading of an already-read body on POST /sessions/{id}/close: a signed
    {"ro_crate": ...} was ignored, even when it was not a boolean."""
    gw = fuzzing.gw
    admin = Browser(gw.endpoint)
    assert admin.login("admin", gw.admin_password).status == 200
    opened = admin.call("POST", "/sessions", {"form": "run", "bucket": "raw", "values": RUN})
    assert opened.status == 201, opened.body
    close = f"/sessions/{opened.body['session']['id']}/close"
    script = Signer(gw.endpoint, gw.access_key, gw.secret_key)
    refused = script.call("POST", close, {"ro_crate": "yes"})
    assert refused.status == 400, refused.body
    assert refused.error["fields"] == {"ro_crate": ["must be true or false"]}
    closed = script.call("POST", close, {"ro_crate": False})
    assert closed.status == 200, closed.body
    assert closed.body["state"] == "closed"


def test_no_form_can_be_named_like_a_fixed_forms_path(fuzzing: Fuzzing) -> None:
    """GET /forms/import is not the form "import" (the router keeps fixed paths apart from
    /forms/{name}), so no form may take such a name."""
    fixed = {r.path.split("/")[2] for r in all_routes() if re.fullmatch(r"/forms/[a-z]+", r.path)}
    assert fixed == RESERVED_FORM_NAMES
    for name in sorted(fixed):
        reply = requests.post(
            fuzzing.gw.endpoint + API + "/forms",
            json={**RUN_FORM, "name": name},
            cookies=fuzzing.cookies,
            headers={"X-CSRF-Token": fuzzing.csrf},
            timeout=30,
        )
        assert reply.status_code == 400, reply.text
        assert "reserved" in reply.json()["error"]["message"]


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation_signed_in(case: schemathesis.Case, fuzzing: Fuzzing) -> None:
    _name_known_things(case, fuzzing)
    try:
        case.call_and_validate(
            base_url=fuzzing.gw.endpoint,
            headers={"X-CSRF-Token": fuzzing.csrf},
            cookies=fuzzing.cookies,
        )
    finally:
        _restore_state(case, fuzzing)


class SigV4(requests.auth.AuthBase):
    """Signs each request as a script does (botocore's signer, service s3), after schemathesis
    has built it: whatever odd query string or body a case carries is what gets signed."""

    def __init__(self, access_key: str, secret_key: str) -> None:
        self.credentials = Credentials(access_key, secret_key)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        # requests writes a space in the query as "+"; botocore signs the query exactly as it
        # finds it in the URL, so give it the URL a SigV4 client sends (RFC 3986 escapes)
        url = urlsplit(request.url or "")
        pairs = parse_qsl(url.query, keep_blank_values=True)
        request.url = urlunsplit(url._replace(query=urlencode(pairs, quote_via=quote)))
        body = request.body or b""
        aws = AWSRequest(
            method=request.method,
            url=request.url,
            data=body.encode() if isinstance(body, str) else body,
            headers={
                k: v
                for k, v in request.headers.items()
                if k.lower() not in ("cookie", "x-csrf-token")
            },
        )
        S3SigV4Auth(self.credentials, "s3", "us-east-1").add_auth(aws)
        request.headers.update(dict(aws.headers.items()))
        return request


@schema.parametrize()
@settings(FUZZ_SETTINGS, max_examples=6)
def test_every_operation_signed_with_sigv4(case: schemathesis.Case, fuzzing: Fuzzing) -> None:
    """The same as an admin script: a personal key signing every request."""
    _name_known_things(case, fuzzing)
    gw = fuzzing.gw
    try:
        response = case.call_and_validate(
            base_url=gw.endpoint, auth=SigV4(gw.access_key, gw.secret_key)
        )
    finally:
        _restore_state(case, fuzzing)
    # a refused signature would pass the checks (403 is documented), but here it is a bug: the
    # gateway and botocore canonicalised the same request differently
    if response.status_code == 403:
        assert response.json()["error"]["code"] != "invalid_signature", response.text


#: the two operations anyone may call: signing in, and reading this document
PUBLIC = ["login", "openapi"]


def test_only_login_and_the_document_are_public() -> None:
    public = [
        operation["operationId"]
        for item in _document()["paths"].values()
        for operation in item.values()
        if operation["security"] == []
    ]
    assert sorted(public) == PUBLIC


@schema.exclude(operation_id=PUBLIC).parametrize()
@settings(FUZZ_SETTINGS, max_examples=4)
def test_every_operation_signed_out(case: schemathesis.Case, fuzzing: Fuzzing) -> None:
    # Authentication comes before everything else: even a malformed request learns nothing
    # but "sign in" (and the answer is the documented JSON error).
    response = case.call(base_url=fuzzing.gw.endpoint)
    assert response.headers["content-type"][0].startswith("application/json")
    code = response.json()["error"]["code"]
    if _names_no_route(case):
        # another method than the operation's, or a path the router keeps for a fixed sibling
        # (GET /forms/preview): no operation is reached, so there is nothing to sign in to
        assert (response.status_code, code) in {(405, "method_not_allowed"), (404, "not_found")}
    else:
        assert (response.status_code, code) == (401, "unauthenticated"), response.text
    case.validate_response(response)


def _names_no_route(case: schemathesis.Case) -> bool:
    if case.method.upper() != case.operation.method.upper():
        return True
    path = case.meta.components.get(ParameterLocation.PATH) if case.meta else None
    values = (case.path_parameters or {}).values()
    return path is not None and path.mode.is_negative and bool(RESERVED_FORM_NAMES & {*values})


def test_a_body_too_large_is_the_documented_413(fuzzing: Fuzzing) -> None:
    """What schemathesis does not send: a body beyond the API's limit (1 MiB), signed in,
    signed with SigV4 and on the public login."""
    huge = {"toml": "#" * (2 * 1024 * 1024)}
    gw = fuzzing.gw
    replies = [
        requests.put(
            gw.endpoint + API + "/policy",
            json=huge,
            cookies=fuzzing.cookies,
            headers={"X-CSRF-Token": fuzzing.csrf},
            timeout=30,
        ),
        requests.put(
            gw.endpoint + API + "/policy",
            json=huge,
            auth=SigV4(gw.access_key, gw.secret_key),
            timeout=30,
        ),
        requests.post(gw.endpoint + API + "/login", json={**huge, "user": "x"}, timeout=30),
    ]
    for reply in replies:
        assert reply.status_code == 413, reply.text
        assert reply.json()["error"]["code"] == "payload_too_large"
        operation = schema[reply.request.path_url.split("?")[0]][reply.request.method]
        operation.validate_response(reply)


def test_a_version_that_is_no_ascii_number_is_a_400(fuzzing: Fuzzing) -> None:
    """ "²" passes str.isdigit() but not int(): the version check answered 500."""
    for version in ("²", "٣", "0"):
        reply = requests.get(
            f"{fuzzing.gw.endpoint}{API}/forms/run/versions/{version}",
            cookies=fuzzing.cookies,
            timeout=30,
        )
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"]["fields"] == {"version": ["not a number"]}
    # more digits than int() reads (4300) is simply no such version
    reply = requests.get(
        f"{fuzzing.gw.endpoint}{API}/forms/run/versions/{'9' * 5000}",
        cookies=fuzzing.cookies,
        timeout=30,
    )
    assert reply.status_code == 404, reply.text


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/audit", "since"),
        ("/audit", "until"),
        ("/sessions", "created_from"),
        ("/sessions/export", "created_to"),
    ],
)
@pytest.mark.parametrize("instant", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_an_instant_outside_utc_years_is_a_400(
    fuzzing: Fuzzing, path: str, name: str, instant: str
) -> None:
    """Valid RFC 3339, but before year 1 or after 9999 once in UTC: converting it overflowed
    (a 500)."""
    reply = requests.get(
        fuzzing.gw.endpoint + API + path,
        params={name: instant},
        cookies=fuzzing.cookies,
        timeout=30,
    )
    assert reply.status_code == 400, reply.text
    assert list(reply.json()["error"]["fields"]) == [name]


@pytest.mark.parametrize("ttl", ["99999999999d", "9" * 5000 + "h"])
def test_a_ttl_beyond_any_clock_is_a_400(fuzzing: Fuzzing, ttl: str) -> None:
    """Well-formed but past timedelta (or int()'s 4300 digits): opening answered 500."""
    reply = requests.post(
        fuzzing.gw.endpoint + API + "/sessions",
        json={"form": "run", "bucket": "raw", "values": RUN, "ttl": ttl},
        cookies=fuzzing.cookies,
        headers={"X-CSRF-Token": fuzzing.csrf},
        timeout=30,
    )
    assert reply.status_code == 400, reply.text
    assert "far too long" in reply.json()["error"]["message"]
