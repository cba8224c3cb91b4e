"""The soak benchmark's report: one markdown summary (readable on a terminal, pasteable into
docs/benchmarks.md) and the raw figures as JSON."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from bench.soak_check import Integrity
from bench.soak_load import MIX, OPS, SIZE_CLASSES, Stats, Window, size_class

_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+), in (?P<func>\S+)')
_REPO = str(Path(__file__).resolve().parent.parent) + "/"
_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Timeout)\b)(?::\s?(.*))?$")


_SERVER_NAMES = {"metadata": "FerretDB", "objects": "versitygw"}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def log_exceptions(logs: list[Path]) -> tuple[int, Counter]:
    """Tracebacks in the gateway's logs, counted by their final line (exception: message) and
    the innermost frame in minimo's own code (where to look)."""
    tracebacks = 0
    last_lines: Counter = Counter()
    for path in logs:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        frame = ""
        for line in text.splitlines():
            if line.startswith("Traceback (most recent call last)"):
                tracebacks += 1
                frame = ""
            elif (f := _FRAME.match(line)) is not None:
                if "site-packages" not in f["path"] and f["path"].startswith(_REPO):
                    frame = f" at {f['path'][len(_REPO) :]}:{f['line']} in {f['func']}"
            elif _EXCEPTION.match(line):
                last_lines[line[:160] + frame] += 1
                frame = ""
    return tracebacks, last_lines


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}" if seconds >= 0.0095 else f"{seconds * 1000:.1f}"


def _picked(samples: list[dict[str, float]], points: int = 12) -> list[dict[str, float]]:
    """At most ``points`` + 1 samples, evenly spread, the last one always included."""
    step = max(1, len(samples) // points)
    picked = samples[::step]
    if picked and picked[-1] is not samples[-1]:
        picked.append(samples[-1])
    return picked


def _sample_table(samples: list[dict[str, float]]) -> list[str]:
    """The samples over time as a compact table: one row per measure, one column per time."""
    picked = _picked(samples)
    if not picked:
        return ["(no samples: the gateway's process is not known; see --pid)"]
    return [
        "| t (s) | " + " | ".join(f"{s['t']:.0f}" for s in picked) + " |",
        "|---|" + "---:|" * len(picked),
        "| RSS MiB | " + " | ".join(f"{s['rss_mib']:.0f}" for s in picked) + " |",
        "| descriptors | " + " | ".join(f"{s['fds']:.0f}" for s in picked) + " |",
    ]


def _first_last_max(samples: list[dict[str, float]], name: str) -> str:
    if not samples:
        return "- / - / -"
    values = [s[name] for s in samples]
    return f"{values[0]:.0f} / {values[-1]:.0f} / {max(values):.0f}"


def figures(stats: Stats, seconds: float) -> dict[str, Any]:
    per_op = {}
    for op in OPS:
        lat = stats.latencies[op]
        per_op[op] = {
            "requests": stats.ops[op],
            "ok": stats.ok[op],
            "per_second": stats.ops[op] / seconds if seconds else 0.0,
            "p50_ms": percentile(lat, 50) * 1000,
            "p99_ms": percentile(lat, 99) * 1000,
        }
    return per_op


def render(r: dict[str, Any], stats: Stats, integrity: Integrity | None) -> str:
    a = r["settings"]
    seconds = r["load_seconds"]
    lines = [
        f"### Soak: {a['target']}, {a['clients']} clients, {seconds / 60:.1f} min ({r['date']})",
        "",
        f"Mix: {', '.join(f'{op} {pct}%' for op, pct in MIX.items())}. Object sizes log-uniform "
        f"1 KiB-4 MiB (seed {a['seed']}). Request timeout {a['timeout']:g} s. "
        f"{r['stores']}.",
    ]
    if r["outages"]:
        for w in r["outages"]:
            lines.append(
                f"Injected outage: {w['what']} store killed (SIGKILL) at {w['killed_at']:.1f} s, "
                f"restarted at {w['restarted_at'] or 0:.1f} s; errors up to {w['grace']:g} s after "
                "the restart count as during the outage; first acknowledged write "
                + (
                    f"{w['first_write_after']:.1f} s after the restart."
                    if w["first_write_after"] is not None
                    else "after the restart: none."
                )
            )
    total = sum(stats.ops.values())
    lines += [
        "",
        "| operation | requests | ok | ops/s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for op, f in r["per_op"].items():
        lines.append(
            f"| {op} | {f['requests']} | {f['ok']} | {f['per_second']:.1f} "
            f"| {_ms(f['p50_ms'] / 1000)} | {_ms(f['p99_ms'] / 1000)} |"
        )
    lines.append(
        f"| **total** | {total} | {sum(stats.ok.values())} "
        f"| {total / seconds if seconds else 0:.1f} | | |"
    )
    lines += [
        "",
        f"Bytes: {stats.bytes_put / 2**20:.0f} MiB acknowledged PUT "
        f"({stats.bytes_put / 2**20 / seconds:.1f} MiB/s), {stats.bytes_got / 2**20:.0f} MiB GET "
        f"({stats.bytes_got / 2**20 / seconds:.1f} MiB/s). GET/HEAD 404s of keys a concurrent "
        f"DELETE removed (not errors): {stats.raced_404}.",
    ]
    lines += ["", "Errors (status, S3 code or client exception):", ""]
    if stats.errors:
        rows: dict[tuple[str, int, str], list[int]] = {}
        for (op, status, code, when), n in stats.errors.items():
            rows.setdefault((op, status, code), [0, 0])[0 if when == "outage" else 1] += n
        lines += [
            "| operation | status | code | during outage | outside |",
            "|---|---:|---|---:|---:|",
        ]
        for (op, status, code), (during, outside) in sorted(rows.items(), key=lambda x: x[0]):
            lines.append(f"| {op} | {status or 'no answer'} | {code} | {during} | {outside} |")
    else:
        lines.append("none")
    if stats.retries:
        retried = ", ".join(
            f"{s or 'no answer'}{'' if c == '-' else ' ' + c}: {n}"
            for (s, c), n in sorted(stats.retries.items())
        )
        lines += ["", f"Retries of failed PUTs (same key, once): {retried}."]

    sizes = stats.sizes
    n_sizes = sum(sizes.values()) or 1
    bytes_all = sum(stats.sizes_bytes.values()) or 1
    classes = [size_class(b) for b in SIZE_CLASSES]
    lines += [
        "",
        "Object sizes of the PUTs: "
        + ", ".join(
            f"{c} {100 * sizes[c] / n_sizes:.0f}% ({100 * stats.sizes_bytes[c] / bytes_all:.0f}% "
            "of bytes)"
            for c in classes
        )
        + ".",
    ]
    samples = r["samples"]
    res = r["resources"]
    lines += [
        "",
        f"Gateway every {a['sample_every']:g} s (first / last / max): "
        f"RSS {_first_last_max(samples, 'rss_mib')} MiB, "
        f"open descriptors {_first_last_max(samples, 'fds')}.",
        "",
        *_sample_table(samples),
        "",
        f"CPU during the load: gateway {res['gateway_cpu_share']:.0%}, "
        + "".join(
            f"{_SERVER_NAMES[name]} {share:.0%}, "
            for name, share in res["servers_cpu_share"].items()
        )
        + f"this client {res['client_cpu_share']:.0%} of the machine's {res['cores']} cores; "
        f"load average before/after {res['load_average_before_after'][0]:.1f} / "
        f"{res['load_average_before_after'][1]:.1f}.",
    ]
    if integrity is not None:
        lines += ["", "Integrity:", ""]
        lines += _integrity_lines(integrity)
        refused = {
            kind: (stats.refused_puts[kind], integrity.audit[("PutObject", part, "refused")])
            for kind, part in (("put_session", "session"), ("put_scratch", "scratch"))
        }
        lines.append(
            "- refusals (not judged): "
            + "; ".join(
                f"{k} answered 403 {a}, audited refused {b}" for k, (a, b) in refused.items()
            )
        )
    tb, exc = r["gateway_log"]["tracebacks"], r["gateway_log"]["exceptions"]
    if tb or exc:
        lines += ["", f"Gateway log: {tb} tracebacks; most frequent exception lines:", ""]
        lines += [f"- {n}x `{line}`" for line, n in exc[:5]]
    lines += ["", f"**Result: {'PASS' if not r['problems'] else 'FAIL'}**"]
    lines += [f"- {p}" for p in r["problems"]]
    return "\n".join(lines)


def _names(keys: list[str]) -> str:
    if not keys:
        return ""
    more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
    return " (" + ", ".join(keys[:3]) + more + ")"


def _integrity_lines(i: Integrity) -> list[str]:
    audit = i.audit

    def aud(action: str, part: str) -> str:
        allowed = audit[(action, part, "allowed")]
        others = {
            o: n for (a, p, o), n in audit.items() if a == action and p == part and o != "allowed"
        }
        extra = "".join(f", {n} {o}" for o, n in sorted(others.items()))
        return f"{allowed} allowed{extra}"

    rec = i.reconcile
    lines = [
        f"- acknowledged objects read back with the same SHA-256: {i.verified} of "
        f"{i.acked_objects}; lost {len(i.lost)}{_names(i.lost)}, different "
        f"{len(i.different)}{_names(i.different)}, unreadable {len(i.unreadable)}"
        f"{_names([f'{k}: {v}' for k, v in i.unreadable.items()])}; "
        f"GETs with other bytes during the load: {len(i.get_mismatches_during_load)}",
        f"- objects visible under the run's prefixes: {i.objects}, of which recorded "
        f"{i.recorded}; visible without a record: {len(i.unrecorded)}{_names(i.unrecorded)}; "
        f"visible that nobody wrote: {len(i.unknown)}",
        f"- acknowledged DELETEs: still visible {len(i.deleted_but_visible)}"
        f"{_names(i.deleted_but_visible)}, still recorded {len(i.deleted_but_recorded)}; "
        f"records without an object: {len(i.records_without_object)}",
        f"- PUTs answered with an error: visible anyway {i.failed_put_visible} (of which "
        f"recorded {i.failed_put_recorded}); failed DELETEs still visible: "
        f"{i.failed_delete_visible}",
        f"- audit vs acknowledged: session PUTs {aud('PutObject', 'session')} / "
        f"{i.acked_ops['put_session']} acknowledged; scratch PUTs {aud('PutObject', 'scratch')}"
        f" / {i.acked_ops['put_scratch']}; DELETEs {aud('DeleteObject', 'scratch')} / "
        f"{i.acked_ops['delete']}",
    ]
    if rec is not None:
        found = ", ".join(f"{k} {v}" for k, v in rec.get("found", {}).items() if v) or "nothing"
        lines.append(
            f"- `minimo reconcile`: {rec.get('objects_checked')} objects, "
            f"{rec.get('records_checked')} records, {rec.get('intents_checked')} intents; "
            f"found {found}"
        )
    return lines


def windows_json(windows: list[Window], t0: float) -> list[dict[str, Any]]:
    return [
        {
            "what": w.what,
            "killed_at": w.killed - t0,
            "restarted_at": (w.restarted - t0) if w.restarted is not None else None,
            "grace": w.grace,
            "first_write_after": w.first_write_after,
        }
        for w in windows
    ]
