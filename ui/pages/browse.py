"""The data browser (twin of ui/api/browse.py): buckets -> prefixes -> objects, each with its
session's metadata or none; an object's bytes to download; linking existing data (adopt)."""

from __future__ import annotations

import asyncio
import shlex
from urllib.parse import quote, urlencode

from aiohttp import web

from gateway.usecases.adopt import AdoptResult, adopt
from gateway.usecases.appkeys import CONFIG, OBJECT_STORE
from gateway.usecases.buckets import create_bucket
from gateway.usecases.object_store import NOSNIFF, OBJECT_CSP, S3Error, S3ErrorCode
from policy.forms import Form, FormValidationError
from policy.sessions import SessionError, SessionNotFound, session_status
from ui.api.browse import (
    FOLDER_SCAN,
    NO_BUCKET,
    UNLINKED_SCAN,
    Unlinked,
    adopt_prefix_of,
    describe_object,
    folders_usage,
    scan_unlinked,
)
from ui.api.common import services
from ui.api.preview import Preview, preview_of
from ui.outages import outage_of, pass_outage
from ui.pages.common import Page, PageError, page_user, render
from ui.pages.fields import display_values, input_value, split_errors, values_from_post
from ui.pages.preview import image, open_requested
from ui.pages.snippets import download_snippets

DATA_PAGE = 100


async def data_buckets(
    request: web.Request, new_name: str = "", error: str = "", status: int = 200
) -> web.StreamResponse:
    try:
        buckets = await request.config_dict[OBJECT_STORE].list_buckets()
    except S3Error as err:
        pass_outage(err)
        raise PageError(502, f"The object store refused to list buckets: {err.code}") from None
    return await render(
        request,
        "data.html",
        {"buckets": buckets, "bucket": None, "new_name": new_name, "new_error": error},
        status=status,
    )


async def create_bucket_submit(request: web.Request) -> web.StreamResponse:
    """An admin's new bucket: made and audited as CreateBucket, or the page again with the
    reason beside the name (S3's naming rule it breaks, or that it exists)."""
    name = str((await request.post()).get("name", "")).strip()
    try:
        await create_bucket(request.config_dict[OBJECT_STORE], services(request).store,
                            page_user(request), name)  # fmt: skip
    except S3Error as err:
        pass_outage(err)
        if err.code == S3ErrorCode.InvalidBucketName:
            message = err.message
        elif err.code in (S3ErrorCode.BucketAlreadyOwnedByYou, S3ErrorCode.BucketAlreadyExists):
            message = f"There is a bucket {name} already."
        else:
            raise PageError(502, f"The object store refused to create it: {err.code}") from None
        return await data_buckets(request, name, message, status=400)
    raise web.HTTPSeeOther(f"/_minimo/data/{quote(name, safe='')}")


async def data_bucket(request: web.Request) -> web.StreamResponse:
    bucket = request.match_info["bucket"]
    prefix = request.query.get("prefix", "")
    start_after = request.query.get("start_after", "")
    try:
        page = await request.config_dict[OBJECT_STORE].list_objects(
            bucket, prefix=prefix, delimiter="/", start_after=start_after, max_keys=DATA_PAGE
        )
    except S3Error as err:
        pass_outage(err)
        if err.code in NO_BUCKET:
            raise PageError(404, f"There is no bucket {bucket}.") from None
        raise PageError(502, f"The object store refused to list {bucket}: {err.code}") from None
    svc = services(request)
    objects = request.config_dict[OBJECT_STORE]
    records, folders = await asyncio.gather(
        asyncio.gather(*(svc.store.get_object_record(bucket, info.key) for info in page.objects)),
        folders_usage(objects, bucket, page.prefixes),
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
    more = None
    if page.truncated and page.next_marker:
        more = "?" + urlencode({"prefix": prefix, "start_after": page.next_marker})
    return await render(
        request,
        "data.html",
        {
            "bucket": bucket,
            "prefix": prefix,
            "crumbs": _crumbs(prefix),
            "prefixes": list(zip(page.prefixes, folders, strict=True)),
            "folder_scan": FOLDER_SCAN,
            "rows": rows,
            "more": more,
            "urlencode": _prefix_query,
        },
    )


async def download(request: web.Request) -> web.StreamResponse:
    """One object's bytes for a signed-in user (every role may read), streamed from the store.

    Always an attachment of type application/octet-stream: an uploaded .html or .svg must never
    render as a page of this origin (it would run with the user's login cookie). It carries the
    S3 answers' sandboxing CSP too, not the pages' (which allows this origin's scripts), so even
    a browser that rendered it would give it an opaque origin and no script.
    """
    key, reader = await open_requested(request)
    try:
        name = key.rsplit("/", 1)[-1] or "download"
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(reader.info.size),
                # RFC 6266/5987: the UTF-8 name percent-encoded, never raw in a header
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}",
                "ETag": reader.info.etag,
                # set here, so the pages' setdefault() of their own CSP leaves them alone
                "Content-Security-Policy": OBJECT_CSP,
                "X-Content-Type-Options": NOSNIFF,
            }
        )
        await response.prepare(request)
        async for piece in reader:
            await response.write(piece)
        await response.write_eof()
        return response
    finally:
        await reader.aclose()


def _crumbs(prefix: str) -> list[tuple[str, str]]:
    """Each leading folder of ``prefix`` as (label, prefix up to and including it)."""
    crumbs, acc = [], ""
    for part in prefix.split("/")[:-1]:
        acc += part + "/"
        crumbs.append((part, acc))
    return crumbs


def _prefix_query(prefix: str) -> str:
    return urlencode({"prefix": prefix})


async def data_object(request: web.Request) -> web.StreamResponse:
    """One object: what the object store says, its record, and its session's metadata."""
    bucket = request.match_info["bucket"]
    key = request.query.get("key", "")
    if not key:
        raise PageError(400, "Say which object: ?key=...")
    try:
        view = await describe_object(
            request.config_dict[OBJECT_STORE], services(request), bucket, key
        )
    except S3Error as err:
        pass_outage(err)
        raise PageError(502, f"The object store refused to show it: {err.code}") from None
    if view is None:
        raise PageError(404, f"There is no object s3://{bucket}/{key}.")
    folder = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
    shown = None
    if view.info is not None:
        try:
            shown = await preview_of(request.config_dict[OBJECT_STORE], bucket, view.info)
        except S3Error as err:
            # the object went away (or the store failed) between the head and the read: the
            # page still shows what it knows, without a preview
            pass_outage(err)
            shown = Preview(None, note=f"The object store refused to read it: {err.code}")
    config = request.config_dict[CONFIG]
    # the S3 endpoint for the snippets: this page's origin, unless the UI has a host name of its
    # own (as the session page's snippets)
    endpoint = config.base_url if config.ui_url else str(request.url.origin())
    return await render(
        request,
        "data_object.html",
        {
            "bucket": bucket,
            "key": key,
            "v": view,
            "values": view.labelled_values(),
            "session_state": session_status(view.session) if view.session else None,
            "crumbs": _crumbs(folder),
            "name": key[len(folder) :],
            "folder": folder,
            "urlencode": _prefix_query,
            "preview": shown,
            "s3_uri": f"s3://{bucket}/{key}",
            "download_snippets": download_snippets(endpoint, bucket, key),
            "twin": "/_minimo/api/v1/buckets/"
            + quote(bucket, safe="")
            + "/object?"
            + urlencode({"key": key}),
        },
    )


# -- link existing data ----------------------------------------------------------------------------
async def _adopt_context(
    request: web.Request, bucket: str, prefix: str
) -> tuple[Unlinked | None, list[Form], str | None]:
    """The preview of adopting under ``prefix``: unlinked objects and the forms allowed there."""
    if not prefix:
        return None, [], None
    objects = request.config_dict[OBJECT_STORE]
    svc = services(request)
    try:
        await objects.head_bucket(bucket)
        unlinked = await scan_unlinked(objects, svc.store, bucket, prefix)
    except S3Error as err:
        pass_outage(err)
        if err.code in NO_BUCKET:
            raise PageError(404, f"There is no bucket {bucket}.") from None
        raise PageError(502, f"The object store refused to list {bucket}: {err.code}") from None
    forms, problem = await svc.sessions.allowed_forms(page_user(request), bucket, prefix)
    return unlinked, forms, problem


async def adopt_page(request: web.Request) -> web.StreamResponse:
    bucket = request.match_info["bucket"]
    prefix = adopt_prefix_of(request.query.get("prefix", ""))
    unlinked, forms, problem = await _adopt_context(request, bucket, prefix)
    chosen = next((f for f in forms if f.name == request.query.get("form", "")), None)
    if chosen is None and len(forms) == 1:
        chosen = forms[0]
    values = {f.name: input_value(f, f.default) for f in chosen.fields} if chosen else {}
    return await _render_adopt(request, bucket, prefix, unlinked, forms, problem, chosen, values)


async def _render_adopt(
    request: web.Request,
    bucket: str,
    prefix: str,
    unlinked: Unlinked | None,
    forms: list[Form],
    problem: str | None,
    chosen: Form | None,
    values: dict[str, object],
    errors: dict[str, list[str]] | None = None,
    general: list[str] | None = None,
    status: int = 200,
) -> web.Response:
    return await render(
        request,
        "data_adopt.html",
        {
            "bucket": bucket,
            "prefix": prefix,
            "crumbs": _crumbs(prefix),
            "urlencode": _prefix_query,
            "unlinked": unlinked,
            "scan_limit": UNLINKED_SCAN,
            # pasted into a shell: a folder name with spaces or quotes stays one argument
            "shell_prefix": shlex.quote(prefix) if prefix else "PREFIX",
            "forms": forms,
            "problem": problem,
            "form": chosen,
            "values": values,
            "errors": errors or {},
            "general_errors": general or [],
        },
        status=status,
    )


async def adopt_submit(request: web.Request) -> web.StreamResponse:
    who = page_user(request)
    data = await request.post()
    bucket = request.match_info["bucket"]
    prefix = adopt_prefix_of(str(data.get("_prefix", "")))
    if not prefix:
        raise PageError(400, "Say which prefix to link: a folder such as 2019/old-runs/.")
    svc = services(request)
    form = await svc.forms.find(str(data.get("_form", "")))
    if form is None:
        raise PageError(400, "Choose one of the forms offered for this place.")
    values = values_from_post(form, data)
    errors: dict[str, list[str]] = {}
    general: list[str] = []
    try:
        result = await adopt(
            request.config_dict[OBJECT_STORE], svc, who, bucket, prefix, form.name, values
        )
    except FormValidationError as exc:
        errors, general = split_errors(form, exc)
    except SessionNotFound:
        # adopt's only missing target is the bucket
        raise PageError(404, f"There is no bucket {bucket}.") from None
    except SessionError as exc:
        general = [str(exc)]
    except S3Error as err:
        if err.code in NO_BUCKET:
            raise PageError(404, f"There is no bucket {bucket}.") from None
        # The session may be open already with part of the data adopted: say so, and where.
        # (A store outage keeps its status and Retry-After: ui.outages.)
        outage = outage_of(err)
        raise PageError(
            outage.status if outage is not None else 502,
            f"The object store failed while linking s3://{bucket}/{prefix} ({err.code}). "
            "Objects linked before the failure keep their session; run it again to link the "
            "rest (linked objects are skipped).",
            outage.headers if outage is not None else None,
        ) from None
    else:
        return await _render_result(request, bucket, prefix, result)
    unlinked, forms, problem = await _adopt_context(request, bucket, prefix)
    return await _render_adopt(
        request,
        bucket,
        prefix,
        unlinked,
        forms or [form],
        problem,
        form,
        display_values(form, values),
        errors,
        general,
        status=400,
    )


async def _render_result(
    request: web.Request, bucket: str, prefix: str, result: AdoptResult
) -> web.Response:
    return await render(
        request,
        "data_adopted.html",
        {
            "bucket": bucket,
            "prefix": prefix,
            "crumbs": _crumbs(prefix),
            "urlencode": _prefix_query,
            "r": result,
        },
    )


ROUTES = [
    Page("GET", "/data/", data_buckets, "reader", "data"),
    Page("POST", "/data/", create_bucket_submit, "admin", "data"),
    Page("GET", "/data/{bucket}", data_bucket, "reader", "data_bucket"),
    Page("GET", "/data/{bucket}/object", data_object, "reader", "data_object"),
    Page("GET", "/data/{bucket}/adopt", adopt_page, "admin", "data_adopt"),
    Page("POST", "/data/{bucket}/adopt", adopt_submit, "admin", "data_adopt"),
    Page("GET", "/download/{bucket}", download, "reader", "download"),
    Page("GET", "/preview/{bucket}", image, "reader", "preview"),
]
