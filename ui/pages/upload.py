"""Browser upload: the session page asks for presigned PUT URLs, then the browser sends each file
straight to the gateway's S3 side (progress events, no body ever passes through a page handler).

The URLs are signed with the session's own key, so every write goes through the same enforcement
as any S3 client's (scope, overwrite rules, records, SHA-256) and dies with the session. They
name the exact key (session prefix + the file's relative path), sign only ``host`` and the
``UNSIGNED-PAYLOAD`` (the gateway hashes the body itself) and expire after an hour
(gateway.usecases.presign). Large files go as multipart uploads: one request for the
CreateMultipartUpload URL, then one for the part, complete, abort and ListParts URLs of that upload
id (ListParts lets a page reloaded mid-upload find the parts already sent and resume).
Asking for URLs needs the login cookie, the CSRF header and ownership of the open session (or
admin).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.usecases.appkeys import CONFIG
from gateway.usecases.presign import presigned
from policy.principal import Role
from policy.sessions import is_session_id
from ui.api.common import services
from ui.pages.common import Page, json_refusal, page_user

MAX_FILES = 1000
MAX_KEY_BYTES = 1024
MAX_PARTS = 10_000
#: parts per ListParts answer (the gateway's cap, as S3's): one signed URL per page of them
LIST_PAGE = 1000


def relative_key_problem(path: Any) -> str | None:
    """Why a browser-given relative path cannot become part of a key (None: it can)."""
    if not isinstance(path, str) or not path:
        return "empty file name"
    if path.startswith("/") or "\\" in path:
        return f"{path!r}: give a relative path with '/' separators"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return f"{path!r}: empty, '.' or '..' path segments are not allowed"
    if any(ord(c) < 32 for c in path):
        return f"{path!r}: control characters are not allowed"
    return None


async def upload_urls(request: web.Request) -> web.StreamResponse:
    who = page_user(request)
    sid = request.match_info["id"]
    svc = services(request)
    session = await svc.sessions.get(sid) if is_session_id(sid) else None
    if session is None:
        return json_refusal(404, f"no session {sid}")
    if who.role is not Role.ADMIN and who.user != session.owner:
        return json_refusal(403, f"only {session.owner} (or an admin) uploads into this session")
    now = datetime.now(UTC)
    if not session.is_open(now):
        return json_refusal(409, "the session is not open any more")
    try:
        body = await request.json()
    except ValueError:
        return json_refusal(400, "send a JSON body")
    if not isinstance(body, dict):
        return json_refusal(400, "send a JSON object")
    credential = await svc.identity.credential(session.access_key)
    if credential is None:
        return json_refusal(409, "the session key is gone (session closed?)")
    region = request.config_dict[CONFIG].region

    def url(method: str, path: str, *params: tuple[str, str]) -> str:
        return presigned(
            method,
            request.host,
            session.bucket,
            session.prefix + path,
            credential.access_key,
            credential.secret_key,
            region,
            now,
            params,
        )

    def list_url(path: str, uid: tuple[str, str], marker: int) -> str:
        page = (("max-parts", str(LIST_PAGE)), ("part-number-marker", str(marker)))
        return url("GET", path, uid, *page)

    multipart = body.get("multipart")
    paths = [multipart.get("path")] if isinstance(multipart, dict) else body.get("paths")
    if not isinstance(paths, list) or not 1 <= len(paths) <= MAX_FILES:
        return json_refusal(400, f"paths must be a list of 1 to {MAX_FILES} relative paths")
    problems = [p for p in map(relative_key_problem, paths) if p]
    if not problems:
        problems = [
            f"{p!r}: the key would be longer than {MAX_KEY_BYTES} bytes"
            for p in paths
            if len((session.prefix + p).encode()) > MAX_KEY_BYTES
        ]
    if problems:
        return json_refusal(400, "; ".join(problems[:5]))
    headers = {"Cache-Control": "no-store"}
    if isinstance(multipart, dict):
        # Large files go in parts: the browser retries a failed part, not the whole file.
        path = paths[0]
        upload_id = multipart.get("upload_id")
        parts = multipart.get("parts")
        if upload_id is None:
            return web.json_response(
                {"create": url("POST", path, ("uploads", ""))}, headers=headers
            )
        if not isinstance(upload_id, str) or not upload_id:
            return json_refusal(400, "upload_id must be the id CreateMultipartUpload returned")
        if not (isinstance(parts, int) and not isinstance(parts, bool) and 1 <= parts <= MAX_PARTS):
            return json_refusal(400, f"parts must be a number from 1 to {MAX_PARTS}")
        uid = ("uploadId", upload_id)
        return web.json_response(
            {
                "parts": [
                    url("PUT", path, ("partNumber", str(n)), uid) for n in range(1, parts + 1)
                ],
                "complete": url("POST", path, uid),
                "abort": url("DELETE", path, uid),
                # ListParts, a page of LIST_PAGE parts per URL: what a resumed upload has sent
                "list": [list_url(path, uid, marker) for marker in range(0, parts, LIST_PAGE)],
            },
            headers=headers,
        )
    return web.json_response(
        {"urls": [{"path": p, "key": session.prefix + p, "url": url("PUT", p)} for p in paths]},
        headers=headers,
    )


ROUTES = [
    Page(
        "POST",
        "/sessions/{id}/upload-urls",
        upload_urls,
        "uploader",
        "upload_urls",
        csrf="header",
        refusals="json",
    ),
]
