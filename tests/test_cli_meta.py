"""``minimo form|policy|session|audit`` as operators and scripts run them: subprocesses."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import REPO, mongo_uri, run_gateway
from tests.test_cli import fails, ok

DATA = Path(__file__).parent / "unit" / "data"

FORM = {
    "name": "imaging",
    "title": "Imaging run",
    "fields": [
        {"name": "operator", "type": "text", "required": True},
        {"name": "objective", "type": "choice", "choices": ["10x", "63x"]},
        {"name": "temp_c", "type": "number", "min": 0, "max": 50},
        {"name": "stains", "type": "multichoice", "choices": ["dapi", "gfp"]},
        {"name": "count", "type": "integer"},
        {"name": "repeat", "type": "boolean"},
        {"name": "day", "type": "date"},
        {"name": "started", "type": "datetime"},
        {"name": "notes", "type": "textarea", "max_length": 5},
    ],
}
POLICY = """\
[[rule]]
bucket = "raw"
prefix = "private/"
forms = ["imaging"]
open_sessions = ["carol"]

[[rule]]
bucket = "raw"
forms = ["imaging"]
max_session_ttl = "10d"
"""


class Dir:
    """One data directory (sqlite) or one database on FerretDB, and the CLI pointed at it."""

    def __init__(self, path: Path, uri: str | None = None) -> None:
        self.path = path
        self.args = ["--data-dir", str(path)] + (["--mongo-uri", uri] if uri else [])

    def ok(self, *args: str, **kwargs) -> str:
        return ok(*args, *self.args, **kwargs)

    def fails(self, *args: str, **kwargs) -> str:
        return fails(*args, *self.args, **kwargs)

    def write(self, name: str, text: str) -> str:
        path = self.path / name
        path.write_text(text)
        return str(path)


def setup_dir(d: Dir) -> Dir:
    for user, role in [("admin", "admin"), ("bob", "uploader"), ("carol", "uploader")]:
        d.ok("user", "add", user, "--role", role)
    d.ok("user", "add", "rita", "--role", "reader")
    d.ok("form", "create", "--file", d.write("form.json", json.dumps(FORM)))
    d.ok("policy", "set", d.write("policy.toml", POLICY))
    return d


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Dir:
    """Users admin/bob/carol (uploaders)/rita (reader), form imaging, the policy above."""
    return setup_dir(Dir(tmp_path_factory.mktemp("lab")))


def test_help_lists_the_groups() -> None:
    out = ok("--help")
    for command in ("form", "policy", "session", "audit"):
        assert command in out
    assert "--mongo-uri" in ok("session", "open", "--help")


def test_forms(tmp_path: Path) -> None:
    d = Dir(tmp_path)
    path = d.write("f.json", json.dumps(FORM))
    assert d.ok("form", "create", "--file", path).strip() == "created form imaging version 1"
    assert d.fails("form", "create", "--file", path).strip() == (
        "Error: form imaging exists; use update"
    )
    assert "unchanged (version 1)" in d.ok("form", "update", "--file", path)
    changed = {**FORM, "title": "Imaging run (2027)"}
    assert "updated form imaging to version 2" in d.ok(
        "form", "update", "--file", d.write("g.json", json.dumps(changed))
    )
    shown = json.loads(d.ok("form", "show", "imaging"))
    assert shown["version"] == 2 and shown["title"] == "Imaging run (2027)"
    assert json.loads(d.ok("form", "show", "imaging", "--version", "1"))["title"] == "Imaging run"
    schema = json.loads(d.ok("form", "show", "imaging", "--schema"))
    assert schema["$id"] == "urn:minimo:form:imaging:v2"
    assert schema["properties"]["temp_c"]["maximum"] == 50

    imported = d.ok("form", "import", "confocal", "--text", str(DATA / "old_minimo_form.txt"))
    assert imported.strip() == "imported form confocal version 1 (7 fields)"
    confocal = json.loads(d.ok("form", "show", "confocal"))
    assert confocal["title"] == "Confocal imaging session"
    assert {f["type"] for f in confocal["fields"]} == {"text", "choice", "textarea"}

    listing = d.ok("form", "list")
    assert re.search(r"^confocal\s+1\s+7\s+Confocal imaging session$", listing, re.M)
    assert re.search(r"^imaging\s+2\s+9\s+Imaging run \(2027\)$", listing, re.M)
    assert [f["name"] for f in json.loads(d.ok("form", "list", "--json"))] == [
        "confocal",
        "imaging",
    ]

    # Problems: one line each, exit 1, no traceback.
    bad = {"name": "Bad Name", "fields": [{"name": "x", "type": "colour"}]}
    err = d.fails("form", "create", "--file", d.write("bad.json", json.dumps(bad)))
    assert err.splitlines()[0] == "invalid form definition:"
    assert any(line.startswith("name 'Bad Name'") for line in err.splitlines())
    assert any(line.startswith("fields[0]") for line in err.splitlines())
    assert "not valid JSON" in d.fails("form", "create", "--file", d.write("x.json", "{"))
    assert "no form nope" in d.fails("form", "show", "nope")
    assert "no version 9" in d.fails("form", "show", "imaging", "--version", "9")
    assert "line" in d.fails("form", "import", "empty", "--text", d.write("e.txt", "\n"))


def test_policy(tmp_path: Path) -> None:
    d = Dir(tmp_path)
    assert "No policy set" in d.ok("policy", "show")
    path = d.write("p.toml", POLICY)
    err = d.fails("policy", "set", path)
    assert err.splitlines() == [
        "invalid policy:",
        "rule 1: forms: no form 'imaging' exists (create it first with minimo form create)",
        "rule 2: forms: no form 'imaging' exists (create it first with minimo form create)",
    ]
    d.ok("form", "create", "--file", d.write("f.json", json.dumps(FORM)))
    assert d.ok("policy", "set", path).strip() == "policy version 1 in force (2 rules)"
    assert d.ok("policy", "set", path).strip() == "policy unchanged (version 1)"
    shown = d.ok("policy", "show")
    assert shown.startswith("# policy version 1, set ") and POLICY.strip() in shown
    document = json.loads(d.ok("policy", "show", "--json"))
    assert document["version"] == 1 and document["rules"][0]["open_sessions"] == ["carol"]
    assert "not valid TOML" in d.fails("policy", "set", d.write("bad.toml", "[[rule]\n"))
    err = d.fails(
        "policy", "set", d.write("bad2.toml", '[[rule]]\nbucket = "raw"\noverwrite = 1\n')
    )
    assert "rule 1: overwrite: must be one of deny, allow" in err
    assert "rule 1: forms: at least one form" in err
    assert "cannot read" in d.fails("policy", "set", str(tmp_path / "missing.toml"))


def test_session_open_show_close(lab: Dir) -> None:
    opened = json.loads(
        lab.ok(
            "session", "open", "--form", "imaging", "--bucket", "raw", "--json",
            "--set", "operator=Ada", "--set", "temp_c=21.5", "--set", "stains=dapi",
            "--set", "stains=gfp", "--owner", "bob", "--ttl", "2d",
        )
    )  # fmt: skip
    assert {"id", "access_key", "secret_key"} <= set(opened)
    assert re.fullmatch(r"[0-9a-z]{36}", opened["id"])
    assert opened["prefix"] == opened["id"] + "/" and opened["owner"] == "bob"
    # the boolean "repeat" was not given: "no", as an unticked checkbox in the web form
    assert opened["values"] == {
        "operator": "Ada",
        "temp_c": 21.5,
        "stains": ["dapi", "gfp"],
        "repeat": False,
    }
    assert opened["title"] == f"imaging · {opened['id']}"

    plain = lab.ok(
        "session", "open", "--form", "imaging", "--bucket", "raw", "--prefix", "2026/run7",
        "--set", "operator=Bo",
    )  # fmt: skip
    fields = dict(line.split(": ", 1) for line in plain.splitlines())
    assert {"id", "access_key", "secret_key", "scope"} <= set(fields)
    assert fields["scope"] == "s3://raw/2026/run7/"

    shown = json.loads(lab.ok("session", "show", opened["id"], "--json"))
    assert shown["state"] == "open" and shown["form_version"] == 1
    assert (shown["objects"], shown["bytes"]) == (0, 0)
    assert shown["values"]["temp_c"] == 21.5
    text = lab.ok("session", "show", opened["id"])
    assert "state: open" in text and "objects: 0 (0 B)" in text and "stains: dapi, gfp" in text
    assert "form: imaging v1" in text and f"scope: s3://raw/{opened['id']}/" in text

    # Only the owner or an admin may close; closing is idempotent.
    err = lab.fails("session", "close", opened["id"], "--as", "carol")
    assert "only bob (the owner) or an admin may close" in err
    assert "closed session" in lab.ok("session", "close", opened["id"], "--as", "bob")
    assert "closed session" in lab.ok("session", "close", opened["id"])
    assert json.loads(lab.ok("session", "show", opened["id"], "--json"))["state"] == "closed"
    assert "no session" in lab.fails("session", "close", "0" * 36)
    assert "no session" in lab.fails("session", "show", "nope")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("operator= ", "operator: is required"),
        ("objective=5x", "objective: must be one of 10x, 63x"),
        ("temp_c=60", "temp_c: must be at most 50"),
        ("temp_c=warm", "temp_c: must be a number"),
        ("stains=cy5", "stains: 'cy5' is not one of dapi, gfp"),
        ("count=1.5", "count: must be a whole number"),
        ("repeat=maybe", "repeat: must be true or false"),
        ("day=25.11.2026", "day: must be a date in the form YYYY-MM-DD"),
        ("started=2026-11-25T14:30", "started: must be an ISO 8601 date-time with a timezone"),
        ("notes=too long", "notes: must be at most 5 characters long"),
        ("colour=red", "colour: is not a field of form imaging v1"),
    ],
)
def test_session_open_bad_values(lab: Dir, setting: str, message: str) -> None:
    settings = [setting] if setting.startswith("operator=") else ["operator=A", setting]
    sets = [arg for pair in settings for arg in ("--set", pair)]
    err = lab.fails("session", "open", "--form", "imaging", "--bucket", "raw", *sets)
    # One line per field, nothing else: no "Error:" prefix, no traceback.
    [line] = err.splitlines()
    assert line.startswith(message)


def test_session_open_refusals(lab: Dir) -> None:
    base = ["session", "open", "--form", "imaging", "--set", "operator=A"]
    err = lab.fails(*base, "--bucket", "other")
    assert "no policy rule covers s3://other/<session id>/" in err
    err = lab.fails(*base, "--bucket", "raw", "--prefix", "private/x/", "--owner", "bob")
    assert "bob (uploader) may not open sessions at s3://raw/private/x/" in err
    assert "rule 1 lets carol open them" in err
    assert lab.ok(*base, "--bucket", "raw", "--prefix", "private/x/", "--owner", "carol")
    assert "rita (reader) may not open sessions" in lab.fails(
        *base, "--bucket", "raw", "--owner", "rita"
    )
    assert "ttl: 11d is longer than the 10d" in lab.fails(*base, "--bucket", "raw", "--ttl", "11d")
    assert "no user 'zed'" in lab.fails(*base, "--bucket", "raw", "--owner", "zed")
    assert "use FIELD=VALUE" in lab.fails(*base, "--bucket", "raw", "--set", "oops")


def test_session_list_filters(tmp_path: Path) -> None:
    d = setup_dir(Dir(tmp_path))
    ids = []
    for owner, sets in [
        ("bob", ["operator=Ada", "temp_c=10", "day=2026-03-01"]),
        ("carol", ["operator=Grace", "temp_c=30", "objective=63x"]),
        ("bob", ["operator=Adam", "temp_c=45", "day=2026-06-01"]),
    ]:
        args = [x for s in sets for x in ("--set", s)]
        opened = d.ok(
            "session", "open", "--form", "imaging", "--bucket", "raw", "--owner", owner,
            "--json", *args,
        )  # fmt: skip
        ids.append(json.loads(opened)["id"])
    d.ok("session", "close", ids[0])

    def listed(*args: str) -> list[int]:
        page = json.loads(d.ok("session", "list", "--json", *args))
        return [ids.index(s["id"]) for s in page["sessions"]]

    assert listed() == [2, 1, 0]
    assert listed("--owner", "bob") == [2, 0]
    assert listed("--state", "open") == [2, 1]
    assert listed("--state", "closed") == [0]
    assert listed("--state", "expired") == []
    assert listed("--form", "imaging", "--bucket", "raw") == [2, 1, 0]
    assert listed("--bucket", "other") == []
    assert listed("--since", "1d") == [2, 1, 0]
    assert listed("--until", "2020-01-01") == []
    assert listed("--form", "imaging", "--where", "temp_c>=30") == [2, 1]
    assert listed("--form", "imaging", "--where", "temp_c>=20", "--where", "temp_c<=40") == [1]
    assert listed("--where", "operator~ADA") == [2, 0]
    assert listed("--where", "objective=63x") == [1]
    assert listed("--form", "imaging", "--where", "day<=2026-04-01") == [0]
    page = json.loads(d.ok("session", "list", "--json", "--limit", "2"))
    assert page["total"] == 3 and page["next_cursor"]
    rest = json.loads(d.ok("session", "list", "--json", "--cursor", page["next_cursor"]))
    assert [s["id"] for s in rest["sessions"]] == [ids[0]]

    table = d.ok("session", "list", "--owner", "carol")
    assert ids[1] in table and "imaging v1" in table and "open" in table and ids[0] not in table
    assert "no field 'colour'" in d.fails(
        "session", "list", "--form", "imaging", "--where", "colour=1"
    )
    assert "bad condition" in d.fails("session", "list", "--where", "temp_c>>1")
    assert "--since" in d.fails("session", "list", "--since", "last tuesday")


def test_audit_lists_admin_changes(tmp_path: Path) -> None:
    d = setup_dir(Dir(tmp_path))
    opened = json.loads(
        d.ok("session", "open", "--form", "imaging", "--bucket", "raw", "--set", "operator=A",
             "--json")
    )  # fmt: skip
    d.fails("session", "open", "--form", "imaging", "--bucket", "raw", "--set", "temp_c=99")
    d.ok("session", "close", opened["id"])
    events = [json.loads(line) for line in d.ok("audit", "--json").splitlines()]
    assert [(e["action"], e["outcome"]) for e in events] == [
        ("form.create", "ok"),
        ("policy.set", "ok"),
        ("session.open", "ok"),
        ("session.open", "refused"),
        ("session.close", "ok"),
    ]
    assert events[0]["principal"].startswith("cli") and events[0]["target"] == "form:imaging"
    assert events[2]["principal"] == "admin" and events[2]["target"] == f"session:{opened['id']}"
    assert "temp_c: must be at most 50" in events[3]["reason"]
    text = d.ok("audit", "--since", "1h")
    assert re.search(r"session\.open\s+refused\s+s3://raw/<session id>/", text)
    assert d.ok("audit", "--since", "2999-01-01") == ""
    assert [json.loads(x)["action"] for x in d.ok("audit", "--json", "--action", "policy.set")
            .splitlines()] == ["policy.set"]  # fmt: skip


def test_on_mongo(tmp_path: Path, ferretdb: str) -> None:
    d = setup_dir(Dir(tmp_path, mongo_uri(ferretdb, f"cli_{secrets.token_hex(6)}")))
    opened = json.loads(
        d.ok("session", "open", "--form", "imaging", "--bucket", "raw", "--set", "operator=A",
             "--set", "temp_c=5", "--json")
    )  # fmt: skip
    assert not (tmp_path / "minimo.sqlite3").exists()
    page = json.loads(
        d.ok("session", "list", "--json", "--form", "imaging", "--where", "temp_c<=5")
    )
    assert [s["id"] for s in page["sessions"]] == [opened["id"]]
    d.ok("session", "close", opened["id"])
    assert json.loads(d.ok("session", "show", opened["id"], "--json"))["state"] == "closed"


def test_serve_policy_file(tmp_path: Path) -> None:
    d = Dir(tmp_path / "data")
    d.path.mkdir()
    d.ok("form", "create", "--file", d.write("f.json", json.dumps(FORM)))
    policy = d.write("p.toml", POLICY)
    for _ in range(2):  # the same file at every start: still version 1
        with run_gateway(d.path, extra_args=["--policy", policy]):
            pass
    assert json.loads(d.ok("policy", "show", "--json"))["version"] == 1
    bad = d.write("bad.toml", '[[rule]]\nbucket = "raw"\nforms = ["nope"]\n')
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", *d.args, "--listen", "127.0.0.1:1",
         "--workers", "1", "--policy", bad],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "rule 1: forms: no form 'nope' exists" in result.stderr
