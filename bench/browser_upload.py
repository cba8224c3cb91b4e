#!/usr/bin/env python
"""A folder uploaded through the session page in Chromium, against aws cli on the same gateway.

    python bench/browser_upload.py                  # 50 files, 1 GiB
    python bench/browser_upload.py --files 10 --mib 100

It starts one ``minimo serve`` (local object store, SQLite), sets up a bucket, a form and a
policy that requires sessions, opens two sessions (one for each client) and generates a folder
of FILES files of random bytes totalling MIB MiB (sizes spread around the mean, so small and
multipart files mix). Then:

- browser: signs in to the session page in Chromium (Playwright, the distribution's
  /usr/bin/chromium), chooses the folder with the folder picker (``set_input_files``), clicks
  Upload and waits for "All N files uploaded". A MutationObserver on the total progress line
  records when its text changed; the figures are the number of changes and the largest gap
  between two changes while the transfer ran. The time runs from the click to the final status.
- aws cli: ``aws s3 cp --recursive`` (the venv's aws cli v1) of the same folder with the other
  session's key, timed around the process.

Both prefixes are then listed to check that every file arrived. Prints MiB/s for each, the
ratio and the load average before and after (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make gateway, tests and bench importable
    sys.path.insert(0, str(REPO))

from tests.api.client import Browser  # noqa: E402
from tests.helpers import policy_rule  # noqa: E402
from tests.servers import Gateway, read_initial_admin, run_gateway  # noqa: E402
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.ui.helpers import prepare, s3  # noqa: E402

MiB = 1024 * 1024
BUCKET = "bench"
FORM = {"name": "run", "title": "A run", "fields": [{"name": "note", "type": "text"}]}
POLICY = policy_rule(BUCKET, ["run"])
AWS = Path(sys.executable).parent / "aws"

# every change of the total progress line, with the time it happened (ms, performance.now())
WATCH_PROGRESS = """() => {
    window.progressChanges = [];
    const line = document.getElementById("upload-total-text");
    new MutationObserver(() => window.progressChanges.push(performance.now()))
        .observe(line, { childList: true, characterData: true, subtree: true });
}"""


def make_folder(root: Path, files: int, total: int, seed: int = 7) -> Path:
    """FILES files of random bytes, sizes between half and one and a half times the mean,
    adding up to exactly TOTAL bytes; a couple in a sub-folder so relative paths matter."""
    rng = random.Random(seed)
    weights = [rng.uniform(0.5, 1.5) for _ in range(files)]
    sizes = [int(total * w / sum(weights)) for w in weights]
    sizes[-1] += total - sum(sizes)
    folder = root / "run"
    for n, size in enumerate(sizes):
        path = folder / ("sub" if n % 10 == 9 else "") / f"file-{n:03d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            for start in range(0, size, 8 * MiB):
                out.write(os.urandom(min(8 * MiB, size - start)))
    return folder


def open_session(gw: Gateway, prefix: str) -> tuple[str, dict[str, str]]:
    api = Browser(gw.endpoint)
    admin = read_initial_admin(gw.data_dir)["user"]
    assert api.login(admin, gw.admin_password).status == 200
    opened = api.call(
        "POST",
        "/sessions",
        {"form": "run", "bucket": BUCKET, "prefix": prefix, "values": {"note": prefix}},
    )
    assert opened.status == 201, opened.body
    return opened.body["session"]["id"], opened.body["session_key"]


def browser_upload(gw: Gateway, session_id: str, folder: Path, files: int) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    admin = read_initial_admin(gw.data_dir)["user"]
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = chromium.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{gw.endpoint}/_minimo/sessions/{session_id}")
            page.fill("#user", admin)
            page.fill("#password", gw.admin_password)
            page.click("button[type=submit].primary")
            page.wait_for_url(f"{gw.endpoint}/_minimo/sessions/{session_id}")
            page.evaluate(WATCH_PROGRESS)
            page.set_input_files("#upload-folder", str(folder))
            started = time.monotonic()
            t0 = page.evaluate("performance.now()")
            page.click("#upload-start")
            page.wait_for_function(
                "(n) => document.getElementById('upload-status').textContent"
                ".startsWith('All ' + n + ' files uploaded')",
                arg=files,
                timeout=3_600_000,
                polling=100,
            )
            seconds = time.monotonic() - started
            changes = page.evaluate("window.progressChanges")
            status = page.inner_text("#upload-status")
        finally:
            chromium.close()
    # gaps while the transfer ran: from the click to the last change (the final summary)
    moments = [t0, *changes]
    gaps = [b - a for a, b in pairwise(moments)]
    return {
        "seconds": seconds,
        "changes": len(changes),
        "max_gap_ms": max(gaps) if gaps else float("nan"),
        "status": status,  # type: ignore[dict-item]
    }


def aws_upload(gw: Gateway, key: dict[str, str], folder: Path, prefix: str, home: Path) -> float:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "AWS_ACCESS_KEY_ID": key["access_key"],
        "AWS_SECRET_ACCESS_KEY": key["secret_key"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    started = time.monotonic()
    subprocess.run(
        [str(AWS), "s3", "cp", "--recursive", "--only-show-errors", str(folder),
         f"s3://{BUCKET}/{prefix}", "--endpoint-url", gw.endpoint],
        env=env, check=True,
    )  # fmt: skip
    return time.monotonic() - started


def stored(gw: Gateway, prefix: str) -> tuple[int, int]:
    """How many objects, and how many bytes, are under PREFIX."""
    count = size = 0
    for page in s3(gw).get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for obj in page.get("Contents", []):
            count += 1
            size += obj["Size"]
    return count, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--mib", type=int, default=1024, help="total size of the folder")
    args = parser.parse_args()
    total = args.mib * MiB
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-browser-upload-") as work:
        root = Path(work)
        folder = make_folder(root, args.files, total)
        with run_gateway(root / "gw") as gw:
            prepare(gw, buckets=[BUCKET], forms=[FORM], policy=POLICY)
            browser_sid, _ = open_session(gw, "browser/")
            _, cli_key = open_session(gw, "cli/")
            (root / "awshome").mkdir()
            browser = browser_upload(gw, browser_sid, folder, args.files)
            cli_seconds = aws_upload(gw, cli_key, folder, "cli/", root / "awshome")
            for prefix in ("browser/", "cli/"):
                got = stored(gw, prefix)
                assert got == (args.files, total), f"{prefix}: {got} stored"
    load_after = os.getloadavg()
    mib = total / MiB
    browser_rate = mib / browser["seconds"]
    cli_rate = mib / cli_seconds
    print(f"folder: {args.files} files, {mib:.0f} MiB (random bytes)")
    print(f"browser (Chromium, session page): {browser['seconds']:.1f} s, {browser_rate:.1f} MiB/s")
    print(
        f"  progress line changed {browser['changes']} times, "
        f"largest gap between changes {browser['max_gap_ms']:.0f} ms"
    )
    print(f"  final status: {browser['status']}")
    print(f"aws s3 cp --recursive: {cli_seconds:.1f} s, {cli_rate:.1f} MiB/s")
    print(f"browser / aws cli: {browser_rate / cli_rate:.2f}")
    print(
        "load average (1, 5, 15 min): before "
        + ", ".join(f"{x:.1f}" for x in load_before)
        + "; after "
        + ", ".join(f"{x:.1f}" for x in load_after)
    )


if __name__ == "__main__":
    main()
