"""SigV4 and SigV2 as real clients sign them: boto3/botocore requests and presigned URLs."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.auth import HmacV1QueryAuth, S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.unit.test_auth_app import (
    ACCESS,
    GET_BODY,
    READER_ACCESS,
    REGION,
    SECRET,
    AuthServer,
    send,
    server_fixture,  # noqa: F401 - fixture "server"
    tls_server_fixture,  # noqa: F401 - fixture "tls_server"
)

ODD_KEY = "dir/a b+c!*'()~é%=&$@,;:.txt"


def client(
    srv: AuthServer,
    *,
    access: str = ACCESS,
    secret: str = SECRET,
    region: str = REGION,
    **config: object,
):
    return boto3.client(
        "s3",
        endpoint_url=srv.endpoint,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        region_name=region,
        verify=str(srv.cert_file) if srv.cert_file else None,
        config=Config(retries={"max_attempts": 1}, **config),
    )


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return exc.value.response["Error"]["Code"]


# -- header auth as boto3 sends it -----------------------------------------------------------
def test_boto3_put_over_http_signs_the_payload(server: AuthServer) -> None:
    payload = b"0123456789" * 50_000
    client(server).put_object(Bucket="bucket", Key="k", Body=payload)
    seen = server.last
    assert seen.error is None, seen.message
    assert seen.user == "alice" and seen.auth_method == "v4-header"
    assert seen.payload_hash == hashlib.sha256(payload).hexdigest()
    assert seen.data == payload
    assert seen.size == len(payload)


def test_boto3_put_over_https_sends_unsigned_trailer(tls_server: AuthServer) -> None:
    payload = bytes(range(256)) * 12_000  # ~3 MiB: several aws-chunked chunks
    client(tls_server).put_object(Bucket="bucket", Key="big", Body=payload)
    seen = tls_server.last
    assert seen.error is None, seen.message
    assert seen.payload_hash == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    assert seen.size == len(payload)
    assert seen.data == payload
    (algorithm,) = seen.trailers
    assert algorithm.startswith("x-amz-checksum-")
    assert seen.checksums[algorithm.removeprefix("x-amz-checksum-")] == seen.trailers[algorithm]


def test_boto3_upload_fileobj_over_https(tls_server: AuthServer, tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc" * 400_000)
    client(tls_server).upload_file(str(path), "bucket", "f.bin")
    assert tls_server.last.error is None, tls_server.last.message
    assert tls_server.last.data == path.read_bytes()


def test_boto3_unsigned_payload(server: AuthServer) -> None:
    c = client(server, s3={"payload_signing_enabled": False})
    c.put_object(Bucket="bucket", Key="k", Body=b"data", ContentMD5=_md5(b"data"))
    assert server.last.error is None, server.last.message
    assert server.last.payload_hash in ("UNSIGNED-PAYLOAD", hashlib.sha256(b"data").hexdigest())


def test_boto3_odd_keys_and_queries(server: AuthServer) -> None:
    c = client(server)
    c.put_object(Bucket="bucket", Key=ODD_KEY, Body=b"odd")
    assert server.last.error is None, server.last.message
    c.get_object(Bucket="bucket", Key=ODD_KEY, ResponseContentType="text/plain; a=b")
    assert server.last.error is None, server.last.message
    c.list_objects_v2(Bucket="bucket", Prefix="a b+c/é", Delimiter="/", StartAfter="x=y&z")
    assert server.last.error is None, server.last.message
    c.head_object(Bucket="bucket", Key="plain")
    assert server.last.error is None, server.last.message


def test_boto3_delete_objects_with_checksum(server: AuthServer) -> None:
    client(server).delete_objects(Bucket="bucket", Delete={"Objects": [{"Key": "a"}, {"Key": "b"}]})
    seen = server.last
    assert seen.error is None, seen.message
    assert seen.method == "POST" and b"<Key>a</Key>" in seen.data


def test_reader_key_authenticates_as_reader(server: AuthServer) -> None:
    client(server, access=READER_ACCESS, secret="reader-secret").head_object(Bucket="b", Key="k")
    assert server.last.user == "rita"


# -- refusals --------------------------------------------------------------------------------
def test_wrong_secret_is_signature_does_not_match(server: AuthServer) -> None:
    with pytest.raises(ClientError) as exc:
        client(server, secret="wrong").put_object(Bucket="b", Key="k", Body=b"x")
    assert code_of(exc) == "SignatureDoesNotMatch"
    assert server.last.data == b""


def test_unknown_key_is_invalid_access_key_id(server: AuthServer) -> None:
    with pytest.raises(ClientError) as exc:
        client(server, access="AKIDNOBODY").get_object(Bucket="b", Key="k")
    assert code_of(exc) == "InvalidAccessKeyId"


def test_revoked_key_is_invalid_access_key_id(server: AuthServer) -> None:
    c = client(server)
    c.head_bucket(Bucket="b")
    server.identity.revoke(ACCESS)
    with pytest.raises(ClientError) as exc:
        c.list_objects_v2(Bucket="b")
    assert code_of(exc) == "InvalidAccessKeyId"


def test_wrong_region_names_the_expected_one(server: AuthServer) -> None:
    # botocore reads <Region> from the error and retries in the right region: both show here
    client(server, region="eu-west-3").list_objects_v2(Bucket="b")
    refused, retried = server.seen[-2:]
    assert refused.error == "AuthorizationHeaderMalformed"
    assert refused.extra == {"Region": REGION}
    assert "us-east-1" in (refused.message or "")
    assert retried.error is None and retried.user == "alice"


@pytest.mark.parametrize("minutes", [16, -16])
def test_clock_skew(server: AuthServer, minutes: int) -> None:
    server.now = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)
    with pytest.raises(ClientError) as exc:
        client(server).list_objects_v2(Bucket="b")
    assert code_of(exc) == "RequestTimeTooSkewed"


def test_small_skew_is_accepted(server: AuthServer) -> None:
    server.now = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    client(server).list_objects_v2(Bucket="b")
    assert server.last.error is None


@pytest.mark.parametrize(
    "authorization",
    [
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 Credential=AKIDTESTADMIN/20260101/us-east-1/s3/aws4_request",
        "AWS4-HMAC-SHA256 Credential=AKID, SignedHeaders=host, Signature=abc",
        "AWS4-HMAC-SHA256 Credential=AKIDTESTADMIN/20260101/us-east-1/ec2/aws4_request, "
        "SignedHeaders=host, Signature=abc",
        "AWS4-HMAC-SHA256 Credential=AKIDTESTADMIN/{today}/us-east-1/s3/aws4_request, "
        "SignedHeaders=x-amz-date, Signature=abc",
    ],
)
def test_malformed_authorization_header(server: AuthServer, authorization: str) -> None:
    now = dt.datetime.now(dt.UTC)
    response = send(
        server,
        "GET",
        "/b/k",
        headers={
            "Authorization": authorization.format(today=f"{now:%Y%m%d}"),
            "x-amz-date": f"{now:%Y%m%dT%H%M%SZ}",
            "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
        },
    )
    assert response.status == 400
    assert b"<Code>AuthorizationHeaderMalformed</Code>" in response.data


def test_malformed_v2_authorization_header(server: AuthServer) -> None:
    response = send(server, "GET", "/b/k", headers={"Authorization": "AWS nocolon"})
    assert response.status == 400
    assert b"<Code>InvalidArgument</Code>" in response.data


def test_bad_content_sha256_value(server: AuthServer) -> None:
    request = _signed("PUT", "/b/k", b"x", payload="not-a-hash")
    response = send(server, "PUT", "/b/k", body=b"x", headers=request)
    assert response.status == 400
    assert b"<Code>InvalidArgument</Code>" in response.data


def test_content_sha256_mismatch(server: AuthServer) -> None:
    payload = b"y" * 500_000
    headers = _signed("PUT", "/b/k", payload, payload=hashlib.sha256(b"other").hexdigest())
    response = send(server, "PUT", "/b/k", body=payload, headers=headers)
    assert response.status == 400
    assert b"<Code>XAmzContentSHA256Mismatch</Code>" in response.data
    assert len(server.last.data) < len(payload)  # the last piece was never handed out


def test_content_md5_mismatch_is_bad_digest(server: AuthServer) -> None:
    with pytest.raises(ClientError) as exc:
        client(server).put_object(Bucket="b", Key="k", Body=b"data", ContentMD5=_md5(b"other"))
    assert code_of(exc) == "BadDigest"
    assert server.last.data == b""


def test_malformed_content_md5_is_invalid_digest(server: AuthServer) -> None:
    with pytest.raises(ClientError) as exc:
        client(server).put_object(Bucket="b", Key="k", Body=b"data", ContentMD5="nope")
    assert code_of(exc) == "InvalidDigest"


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"])
def test_checksum_header_verified(server: AuthServer, algorithm: str) -> None:
    c = client(server)
    c.put_object(Bucket="b", Key="k", Body=b"payload", ChecksumAlgorithm=algorithm)
    assert server.last.error is None, server.last.message
    assert algorithm.lower() in server.last.checksums
    good = server.last.checksums[algorithm.lower()]
    wrong = base64.b64encode(bytes(len(base64.b64decode(good)))).decode()
    with pytest.raises(ClientError) as exc:
        c.put_object(Bucket="b", Key="k", Body=b"payload", **{f"Checksum{algorithm}": wrong})
    assert code_of(exc) == "BadDigest"
    assert server.last.data == b""


def test_put_without_length_is_missing_content_length(server: AuthServer) -> None:
    headers = _signed("PUT", "/b/k", b"", payload="UNSIGNED-PAYLOAD")
    headers["Transfer-Encoding"] = "chunked"
    response = send(
        server, "PUT", "/b/k", body=iter([b"abc", b"def"]), headers=headers, chunked=True
    )
    assert response.status == 411
    assert b"<Code>MissingContentLength</Code>" in response.data


def test_raw_unencoded_path_signed_as_sent(server: AuthServer) -> None:
    path = "/bucket/it's(a)!*key"
    response = send(server, "GET", path, headers=_signed("GET", path, b""))
    assert response.status == 200, response.data
    assert server.last.user == "alice"


def test_presence_of_both_mechanisms_is_refused(server: AuthServer) -> None:
    url = client(server, signature_version="s3v4").generate_presigned_url(
        "get_object", Params={"Bucket": "b", "Key": "k"}
    )
    path = url.removeprefix(server.endpoint)
    response = send(server, "GET", path, headers={"Authorization": "AWS a:b"})
    assert response.status == 400


# -- SigV2 header auth -----------------------------------------------------------------------
def test_sigv2_header_auth(server: AuthServer) -> None:
    c = client(server, signature_version="s3")
    c.put_object(Bucket="bucket", Key=ODD_KEY, Body=b"v2 body", ContentType="text/plain")
    assert server.last.error is None, server.last.message
    assert server.last.auth_method == "v2-header"
    c.get_object(Bucket="bucket", Key=ODD_KEY, ResponseContentDisposition="attachment")
    assert server.last.error is None, server.last.message
    with pytest.raises(ClientError) as exc:
        client(server, signature_version="s3", secret="bad").head_bucket(Bucket="b")
    assert exc.value.response["Error"]["Code"] in ("403", "SignatureDoesNotMatch")


# -- presigned URLs --------------------------------------------------------------------------
@pytest.fixture(params=["v2-default", "v4"])
def presigner(request: pytest.FixtureRequest, server: AuthServer) -> Iterator[object]:
    yield (
        client(server)
        if request.param == "v2-default"
        else client(server, signature_version="s3v4")
    )


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_presigned_get_and_head(server: AuthServer, presigner, method: str) -> None:
    operation = "get_object" if method == "GET" else "head_object"
    params = {"Bucket": "bucket", "Key": ODD_KEY}
    if method == "GET":
        params["ResponseContentType"] = "text/plain"
        params["ResponseContentDisposition"] = 'attachment; filename="x y.txt"'
    url = presigner.generate_presigned_url(operation, Params=params, ExpiresIn=600)
    response = send(server, method, url.removeprefix(server.endpoint))
    assert response.status == 200, (server.last.message, url)
    assert server.last.user == "alice"
    assert server.last.auth_method in ("v2-query", "v4-query")
    if method == "GET":
        assert response.data == GET_BODY


def test_presigned_url_expired(server: AuthServer, presigner) -> None:
    url = presigner.generate_presigned_url(
        "get_object", Params={"Bucket": "b", "Key": "k"}, ExpiresIn=60
    )
    server.now = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    response = send(server, "GET", url.removeprefix(server.endpoint))
    assert response.status == 403
    assert b"<Code>AccessDenied</Code>" in response.data
    assert b"Request has expired" in response.data


def test_presigned_url_tampered(server: AuthServer, presigner) -> None:
    url = presigner.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "k"})
    response = send(server, "GET", url.removeprefix(server.endpoint).replace("/b/k", "/b/j"))
    assert response.status == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in response.data


def test_presigned_v4_put(server: AuthServer) -> None:
    url = client(server, signature_version="s3v4").generate_presigned_url(
        "put_object", Params={"Bucket": "b", "Key": "up"}
    )
    response = send(server, "PUT", url.removeprefix(server.endpoint), body=b"presigned body")
    assert response.status == 200, server.last.message
    assert server.last.data == b"presigned body"


def test_presigned_v4_expiry_over_a_week(server: AuthServer) -> None:
    url = client(server, signature_version="s3v4").generate_presigned_url(
        "get_object", Params={"Bucket": "b", "Key": "k"}, ExpiresIn=3600
    )
    path = url.removeprefix(server.endpoint).replace("X-Amz-Expires=3600", "X-Amz-Expires=604801")
    response = send(server, "GET", path)
    assert response.status == 400
    assert b"<Code>AuthorizationQueryParametersError</Code>" in response.data


def test_presigned_v4_missing_parameter(server: AuthServer) -> None:
    response = send(server, "GET", "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=ab")
    assert response.status == 400
    assert b"<Code>AuthorizationQueryParametersError</Code>" in response.data


def test_presigned_v4_wrong_region(server: AuthServer) -> None:
    url = client(server, signature_version="s3v4", region="eu-west-3").generate_presigned_url(
        "get_object", Params={"Bucket": "b", "Key": "k"}
    )
    response = send(server, "GET", url.removeprefix(server.endpoint))
    assert response.status == 400
    assert b"<Region>us-east-1</Region>" in response.data


# -- helpers ---------------------------------------------------------------------------------
def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


class _FixedPayloadAuth(S3SigV4Auth):
    """botocore's S3 signer with a payload hash of our choosing (to send a mismatching one)."""

    def __init__(self, payload: str | None) -> None:
        super().__init__(Credentials(ACCESS, SECRET), "s3", REGION)
        self._payload = payload

    def payload(self, request: AWSRequest) -> str:
        return self._payload if self._payload is not None else super().payload(request)


def _signed(method: str, path: str, body: bytes, *, payload: str | None = None) -> dict[str, str]:
    """Headers botocore's SigV4 signer produces for this request (host is 127.0.0.1:PORT)."""
    port = _signed.port  # type: ignore[attr-defined]
    request = AWSRequest(method=method, url=f"http://127.0.0.1:{port}{path}", data=body)
    _FixedPayloadAuth(payload).add_auth(request)
    return dict(request.headers.items())


@pytest.fixture(autouse=True)
def _signing_port(request: pytest.FixtureRequest) -> None:
    for name in ("server", "tls_server"):
        if name in request.fixturenames:
            _signed.port = request.getfixturevalue(name).port  # type: ignore[attr-defined]


def test_sigv2_presigned_virtual_hosted(server: AuthServer) -> None:
    """SigV2 signs /bucket/key even when the bucket travels in the Host header."""
    server.domain = "s3.test"
    host = f"bucket.s3.test:{server.port}"
    request = AWSRequest(
        method="GET", url=f"http://{host}/some%20key?response-content-type=text%2Fplain"
    )
    request.auth_path = "/bucket/some%20key"
    HmacV1QueryAuth(Credentials(ACCESS, SECRET), expires=600).add_auth(request)
    path = request.url.split(host, 1)[1]
    response = send(server, "GET", path, headers={"Host": host})
    assert response.status == 200, server.last.message
    assert server.last.auth_method == "v2-query"
    server.domain = None  # the bucket is now missing from the signed resource
    response = send(server, "GET", path, headers={"Host": host})
    assert response.status == 403
