#!/usr/bin/env python
"""Where the time went, from a py-spy raw profile (`bench/run.py --py-spy-format raw`).

    python bench/pyspy_top.py PROFILE.txt [--only put_object] [--skip thread.py:81] [-n 25]

Prints the frames with the most samples of their own ("self") and the frames most often on the
stack ("inclusive"), as shares of the samples kept. ``--only`` keeps stacks containing a text
(e.g. one handler), ``--skip`` drops stacks whose innermost frame contains one (e.g. idle
thread-pool workers, which py-spy may count as active).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def read_stacks(path: Path, only: str | None, skip: str | None) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if only and only not in stack:
            continue
        if skip and skip in frames[-1]:
            continue
        stacks.append((frames, int(count)))
    return stacks


def tally(stacks: list[tuple[list[str], int]]) -> tuple[Counter[str], Counter[str], int]:
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    total = 0
    for frames, count in stacks:
        total += count
        own[frames[-1]] += count
        for frame in set(frames):  # a recursive frame counts once per stack
            anywhere[frame] += count
    return own, anywhere, total


def main() -> None:
    p = argparse.ArgumentParser(description="Summarise a py-spy raw profile.")
    p.add_argument("profile", type=Path)
    p.add_argument("--only", help="keep stacks that contain this text")
    p.add_argument("--skip", help="drop stacks whose innermost frame contains this text")
    p.add_argument("-n", type=int, default=25, help="rows per table")
    a = p.parse_args()
    own, anywhere, total = tally(read_stacks(a.profile, a.only, a.skip))
    if not total:
        raise SystemExit("no samples matched")
    print(f"{total} samples")
    for title, counter in (("self", own), ("inclusive", anywhere)):
        print(f"--- {title}")
        for frame, count in counter.most_common(a.n):
            print(f"{100 * count / total:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
