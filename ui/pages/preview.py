"""The image preview of the data browser's object page (what an object is previewed as, and the
text and CSV previews, are ui/api/preview.py)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.usecases.appkeys import OBJECT_STORE
from gateway.usecases.object_store import NOSNIFF, OBJECT_CSP, S3Error
from ui.api.browse import NOT_THERE
from ui.api.preview import IMAGE_BYTES, IMAGE_SIGNATURES, image_type_of
from ui.outages import pass_outage
from ui.pages.common import PageError


def _signed_as(image_type: str, first: bytes) -> bool:
    if not first.startswith(IMAGE_SIGNATURES[image_type]):
        return False
    return image_type != "image/webp" or first[8:12] == b"WEBP"


async def open_requested(request: web.Request) -> tuple[str, Any]:
    """(key, reader) of the object a page request names (``/{bucket}?key=``), opened
    for reading; a friendly 400/404/502 page (or the outage's 503) otherwise."""
    bucket = request.match_info["bucket"]
    key = request.query.get("key", "")
    if not key:
        raise PageError(400, "Say which object: ?key=...")
    try:
        reader = await request.config_dict[OBJECT_STORE].open_object(bucket, key)
    except S3Error as err:
        pass_outage(err)
        if err.code in NOT_THERE:
            raise PageError(404, f"There is no object s3://{bucket}/{key}.") from None
        raise PageError(502, f"The object store refused to read it: {err.code}") from None
    return key, reader


async def image(request: web.Request) -> web.StreamResponse:
    """An object's bytes as an image, for the object page's ``<img>``: only a raster type whose
    bytes begin with that type's signature, at most IMAGE_BYTES; anything else 415."""
    _key, reader = await open_requested(request)
    try:
        image_type = image_type_of(reader.info)
        if image_type is None or reader.info.size > IMAGE_BYTES:
            raise PageError(415, "This object is not previewed as an image.")
        pieces = aiter(reader)
        first = b""
        async for piece in pieces:
            first += piece
            if len(first) >= 12:
                break
        if not _signed_as(image_type, first):
            raise PageError(415, f"This object's bytes are not a {image_type} image.")
        response = web.StreamResponse(
            headers={
                "Content-Type": image_type,
                "Content-Length": str(reader.info.size),
                "Content-Disposition": "inline",
                "Cache-Control": "no-store",
                "ETag": reader.info.etag,
                # set here, so the pages' setdefault() of their own CSP leaves them alone
                "Content-Security-Policy": OBJECT_CSP,
                "X-Content-Type-Options": NOSNIFF,
            }
        )
        await response.prepare(request)
        await response.write(first)
        async for piece in pieces:
            await response.write(piece)
        await response.write_eof()
        return response
    finally:
        await reader.aclose()
