"""The ``s3`` object store: forwards every operation to an upstream S3 endpoint.

The gateway talks to the upstream with its own credentials, path-style, over one pooled
``aiohttp.ClientSession``. Object bodies stream both ways and are never held whole in memory:
uploads (the client's body, already decoded and being verified by the gateway) go out re-framed
as unsigned ``aws-chunked`` with a CRC32C trailer and an exact ``Content-Length`` (see
:class:`~gateway.backends.s3.chunked_feed.ChunkedFeed` for why), downloads are handed to the
handler piece by piece. Upstream S3 errors come back as the same :class:`S3Error`; an
unreachable upstream is a 503 ``ServiceUnavailable`` that says the object store is unavailable
(the endpoint and the connection error go to the server log, never to the client:
docs/failures.md). The time bounds are in :mod:`.upstream`.

The modules, one concern each:

* :mod:`.store`            :class:`S3ObjectStore`, the operations (the ObjectStore interface)
* :mod:`.upstream`         the HTTP layer: signing, the pooled session, retries, time bounds
* :mod:`.upstream_errors`  an upstream's error answers as the S3 errors clients get
* :mod:`.translate`        the interface's values to and from headers, XML, times and ranges
* :mod:`.chunked_feed`     the aws-chunked framing of uploads, with its CRC32C trailer
* :mod:`.splice_reader`    relaying a GET, spliced socket to socket where possible
"""

from gateway.backends.s3.store import S3ObjectStore

__all__ = ["S3ObjectStore"]
