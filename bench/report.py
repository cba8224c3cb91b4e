"""The benchmark report: markdown tables of absolute figures, CPU cost and target ratios."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from datetime import datetime
from pathlib import Path

from bench.model import MIB, Settings, TargetResults
from bench.targets import VERSITYGW_TUNING

REPO = Path(__file__).resolve().parent.parent
WRITE_MODE_TEXT = {
    "session": "through an open metadata session (its session key signs every request)",
    "scratch": "into a scratch area (require_session = false, the admin's key)",
}


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def fmt(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def runs(values: list[float]) -> str:
    return ", ".join(f"{v:,.0f}" for v in values) or "n/a"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def machine_lines(s: Settings) -> list[str]:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    import aiohttp

    return [
        f"- machine: {os.cpu_count()} cores ({cpu}), {mem_kib / MIB:.1f} GiB RAM, "
        f"Linux {platform.release()}; shared by the client and every server",
        f"- software: Python {platform.python_version()}, aiohttp {aiohttp.__version__}, "
        f"minimo commit {commit or 'unknown'}",
        f"- data directories: {s.tmp_dir} ({filesystem_type(s.tmp_dir)})",
        f"- minimo writes: {WRITE_MODE_TEXT[s.write_mode]}",
        "- versitygw settings: "
        + (
            " ".join(f"{k}={v}" for k, v in VERSITYGW_TUNING.items())
            if s.tune_versitygw
            else "stock (no keep-alive, request logging on)"
        ),
        f"- large object: {s.large_bytes // MIB} MiB, one stream, median of {s.repeats} run(s)",
        f"- small objects: {s.small_size // 1024} KiB, up to {s.small_count} ops or "
        f"{s.small_seconds:g} s per run, concurrency {s.concurrency}, median of {s.repeats} run(s)",
        f"- memory: server RSS while one {s.rss_bytes // MIB} MiB object is PUT",
    ]


def absolute_table(results: dict[str, TargetResults]) -> list[str]:
    lines = [
        "| target | large PUT MiB/s | large GET MiB/s | 4 KiB PUT ops/s | 4 KiB GET ops/s "
        "| RSS before MiB | peak RSS MiB | VmHWM MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {fmt(median(r.put_mibs))} | {fmt(median(r.get_mibs))} "
            f"| {fmt(median(r.small_put_ops))} | {fmt(median(r.small_get_ops))} "
            f"| {fmt(r.rss_before_mib, 1)} | {fmt(r.rss_peak_mib, 1)} | {fmt(r.rss_hwm_mib, 1)} |"
        )
    return lines


def cpu_table(results: dict[str, TargetResults]) -> list[str]:
    lines = [
        "| target | server CPU s/GiB PUT | server CPU s/GiB GET | client CPU s/GiB PUT "
        "| client CPU s/GiB GET | server CPU µs per 4 KiB PUT | per 4 KiB GET |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {fmt(median(r.put_cpu_s_gib), 2)} | {fmt(median(r.get_cpu_s_gib), 2)} "
            f"| {fmt(median(r.client_put_cpu_s_gib), 2)} "
            f"| {fmt(median(r.client_get_cpu_s_gib), 2)} "
            f"| {fmt(median(r.small_put_cpu_us))} | {fmt(median(r.small_get_cpu_us))} |"
        )
    return lines


def runs_table(results: dict[str, TargetResults]) -> list[str]:
    lines = [
        "| target | large PUT runs | large GET runs | 4 KiB PUT runs | 4 KiB GET runs "
        "| big upload MiB/s |",
        "|---|---|---|---|---|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {runs(r.put_mibs)} | {runs(r.get_mibs)} | {runs(r.small_put_ops)} "
            f"| {runs(r.small_get_ops)} | {fmt(r.rss_upload_mibs)} |"
        )
    return lines


def peak_rss(r: TargetResults) -> float | None:
    """The higher of the sampled peak and, when it covers only the upload, the kernel's VmHWM."""
    if r.rss_peak_mib is None:
        return None
    if r.rss_hwm_reset and r.rss_hwm_mib is not None:
        return max(r.rss_peak_mib, r.rss_hwm_mib)
    return r.rss_peak_mib


def ratio_rows(
    results: dict[str, TargetResults], s: Settings
) -> list[tuple[str, float | None, str, bool | None]]:
    """(what, measured, target text, met) for every target."""
    ref = results.get("versitygw", TargetResults())
    rows: list[tuple[str, float | None, str, bool | None]] = []
    goals = {"minimo-local": 0.8, "minimo-s3": 0.7}
    both = ("minimo-local", "minimo-s3")
    # (label, attribute, goals, floor): a rate must reach at least that share of versitygw's
    # (floor); server CPU per operation may be at most that multiple of versitygw's (a CPU
    # figure is less noisy than a rate on a machine the client shares)
    measures = (
        ("large PUT", "put_mibs", goals, True),
        ("large GET", "get_mibs", goals, True),
        ("4 KiB PUT", "small_put_ops", dict.fromkeys(both, 0.6), True),
        ("4 KiB GET", "small_get_ops", dict.fromkeys(both, 0.8), True),
        ("CPU per 4 KiB PUT", "small_put_cpu_us", dict.fromkeys(both, 2.0), False),
        ("CPU per 4 KiB GET", "small_get_cpu_us", dict.fromkeys(both, 1.5), False),
    )
    for label, attr, wanted, floor in measures:
        for name, goal in wanted.items():
            if name not in results:
                continue
            value = ratio(median(getattr(results[name], attr)), median(getattr(ref, attr)))
            met = None if value is None else value >= goal if floor else value <= goal
            bound = f"{'≥' if floor else '≤'} {goal}"
            rows.append((f"{name} / versitygw, {label}", value, bound, met))
    # the gateway in front of a distributed store, against that store direct (context, no goal)
    pair = results.get("minimo-seaweedfs"), results.get("seaweedfs")
    if pair[0] is not None and pair[1] is not None:
        for label, attr, _wanted, _floor in measures:
            value = ratio(median(getattr(pair[0], attr)), median(getattr(pair[1], attr)))
            rows.append((f"minimo-seaweedfs / seaweedfs, {label}", value, "—", None))
    for name in ("minimo-local", "minimo-s3", "minimo-seaweedfs"):
        if name in results:
            peak = peak_rss(results[name])
            met = None if peak is None else peak < 150
            what = f"{name} peak RSS during {s.rss_bytes // MIB} MiB PUT (MiB)"
            rows.append((what, peak, "< 150", met))
    return rows


def ratio_table(results: dict[str, TargetResults], s: Settings) -> list[str]:
    lines = ["| measure | value | target | met |", "|---|---:|---|---|"]
    for what, value, goal, met in ratio_rows(results, s):
        shown = fmt(value, 1) if "RSS" in what else fmt(value, 2)
        verdict = {True: "yes", False: "**no**", None: "n/a"}[met]
        lines.append(f"| {what} | {shown} | {goal} | {verdict} |")
    if "bare" in results:
        bare = results["bare"]
        for name in ("minimo-local", "minimo-s3"):
            if name not in results:
                continue
            r = results[name]
            parts = [
                f"PUT {fmt(ratio(median(r.put_mibs), median(bare.put_mibs)), 2)}",
                f"GET {fmt(ratio(median(r.get_mibs), median(bare.get_mibs)), 2)}",
                f"4 KiB PUT {fmt(ratio(median(r.small_put_ops), median(bare.small_put_ops)), 2)}",
                f"4 KiB GET {fmt(ratio(median(r.small_get_ops), median(bare.small_get_ops)), 2)}",
            ]
            lines.append(f"| {name} / bare (context) | {'; '.join(parts)} | — | — |")
    return lines


def render(
    results: dict[str, TargetResults], s: Settings, started: datetime, took: float, load: str
) -> str:
    lines = [
        f"### Run of {started:%Y-%m-%d %H:%M} UTC ({took / 60:.1f} min)",
        "",
        *machine_lines(s),
        f"- load average (1 min) before / after: {load} (the run itself adds about 2; a value "
        "well above 0 before means other work shared the cores)",
        "",
        "#### Ratios against the targets",
        "",
        *ratio_table(results, s),
        "",
        "#### Absolute figures (medians)",
        "",
        *absolute_table(results),
        "",
        "#### CPU cost (medians; for minimo-s3 the gateway only, not its upstream)",
        "",
        *cpu_table(results),
        "",
        "#### Every run",
        "",
        *runs_table(results),
    ]
    hwm_note = [n for n, r in results.items() if r.rss_hwm_mib is not None and not r.rss_hwm_reset]
    if hwm_note:
        lines += [
            "",
            f"VmHWM could not be reset for {', '.join(hwm_note)}: it covers the "
            "whole process life there, start-up included.",
        ]
    failures = [(n, e) for n, r in results.items() for e in r.errors]
    if failures:
        lines += ["", "#### Failures", ""]
        lines += [f"- {name}: {error}" for name, error in failures]
    return "\n".join(lines) + "\n"


def filesystem_type(path: Path) -> str:
    """The file system holding ``path``, from the longest matching mount point."""
    best, kind = "", "unknown"
    resolved = str(path.resolve())
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, fstype, *_ = line.split()
        inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best):
            best, kind = mount, fstype
    return kind
