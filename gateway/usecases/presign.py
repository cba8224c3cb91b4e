"""Presigned S3 URLs for the web UI's browser upload (``ui.pages.upload``).

The session page hands the browser URLs signed with the session's own key, so each file goes
straight to the S3 side, through the same enforcement as any S3 client's. Signing is SigV4's
query form (gateway.protocol.sigv4); it lives in the use-case layer because the UI reaches the
gateway only through it (docs/design.md, "Layers").
"""

from __future__ import annotations

from datetime import datetime

from gateway.protocol.sigv4 import (
    ALGORITHM,
    AMZ_DATE_FORMAT,
    UNSIGNED_PAYLOAD,
    canonical_query,
    canonical_request,
    canonical_uri,
    scope,
    sign,
    signing_key,
    string_to_sign,
    uri_encode,
)

#: how long a presigned URL stays valid
URL_SECONDS = 3600


def presigned(
    method: str,
    host: str,
    bucket: str,
    key: str,
    access: str,
    secret: str,
    region: str,
    now: datetime,
    params: tuple[tuple[str, str], ...] = (),
) -> str:
    """A path + query (same origin as the page) for ``METHOD /bucket/key?params``, signed as a
    SigV4 query (presigned) request; ``params`` (e.g. ``uploadId``) are covered by the signature.
    Only ``host`` is signed, and the payload is ``UNSIGNED-PAYLOAD`` (the gateway hashes the
    body itself).
    """
    raw_path = f"/{uri_encode(bucket, keep_slash=False)}/{uri_encode(key, keep_slash=True)}"
    amz_date = now.strftime(AMZ_DATE_FORMAT)
    credential_scope = scope(amz_date[:8], region)
    query = [
        *params,
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", f"{access}/{credential_scope}"),
        ("X-Amz-Date", amz_date),
        ("X-Amz-Expires", str(URL_SECONDS)),
        ("X-Amz-SignedHeaders", "host"),
    ]
    canonical = canonical_request(
        method,
        canonical_uri(raw_path),
        canonical_query(query),
        {"host": host},
        ["host"],
        UNSIGNED_PAYLOAD,
    )
    signature = sign(
        signing_key(secret, amz_date[:8], region),
        string_to_sign(amz_date, credential_scope, canonical),
    )
    return f"{raw_path}?{canonical_query(query)}&X-Amz-Signature={signature}"
