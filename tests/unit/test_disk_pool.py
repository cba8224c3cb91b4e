"""The local store's disk pool (gateway.backends.local.pool.DiskPool): answers and errors reach
the waiting request, no more threads than asked for start, the pool works again after close(),
and an idle thread keeps nothing of the job it ran (a large PUT's buffers held by each of 32
idle threads once raised the gateway's memory by 140 MiB, seen by bench/run.py)."""

from __future__ import annotations

import asyncio
import errno
import gc
import threading
import weakref

import pytest

from gateway.backends.local.pool import DiskPool
from gateway.protocol.errors import S3Error, S3ErrorCode


class _Buffer:
    """Stands in for a PUT's body buffers: something a weak reference can watch."""


def _fail(err: int) -> None:
    raise OSError(err, "synthetic failure", "/data/x")


def _pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("minimo-local_")]


def test_results_and_errors_reach_the_caller() -> None:
    async def run() -> None:
        pool = DiskPool(4)
        try:
            assert await pool.run(pow, 2, 10) == 1024
            with pytest.raises(OSError) as raised:
                await pool.run(_fail, errno.EIO)
            assert raised.value.errno == errno.EIO
            # a full disk is the S3 error the client gets: 507 InsufficientStorage
            with pytest.raises(S3Error) as full:
                await pool.run(_fail, errno.ENOSPC)
            assert full.value.code is S3ErrorCode.InsufficientStorage
        finally:
            await pool.close()

    asyncio.run(run())


def test_threads_are_capped_and_start_again_after_close() -> None:
    async def run() -> None:
        pool = DiskPool(3)
        gate = threading.Event()
        try:
            waiting = [pool.submit(gate.wait, 10) for _ in range(10)]
            await asyncio.sleep(0.05)
            assert [t.name for t in _pool_threads()] == [f"minimo-local_{n}" for n in range(3)]
            gate.set()
            assert all(await asyncio.gather(*waiting))
        finally:
            gate.set()
            await pool.close()
        assert _pool_threads() == []
        # a worker may count itself idle just after its last answer, while close() runs: a job
        # counted on it would never run, so the pool is used and closed again many times
        for _ in range(50):
            try:
                assert await asyncio.wait_for(pool.run(pow, 3, 2), 5) == 9
            finally:
                await pool.close()

    asyncio.run(run())


def test_a_cancelled_waiter_leaves_the_pool_working() -> None:
    async def run() -> None:
        pool = DiskPool(1)
        gate = threading.Event()
        try:
            abandoned = pool.submit(gate.wait, 10)
            abandoned.cancel()
            gate.set()
            assert await pool.run(pow, 2, 3) == 8
        finally:
            await pool.close()

    asyncio.run(run())


def test_an_idle_thread_keeps_no_reference_to_its_last_job() -> None:
    async def run() -> None:
        pool = DiskPool(8)
        gate = threading.Event()
        try:
            # every thread runs one job at once, so each of them has a last job to forget
            buffers = [[_Buffer()] for _ in range(8)]
            watched = [weakref.ref(held[0]) for held in buffers]
            jobs = [pool.submit(_both, gate, held) for held in buffers]
            await asyncio.sleep(0.05)
            gate.set()
            assert await asyncio.gather(*jobs) == [1] * 8
            del jobs, buffers
            for _ in range(100):  # the threads go back to waiting a moment after answering
                gc.collect()
                if all(ref() is None for ref in watched):
                    break
                await asyncio.sleep(0.01)
            kept = sum(ref() is not None for ref in watched)
            assert kept == 0, f"{kept} idle pool thread(s) still hold their last job's arguments"
        finally:
            await pool.close()

    asyncio.run(run())


def _both(gate: threading.Event, buffers: list[_Buffer]) -> int:
    gate.wait(10)
    return len(buffers)
