"""Browser upload: the session page asks for presigned PUT URLs, then the browser sends each file
straight to the gateway's S3 side (progress events, no body ever passes through a page handler).

The URLs are signed with the session's own key, so every write goes through the same enforcement
as any S3 client's (scope, overwrite rules, records, SHA-256) and dies with the session. They
name the exact key (session prefix + the file's relative path), sign only ``host`` and the
``UNSIGNED-PAYLOAD`` (the gateway hashes the body itself) and expire after an hour
(gateway.usecases.presign). Large files go as multipart uploads: one request for the
CreateMultipartUpload URL, then one for the part, complete and abort URLs of that upload id.
Asking for URLs needs the login cookie, the CSRF header and ownership of the open session (or
admin).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp_session import get_session

from gateway.usecases.appkeys import CONFIG
from gateway.usecases.presign import presigned
from policy.principal import Role
from policy.sessions import is_session_id
from ui.api.common import services
from ui.pages.common import current_user
from ui.security import CSRF_HEADER, csrf_ok

MAX_FILES = 1000
MAX_KEY_BYTES = 1024
MAX_PARTS = 10_000


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


def _refuse(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def upload_urls(request: web.Request) -> web.StreamResponse:
    who = await current_user(request)
    if who is None:
        return _refuse(401, "sign in again")
    if not csrf_ok((await get_session(request)).get("csrf"), request.headers.get(CSRF_HEADER)):
        return _refuse(403, f"missing or wrong {CSRF_HEADER} header; reload the page")
    sid = request.match_info["id"]
    svc = services(request)
    session = await svc.sessions.get(sid) if is_session_id(sid) else None
    if session is None:
        return _refuse(404, f"no session {sid}")
    if who.role is not Role.ADMIN and who.user != session.owner:
        return _refuse(403, f"only {session.owner} (or an admin) uploads into this session")
    now = datetime.now(UTC)
    if not session.is_open(now):
        return _refuse(409, "the session is not open any more")
    try:
        body = await request.json()
    except ValueError:
        return _refuse(400, "send a JSON body")
    if not isinstance(body, dict):
        return _refuse(400, "send a JSON object")
    credential = await svc.identity.credential(session.access_key)
    if credential is None:
        return _refuse(409, "the session key is gone (session closed?)")
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

    multipart = body.get("multipart")
    paths = [multipart.get("path")] if isinstance(multipart, dict) else body.get("paths")
    if not isinstance(paths, list) or not 1 <= len(paths) <= MAX_FILES:
        return _refuse(400, f"paths must be a list of 1 to {MAX_FILES} relative paths")
    problems = [p for p in map(relative_key_problem, paths) if p]
    if not problems:
        problems = [
            f"{p!r}: the key would be longer than {MAX_KEY_BYTES} bytes"
            for p in paths
            if len((session.prefix + p).encode()) > MAX_KEY_BYTES
        ]
    if problems:
        return _refuse(400, "; ".join(problems[:5]))
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
            return _refuse(400, "upload_id must be the id CreateMultipartUpload returned")
        if not (isinstance(parts, int) and not isinstance(parts, bool) and 1 <= parts <= MAX_PARTS):
            return _refuse(400, f"parts must be a number from 1 to {MAX_PARTS}")
        uid = ("uploadId", upload_id)
        return web.json_response(
            {
                "parts": [
                    url("PUT", path, ("partNumber", str(n)), uid) for n in range(1, parts + 1)
                ],
                "complete": url("POST", path, uid),
                "abort": url("DELETE", path, uid),
            },
            headers=headers,
        )
    return web.json_response(
        {"urls": [{"path": p, "key": session.prefix + p, "url": url("PUT", p)} for p in paths]},
        headers=headers,
    )
