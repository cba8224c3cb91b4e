"""The Python ceiling: an aiohttp server that speaks just enough S3 to be benchmarked.

PUT reads the body to the end and throws it away; GET streams zeros of the size last PUT under
that key. No authentication, no disk, no checksums: whatever a real gateway on aiohttp reaches,
this is the most it could reach on the same machine with the same event loop.

Run: ``python bench/bare_aiohttp.py --listen 127.0.0.1:PORT``.
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

#: Size of each piece written to a GET response; the same as a typical backend read.
CHUNK = 1 << 20
ZEROS = bytes(CHUNK)
ETAG = '"d41d8cd98f00b204e9800998ecf8427e"'
SIZES = web.AppKey("sizes", dict[str, int])


async def put(request: web.Request) -> web.Response:
    # Bucket creation and object writes look the same here: consume and forget.
    received = 0
    while True:
        piece = await request.content.readany()
        if not piece:
            break
        received += len(piece)
    request.app[SIZES][request.path] = received
    return web.Response(status=200, headers={"ETag": ETAG})


async def get(request: web.Request) -> web.StreamResponse:
    size = request.app[SIZES].get(request.path)
    if size is None:
        return web.Response(status=404, text="<Error><Code>NoSuchKey</Code></Error>")
    response = web.StreamResponse(status=200, headers={"ETag": ETAG})
    response.content_length = size
    response.content_type = "application/octet-stream"
    await response.prepare(request)
    view = memoryview(ZEROS)
    remaining = size
    while remaining > 0:
        n = min(CHUNK, remaining)
        await response.write(view[:n])
        remaining -= n
    await response.write_eof()
    return response


async def delete(request: web.Request) -> web.Response:
    request.app[SIZES].pop(request.path, None)
    return web.Response(status=204)


def make_app() -> web.Application:
    app = web.Application(client_max_size=1 << 20)
    # Only key -> size is remembered, so memory stays flat whatever the object sizes.
    app[SIZES] = {}
    app.router.add_route("PUT", "/{tail:.*}", put)
    app.router.add_route("GET", "/{tail:.*}", get)
    app.router.add_route("DELETE", "/{tail:.*}", delete)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:9100", help="HOST:PORT (loopback only)")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    if host not in ("127.0.0.1", "localhost"):
        parser.error("the bare server binds loopback only")
    try:
        import uvloop  # the gateway runs on uvloop when present; the ceiling must too

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    web.run_app(make_app(), host=host, port=int(port), print=None, access_log=None)


if __name__ == "__main__":
    main()
