"""The object store interface: what every backend (``local``, ``s3``) must do.

Backends move bytes and keep S3's object model; they know nothing about users, policies or
sessions. They raise :class:`gateway.protocol.errors.S3Error` with the S3 code a client expects
(``NoSuchBucket``, ``NoSuchKey``, ``PreconditionFailed``...), so handlers pass errors on as-is.

Conventions shared by all backends:

* ETags are returned *without* quotes: ``"<md5 hex>"`` for single uploads and
  ``"<md5 of the part md5s>-<N>"`` for multipart uploads. Handlers add the quotes.
* Times are timezone-aware UTC datetimes.
* A write consumes a :class:`Body` to the end. If iterating it raises (bad checksum, client
  went away), the backend must leave no visible object and re-raise the exception unchanged.
* User metadata keys are lower-case, without the ``x-amz-meta-`` prefix.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import ClassVar, Literal, Protocol

# The interface speaks these S3 words (conditional headers, byte ranges, the key length limit);
# they live in gateway.protocol and are named here too, for the backends and their callers.
from gateway.protocol.conditions import Conditions as Conditions
from gateway.protocol.errors import S3Error, S3ErrorCode
from gateway.protocol.names import MAX_KEY_BYTES as MAX_KEY_BYTES
from gateway.protocol.ranges import ByteRange as ByteRange

#: Headers that S3 stores with an object and returns on GET/HEAD (besides Content-Type).
STORED_HEADERS = (
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
)

MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024
MAX_PART_NUMBER = 10000


class Body(Protocol):
    """A request body being streamed in: decoded bytes, already being verified.

    ``size`` is the decoded length when known (it always is for writes the gateway accepts).
    Iterating yields the bytes; it raises S3Error when a signature, checksum or length check
    fails, which happens no later than the end of the stream and before the last piece is yielded.
    """

    size: int | None

    def __aiter__(self) -> AsyncIterator[bytes]: ...


@dataclass(slots=True)
class WriteMeta:
    """What a client may attach to an object when writing it."""

    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # subset of STORED_HEADERS


ChecksumType = Literal["FULL_OBJECT", "COMPOSITE"]


@dataclass(slots=True)
class ObjectChecksum:
    """The checksum kept with an object: ``algorithm`` as in ``x-amz-checksum-<algorithm>``
    (crc32, crc32c, crc64nvme, sha1, sha256), ``value`` as S3 sends it (base64, with ``-N``
    for a composite of N parts)."""

    algorithm: str
    value: str
    type: ChecksumType = "FULL_OBJECT"


@dataclass(slots=True)
class KeepChecksum:
    """The checksum a write must keep with its object. The algorithm is known before the body
    streams (an S3 upstream is told it in the request headers); ``value()`` only once the body
    was read to its end, which is when a backend seals the object."""

    algorithm: str
    value: Callable[[], str]


def kept(keep: KeepChecksum | None) -> ObjectChecksum | None:
    """What a finished write keeps of ``keep`` (call once the body was read to its end)."""
    return None if keep is None else ObjectChecksum(keep.algorithm, keep.value())


@dataclass(slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: datetime
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    #: the kept checksum, when the object has one (a store may leave it out of listings)
    checksum: ObjectChecksum | None = None
    #: the number of parts of an object made by CompleteMultipartUpload, when known
    parts_count: int | None = None


@dataclass(slots=True)
class BucketInfo:
    name: str
    created: datetime


class ObjectReader(ABC):
    """An object being read: its info, the served range (None = whole object) and its bytes."""

    info: ObjectInfo
    byte_range: ByteRange | None

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[bytes]: ...

    @abstractmethod
    async def aclose(self) -> None:
        """Release the file or upstream connection; safe to call more than once."""


@dataclass(slots=True)
class ListPage:
    objects: list[ObjectInfo]
    prefixes: list[str]
    truncated: bool
    #: the last key or common prefix returned; where the next page starts after
    next_marker: str | None = None


@dataclass(slots=True)
class PartInfo:
    number: int
    etag: str
    size: int
    last_modified: datetime
    #: the part's kept checksum, when the upload keeps one
    checksum: ObjectChecksum | None = None


@dataclass(slots=True)
class PartsPage:
    parts: list[PartInfo]
    truncated: bool
    next_marker: int | None = None


@dataclass(slots=True)
class UploadInfo:
    key: str
    upload_id: str
    initiated: datetime


@dataclass(slots=True)
class UploadsPage:
    uploads: list[UploadInfo]
    prefixes: list[str]
    truncated: bool
    next_key_marker: str | None = None
    next_upload_id_marker: str | None = None


@dataclass(slots=True)
class CopyResult:
    etag: str
    last_modified: datetime
    #: UploadPartCopy into an upload that keeps a checksum: the copied part's
    checksum: ObjectChecksum | None = None


@dataclass(slots=True)
class ObjectPart:
    """One part of a completed multipart object (GetObjectAttributes ``ObjectParts``)."""

    number: int
    size: int
    #: the part's checksum, when its upload kept one
    checksum: ObjectChecksum | None = None


@dataclass(slots=True)
class ObjectPartsPage:
    """A page of a multipart object's parts: ``count`` is all its parts; ``parts`` those after
    the marker (None when the store does not know them, e.g. an upstream that does not say)."""

    count: int
    parts: list[ObjectPart] | None
    truncated: bool = False
    next_marker: int | None = None


LeftoverKind = Literal["temp_file", "interrupted_complete"]

#: ``dead(owner, age)``: whether a leftover of instance ``owner`` (None: unknown) that was last
#: touched ``age`` seconds ago belongs to a dead process (gateway.usecases.recovery decides)
DeadOwner = Callable[[str | None, float], bool]


@dataclass(slots=True)
class Leftover:
    """Something a crashed write left in a backend's own scratch space
    (gateway.usecases.recovery)."""

    kind: LeftoverKind
    #: where, relative to the store (for messages)
    name: str
    #: the instance id of the process that made it, when known
    owner: str | None
    #: bytes it holds
    size: int
    detail: str
    repaired: bool = False


class ObjectStore(ABC):
    """One object store backend. Instances are shared by all requests of a process."""

    #: the backend's name, "local" or "s3", for logs and messages; callers that need to know
    #: what a backend does ask one of its capabilities below, never its name
    kind: str

    #: Whether the ETags this store writes are the MD5 of the bytes it is given, computed in
    #: the gateway. Then the request body should hash while it streams (the store takes that
    #: digest and does not read the bytes a second time); a store that computes its ETags
    #: elsewhere (an S3 upstream) would only waste the CPU.
    needs_body_md5: ClassVar[bool] = False

    @property
    def local_dir(self) -> Path | None:
        """The directory on this host that holds the objects, or None when they live elsewhere
        (an S3 upstream). A full file system there answers probes fine but refuses every
        write, so health checks its free space."""
        return None

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open pools, create directories. Called once before serving."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release pools and files."""

    @abstractmethod
    async def check(self) -> None:
        """Raise if the store is unreachable (used by /_minimo/health)."""

    async def leftovers(
        self, dead: DeadOwner, *, repair: bool, thorough: bool = False
    ) -> list[Leftover]:
        """The scratch files of writes whose process is dead (``dead`` decides), removed or
        (an upload whose completion was interrupted) put back when ``repair``. ``thorough``
        (``minimo reconcile``) also looks for what only a walk of all the store's own
        records finds (the local store's part layouts that no object names).

        Only backends with scratch space of their own have any: an S3 upstream keeps unfinished
        uploads itself, where they can be listed and aborted (and expire,
        gateway.usecases.recovery)."""
        return []

    # -- buckets -------------------------------------------------------------------------------
    @abstractmethod
    async def list_buckets(self) -> list[BucketInfo]: ...

    @abstractmethod
    async def create_bucket(self, bucket: str) -> None:
        """Raise BucketAlreadyOwnedByYou when it exists."""

    @abstractmethod
    async def delete_bucket(self, bucket: str) -> None:
        """Raise NoSuchBucket or BucketNotEmpty (in-flight multipart uploads count as content)."""

    @abstractmethod
    async def head_bucket(self, bucket: str) -> None:
        """Raise NoSuchBucket when absent."""

    # -- objects -------------------------------------------------------------------------------
    @abstractmethod
    async def put_object(
        self,
        bucket: str,
        key: str,
        body: Body,
        meta: WriteMeta,
        *,
        if_none_match: bool = False,
        if_match: str | None = None,
        checksum: KeepChecksum | None = None,
    ) -> str:
        """Store the object atomically and return its ETag.

        ``if_none_match`` (``If-None-Match: *``) makes the write fail with PreconditionFailed
        when the key already exists, atomically with respect to concurrent writers.
        ``if_match`` (``If-Match: "etag"``) makes it fail with NoSuchKey when there is no
        object, PreconditionFailed when its ETag differs (as atomically as the store allows).
        ``checksum`` is kept with the object (a FULL_OBJECT checksum) and returned in
        :attr:`ObjectInfo.checksum` by head_object and open_object.
        """

    @abstractmethod
    async def head_object(
        self, bucket: str, key: str, conditions: Conditions | None = None
    ) -> ObjectInfo:
        """Raise NoSuchBucket/NoSuchKey; apply conditions (PreconditionFailed / NotModified)."""

    @abstractmethod
    async def open_object(
        self,
        bucket: str,
        key: str,
        *,
        range_header: str | None = None,
        conditions: Conditions | None = None,
    ) -> ObjectReader:
        """Open for reading. ``range_header`` is the client's raw ``Range`` value; an invalid
        or multi-range header is ignored (whole object), an unsatisfiable one raises
        InvalidRange."""

    @abstractmethod
    async def part_range(
        self, bucket: str, key: str, part_number: int, conditions: Conditions | None = None
    ) -> tuple[ObjectInfo, ByteRange | None]:
        """Part ``part_number`` of an object (GET/HEAD ``partNumber``): its info, with
        ``parts_count`` for a multipart object, and the part's bytes (None when empty). An
        object not made by multipart has one part, the whole. InvalidPartNumber when there is
        no such part; conditions as in head_object."""

    async def object_parts(
        self,
        bucket: str,
        key: str,
        *,
        part_marker: int = 0,
        max_parts: int = 1000,
        conditions: Conditions | None = None,
    ) -> tuple[ObjectInfo, ObjectPartsPage | None]:
        """The object's info and, for a multipart object, the page of its parts after
        ``part_marker`` (GetObjectAttributes); None for an object of one part. This default
        knows only the count; the stores override it with what they keep."""
        info = await self.head_object(bucket, key, conditions)
        if not info.parts_count:
            return info, None
        return info, ObjectPartsPage(info.parts_count, None)

    @abstractmethod
    async def copy_object(
        self,
        src_bucket: str,
        src_key: str,
        dst_bucket: str,
        dst_key: str,
        *,
        meta: WriteMeta | None,
        conditions: Conditions | None = None,
    ) -> CopyResult:
        """Server-side copy. ``meta=None`` keeps the source's metadata (directive COPY).
        ``conditions`` apply to the source (x-amz-copy-source-if-*)."""

    @abstractmethod
    async def delete_object(self, bucket: str, key: str) -> None:
        """Delete; a missing key is not an error (S3 answers 204 either way)."""

    @abstractmethod
    async def list_objects(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        start_after: str = "",
        max_keys: int = 1000,
    ) -> ListPage:
        """Keys in UTF-8 byte order, strictly after ``start_after``.

        With a delimiter, keys sharing ``prefix + ... + delimiter`` fold into one common prefix;
        a common prefix equal to ``start_after`` is skipped whole (it was the last entry of the
        previous page). ``max_keys`` counts keys and prefixes together; 0 returns nothing.
        """

    # -- multipart -----------------------------------------------------------------------------
    @abstractmethod
    async def create_multipart_upload(
        self, bucket: str, key: str, meta: WriteMeta, *, checksum: tuple[str, str] | None = None
    ) -> str:
        """Return a new upload id. ``checksum`` is ``(algorithm, type)``
        (gateway.protocol.upload_checksums): every part must then keep that checksum."""

    @abstractmethod
    async def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        body: Body,
        *,
        checksum: KeepChecksum | None = None,
    ) -> str:
        """Store (or replace) one part; return its ETag. NoSuchUpload when unknown;
        InvalidRequest when the upload keeps a checksum and ``checksum`` is not of it."""

    @abstractmethod
    async def upload_part_copy(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        src_bucket: str,
        src_key: str,
        *,
        range_header: str | None = None,
        conditions: Conditions | None = None,
    ) -> CopyResult: ...

    @abstractmethod
    async def complete_multipart_upload(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        parts: list[tuple[int, str]],
        *,
        if_none_match: bool = False,
        if_match: str | None = None,
        part_checksums: dict[int, tuple[str, str]] | None = None,
    ) -> str:
        """Assemble the listed (part number, etag) parts, make the object visible atomically and
        return its ETag. InvalidPart / InvalidPartOrder / EntityTooSmall as S3 does. The
        conditions are those of :meth:`put_object`; when one fails the upload stays usable.

        ``part_checksums`` maps a part number to the ``(algorithm, base64)`` the client listed
        for it; an upload that keeps a checksum needs one for every part (InvalidRequest) that
        matches the part's (InvalidPart), and the object keeps the checksum made of them."""

    @abstractmethod
    async def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None: ...

    @abstractmethod
    async def list_parts(
        self, bucket: str, key: str, upload_id: str, *, part_marker: int = 0, max_parts: int = 1000
    ) -> PartsPage: ...

    @abstractmethod
    async def list_multipart_uploads(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        max_uploads: int = 1000,
    ) -> UploadsPage: ...


def no_such_key(bucket: str, key: str) -> S3Error:
    return S3Error(S3ErrorCode.NoSuchKey, resource=f"/{bucket}/{key}")


def no_such_bucket(bucket: str) -> S3Error:
    return S3Error(S3ErrorCode.NoSuchBucket, resource=f"/{bucket}")
