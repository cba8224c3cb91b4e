"""What a web browser gets at the gateway's root: the two anonymous requests a person's browser
makes that S3 would refuse.

* ``GET /`` with no credentials that asks for HTML (``Accept: text/html``, no Authorization, no
  query signature) is someone who typed the gateway's address: they are sent to the web UI
  (303) instead of an S3 ``AccessDenied`` in XML. A signed ListBuckets, or an anonymous client
  that does not ask for HTML, still gets its S3 answer.
* ``GET /favicon.ico`` with no credentials answers a small icon instead of an S3 403 (a bucket
  named ``favicon.ico`` is still reached by signed requests).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

#: query parameters that carry a signature (SigV4 presigned, SigV2 presigned)
_QUERY_SIGNATURES = ("X-Amz-Signature", "X-Amz-Credential", "Signature", "AWSAccessKeyId")
_FAVICON = (Path(__file__).resolve().parent / "favicon.ico").read_bytes()


def anonymous_read(request: web.Request) -> bool:
    """A GET or HEAD without any credentials (header or query)."""
    return (
        request.method in ("GET", "HEAD")
        and "Authorization" not in request.headers
        and not any(name in request.query for name in _QUERY_SIGNATURES)
    )


def browser_answer(
    request: web.Request, bucket: str, key: str, ui_home: str
) -> web.StreamResponse | None:
    """The answer for an anonymous read (:func:`anonymous_read`) of the root or the favicon,
    else None (S3 answers). ``bucket`` and ``key`` are the request's S3 target: under
    --domain, ``/`` and ``/favicon.ico`` of a bucket's host name are that bucket's, not ours."""
    if not bucket and "text/html" in request.headers.get("Accept", ""):
        return web.Response(status=303, headers={"Location": ui_home})
    if bucket == "favicon.ico" and not key and request.raw_path == "/favicon.ico":
        return web.Response(
            body=_FAVICON,
            content_type="image/vnd.microsoft.icon",
            headers={"Cache-Control": "public, max-age=86400"},
        )
    return None
