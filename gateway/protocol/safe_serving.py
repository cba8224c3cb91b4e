"""How stored bytes are served so that they can never run script on the UI's origin.

The UI lives under ``/_minimo/`` on the same host and port as S3, and ``/_minimo/api/v1/me``
hands a signed-in browser its CSRF token. An uploaded HTML (or SVG, XML, JavaScript) object
opened in that browser would run with the user's login. Three layers keep that from happening
(docs/deploy.md, "What object answers carry"):

1. Every S3 answer carries ``X-Content-Type-Options: nosniff`` (the browser never guesses a
   type, so ``text/plain`` or ``binary/octet-stream`` bytes are never rendered as HTML) and
   :data:`OBJECT_CSP` (gateway.s3api.app stamps both on every S3 response, error documents included:
   two constant headers cost less than deciding which answers need them; the web UI's download
   answer carries both too).
2. Active media types (:func:`download_rule`) are answered with ``Content-Disposition:
   attachment``, also when the client asked for ``inline``, so the browser saves them instead
   of rendering them.
3. A browser's same-origin request for an object as a script, worker or style sheet
   (``Sec-Fetch-Dest``, :func:`refuse_as_subresource`) is refused: Content-Disposition does
   not stop ``<script src>``, and the UI's own CSP allows scripts of its origin.
4. Optionally the UI gets a host name of its own (``--ui-url``), so objects and the login
   cookie never share an origin at all.
"""

from __future__ import annotations

from functools import lru_cache

from multidict import CIMultiDictProxy

from gateway.protocol.errors import S3Error, S3ErrorCode

#: ``sandbox`` (no allow-* tokens): the document gets an opaque origin, no scripts, no forms,
#: no plugins, no popups, so even bytes a browser does render cannot reach the UI's cookies,
#: storage or API as this origin. ``default-src 'none'``: nothing is fetched on the document's
#: behalf (no scripts, frames, fonts, connections, images from elsewhere).
#: What still displays when a user opens an object: images, audio/video and plain text. The
#: browser shows those in a document it builds itself around the response body, which is the
#: main resource, not a fetch that ``default-src`` governs; ``style-src 'unsafe-inline'`` lets
#: that built-in document keep its own inline layout styles (Firefox centres images and wraps
#: text with them). PDF does not display under ``sandbox`` in Chromium (its viewer is a plugin,
#: and sandboxed documents get none), so PDFs default to a download instead of a "blocked"
#: page (see PDF_TYPES).
OBJECT_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'"
NOSNIFF = "nosniff"

#: :func:`download_rule` answers
RENDER = 0  #: harmless: served as the client asked
DOWNLOAD_BY_DEFAULT = 1  #: attachment unless the client chose a disposition
FORCE_DOWNLOAD = 2  #: always attachment, whatever the client asked

#: Types a browser renders as a document that can run script (HTML, XHTML, SVG and any XML,
#: which may carry XHTML or XSLT), the JavaScript family (harmless as a top-level page, but
#: never worth rendering on this origin) and types that replace documents or load plugins.
#: ``*+xml`` and any subtype ending in ``xml`` or containing ``script`` are matched by rule in
#: :func:`_classify`, so this set only holds what those rules miss.
ACTIVE_TYPES = frozenset(
    {
        "text/html",
        "text/xsl",
        "multipart/x-mixed-replace",  # each part replaces the document (may be HTML)
        "application/x-shockwave-flash",  # legacy plugins
        "application/futuresplash",
    }
)
#: displayed by a plugin-like viewer that ``sandbox`` blocks in Chromium (see OBJECT_CSP)
PDF_TYPES = frozenset({"application/pdf", "application/x-pdf"})

#: RFC 7230 token characters, which type and subtype consist of
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz")
_HTTP_WS = " \t\r\n"


def _essence(part: str) -> str | None:
    """``type/subtype`` of one media type, lower-cased, or None when it is not one."""
    essence = part.partition(";")[0].strip(_HTTP_WS).lower()
    kind, slash, sub = essence.partition("/")
    if not slash or not kind or not sub:
        return None
    if not _TOKEN.issuperset(kind) or not _TOKEN.issuperset(sub):
        return None
    return essence


def _classify(essence: str) -> int:
    if essence in ACTIVE_TYPES:
        return FORCE_DOWNLOAD
    sub = essence.partition("/")[2]
    if sub.endswith("xml") or "script" in sub:
        # text/xml, application/xml, image/svg+xml, application/xhtml+xml, any other *+xml;
        # text/javascript, application/x-javascript, text/ecmascript, text/jscript, ...
        return FORCE_DOWNLOAD
    if essence in PDF_TYPES:
        return DOWNLOAD_BY_DEFAULT
    return RENDER


@lru_cache(maxsize=512)
def download_rule(content_type: str) -> int:
    """How a response whose Content-Type is ``content_type`` must be disposed.

    Robust to case, parameters and whitespace. A header value may name several types separated
    by commas, and browsers then use the last valid one: every one is judged and the strictest
    wins. A value that names no valid type at all (empty, garbage) is forced to a download too,
    as a browser would sniff or guess it. Cached: a handful of distinct Content-Types make up
    nearly all GETs, so the hot path pays one dictionary lookup (bounded: 512 entries).
    """
    rule = None
    for part in content_type.split(","):
        essence = _essence(part)
        if essence is not None:
            rule = max(rule or RENDER, _classify(essence))
    return FORCE_DOWNLOAD if rule is None else rule


def as_attachment(disposition: str | None) -> str:
    """``disposition`` turned into an attachment, keeping its parameters (the file name)."""
    if disposition is None:
        return "attachment"
    head, semi, params = disposition.partition(";")
    kind = head.strip(_HTTP_WS)
    if kind.lower() == "attachment":
        return disposition
    if "=" in kind:
        # no disposition type at all, only parameters ("filename=a.html")
        return "attachment; " + disposition.strip(_HTTP_WS)
    return "attachment" + semi + params if semi else "attachment"


def apply_download_rule(headers: dict[str, str], content_type: str) -> None:
    """Set ``headers['content-disposition']`` as :func:`download_rule` demands (in place)."""
    rule = download_rule(content_type)
    if rule == FORCE_DOWNLOAD:
        headers["content-disposition"] = as_attachment(headers.get("content-disposition"))
    elif rule == DOWNLOAD_BY_DEFAULT and "content-disposition" not in headers:
        headers["content-disposition"] = "attachment"


#: ``Sec-Fetch-Dest`` values of requests whose answer the browser would run (or apply) in the
#: requesting page: scripts of every kind, workers, worklets, style sheets, XSLT
RUNNABLE_DESTINATIONS = frozenset(
    {
        "script",
        "worker",
        "sharedworker",
        "serviceworker",
        "audioworklet",
        "paintworklet",
        "style",
        "xslt",
    }
)


def refuse_as_subresource(headers: CIMultiDictProxy[str], resource: str) -> None:
    """S3Error AccessDenied when a page of this origin loads an object to run it.

    Only browsers send ``Sec-Fetch-*``, so S3 clients pay one failed header lookup. Cross-origin
    pages may still load objects (their scripts run on their own origin, not the UI's)."""
    dest = headers.get("Sec-Fetch-Dest")
    if (
        dest is not None
        and dest in RUNNABLE_DESTINATIONS
        and headers.get("Sec-Fetch-Site") == "same-origin"
    ):
        raise S3Error(
            S3ErrorCode.AccessDenied,
            f"minimo does not serve objects to its own origin as a {dest}: stored objects never "
            "run in the web UI's pages.",
            resource=resource,
        )
