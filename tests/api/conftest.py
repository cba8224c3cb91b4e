"""One real ``minimo serve`` (sqlite, local objects) shared by the API tests of a module."""

from __future__ import annotations

import dataclasses
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give each schemathesis case its operation in its node id.

    schemathesis 4 names every generated item after its test function alone, so the items of
    one test share a node id, and pytest-xdist's ``--dist loadscope`` (what scripts/test runs)
    keys items by node id: all but one operation per test were silently dropped in CI.
    """
    for item in items:
        label = getattr(item, "operation_label", None)
        if label and "[" not in item.nodeid:
            # pytest 9 keeps the id structured (a NodeId dataclass); older ones a plain string
            if hasattr(item, "_id"):
                item._id = dataclasses.replace(item._id, params=label)
            else:
                item._nodeid = f"{item.nodeid}[{label}]"
    assert len({item.nodeid for item in items}) == len(items), "two tests share a node id"
