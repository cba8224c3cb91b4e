"""The S3 operations minimo serves: which request is which operation, its handler and its
policy class.

:data:`OPERATIONS` is the one table: each operation's handler and the class
(:class:`policy.enforce.OperationClass`) by which the enforcer decides it. :func:`classify`
names the operation of a request (method, target, query, headers) and answers its row, so a
request either reaches an operation of the table or is refused (NotImplemented,
MethodNotAllowed).

A new operation is a handler (``handlers/``), a row here and the branch of :func:`classify`
that recognizes it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDictProxy, MultiDictProxy

from gateway.protocol.errors import S3Error, S3ErrorCode
from gateway.s3api.handlers import attributes, buckets, listing, multipart, objects
from gateway.s3api.handlers.common import S3Request
from policy.enforce import OperationClass

Handler = Callable[[S3Request], Awaitable[web.StreamResponse]]

READ = OperationClass.READ
CREATE = OperationClass.CREATE
CONTINUE = OperationClass.CONTINUE
DELETE = OperationClass.DELETE
BUCKET_ADMIN = OperationClass.BUCKET_ADMIN


@dataclass(frozen=True, slots=True)
class S3Operation:
    """One S3 operation: its name (as AWS spells it), what serves it and how policy judges it."""

    name: str
    handler: Handler
    policy_class: OperationClass

    @property
    def is_read(self) -> bool:
        """Reads are all the outage grace allows (policy.identity) and are never audited."""
        return self.policy_class is OperationClass.READ


def _table(*operations: S3Operation) -> dict[str, S3Operation]:
    return {op.name: op for op in operations}


OPERATIONS: dict[str, S3Operation] = _table(
    S3Operation("ListBuckets", buckets.list_buckets, READ),
    S3Operation("CreateBucket", buckets.create_bucket, BUCKET_ADMIN),
    S3Operation("DeleteBucket", buckets.delete_bucket, BUCKET_ADMIN),
    S3Operation("HeadBucket", buckets.head_bucket, READ),
    S3Operation("GetBucketLocation", buckets.get_bucket_location, READ),
    S3Operation("GetBucketVersioning", buckets.get_bucket_versioning, READ),
    S3Operation("GetBucketAcl", buckets.get_bucket_acl, READ),
    S3Operation("ListObjects", listing.list_objects, READ),
    S3Operation("ListObjectsV2", listing.list_objects_v2, READ),
    S3Operation("ListObjectVersions", listing.list_object_versions, READ),
    S3Operation("ListMultipartUploads", listing.list_multipart_uploads, READ),
    S3Operation("GetObject", objects.get_object, READ),
    S3Operation("HeadObject", objects.head_object, READ),
    S3Operation("GetObjectAcl", objects.get_object_acl, READ),
    S3Operation("GetObjectAttributes", attributes.get_object_attributes, READ),
    S3Operation("PutObject", objects.put_object, CREATE),
    S3Operation("CopyObject", objects.copy_object, CREATE),
    S3Operation("DeleteObject", objects.delete_object, DELETE),
    S3Operation("DeleteObjects", objects.delete_objects, DELETE),
    S3Operation("CreateMultipartUpload", multipart.create_multipart_upload, CREATE),
    S3Operation("UploadPart", multipart.upload_part, CONTINUE),
    S3Operation("UploadPartCopy", multipart.upload_part_copy, CONTINUE),
    S3Operation("CompleteMultipartUpload", multipart.complete_multipart_upload, CONTINUE),
    S3Operation("AbortMultipartUpload", multipart.abort_multipart_upload, CONTINUE),
    S3Operation("ListParts", multipart.list_parts, READ),
)

#: Query parameters that name an S3 sub-resource we do not implement (answered 501).
UNSUPPORTED_SUBRESOURCES = frozenset(
    {
        *("accelerate", "acl", "analytics", "attributes", "cors", "encryption"),
        *("intelligent-tiering", "inventory", "legal-hold", "lifecycle", "logging"),
        *("metadataConfiguration", "metadataTable", "metrics", "notification", "object-lock"),
        *("ownershipControls", "policy", "policyStatus", "publicAccessBlock", "replication"),
        *("requestPayment", "restore", "retention", "select", "session", "tagging", "torrent"),
        *("versioning", "website", "renameObject"),
    }
)
#: GET probes clients send that we answer minimally.
_BUCKET_GET_PROBES = {
    "location": "GetBucketLocation",
    "versioning": "GetBucketVersioning",
    "acl": "GetBucketAcl",
    "uploads": "ListMultipartUploads",
    "versions": "ListObjectVersions",
}


def _unsupported(query: MultiDictProxy[str]) -> str | None:
    for name in query:
        if name in UNSUPPORTED_SUBRESOURCES:
            return name
    return None


def classify(
    method: str, bucket: str, key: str, query: MultiDictProxy[str], headers: CIMultiDictProxy[str]
) -> S3Operation:
    """The S3 operation of a request; S3Error NotImplemented/MethodNotAllowed otherwise."""
    if not bucket:
        if method == "GET":
            return OPERATIONS["ListBuckets"]
        raise _method_not_allowed(method, "/")
    name = _classify_object(method, query, headers) if key else _classify_bucket(method, query)
    if name is None:
        sub = _unsupported(query)
        what = f"the {sub!r} sub-resource" if sub else f"{method} on this resource"
        raise S3Error(
            S3ErrorCode.NotImplemented,
            f"minimo does not implement {what}. It supports the core S3 operations only.",
        )
    return OPERATIONS[name]


def _classify_bucket(method: str, query: MultiDictProxy[str]) -> str | None:
    if method == "GET":
        if query:
            for name, op in _BUCKET_GET_PROBES.items():
                if name in query:
                    return op
            if _unsupported(query):
                return None
            if query.get("list-type") == "2":
                return "ListObjectsV2"
        return "ListObjects"
    if query and _unsupported(query):
        return None
    if method == "HEAD":
        return "HeadBucket"
    if method == "PUT":
        return "CreateBucket"
    if method == "DELETE":
        return "DeleteBucket"
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    return None


def _classify_object(
    method: str, query: MultiDictProxy[str], headers: CIMultiDictProxy[str]
) -> str | None:
    if query:
        if method == "GET" and "acl" in query:
            return "GetObjectAcl"
        if method == "GET" and "attributes" in query:
            return "GetObjectAttributes"  # (a bucket's ?attributes stays unsupported)
        if _unsupported(query):
            return None
    if method == "GET":
        return "ListParts" if "uploadId" in query else "GetObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "PUT":
        copy = "x-amz-copy-source" in headers
        if "uploadId" in query or "partNumber" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        return "CopyObject" if copy else "PutObject"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
    return None


def _method_not_allowed(method: str, resource: str) -> S3Error:
    return S3Error(
        S3ErrorCode.MethodNotAllowed,
        f"The {method} method is not allowed against this resource.",
        resource=resource,
        extra={"Method": method, "ResourceType": "SERVICE" if resource == "/" else "OBJECT"},
        headers={"Allow": "GET"},
    )
