"""S3 protocol details real clients rely on (issue 10): what listings echo, ListBuckets paging,
SigV2 on bucket-level requests, stored Content-Encoding, non-ASCII metadata, 100-continue.

Each runs against a real ``minimo serve`` on both object backends, through boto3 or the aws cli
where they expose the behaviour and raw requests where clients hide it.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from botocore.auth import HmacV1Auth, S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.conftest import boto3_client
from tests.servers import Gateway, run_gateway
from tests.test_s3_api import NS, assert_error, raw

pytestmark = pytest.mark.parametrize("gateway", ["local-http", "s3-http"], indirect=True)


# -- listing echoes -------------------------------------------------------------------------------


def test_list_v1_echoes_prefix_as_sent(gateway: Gateway, s3, bucket: str) -> None:
    """v1 echoes Prefix unencoded even under encoding-type=url (Marker and Delimiter are
    encoded then); boto3 asks for url encoding itself and decodes only Marker and Delimiter."""
    for key in ("a b/1", "a b/2", "a b/3"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    page = s3.list_objects(Bucket=bucket, Prefix="a b/", Delimiter="|", Marker="a b/1")
    assert page["Prefix"] == "a b/"
    assert page["Delimiter"] == "|"
    assert page["Marker"] == "a b/1"
    assert [o["Key"] for o in page["Contents"]] == ["a b/2", "a b/3"]

    query = {"prefix": "a b/", "marker": "a b/1", "delimiter": "|"}
    root = raw(gateway, "GET", f"/{bucket}", query=query).xml()
    assert root.findtext(f"{NS}Prefix") == "a b/"
    assert root.findtext(f"{NS}Marker") == "a b/1"
    assert root.findtext(f"{NS}Delimiter") == "|"
    assert root.find(f"{NS}EncodingType") is None

    root = raw(gateway, "GET", f"/{bucket}", query={**query, "encoding-type": "url"}).xml()
    assert root.findtext(f"{NS}Prefix") == "a b/"
    assert root.findtext(f"{NS}Marker") == "a%20b/1"
    assert root.findtext(f"{NS}Delimiter") == "%7C"
    assert root.findtext(f"{NS}EncodingType") == "url"


def test_list_v2_echoes_empty_continuation_token(gateway: Gateway, s3, bucket: str) -> None:
    """An empty continuation-token lists from the start and is echoed, empty."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    page = s3.list_objects_v2(Bucket=bucket, ContinuationToken="")
    assert page["ContinuationToken"] == ""
    assert [o["Key"] for o in page["Contents"]] == ["k"]
    root = raw(gateway, "GET", f"/{bucket}", query={"list-type": "2"}).xml()
    assert root.find(f"{NS}ContinuationToken") is None


# -- ListBuckets paging ---------------------------------------------------------------------------


def awscli(gw: Gateway, home: Path, *args: str) -> dict:
    """``aws ARGS`` (cli v1) with keys from the environment and nothing read from ~/.aws."""
    (home / "config").write_text("")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "AWS_ACCESS_KEY_ID": gw.access_key,
        "AWS_SECRET_ACCESS_KEY": gw.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "config"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    aws = Path(sys.executable).with_name("aws")
    cmd = [str(aws), "--endpoint-url", gw.endpoint, "--output", "json", *args]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout)


def test_list_buckets_prefix_and_pages(gateway: Gateway, s3, tmp_path: Path) -> None:
    prefix = f"lb-{secrets.token_hex(4)}-"
    names = [f"{prefix}{i}" for i in range(5)]
    for name in names:
        s3.create_bucket(Bucket=name)

    listed = s3.list_buckets(Prefix=prefix)
    assert [b["Name"] for b in listed["Buckets"]] == names
    assert listed["Prefix"] == prefix
    assert "ContinuationToken" not in listed
    # Without paging parameters every bucket comes back, and no Prefix is echoed.
    everything = s3.list_buckets()
    assert set(names) <= {b["Name"] for b in everything["Buckets"]}
    assert "Prefix" not in everything and "ContinuationToken" not in everything

    # Page by two: a token while more remain, none on the last page.
    first = s3.list_buckets(Prefix=prefix, MaxBuckets=2)
    assert [b["Name"] for b in first["Buckets"]] == names[:2]
    second = s3.list_buckets(
        Prefix=prefix, MaxBuckets=2, ContinuationToken=first["ContinuationToken"]
    )
    assert [b["Name"] for b in second["Buckets"]] == names[2:4]
    last = s3.list_buckets(
        Prefix=prefix, MaxBuckets=2, ContinuationToken=second["ContinuationToken"]
    )
    assert [b["Name"] for b in last["Buckets"]] == names[4:]
    assert "ContinuationToken" not in last

    # boto3's paginator follows the tokens to the end.
    pages = s3.get_paginator("list_buckets").paginate(Prefix=prefix, MaxBuckets=3)
    assert [b["Name"] for page in pages for b in page["Buckets"]] == names

    # The aws cli (v1) pages too.
    cli = awscli(
        gateway, tmp_path, "s3api", "list-buckets", "--prefix", prefix, "--max-buckets", "4"
    )
    assert [b["Name"] for b in cli["Buckets"]] == names[:4]
    assert cli["ContinuationToken"]

    assert s3.list_buckets(Prefix=prefix, BucketRegion="eu-west-3")["Buckets"] == []


@pytest.mark.parametrize("value", ["0", "10001", "-1", "many"])
def test_list_buckets_bad_max_buckets(gateway: Gateway, value: str) -> None:
    assert_error(raw(gateway, "GET", "/", query={"max-buckets": value}), "InvalidArgument", 400)


def test_list_buckets_bad_token(gateway: Gateway) -> None:
    reply = raw(gateway, "GET", "/", query={"continuation-token": "not base64!"})
    assert_error(reply, "InvalidArgument", 400)


# -- SigV2 on bucket-level requests ---------------------------------------------------------------


def sigv2_request(gw: Gateway, method: str, sent: str, signed: str) -> tuple[int, bytes]:
    """A request to ``sent`` whose ``AWS key:sig`` header botocore computed over ``signed``."""
    url = urlsplit(gw.endpoint)
    request = AWSRequest(method=method, url=f"{gw.endpoint}{sent}", headers={"Host": url.netloc})
    request.auth_path = signed
    HmacV1Auth(Credentials(gw.access_key, gw.secret_key)).add_auth(request)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        conn.request(method, sent, headers=dict(request.headers.items()))
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_sigv2_bucket_path_with_or_without_slash(gateway: Gateway, s3, bucket: str) -> None:
    """``/bucket`` and ``/bucket/`` name the same resource: either signature verifies."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    for sent in (f"/{bucket}", f"/{bucket}/"):
        for signed in (f"/{bucket}", f"/{bucket}/"):
            status, body = sigv2_request(gateway, "GET", sent, signed)
            assert status == 200, (sent, signed, body)
            assert b"<Key>k</Key>" in body
            assert sigv2_request(gateway, "HEAD", sent, signed)[0] == 200
    # An object path is not a bucket path: its trailing slash is part of the key.
    assert sigv2_request(gateway, "GET", f"/{bucket}/k", f"/{bucket}/k/")[0] == 403
    assert sigv2_request(gateway, "GET", f"/{bucket}", "/other-bucket")[0] == 403


def test_s3cmd_signature_v2(gateway: Gateway, s3, tmp_path: Path) -> None:
    """s3cmd with ``signature_v2 = True`` makes, lists, fills and removes a bucket."""
    url = urlsplit(gateway.endpoint)
    config = tmp_path / "s3cmd.cfg"
    config.write_text(
        "[default]\n"
        f"access_key = {gateway.access_key}\nsecret_key = {gateway.secret_key}\n"
        f"host_base = {url.netloc}\nhost_bucket = {url.netloc}\nuse_https = False\n"
        "signature_v2 = True\nbucket_location = us-east-1\nmax_retries = 1\n"
        "progress_meter = False\n"
    )
    s3cmd = Path(sys.executable).parent / "s3cmd"

    def run(*args: str) -> str:
        proc = subprocess.run(
            [sys.executable, str(s3cmd), "-c", str(config), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, f"s3cmd {args}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        return proc.stdout

    name = f"v2-{secrets.token_hex(5)}"
    src = tmp_path / "file.txt"
    src.write_bytes(b"signed with v2\n")
    run("mb", f"s3://{name}")
    run("put", str(src), f"s3://{name}/dir/file.txt")
    assert f"s3://{name}/dir/" in run("ls", f"s3://{name}")
    assert f"s3://{name}/dir/file.txt" in run("ls", "-r", f"s3://{name}")
    assert s3.get_object(Bucket=name, Key="dir/file.txt")["Body"].read() == src.read_bytes()
    run("del", f"s3://{name}/dir/file.txt")
    run("rb", f"s3://{name}")
    assert name not in {b["Name"] for b in s3.list_buckets()["Buckets"]}


# -- Content-Encoding -----------------------------------------------------------------------------


class UnsignedTrailerAuth(S3SigV4Auth):
    """SigV4 over the headers with an ``aws-chunked`` body whose payload is not signed."""

    def payload(self, request: AWSRequest) -> str:
        return "STREAMING-UNSIGNED-PAYLOAD-TRAILER"


def put_aws_chunked(gw: Gateway, path: str, data: bytes, content_encoding: str) -> int:
    """PUT ``data`` framed as unsigned aws-chunked with a CRC32 trailer, as SDKs do over TLS."""
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    body = (
        f"{len(data):x}\r\n".encode()
        + data
        + f"\r\n0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n".encode()
    )
    url = urlsplit(gw.endpoint)
    headers = {
        "Host": url.netloc,
        "Content-Encoding": content_encoding,
        "Content-Length": str(len(body)),
        "x-amz-decoded-content-length": str(len(data)),
        "x-amz-trailer": "x-amz-checksum-crc32",
    }
    request = AWSRequest(method="PUT", url=f"{gw.endpoint}{path}", headers=headers)
    UnsignedTrailerAuth(Credentials(gw.access_key, gw.secret_key), "s3", "us-east-1").add_auth(
        request
    )
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        conn.request("PUT", path, body=body, headers=dict(request.headers.items()))
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        return resp.status
    finally:
        conn.close()


@pytest.mark.parametrize("encoding", ["gzip", "br, gzip", "x-Custom;v=1 ,  identity"])
def test_content_encoding_kept_byte_for_byte(s3, bucket: str, encoding: str) -> None:
    data = gzip.compress(b"compressed on the client\n" * 100)
    s3.put_object(Bucket=bucket, Key="z", Body=data, ContentEncoding=encoding)
    head = s3.head_object(Bucket=bucket, Key="z")
    assert head["ContentEncoding"] == encoding
    got = s3.get_object(Bucket=bucket, Key="z")
    assert got["ContentEncoding"] == encoding
    assert got["Body"].read() == data  # stored and served as sent, never decompressed
    ranged = s3.get_object(Bucket=bucket, Key="z", Range="bytes=0-9")
    assert ranged["ContentEncoding"] == encoding and ranged["Body"].read() == data[:10]


@pytest.mark.parametrize(
    ("sent", "stored"),
    [("aws-chunked,gzip", "gzip"), ("gzip,aws-chunked", "gzip"), ("aws-chunked", None)],
)
def test_content_encoding_drops_only_aws_chunked(
    gateway: Gateway, s3, bucket: str, sent: str, stored: str | None
) -> None:
    data = gzip.compress(b"framed as aws-chunked\n" * 50)
    put_aws_chunked(gateway, f"/{bucket}/c", data, sent)
    head = s3.head_object(Bucket=bucket, Key="c")
    assert head.get("ContentEncoding") == stored
    assert s3.get_object(Bucket=bucket, Key="c")["Body"].read() == data


def test_content_encoding_on_multipart_and_copy(s3, bucket: str) -> None:
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", ContentEncoding="gzip")
    part = s3.upload_part(
        Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=1, Body=b"p"
    )
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert s3.head_object(Bucket=bucket, Key="mp")["ContentEncoding"] == "gzip"
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "mp"})
    assert s3.head_object(Bucket=bucket, Key="copy")["ContentEncoding"] == "gzip"


# -- Expect: 100-continue -------------------------------------------------------------------------


def expect_put(
    gw: Gateway, path: str, data: bytes, *, sign: bool = True, headers: dict | None = None
) -> socket.socket:
    """Send a PUT's head with ``Expect: 100-continue`` and hold its body back."""
    url = urlsplit(gw.endpoint)
    headers = {
        **(headers or {}),
        "Host": url.netloc,
        "Content-Length": str(len(data)),
        "Expect": "100-continue",
        "X-Amz-Content-SHA256": hashlib.sha256(data).hexdigest(),
    }
    if sign:
        request = AWSRequest(method="PUT", url=f"{gw.endpoint}{path}", headers=headers, data=data)
        S3SigV4Auth(Credentials(gw.access_key, gw.secret_key), "s3", "us-east-1").add_auth(request)
        headers = dict(request.headers.items())
    head = f"PUT {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    sock.sendall(head.encode() + b"\r\n")
    return sock


def read_head(sock: socket.socket) -> bytes:
    """Bytes up to the end of one response head."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        piece = sock.recv(65536)
        assert piece, f"connection closed after {buf!r}"
        buf += piece
    return buf


def test_expect_continue_raw(gateway: Gateway, s3, bucket: str) -> None:
    data = secrets.token_bytes(300_000)
    sock = expect_put(gateway, f"/{bucket}/e", data)
    with sock:
        interim = read_head(sock)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), interim
        sock.sendall(data)
        final = interim[len(b"HTTP/1.1 100 Continue\r\n\r\n") :]
        if b"\r\n\r\n" not in final:
            final += read_head(sock)
        assert final.startswith(b"HTTP/1.1 200"), final
    assert s3.get_object(Bucket=bucket, Key="e")["Body"].read() == data


@pytest.mark.parametrize(
    ("headers", "sign", "status", "code"),
    [
        ({}, False, 403, "AccessDenied"),
        ({"x-amz-meta-big": "x" * 3000}, True, 400, "MetadataTooLarge"),
    ],
)
def test_expect_continue_refused_without_the_body(
    gateway: Gateway, s3, bucket: str, headers: dict, sign: bool, status: int, code: str
) -> None:
    """A refused write answers its error at once, never asking for the body, and closes."""
    data = b"never sent" * 1000
    sock = expect_put(gateway, f"/{bucket}/e", data, sign=sign, headers=headers)
    with sock:
        head = read_head(sock)
        assert head.startswith(f"HTTP/1.1 {status}".encode()), head
        assert b"connection: close" in head.lower()
        body = head.split(b"\r\n\r\n", 1)[1]
        while piece := sock.recv(65536):  # then the connection ends
            body += piece
        assert f"<Code>{code}</Code>".encode() in body
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="e")


def test_expect_continue_boto3(s3, bucket: str) -> None:
    """botocore sends Expect: 100-continue for bodies of 1 MiB and more."""
    sent: list[str | None] = []
    s3.meta.events.register(
        "before-send.s3.PutObject", lambda request, **_: sent.append(request.headers.get("Expect"))
    )
    data = secrets.token_bytes(3 << 20)
    s3.put_object(Bucket=bucket, Key="big", Body=data)
    assert sent == [b"100-continue"] or sent == ["100-continue"]
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == data
    started = time.monotonic()
    # refused before the body is read (on both backends): answered without uploading 3 MiB
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="big2", Body=data, Metadata={"big": "x" * 3000})
    assert exc.value.response["Error"]["Code"] == "MetadataTooLarge"
    assert time.monotonic() - started < 5


# -- non-ASCII user metadata ----------------------------------------------------------------------

#: what clients put in x-amz-meta-* values, as bytes on the wire
WIRE_VALUES = {
    "utf8": "café 日本語".encode(),
    "latin1": b"Hello World\xe9",
    "rfc2047": b"=?UTF-8?B?Y2Fmw6kg5pel5pys6Kqe?=",
    "mixed": b"a\xff\xfe z\xc3\xa9",
    # the s3 backend's own wrapping for such bytes, sent as a value: must come back unchanged
    "lookalike": b"=?x-minimo-bytes?B?aGk=?=",
}


def put_raw_metadata(gw: Gateway, path: str, values: dict[str, bytes]) -> int:
    """PUT with x-amz-meta-* header values sent as exactly these bytes, SigV4-signed over the
    same bytes (what an SDK that signs what it sends computes)."""
    url = urlsplit(gw.endpoint)
    body = b"meta"
    headers = {f"x-amz-meta-{k}": v.decode("latin-1") for k, v in values.items()}
    headers.update({"Host": url.netloc, "X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()})
    request = AWSRequest(method="PUT", url=f"{gw.endpoint}{path}", headers=headers, data=body)

    class WireBytesAuth(S3SigV4Auth):
        # botocore hashes str headers as UTF-8; these hold wire bytes as latin-1 characters
        def string_to_sign(self, request: AWSRequest, canonical_request: str) -> str:
            digest = hashlib.sha256(canonical_request.encode("latin-1")).hexdigest()
            scope = self.credential_scope(request)
            return f"AWS4-HMAC-SHA256\n{request.context['timestamp']}\n{scope}\n{digest}"

    WireBytesAuth(Credentials(gw.access_key, gw.secret_key), "s3", "us-east-1").add_auth(request)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        sent = {k: v.encode("latin-1") for k, v in request.headers.items()}
        conn.request("PUT", path, body=body, headers=sent)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def wire_metadata(gw: Gateway, method: str, path: str) -> dict[str, bytes]:
    """The x-amz-meta-* headers of a signed GET/HEAD, as the bytes that came over the wire."""
    reply = raw(gw, method, path)
    assert reply.status == 200, reply.body
    # http.client decodes header bytes as latin-1: encoding back gives the wire bytes
    return {
        k.lower()[len("x-amz-meta-") :]: v.encode("latin-1")
        for k, v in reply.headers.items()
        if k.lower().startswith("x-amz-meta-")
    }


def test_metadata_bytes_round_trip_raw(gateway: Gateway, bucket: str) -> None:
    assert put_raw_metadata(gateway, f"/{bucket}/m", WIRE_VALUES) == 200
    for method in ("HEAD", "GET"):
        assert wire_metadata(gateway, method, f"/{bucket}/m") == WIRE_VALUES


def test_metadata_boto3_latin1_and_rfc2047(s3, bucket: str) -> None:
    """boto3 refuses non-ASCII Metadata, so clients send RFC 2047 words (kept as sent) or set
    the header themselves: botocore sends a str header as UTF-8 and reads answers as latin-1,
    so the same bytes come back as the UTF-8 bytes' latin-1 reading."""
    metadata = {"encoded": "=?UTF-8?Q?caf=C3=A9?=", "plain": "x y"}

    def latin1(request: AWSRequest, **_: object) -> None:
        request.headers["x-amz-meta-latin"] = "Hello World\xe9"

    s3.meta.events.register("before-sign.s3.PutObject", latin1)
    s3.put_object(Bucket=bucket, Key="b", Body=b"x", Metadata=metadata)
    s3.meta.events.unregister("before-sign.s3.PutObject", latin1)
    expected = {**metadata, "latin": "Hello World\xe9".encode().decode("latin-1")}
    assert s3.head_object(Bucket=bucket, Key="b")["Metadata"] == expected
    assert s3.get_object(Bucket=bucket, Key="b")["Metadata"] == expected
    s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "b"})
    assert s3.head_object(Bucket=bucket, Key="c")["Metadata"] == expected


def test_sigv2_virtual_hosted_bucket_root(
    request: pytest.FixtureRequest, gateway: Gateway, tmp_path: Path
) -> None:
    """Virtual-hosted, the bucket root is ``/``: a signature over ``/bucket`` or ``/bucket/``
    verifies."""
    upstream = request.getfixturevalue("versitygw") if gateway.backend == "s3" else None
    domain = "s3.minimo.test"
    with run_gateway(tmp_path / "vhost", upstream=upstream, extra_args=["--domain", domain]) as gw:
        name = f"vh-{secrets.token_hex(4)}"
        boto3_client(gw).create_bucket(Bucket=name)
        port = urlsplit(gw.endpoint).port
        host = f"{name}.{domain}:{port}"
        for signed in (f"/{name}", f"/{name}/"):
            req = AWSRequest(method="GET", url=f"http://{host}/", headers={"Host": host})
            req.auth_path = signed
            HmacV1Auth(Credentials(gw.access_key, gw.secret_key)).add_auth(req)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                conn.request("GET", "/", headers=dict(req.headers.items()))
                resp = conn.getresponse()
                body = resp.read()
                assert resp.status == 200, (signed, body)
                assert b"<ListBucketResult" in body
            finally:
                conn.close()
