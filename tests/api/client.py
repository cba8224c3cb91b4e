"""Two ways to call the JSON API, as its users do: a browser-like client (login cookie + CSRF
header, stdlib urllib) and a script signing with SigV4 (botocore's signer, service s3)."""

from __future__ import annotations

import http.cookiejar
import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

API = "/_minimo/api/v1"


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def error(self) -> dict[str, Any]:
        return self.body["error"]


def _send(opener: urllib.request.OpenerDirector, request: urllib.request.Request) -> Reply:
    try:
        with opener.open(request, timeout=30) as resp:
            raw = resp.read()
            status, headers = resp.status, resp.headers
    except urllib.error.HTTPError as exc:
        raw, status, headers = exc.read(), exc.code, exc.headers
    all_headers = {k: ", ".join(headers.get_all(k) or []) for k in headers}
    is_json = "json" in headers.get("Content-Type", "")
    body = (json.loads(raw) if is_json else raw.decode()) if raw else None
    return Reply(status, body, all_headers)


def _https() -> urllib.request.HTTPSHandler:
    # the test gateways' certificates are self-signed, for 127.0.0.1 only
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return urllib.request.HTTPSHandler(context=context)


@dataclass
class Browser:
    """Cookie-authenticated; sends X-CSRF-Token once logged in (unless told not to)."""

    endpoint: str
    csrf: str | None = None
    jar: http.cookiejar.CookieJar = field(default_factory=http.cookiejar.CookieJar)

    def __post_init__(self) -> None:
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _https()
        )

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        csrf: bool = True,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        h = {"Content-Type": "application/json"} if data is not None else {}
        if csrf and self.csrf:
            h["X-CSRF-Token"] = self.csrf
        h.update(headers or {})
        request = urllib.request.Request(self.endpoint + API + path, data, h, method=method)
        return _send(self.opener, request)

    def login(self, user: str, password: str) -> Reply:
        reply = self.call("POST", "/login", {"user": user, "password": password})
        if reply.status == 200:
            self.csrf = reply.body["csrf_token"]
        return reply


@dataclass
class Signer:
    """A script with a personal (or session) access key: every request SigV4-signed."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def call(
        self, method: str, path: str, body: Any = None, *, tamper: bytes | None = None
    ) -> Reply:
        data = json.dumps(body).encode() if body is not None else b""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        aws = AWSRequest(method=method, url=self.endpoint + API + path, data=data, headers=headers)
        S3SigV4Auth(Credentials(self.access_key, self.secret_key), "s3", self.region).add_auth(aws)
        sent = tamper if tamper is not None else data
        request = urllib.request.Request(
            aws.url, sent or None, dict(aws.headers.items()), method=method
        )
        return _send(urllib.request.build_opener(_https()), request)
