"""``--ui-url``: the web UI on a host name of its own, so stored objects never share its origin.

Without it the UI (``/_minimo/``) and S3 answer on every host name the gateway is reached by,
and objects are kept from scripting the UI by the headers of gateway.protocol.safe_serving alone.
With ``--ui-url https://ui.example.org`` (and ``--public-url https://s3.example.org`` for S3):

- On the UI's host name, S3 reads (GET and HEAD: objects, listings, everything) are refused, so
  no stored byte is ever served on the origin that holds the login cookie. S3 writes stay
  allowed there: the session page's browser upload sends presigned PUT/POST/DELETE requests to
  its own origin (the S3 side has no CORS), and their answers carry no stored bytes.
- On every other host name, ``/_minimo/`` answers only health and metrics (load balancers probe
  by address); any other UI or API path is redirected (GET, HEAD) to the UI's URL or refused
  with 421 Misdirected Request, so the login cookie is never set on the S3 host name.

Host names are compared, not ports: cookies do not keep ports apart, so two ports of one name
would not separate anything. The middleware exists only when the option is set; without it the
S3 hot path pays nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from gateway.protocol.errors import S3Error, S3ErrorCode

UI_PREFIX = "/_minimo/"
#: answered on any host name (probes reach the gateway by address)
ANY_HOST_PATHS = frozenset({"/_minimo/health", "/_minimo/metrics"})
READS = frozenset({"GET", "HEAD"})


def host_name(host_header: str) -> str:
    """The name of a ``Host`` header: lower case, without port or trailing dot."""
    host = host_header.strip().lower()
    if host.startswith("["):  # an IPv6 address: [::1]:9000
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    return host.partition(":")[0].rstrip(".")


def parse_ui_url(url: str) -> tuple[str, str]:
    """(base URL without trailing slash, host name) of ``--ui-url``; ValueError when unusable."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL with a host name")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{url!r} must be only scheme and host (the UI lives at /_minimo/)")
    return f"{parts.scheme}://{parts.netloc}", host_name(parts.netloc)


def check_ui_url(ui_url: str, public_url: str | None) -> None:
    """ValueError unless ``ui_url`` is usable beside ``public_url`` (which it needs)."""
    _, ui_name = parse_ui_url(ui_url)
    if not public_url:
        raise ValueError(
            "--ui-url needs --public-url: the URL S3 clients (and the UI's snippets) use"
        )
    public_name = urlsplit(public_url.strip()).hostname or ""
    if host_name(public_name) == ui_name:
        raise ValueError(f"--ui-url and --public-url must name different hosts, not {ui_name}")


def refuse_read_on_ui_host(request: web.Request, ui_name: str, s3_url: str) -> None:
    """The S3 side's half: S3Error AccessDenied for a read sent to the UI's host name."""
    if request.method in READS and host_name(request.headers.get("Host", "")) == ui_name:
        raise S3Error(
            S3ErrorCode.AccessDenied,
            f"{ui_name} serves minimo's web UI: objects are never read on its host name. "
            f"Send S3 requests to {s3_url}.",
        )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def ui_host_middleware(
    ui_url: str,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """The UI side's half: ``/_minimo/`` answers on the UI's host name only. ``raw_path`` always
    starts with ``/_minimo`` here, so the redirect cannot lead off the UI's host."""
    base, ui_name = parse_ui_url(ui_url)

    @web.middleware
    async def ui_on_its_host(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if (
            (path.startswith(UI_PREFIX) or path == UI_PREFIX[:-1])
            and path not in ANY_HOST_PATHS
            and host_name(request.headers.get("Host", "")) != ui_name
        ):
            if request.method in READS:
                raise web.HTTPPermanentRedirect(base + request.raw_path)
            raise web.HTTPMisdirectedRequest(
                text=f"minimo's web UI and API answer at {base}/_minimo/ only.\n"
            )
        return await handler(request)

    return ui_on_its_host
