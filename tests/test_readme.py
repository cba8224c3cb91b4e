"""The README's "Metadata sessions" walk-through, run as written against a real gateway.

Every ``sh`` block of that section runs, in order, as one bash script in a directory where
``minimo-data/`` is the gateway's data directory (the README's setting). Every ``text`` block
there is output a client printed; each of its lines must still appear in what the script
printed, once the parts that differ between runs (session ids, keys, times, request ids, the
port) are normalised. So the docs cannot rot: change a refusal message and this test names the
README line to update.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.servers import REPO, run_gateway

SECTION = "## Metadata sessions"
README_ENDPOINT = "127.0.0.1:9000"

#: parts of the output that change from run to run, and what they become
_VOLATILE = [
    (re.compile(r"\b[0-9a-z]{36}\b"), "<id>"),  # session ids
    (re.compile(r"\bMK[0-9A-Z]{18}\b"), "<key>"),  # access keys
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"), "<time>"),
    (re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ", re.M), "<time> "),  # rclone's log prefix
    (re.compile(r"RequestID: [^,]+, HostID: [^,]+,"), "RequestID: <r>, HostID: <h>,"),
    (re.compile(r"127\.0\.0\.1:\d+"), "<endpoint>"),
]


def normalise(text: str) -> str:
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text


def section_blocks(readme: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block in the "Metadata sessions" section, in order."""
    start = readme.index(SECTION + "\n")
    end = readme.find("\n## ", start + len(SECTION))
    section = readme[start : end if end != -1 else len(readme)]
    return re.findall(r"^```(\w*)\n(.*?)^```$", section, re.M | re.S)


def test_blocks_are_found() -> None:
    blocks = section_blocks((REPO / "README.md").read_text())
    kinds = [kind for kind, _ in blocks]
    assert kinds.count("sh") >= 8 and kinds.count("text") >= 5, kinds


def _script(blocks: list[tuple[str, str]], endpoint: str) -> str:
    lines = []
    for kind, body in blocks:
        if kind != "sh":
            continue
        for line in body.splitlines():
            lines.append(line)
            # running servers pick up a new policy and a closed session within 5 seconds
            if re.match(r"minimo (policy set|session close)\b", line):
                lines.append("sleep 5.5")
    return "\n".join(lines).replace(README_ENDPOINT, endpoint) + "\n"


def _prelude() -> str:
    """``jq -r .FIELD`` when jq is not installed (``minimo`` comes from the venv the README
    activates, as in a fresh shell)."""
    prelude = ""
    if shutil.which("jq") is None:
        prelude += (
            f'jq() {{ "{sys.executable}" -c '
            '"import json,sys; print(json.load(open(sys.argv[2]))[sys.argv[1][1:]])" "$2" "$3"; }\n'
        )
    return prelude


def test_metadata_sessions_walkthrough(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    blocks = section_blocks(readme)
    work = tmp_path / "work"
    (work / "run7").mkdir(parents=True)
    (work / "run7" / "data.csv").write_text("sample,value\nS1,42\n")
    (work / "run7" / "img001.tif").write_bytes(os.urandom(2048))
    (work / "run8").mkdir()
    (work / "run8" / "a.txt").write_text("a\n")
    (work / "run8" / "b.txt").write_text("b\n")

    # the clone's venv, where the first command of the README installed minimo (and '.[test]'
    # aws cli and rclone); the shell starts fresh, without it on PATH, as a new terminal does
    venv = Path(sys.prefix)
    (work / ".venv").symlink_to(venv, target_is_directory=True)

    with run_gateway(work / "minimo-data", policy=None) as gw:
        host = gw.endpoint.removeprefix("http://")
        script = _prelude() + _script(blocks, host)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MINIMO_", "AWS_"))}
        env.pop("VIRTUAL_ENV", None)
        fresh_path = [d for d in env.get("PATH", "").split(os.pathsep) if Path(d) != venv / "bin"]
        env["PATH"] = os.pathsep.join(fresh_path)
        # the venv's minimo runs this checkout's code (the venv may belong to another clone)
        env["PYTHONPATH"] = str(REPO)
        env["HOME"] = str(tmp_path)  # no user's aws or rclone configuration
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    output = normalise(done.stdout + done.stderr)
    assert "command not found" not in output, output

    missing = []
    for kind, body in blocks:
        if kind != "text":
            continue
        for line in body.splitlines():
            expected = normalise(line.replace(README_ENDPOINT, "127.0.0.1:1"))
            if expected.strip() and expected not in output:
                missing.append(line)
    assert not missing, (
        "README lines no client printed:\n" + "\n".join(missing) + "\n\nprinted:\n" + output
    )

    session = json.loads((work / "session.json").read_text())
    assert {"id", "access_key", "secret_key", "scope", "values", "expires"} <= session.keys()
    assert session["values"] == {"operator": "ada", "objective": "63x", "temp_c": 21}
    # the walk-through's accepted uploads landed: 5 objects in the first session, closed
    shown = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "session", "show", session["id"], "--json",
         "--data-dir", str(work / "minimo-data")],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    record = json.loads(shown.stdout)
    assert record["objects"] == 5 and record["state"] == "closed", record
    assert "0 differences found" in done.stderr
    assert '"minimo-session"' in done.stdout
    assert '"sha256"' in done.stdout


def test_first_start_section_is_what_serve_prints(tmp_path: Path) -> None:
    """ "First start": the address the README quotes is what the first start prints beside the
    credentials, its commands run, and the gateway's root in a browser leads to the web UI."""
    readme = (REPO / "README.md").read_text()
    start = readme.index("## First start\n")
    section = readme[start : readme.index("\n## ", start + 1)]
    quoted = re.search(r"`(web UI: http://127\.0\.0\.1:9000/_minimo/)`", section)
    assert quoted, "the First start section quotes the web UI line"
    (block,) = re.findall(r"^```sh\n(.*?)^```$", section, re.M | re.S)
    with run_gateway(tmp_path / "minimo-data", policy=None) as gw:
        host = gw.endpoint.removeprefix("http://")
        printed = " ".join(next(gw.data_dir.glob("gateway-*.log")).read_text().split())
        assert quoted.group(1).replace(README_ENDPOINT, host) in printed
        done = subprocess.run(
            ["bash", "-e", "-c", block.replace(README_ENDPOINT, host)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "password:" in done.stdout, done.stdout
        browser = urllib.request.Request(gw.endpoint + "/", headers={"Accept": "text/html"})
        with urllib.request.urlopen(browser) as page:  # follows the redirect
            assert page.status == 200 and page.url.startswith(gw.endpoint + "/_minimo/login")
