"""The object-store contract runs on both backends: ``local``, and ``s3`` in front of versitygw
(a single-process S3 server) and in front of SeaweedFS (a cluster of processes)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.backends.base import ObjectStore
from gateway.backends.local import LocalObjectStore

#: "s3" is the s3 backend in front of versitygw, "seaweedfs" in front of a SeaweedFS cluster
BACKENDS = ["local", "s3", "seaweedfs"]


@pytest.fixture(params=BACKENDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], ObjectStore]:
    """A factory for an unstarted store (created inside the test's own event loop)."""
    if request.param == "local":
        return lambda: LocalObjectStore(tmp_path / "objects")
    # the session-wide servers from tests/conftest.py; they fail (never skip) if they cannot run
    server = request.getfixturevalue("seaweedfs" if request.param == "seaweedfs" else "versitygw")
    try:
        from gateway.backends.s3 import S3ObjectStore
    except ImportError as exc:
        pytest.fail(f"the s3 backend (gateway/backends/s3/, S3ObjectStore) is missing: {exc}")
    return lambda: S3ObjectStore(
        endpoint=server.endpoint,
        access_key=server.access_key,
        secret_key=server.secret_key,
        region="us-east-1",
    )
