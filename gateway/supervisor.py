"""``minimo serve --workers N`` (N > 1): one listening socket, N forked worker processes.

A single Python process uses one core. The supervisor (the process ``minimo serve`` started)
does what must happen once before the port opens (:func:`gateway.server.prepare`), binds the
listening socket, then forks N workers that each open their own stores and serve that socket
(:func:`gateway.server.serve` with ``listeners``). The kernel hands each new connection to one
of them. Workers share nothing but the socket and the stores, exactly like N gateways behind a
load balancer (docs/design.md, decision 2): per-process caches keep their documented bound and
each worker has its own instance id (gateway.instance re-draws it in a forked child), so crash
recovery treats a dead worker like a dead gateway.

The supervisor only watches: it restarts a worker that dies (backing off, then giving up, when
workers die right after they start), and on SIGTERM/SIGINT tells every worker to stop (each
stops accepting and finishes the requests in flight), waits ``drain grace`` seconds, then
SIGKILLs the stragglers. Workers die with it even on SIGKILL (``PR_SET_PDEATHSIG``).

This module imports only the standard library (and prometheus_client when it runs): it is
handed what it forks as functions, so it knows nothing of the stores or the app.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("minimo.supervisor")

#: a worker that dies sooner than this after its fork "died at start" (a misconfiguration or a
#: store that refuses new connections, not a crash under load)
START_GRACE = 10.0
#: after this many deaths at start in a row the supervisor gives up instead of looping
GIVE_UP_AFTER = 5
#: the first restart after a death at start waits this long, doubling up to MAX_BACKOFF
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 10.0
#: the supervisor waits this much longer than a worker's own drain before SIGKILLing it
DRAIN_SLACK = 5.0
#: the environment variable prometheus_client's multiprocess mode reads
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_PR_SET_PDEATHSIG = 1
_SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}


class GaveUp(Exception):
    """Workers keep dying at start; the message says so and how the last one ended."""


def default_workers() -> int:
    """The number of CPUs this process may run on (its affinity mask, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def describe_exit(status: int) -> str:
    """``exit code 1`` or ``signal SIGKILL``, from a ``waitpid`` status."""
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"signal {signal.Signals(-code).name}"
    except ValueError:
        return f"signal {-code}"


@dataclass
class RestartPolicy:
    """When to restart a dead worker: at once after a worker that served a while; with a
    doubling delay after deaths at start; never again after GIVE_UP_AFTER of those in a row."""

    start_grace: float = START_GRACE
    give_up_after: int = GIVE_UP_AFTER
    first_backoff: float = FIRST_BACKOFF
    max_backoff: float = MAX_BACKOFF
    deaths_at_start: int = 0

    def delay_after(self, lifetime: float) -> float | None:
        """Seconds to wait before restarting a worker that lived ``lifetime`` seconds; None:
        give up."""
        if lifetime >= self.start_grace:
            self.deaths_at_start = 0
            return 0.0
        self.deaths_at_start += 1
        if self.deaths_at_start >= self.give_up_after:
            return None
        return min(self.max_backoff, self.first_backoff * 2 ** (self.deaths_at_start - 1))


@dataclass
class _Worker:
    slot: int
    pid: int = 0
    started: float = 0.0
    #: monotonic time at which a dead slot is forked again (None: running)
    restart_at: float | None = None


@dataclass
class Supervisor:
    """Forks ``count`` workers running ``work`` (which serves until SIGTERM, then returns)."""

    count: int
    work: Callable[[], None]
    drain_grace: float
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    workers: list[_Worker] = field(default_factory=list)

    def run(self) -> None:
        """Until SIGTERM/SIGINT (then drain) or until workers keep dying at start (GaveUp)."""
        # Signals are taken synchronously (sigtimedwait), so none is lost between two checks;
        # a forked worker unblocks them first thing.
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            self.workers = [_Worker(slot) for slot in range(1, self.count + 1)]
            for worker in self.workers:
                self._fork(worker)
            failure = self._watch()
            self._drain()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        if failure is not None:
            raise GaveUp(failure)

    # -- watching --------------------------------------------------------------------------------
    def _watch(self) -> str | None:
        """Restart dead workers until asked to stop (None) or giving up (the reason)."""
        while True:
            pending = [w.restart_at for w in self.workers if w.restart_at is not None]
            timeout = 1.0 if not pending else max(0.0, min(pending) - time.monotonic())
            got = signal.sigtimedwait(_SIGNALS, min(timeout, 1.0))
            if got is not None and got.si_signo != signal.SIGCHLD:
                log.info("%s: stopping the workers", signal.Signals(got.si_signo).name)
                return None
            for worker, status in self._reap():
                lifetime = time.monotonic() - worker.started
                how = describe_exit(status)
                delay = self.policy.delay_after(lifetime)
                if delay is None:
                    return (
                        f"workers keep dying right after they start ({self.policy.give_up_after} "
                        f"in a row within {self.policy.start_grace:g} s of starting; the last, "
                        f"worker {worker.slot} (pid {worker.pid}), ended with {how}): stopping "
                        "instead of restarting them over and over; the log above says why"
                    )
                log.warning(
                    "worker %d (pid %d) ended with %s after %.1f s; restarting it%s",
                    worker.slot,
                    worker.pid,
                    how,
                    lifetime,
                    f" in {delay:g} s" if delay else "",
                )
                worker.restart_at = time.monotonic() + delay
            now = time.monotonic()
            for worker in self.workers:
                if worker.restart_at is not None and worker.restart_at <= now:
                    self._fork(worker)

    def _reap(self) -> list[tuple[_Worker, int]]:
        """The workers that ended since the last call, with their wait statuses."""
        ended = []
        by_pid = {w.pid: w for w in self.workers if w.restart_at is None and w.pid}
        while by_pid:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            worker = by_pid.pop(pid, None)
            if worker is None:
                continue
            _forget_metrics_of(pid)
            worker.restart_at = float("inf")  # dead; the caller decides when it comes back
            ended.append((worker, status))
        return ended

    def _fork(self, worker: _Worker) -> None:
        supervisor = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker
            _run_worker(worker.slot, supervisor, self.work)
        worker.pid, worker.started, worker.restart_at = pid, time.monotonic(), None
        log.info("worker %d started (pid %d)", worker.slot, pid)

    # -- stopping --------------------------------------------------------------------------------
    def _drain(self) -> None:
        """SIGTERM every live worker, wait for them up to the grace, SIGKILL the rest."""
        live = {w.pid: w for w in self.workers if w.restart_at is None}
        for pid in live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.drain_grace
        while live and time.monotonic() < deadline:
            for worker, status in self._reap():
                live.pop(worker.pid, None)
                log.info("worker %d (pid %d) stopped (%s)", worker.slot, worker.pid,
                         describe_exit(status))  # fmt: skip
            if live:
                signal.sigtimedwait(_SIGNALS, min(0.5, max(0.0, deadline - time.monotonic())))
        for pid, worker in live.items():
            log.warning(
                "worker %d (pid %d) did not stop within %g s: killing it",
                worker.slot,
                pid,
                self.drain_grace,
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            _forget_metrics_of(pid)


def _run_worker(slot: int, supervisor: int, work: Callable[[], None]) -> None:
    """The forked child: die with the supervisor, serve, exit (never return into the
    supervisor's code: ``os._exit`` skips its atexit handlers and ``finally`` blocks)."""
    code = 1
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        _die_with(supervisor)
        work()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        log.exception("worker %d failed", slot)
    finally:
        with contextlib.suppress(Exception):
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _die_with(supervisor: int) -> None:
    """SIGKILL this process when the supervisor dies, however it dies (even SIGKILL)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    # the supervisor may have died between the fork and the prctl: then nobody would kill us
    if os.getppid() != supervisor:
        os._exit(1)


# -- metrics across workers ----------------------------------------------------------------------
def share_metrics_directory(data_dir: Path) -> Path:
    """A fresh, empty directory for prometheus_client's multiprocess mode, named in the
    environment so that every worker forked afterwards writes its metrics there.

    prometheus_client picks its value class when it is first imported: the variable must be
    set before then, which is why the supervisor does this before importing anything that
    could define metrics.
    """
    if "prometheus_client" in sys.modules:
        log.warning(
            "prometheus_client was imported before %s was set: metrics defined at import "
            "will not be aggregated across workers",
            MULTIPROC_ENV,
        )
    path = data_dir / f"metrics-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)  # a PID reused after a crash: start empty
    path.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def _forget_metrics_of(pid: int) -> None:
    if not os.environ.get(MULTIPROC_ENV):
        return
    try:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
    except Exception as exc:  # metrics must never stop the supervisor
        log.warning("cannot mark worker pid %d dead for metrics: %s", pid, exc)
