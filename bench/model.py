"""What a benchmark run is asked to do and what it found, shared by the runner and the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

MIB = 1 << 20
BUCKET = "bench"
#: every key the benchmark writes starts with this (for minimo: the session's scope)
KEY_PREFIX = "run/"
PHASES = ("large", "small", "rss")
PY_SPY_SUFFIX = {"flamegraph": "svg", "raw": "txt", "speedscope": "json"}


@dataclass(slots=True)
class Settings:
    large_bytes: int
    rss_bytes: int
    small_count: int
    small_seconds: float
    small_size: int
    concurrency: int
    repeats: int
    targets: list[str]
    tmp_dir: Path
    out: Path
    phases: list[str] = field(default_factory=lambda: list(PHASES))
    #: write a py-spy flame graph of each minimo process here
    py_spy: Path | None = None
    py_spy_format: str = "flamegraph"
    py_spy_args: list[str] = field(default_factory=list)
    #: run versitygw with keep-alive and without request logging (see bench/targets.py)
    tune_versitygw: bool = True
    #: how writes reach minimo: "session" or "scratch" (see bench/targets.py)
    write_mode: str = "session"


@dataclass(slots=True)
class TargetResults:
    put_mibs: list[float] = field(default_factory=list)
    get_mibs: list[float] = field(default_factory=list)
    small_put_ops: list[float] = field(default_factory=list)
    small_get_ops: list[float] = field(default_factory=list)
    # CPU seconds per GiB moved (large) and CPU microseconds per request (small), server side;
    # the client's own cost per GiB shows it is not what limits a measurement.
    put_cpu_s_gib: list[float] = field(default_factory=list)
    get_cpu_s_gib: list[float] = field(default_factory=list)
    client_put_cpu_s_gib: list[float] = field(default_factory=list)
    client_get_cpu_s_gib: list[float] = field(default_factory=list)
    small_put_cpu_us: list[float] = field(default_factory=list)
    small_get_cpu_us: list[float] = field(default_factory=list)
    rss_before_mib: float | None = None
    rss_peak_mib: float | None = None
    rss_hwm_mib: float | None = None
    rss_hwm_reset: bool = False
    rss_upload_mibs: float | None = None
    errors: list[str] = field(default_factory=list)
