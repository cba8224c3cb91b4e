"""aws-chunked bodies: signed chunks, signed and unsigned trailers, and every way they go wrong.

botocore signs the seed request (with the STREAMING-* payload value); the chunk framing and
chunk signatures come from the small encoder below, written from the AWS documentation. The
encoder itself is checked against a second implementation: versitygw accepts what it produces.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import time
from collections.abc import Iterator

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from gateway.protocol.checksums import checksum_b64
from gateway.protocol.chunked import AwsChunkedDecoder, ChunkSigner
from gateway.protocol.errors import S3Error
from tests.servers import Versitygw, run_versitygw
from tests.unit.test_auth_app import (
    ACCESS,
    REGION,
    SECRET,
    AuthServer,
    send,
    server_fixture,  # noqa: F401 - fixture "server"
)

EMPTY = hashlib.sha256(b"").hexdigest()
SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"


# -- a client-side encoder -------------------------------------------------------------------
def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def derive_key(secret: str, date: str) -> bytes:
    key = _hmac(f"AWS4{secret}".encode(), date)
    for part in (REGION, "s3", "aws4_request"):
        key = _hmac(key, part)
    return key


def encode(
    chunks: list[bytes],
    *,
    seed: tuple[bytes, str, str, str] | None,
    trailers: list[tuple[str, str]] | None = None,
    corrupt_chunk: int | None = None,
    corrupt_trailer: bool = False,
) -> bytes:
    """aws-chunked framing; ``seed`` = (key, amz date, scope, seed signature) signs it."""
    out: list[bytes] = []
    previous = seed[3] if seed else ""
    for index, chunk in enumerate([*chunks, b""]):
        header = f"{len(chunk):x}"
        if seed:
            key, amz_date, scope, _ = seed
            sts = (
                f"AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{previous}\n{EMPTY}\n"
                f"{hashlib.sha256(chunk).hexdigest()}"
            )
            previous = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
            sig = previous if index != corrupt_chunk else "0" * 64
            header += f";chunk-signature={sig}"
        out.append(header.encode() + b"\r\n")
        if chunk:
            out.append(chunk + b"\r\n")
    for name, value in trailers or []:
        out.append(f"{name}:{value}\r\n".encode())
    if seed and trailers is not None:
        key, amz_date, scope, _ = seed
        canonical = "".join(f"{n}:{v}\n" for n, v in trailers).encode()
        sts = (
            f"AWS4-HMAC-SHA256-TRAILER\n{amz_date}\n{scope}\n{previous}\n"
            f"{hashlib.sha256(canonical).hexdigest()}"
        )
        sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        if corrupt_trailer:
            sig = "f" * 64
        out.append(f"x-amz-trailer-signature:{sig}\r\n".encode())
    out.append(b"\r\n")
    return b"".join(out)


class _StreamingAuth(S3SigV4Auth):
    def __init__(self, access: str, secret: str, payload: str) -> None:
        super().__init__(Credentials(access, secret), "s3", REGION)
        self._payload = payload

    def payload(self, request: AWSRequest) -> str:
        return self._payload


def streaming_request(
    endpoint: str,
    path: str,
    chunks: list[bytes],
    *,
    payload: str,
    access: str = ACCESS,
    secret: str = SECRET,
    trailers: list[tuple[str, str]] | None = None,
    decoded_length: int | None = None,
    extra_headers: dict[str, str] | None = None,
    **corruption: object,
) -> tuple[dict[str, str], bytes]:
    """Headers (signed by botocore) and aws-chunked body of one streaming upload."""
    headers = {"Content-Encoding": "aws-chunked"}
    if decoded_length != -1:  # -1: leave the header out
        length = sum(map(len, chunks)) if decoded_length is None else decoded_length
        headers["x-amz-decoded-content-length"] = str(length)
    if trailers:
        headers["x-amz-trailer"] = ",".join(n for n, _ in trailers)
    headers.update(extra_headers or {})
    request = AWSRequest(method="PUT", url=endpoint + path, headers=headers)
    _StreamingAuth(access, secret, payload).add_auth(request)
    signed = dict(request.headers.items())
    seed = None
    if payload != UNSIGNED_TRAILER:
        amz_date = signed["X-Amz-Date"]
        scope = f"{amz_date[:8]}/{REGION}/s3/aws4_request"
        signature = signed["Authorization"].rsplit("Signature=", 1)[1]
        seed = (derive_key(secret, amz_date[:8]), amz_date, scope, signature)
    body = encode(chunks, seed=seed, trailers=trailers, **corruption)  # type: ignore[arg-type]
    return signed, body


CHUNKS = [bytes([i]) * 65536 for i in range(5)] + [b"tail bytes"]
PAYLOAD = b"".join(CHUNKS)


# -- through the auth test server ------------------------------------------------------------
def test_signed_chunks(server: AuthServer) -> None:
    headers, body = streaming_request(server.endpoint, "/b/k", CHUNKS, payload=SIGNED)
    response = send(server, "PUT", "/b/k", body=body, headers=headers)
    assert response.status == 200, server.last.message
    assert server.last.data == PAYLOAD
    assert server.last.size == len(PAYLOAD)


def test_signed_chunks_with_signed_trailer(server: AuthServer) -> None:
    trailer = [("x-amz-checksum-crc32c", checksum_b64("crc32c", PAYLOAD))]
    headers, body = streaming_request(
        server.endpoint, "/b/k", CHUNKS, payload=SIGNED_TRAILER, trailers=trailer
    )
    response = send(server, "PUT", "/b/k", body=body, headers=headers)
    assert response.status == 200, server.last.message
    assert server.last.data == PAYLOAD
    assert server.last.checksums["crc32c"] == trailer[0][1]


@pytest.mark.parametrize("algorithm", ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"])
def test_unsigned_trailer_with_transfer_encoding_chunked(
    server: AuthServer, algorithm: str
) -> None:
    trailer = [(f"x-amz-checksum-{algorithm}", checksum_b64(algorithm, PAYLOAD))]
    headers, body = streaming_request(
        server.endpoint, "/b/k", CHUNKS, payload=UNSIGNED_TRAILER, trailers=trailer
    )
    pieces = [body[i : i + 7777] for i in range(0, len(body), 7777)]  # arbitrary splits
    response = send(server, "PUT", "/b/k", body=iter(pieces), headers=headers, chunked=True)
    assert response.status == 200, server.last.message
    assert server.last.data == PAYLOAD
    assert server.last.trailers == dict(trailer)


def test_bad_chunk_signature(server: AuthServer) -> None:
    headers, body = streaming_request(
        server.endpoint, "/b/k", CHUNKS, payload=SIGNED, corrupt_chunk=2
    )
    response = send(server, "PUT", "/b/k", body=body, headers=headers)
    assert response.status == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in response.data
    assert len(server.last.data) < len(PAYLOAD)


def test_bad_final_chunk_signature_holds_back_the_last_piece(server: AuthServer) -> None:
    headers, body = streaming_request(
        server.endpoint, "/b/k", CHUNKS, payload=SIGNED, corrupt_chunk=len(CHUNKS)
    )
    response = send(server, "PUT", "/b/k", body=body, headers=headers)
    assert response.status == 403
    assert len(server.last.data) < len(PAYLOAD)


def test_bad_trailer_signature(server: AuthServer) -> None:
    trailer = [("x-amz-checksum-crc32", checksum_b64("crc32", PAYLOAD))]
    headers, body = streaming_request(
        server.endpoint,
        "/b/k",
        CHUNKS,
        payload=SIGNED_TRAILER,
        trailers=trailer,
        corrupt_trailer=True,
    )
    response = send(server, "PUT", "/b/k", body=body, headers=headers)
    assert response.status == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in response.data
    assert len(server.last.data) < len(PAYLOAD)


def test_trailer_checksum_mismatch(server: AuthServer) -> None:
    trailer = [("x-amz-checksum-crc32", checksum_b64("crc32", b"something else"))]
    headers, body = streaming_request(
        server.endpoint, "/b/k", CHUNKS, payload=UNSIGNED_TRAILER, trailers=trailer
    )
    response = send(server, "PUT", "/b/k", body=body, headers=headers)
    assert response.status == 400
    assert b"<Code>BadDigest</Code>" in response.data
    assert len(server.last.data) < len(PAYLOAD)


def test_announced_trailer_missing(server: AuthServer) -> None:
    headers, body = streaming_request(
        server.endpoint,
        "/b/k",
        CHUNKS,
        payload=UNSIGNED_TRAILER,
        trailers=[],
        extra_headers={"x-amz-trailer": "x-amz-checksum-crc32"},
    )
    response = send(server, "PUT", "/b/k", body=body, headers=headers)
    assert response.status == 400, server.last.message
    assert b"<Code>MalformedTrailerError</Code>" in response.data


def test_malformed_trailer_checksum_value(server: AuthServer) -> None:
    trailer = [("x-amz-checksum-crc32", "not base64!")]
    headers, body = streaming_request(
        server.endpoint, "/b/k", CHUNKS, payload=UNSIGNED_TRAILER, trailers=trailer
    )
    response = send(server, "PUT", "/b/k", body=body, headers=headers)
    assert response.status == 400
    assert b"<Code>InvalidRequest</Code>" in response.data


def test_decoded_length_larger_than_body(server: AuthServer) -> None:
    headers, body = streaming_request(
        server.endpoint, "/b/k", CHUNKS, payload=SIGNED, decoded_length=len(PAYLOAD) + 1
    )
    response = send(server, "PUT", "/b/k", body=body, headers=headers)
    assert response.status == 400
    assert b"<Code>IncompleteBody</Code>" in response.data
    assert len(server.last.data) < len(PAYLOAD)


def test_decoded_length_smaller_than_body(server: AuthServer) -> None:
    headers, body = streaming_request(
        server.endpoint, "/b/k", CHUNKS, payload=SIGNED, decoded_length=len(PAYLOAD) - 1
    )
    response = send(server, "PUT", "/b/k", body=body, headers=headers)
    assert response.status == 400
    assert b"<Code>IncompleteBody</Code>" in response.data


def test_truncated_aws_chunked_body(server: AuthServer) -> None:
    headers, body = streaming_request(server.endpoint, "/b/k", CHUNKS, payload=SIGNED)
    cut = body[: len(body) - 100]  # HTTP body complete, aws-chunked encoding is not
    response = send(server, "PUT", "/b/k", body=cut, headers=headers)
    assert response.status == 400
    assert b"<Code>IncompleteBody</Code>" in response.data
    assert len(server.last.data) < len(PAYLOAD)


def test_unsigned_trailer_without_decoded_length_is_missing_length(server: AuthServer) -> None:
    headers, body = streaming_request(
        server.endpoint, "/b/k", CHUNKS, payload=UNSIGNED_TRAILER, trailers=[], decoded_length=-1
    )
    response = send(server, "PUT", "/b/k", body=iter([body]), headers=headers, chunked=True)
    assert response.status == 411


def test_signed_chunks_need_a_signed_request(server: AuthServer) -> None:
    body = encode(CHUNKS, seed=None)
    response = send(
        server,
        "PUT",
        "/b/k",
        body=body,
        headers={"x-amz-content-sha256": SIGNED, "x-amz-decoded-content-length": "1"},
    )
    assert response.status == 403


@pytest.mark.parametrize("chunked", [False, True])
def test_client_disconnect_mid_body(server: AuthServer, chunked: bool) -> None:
    """The client goes away half-way: IncompleteBody, and the last piece is never handed out."""
    if chunked:
        headers, body = streaming_request(
            server.endpoint, "/b/k", CHUNKS, payload=UNSIGNED_TRAILER, trailers=[]
        )
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += "Transfer-Encoding: chunked\r\n"
        wire = f"{len(body) // 2:x}\r\n".encode() + body[: len(body) // 2] + b"\r\n"
    else:
        head = f"Content-Length: {len(PAYLOAD)}\r\n"
        wire = PAYLOAD[: len(PAYLOAD) // 2]
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            f"PUT /b/k HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n{head}\r\n".encode() + wire
        )
        _wait_for(lambda: bool(server.seen))
    _wait_for(lambda: server.last.error is not None)
    assert server.last.error == "IncompleteBody", server.last.message
    assert len(server.last.data) < len(PAYLOAD)


def _wait_for(condition, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "the server never got there"
        time.sleep(0.02)


# -- the encoder against another implementation ----------------------------------------------
@pytest.fixture(scope="module")
def vgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Versitygw]:
    with run_versitygw(tmp_path_factory.mktemp("vgw-chunked") / "root") as gw:
        boto3.client(
            "s3",
            endpoint_url=gw.endpoint,
            aws_access_key_id=gw.access_key,
            aws_secret_access_key=gw.secret_key,
            region_name=REGION,
        ).create_bucket(Bucket="chunks")
        yield gw


@pytest.mark.parametrize("payload", [SIGNED, SIGNED_TRAILER])
def test_versitygw_accepts_the_test_encoder(vgw: Versitygw, payload: str) -> None:
    trailers = None
    if payload == SIGNED_TRAILER:
        trailers = [("x-amz-checksum-crc32", checksum_b64("crc32", PAYLOAD))]
    headers, body = streaming_request(
        vgw.endpoint,
        "/chunks/obj",
        CHUNKS,
        payload=payload,
        access=vgw.access_key,
        secret=vgw.secret_key,
        trailers=trailers,
    )
    import urllib3

    with urllib3.PoolManager(retries=False) as pool:
        put = pool.request("PUT", vgw.endpoint + "/chunks/obj", body=body, headers=headers)
        assert put.status == 200, put.data
        bad_headers, bad_body = streaming_request(
            vgw.endpoint,
            "/chunks/bad",
            CHUNKS,
            payload=payload,
            access=vgw.access_key,
            secret=vgw.secret_key,
            trailers=trailers,
            corrupt_chunk=1,
        )
        bad = pool.request("PUT", vgw.endpoint + "/chunks/bad", body=bad_body, headers=bad_headers)
        assert bad.status == 403
    stored = (
        boto3.client(
            "s3",
            endpoint_url=vgw.endpoint,
            aws_access_key_id=vgw.access_key,
            aws_secret_access_key=vgw.secret_key,
            region_name=REGION,
        )
        .get_object(Bucket="chunks", Key="obj")["Body"]
        .read()
    )
    assert stored == PAYLOAD


# -- the decoder on its own ------------------------------------------------------------------
def _signer() -> tuple[ChunkSigner, tuple[bytes, str, str, str]]:
    key = derive_key(SECRET, "20260101")
    seed = (key, "20260101T000000Z", f"20260101/{REGION}/s3/aws4_request", "ab" * 32)
    return ChunkSigner(key, seed[1], seed[2], seed[3]), seed


def _decode(decoder: AwsChunkedDecoder, body: bytes, step: int) -> bytes:
    out = []
    for i in range(0, len(body), step):
        out.extend(decoder.feed(body[i : i + step]))
    decoder.finish()
    return b"".join(out)


@pytest.mark.parametrize("step", [1, 2, 3, 7, 64, 65537, 1 << 22])
def test_decoder_any_split(step: int) -> None:
    signer, seed = _signer()
    trailer = [("x-amz-checksum-sha1", checksum_b64("sha1", PAYLOAD))]
    body = encode(CHUNKS, seed=seed, trailers=trailer)
    decoder = AwsChunkedDecoder(signer, trailer=True)
    assert _decode(decoder, body, step) == PAYLOAD
    assert decoder.trailers == dict(trailer)


def test_decoder_unsigned_without_trailer() -> None:
    decoder = AwsChunkedDecoder(None, trailer=True)
    assert _decode(decoder, encode([b"abc", b"de"], seed=None, trailers=[]), 4) == b"abcde"
    assert decoder.trailers == {}


def test_decoder_accepts_lf_only_trailer_lines() -> None:
    decoder = AwsChunkedDecoder(None, trailer=True)
    body = b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:" + checksum_b64("crc32", b"abc").encode()
    assert _decode(decoder, body + b"\n\r\n", 5) == b"abc"
    assert "x-amz-checksum-crc32" in decoder.trailers


def test_decoder_passes_large_blocks_through_without_copying() -> None:
    block = b"z" * (1 << 20)
    decoder = AwsChunkedDecoder(None, trailer=False)
    decoder.feed(f"{len(block):x}\r\n".encode())
    (piece,) = decoder.feed(block)
    assert piece is block


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"zz\r\nabc\r\n0\r\n\r\n", "InvalidRequest"),  # size not hex
        (b"3\r\nabcX\r\n0\r\n\r\n", "InvalidRequest"),  # no CRLF after data
        (b"3\r\nabc\r\n0\r\n\r\ngarbage", "InvalidRequest"),  # data after the end
        (b"1" * 5000, "InvalidRequest"),  # endless framing line
        (b"3\r\nabc\r\n", "IncompleteBody"),  # no final chunk
        (b"3\r\nabc\r\n0\r\n", "IncompleteBody"),  # no final CRLF
        (b"3\r\nab", "IncompleteBody"),  # cut inside the data
        (b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n", "InvalidRequest"),
        (b"0\r\nno colon here\r\n\r\n", "MalformedTrailerError"),
    ],
)
def test_decoder_refuses(body: bytes, code: str) -> None:
    trailer_ok = b"no colon" in body
    decoder = AwsChunkedDecoder(None, trailer=trailer_ok)
    with pytest.raises(S3Error) as exc:
        _decode(decoder, body, 3)
    assert exc.value.code == code


def test_decoder_requires_chunk_signatures_when_signed() -> None:
    signer, _ = _signer()
    decoder = AwsChunkedDecoder(signer, trailer=False)
    with pytest.raises(S3Error) as exc:
        _decode(decoder, b"3\r\nabc\r\n0\r\n\r\n", 100)
    assert exc.value.code == "InvalidRequest"


def test_decoder_trailer_signature_missing() -> None:
    signer, seed = _signer()
    body = encode([b"abc"], seed=seed, trailers=None)
    body = (
        body[:-2] + b"x-amz-checksum-crc32:" + checksum_b64("crc32", b"abc").encode() + b"\r\n\r\n"
    )
    with pytest.raises(S3Error) as exc:
        _decode(AwsChunkedDecoder(signer, trailer=True), body, 100)
    assert exc.value.code == "MalformedTrailerError"
