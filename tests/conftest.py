"""Shared fixtures: real servers (versitygw, minimo) and real clients pointed at them.

``gateway`` is parametrized over the matrix issue 2 asks for: both object-store backends
(``local``, ``s3`` in front of versitygw), each over plain HTTP and over HTTPS. Its policy makes
everything a scratch area, so the S3 protocol tests write with the admin key and no session.
"""

from __future__ import annotations

import hashlib
import secrets
import ssl
import urllib.request
from collections.abc import Callable, Iterator
from http.client import HTTPResponse
from pathlib import Path

import boto3
import pytest
from botocore.config import Config as BotoConfig

from tests.servers import (
    SCRATCH_POLICY,
    Gateway,
    Versitygw,
    run_ferretdb,
    run_gateway,
    run_seaweedfs,
    run_versitygw,
)
from tests.sites import Site, site_matrix

#: BACKEND-TRANSPORT; "seaweedfs" is the s3 backend in front of a SeaweedFS cluster (the s3 ones
#: are in front of versitygw)
GATEWAY_MATRIX = ["local-http", "local-https", "s3-http", "s3-https", "seaweedfs-http"]


@pytest.fixture(scope="module")
def sites(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], Site]]:
    """The enforcement sites (tests/sites.py), each started on first use in a module."""
    with site_matrix(request, tmp_path_factory) as get:
        yield get


@pytest.fixture(scope="session")
def versitygw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Versitygw]:
    with run_versitygw(tmp_path_factory.mktemp("versitygw") / "root") as server:
        yield server


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Versitygw]:
    """A SeaweedFS cluster (master, two volume servers, filer, S3 gateway as separate
    processes) for the whole session: a distributed object store behind the s3 backend."""
    with run_seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(scope="session")
def ferretdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A FerretDB server for the session: its ``mongodb://`` URI (no database in the path).

    Give every store its own database (``tests.servers.mongo_uri``) so tests stay independent.
    """
    with run_ferretdb(tmp_path_factory.mktemp("ferretdb")) as uri:
        yield uri


@pytest.fixture(scope="session", params=GATEWAY_MATRIX)
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    backend, transport = request.param.split("-")
    upstream = None
    if backend == "seaweedfs":
        upstream, backend = request.getfixturevalue("seaweedfs"), "s3"
    elif backend == "s3":
        upstream = request.getfixturevalue("versitygw")
    data_dir = tmp_path_factory.mktemp(f"minimo-{request.param}")
    with run_gateway(
        data_dir, upstream=upstream, tls=transport == "https", policy=SCRATCH_POLICY
    ) as gw:
        gw.backend = backend  # type: ignore[attr-defined]
        #: which S3 server is behind the s3 backend (they differ where S3 leaves room)
        gw.upstream = request.param.split("-")[0]  # type: ignore[attr-defined]
        yield gw


def boto3_client(gw: Gateway, **config: object):
    """boto3 with its default configuration (so HTTPS uploads use aws-chunked trailers)."""
    return boto3.client(
        "s3",
        endpoint_url=gw.endpoint,
        aws_access_key_id=gw.access_key,
        aws_secret_access_key=gw.secret_key,
        region_name="us-east-1",
        verify=str(gw.ca_file) if gw.ca_file else None,
        config=BotoConfig(**config) if config else None,
    )


def ssl_context(gw: Gateway) -> ssl.SSLContext | None:
    """An SSL context trusting this gateway's self-signed certificate (None over plain HTTP)."""
    return ssl.create_default_context(cafile=str(gw.ca_file)) if gw.ca_file else None


def urlopen(gw: Gateway, url: str, method: str = "GET") -> HTTPResponse:
    """Fetch ``url`` (e.g. a presigned one) from this gateway with no extra headers.

    HTTP errors are raised as ``urllib.error.HTTPError``, whose ``read()`` is the S3 XML error.
    """
    request = urllib.request.Request(url, method=method)
    return urllib.request.urlopen(request, context=ssl_context(gw), timeout=60)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in blocks so big payloads never sit in memory."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@pytest.fixture
def s3(gateway: Gateway):
    return boto3_client(gateway)


@pytest.fixture
def bucket(s3) -> str:
    """A fresh bucket for one test."""
    name = f"t-{secrets.token_hex(6)}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def payload_file(tmp_path: Path):
    """Write ``size`` random-ish bytes to a file without holding them all in memory."""

    def make(size: int, name: str = "payload.bin") -> Path:
        path = tmp_path / name
        block = secrets.token_bytes(1 << 20)
        with path.open("wb") as f:
            remaining = size
            counter = 0
            while remaining > 0:
                piece = block[: min(len(block), remaining)]
                # vary each MiB so part mix-ups cannot go unnoticed
                f.write(counter.to_bytes(8, "big") + piece[8:] if len(piece) > 8 else piece)
                remaining -= len(piece)
                counter += 1
        return path

    return make
