"""The supervisor's decisions (gateway.supervisor) and the ``--workers`` option; the processes
themselves are tested end to end in tests/test_workers.py."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.supervisor import RestartPolicy, default_workers, describe_exit


def test_a_worker_that_served_a_while_comes_back_at_once() -> None:
    policy = RestartPolicy(start_grace=10, give_up_after=5)
    assert policy.delay_after(3600) == 0.0
    assert policy.delay_after(10) == 0.0


def test_deaths_at_start_back_off_then_give_up() -> None:
    policy = RestartPolicy(start_grace=10, give_up_after=5, first_backoff=0.5, max_backoff=3)
    assert [policy.delay_after(1) for _ in range(4)] == [0.5, 1.0, 2.0, 3.0]
    assert policy.delay_after(1) is None  # the fifth in a row


def test_a_worker_that_served_resets_the_count() -> None:
    policy = RestartPolicy(start_grace=10, give_up_after=3)
    assert policy.delay_after(1) is not None
    assert policy.delay_after(1) is not None
    assert policy.delay_after(60) == 0.0
    assert policy.delay_after(1) is not None  # counting starts again


def test_exits_are_described_by_code_or_signal() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(3)
    assert describe_exit(os.waitpid(pid, 0)[1]) == "exit code 3"
    pid = os.fork()
    if pid == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    assert describe_exit(os.waitpid(pid, 0)[1]) == "signal SIGKILL"


def test_workers_option(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """--workers (or MINIMO_WORKERS) reaches run(); the default is the CPUs this process may
    use; 0 is a usage error. --drain-timeout reaches the Config."""
    import gateway.server
    from gateway.cli import main

    seen: list[tuple[float, int]] = []
    monkeypatch.setattr(
        gateway.server,
        "run",
        lambda config, *, workers, **kw: seen.append((config.drain_timeout, workers)),
    )
    monkeypatch.delenv("MINIMO_WORKERS", raising=False)
    monkeypatch.delenv("MINIMO_DRAIN_TIMEOUT", raising=False)
    runner = CliRunner()
    base = ["serve", "--data-dir", str(tmp_path)]
    assert runner.invoke(main, base).exit_code == 0
    assert seen[-1] == (60.0, len(os.sched_getaffinity(0))) == (60.0, default_workers())
    assert runner.invoke(main, [*base, "--workers", "3", "--drain-timeout", "5s"]).exit_code == 0
    assert seen[-1] == (5.0, 3)
    assert runner.invoke(main, base, env={"MINIMO_WORKERS": "1"}).exit_code == 0
    assert seen[-1] == (60.0, 1)
    refused = runner.invoke(main, [*base, "--workers", "0"])
    assert refused.exit_code == 2 and "--workers" in refused.output
