"""The data browser: buckets -> prefixes -> objects, each with its session's metadata or none."""

from __future__ import annotations

import asyncio
from urllib.parse import quote, urlencode

from aiohttp import web

from gateway.appkeys import OBJECT_STORE
from gateway.errors import S3Error
from ui.api.common import services
from ui.pages.common import PageError, render, require

DATA_PAGE = 100


async def data_buckets(request: web.Request) -> web.StreamResponse:
    await require(request)
    try:
        buckets = await request.config_dict[OBJECT_STORE].list_buckets()
    except S3Error as err:
        raise PageError(502, f"The object store refused to list buckets: {err.code}") from None
    return await render(request, "data.html", {"buckets": buckets, "bucket": None})


async def data_bucket(request: web.Request) -> web.StreamResponse:
    await require(request)
    bucket = request.match_info["bucket"]
    prefix = request.query.get("prefix", "")
    start_after = request.query.get("start_after", "")
    try:
        page = await request.config_dict[OBJECT_STORE].list_objects(
            bucket, prefix=prefix, delimiter="/", start_after=start_after, max_keys=DATA_PAGE
        )
    except S3Error as err:
        if err.code == "NoSuchBucket":
            raise PageError(404, f"There is no bucket {bucket}.") from None
        raise PageError(502, f"The object store refused to list {bucket}: {err.code}") from None
    svc = services(request)
    records = await asyncio.gather(
        *(svc.store.get_object_record(bucket, info.key) for info in page.objects)
    )
    # one lookup per distinct session on the page, not per object
    ids = {r.session_id for r in records if r is not None and r.session_id}
    found = await asyncio.gather(*(svc.sessions.get(sid) for sid in ids))
    sessions = {s.id: s for s in found if s is not None}
    rows = [
        {
            "info": info,
            "record": record,
            "session": sessions.get(record.session_id) if record and record.session_id else None,
        }
        for info, record in zip(page.objects, records, strict=True)
    ]
    # breadcrumbs: each leading part of the prefix, as (label, prefix)
    crumbs, acc = [], ""
    for part in prefix.split("/")[:-1]:
        acc += part + "/"
        crumbs.append((part, acc))
    more = None
    if page.truncated and page.next_marker:
        more = "?" + urlencode({"prefix": prefix, "start_after": page.next_marker})
    return await render(
        request,
        "data.html",
        {
            "bucket": bucket,
            "prefix": prefix,
            "crumbs": crumbs,
            "prefixes": page.prefixes,
            "rows": rows,
            "more": more,
            "urlencode": lambda value: urlencode({"prefix": value}),
        },
    )


async def download(request: web.Request) -> web.StreamResponse:
    """One object's bytes for a signed-in user (every role may read), streamed from the store.

    Always an attachment of type application/octet-stream: an uploaded .html or .svg must never
    render as a page of this origin (it would run with the user's login cookie).
    """
    await require(request)
    bucket = request.match_info["bucket"]
    key = request.query.get("key", "")
    if not key:
        raise PageError(400, "Say which object: ?key=...")
    try:
        reader = await request.config_dict[OBJECT_STORE].open_object(bucket, key)
    except S3Error as err:
        if err.code in ("NoSuchKey", "NoSuchBucket"):
            raise PageError(404, f"There is no object s3://{bucket}/{key}.") from None
        raise PageError(502, f"The object store refused to read it: {err.code}") from None
    try:
        name = key.rsplit("/", 1)[-1] or "download"
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(reader.info.size),
                # RFC 6266/5987: the UTF-8 name percent-encoded, never raw in a header
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}",
                "ETag": reader.info.etag,
            }
        )
        await response.prepare(request)
        async for piece in reader:
            await response.write(piece)
        await response.write_eof()
        return response
    finally:
        await reader.aclose()


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/data/", data_buckets, name="data")
    r.add_get("/data/{bucket}", data_bucket, name="data_bucket")
    r.add_get("/download/{bucket}", download, name="download")
