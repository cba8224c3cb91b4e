"""The operation table (gateway.s3api.operations): every operation a request can be routed to has
a handler and a policy class, and every row of the table is reachable."""

from __future__ import annotations

import inspect
import itertools

import pytest
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from gateway.protocol.errors import S3Error, S3ErrorCode
from gateway.s3api.operations import OPERATIONS, UNSUPPORTED_SUBRESOURCES, S3Operation, classify
from policy.enforce import OperationClass

METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE", "PATCH")
TARGETS = (("", ""), ("b", ""), ("b", "k"))
QUERIES = (
    {},
    {"list-type": "2"},
    {"location": ""},
    {"versioning": ""},
    {"acl": ""},
    {"uploads": ""},
    {"versions": ""},
    {"delete": ""},
    {"uploadId": "u"},
    {"uploadId": "u", "partNumber": "1"},
    {"partNumber": "1"},
    {"tagging": ""},
    {"attributes": ""},
)
HEADERS = ({}, {"x-amz-copy-source": "/b/src"})


def _classify(
    method: str, bucket: str, key: str, query: dict | None = None, headers: dict | None = None
) -> S3Operation:
    return classify(
        method,
        bucket,
        key,
        MultiDictProxy(MultiDict(query or {})),
        CIMultiDictProxy(CIMultiDict(headers or {})),
    )


def _routed() -> dict[str, S3Operation]:
    """Every operation some request is routed to (a request refused by the router is skipped)."""
    reached: dict[str, S3Operation] = {}
    for method, (bucket, key), query, headers in itertools.product(
        METHODS, TARGETS, QUERIES, HEADERS
    ):
        try:
            op = _classify(method, bucket, key, query, headers)
        except S3Error as err:
            assert err.code in (S3ErrorCode.NotImplemented, S3ErrorCode.MethodNotAllowed)
            continue
        reached[op.name] = op
    return reached


def test_every_routed_operation_has_a_row_with_a_class() -> None:
    routed = _routed()
    assert set(routed) == set(OPERATIONS), "a row no request reaches, or a route with no row"
    for name, op in routed.items():
        assert OPERATIONS[name] is op
        assert isinstance(op.policy_class, OperationClass), name
        assert inspect.iscoroutinefunction(op.handler), name


def test_every_row_is_named_after_its_key() -> None:
    assert all(name == op.name for name, op in OPERATIONS.items())


def test_the_policy_classes() -> None:
    """Pinned: a write classed as a read would skip every write check."""
    by_class = {
        cls: {name for name, op in OPERATIONS.items() if op.policy_class is cls}
        for cls in OperationClass
    }
    assert by_class == {
        OperationClass.READ: {
            *("ListBuckets", "HeadBucket", "GetBucketLocation", "GetBucketVersioning"),
            *("GetBucketAcl", "ListObjects", "ListObjectsV2", "ListObjectVersions"),
            *("ListMultipartUploads", "GetObject", "HeadObject", "GetObjectAcl", "ListParts"),
            "GetObjectAttributes",
        },
        OperationClass.CREATE: {"PutObject", "CopyObject", "CreateMultipartUpload"},
        OperationClass.CONTINUE: {
            *("UploadPart", "UploadPartCopy", "CompleteMultipartUpload"),
            "AbortMultipartUpload",
        },
        OperationClass.DELETE: {"DeleteObject", "DeleteObjects"},
        OperationClass.BUCKET_ADMIN: {"CreateBucket", "DeleteBucket"},
    }
    assert OPERATIONS["GetObject"].is_read and not OPERATIONS["PutObject"].is_read


@pytest.mark.parametrize(
    ("method", "bucket", "key", "query", "headers", "name"),
    [
        ("GET", "", "", {}, {}, "ListBuckets"),
        ("PUT", "b", "k", {"partNumber": "1", "uploadId": "u"}, {}, "UploadPart"),
        ("PUT", "b", "k", {"uploadId": "u"}, {"x-amz-copy-source": "/b/s"}, "UploadPartCopy"),
        ("DELETE", "b", "k", {"uploadId": "u"}, {}, "AbortMultipartUpload"),
        ("POST", "b", "", {"delete": ""}, {}, "DeleteObjects"),
        ("GET", "b", "", {"list-type": "2"}, {}, "ListObjectsV2"),
        ("GET", "b", "k", {"attributes": ""}, {}, "GetObjectAttributes"),
        ("GET", "b", "k", {"partNumber": "2"}, {}, "GetObject"),
        ("HEAD", "b", "k", {"partNumber": "2"}, {}, "HeadObject"),
    ],
)
def test_classify(
    method: str, bucket: str, key: str, query: dict, headers: dict, name: str
) -> None:
    assert _classify(method, bucket, key, query, headers) is OPERATIONS[name]


def test_unrouted_requests_are_refused() -> None:
    with pytest.raises(S3Error) as caught:
        _classify("PUT", "", "")
    assert caught.value.code == S3ErrorCode.MethodNotAllowed
    with pytest.raises(S3Error) as caught:
        _classify("GET", "b", "k", {"tagging": ""})
    assert caught.value.code == S3ErrorCode.NotImplemented
    with pytest.raises(S3Error) as caught:
        _classify("GET", "b", "", {"attributes": ""})  # objects have attributes, buckets not
    assert caught.value.code == S3ErrorCode.NotImplemented


def test_the_compatibility_page_names_every_operation_and_refusal() -> None:
    """docs/compatibility.md tells users what works before they try: every operation of the
    table and every sub-resource answered 501 is on it."""
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "compatibility.md").read_text()
    missing = [name for name in OPERATIONS if name not in page]
    missing += [f"`{name}`" for name in UNSUPPORTED_SUBRESOURCES if f"`{name}`" not in page]
    assert not missing, f"docs/compatibility.md does not mention: {missing}"
