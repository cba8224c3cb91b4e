"""One real ``minimo serve`` (sqlite, local objects) shared by the API tests of a module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.client import Browser
from tests.servers import Gateway, run_gateway

#: "raw" needs a session with form "run"; everything else is a scratch area
POLICY = """\
[[rule]]
bucket = "raw"
prefix = ""
forms = ["run"]

[[rule]]
bucket = "*"
prefix = ""
require_session = false
overwrite = "allow"
delete = "admin"
"""

RUN_FORM = {
    "name": "run",
    "title": "Experiment run",
    "fields": [
        {"name": "sample", "type": "text", "required": True},
        {"name": "temp_c", "type": "number", "min": -80, "max": 200},
    ],
}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with run_gateway(tmp_path_factory.mktemp("api-gw")) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def admin(gw: Gateway) -> Browser:
    browser = Browser(gw.endpoint)
    assert browser.login("admin", gw.admin_password).status == 200
    return browser
