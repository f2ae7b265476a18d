"""The work queue: one pass per burst of adds, never two at once per key, changes before resyncs."""

from __future__ import annotations

import asyncio
import itertools

from deepseek_operator.workqueue import Key, Priority, WorkQueue

A, B, C = ("ns", "a"), ("ns", "b"), ("ns", "c")


async def _run_until_idle(queue: WorkQueue, seconds: float = 0.3) -> None:
    task = asyncio.create_task(queue.run())
    await asyncio.sleep(seconds)
    task.cancel()


async def test_adds_while_waiting_collapse_into_one_pass() -> None:
    passes: list[Key] = []

    async def handler(key: Key) -> None:
        passes.append(key)

    queue = WorkQueue(handler, workers=2, backoff_initial=0.01, backoff_max=0.1)
    for _ in range(5):
        queue.add(A)
    queue.add(B)
    await _run_until_idle(queue)
    assert sorted(passes) == [A, B]


async def test_a_key_is_never_reconciled_twice_at_once_and_an_add_during_a_pass_runs_after() -> None:
    running: set[Key] = set()
    passes = 0

    async def handler(key: Key) -> None:
        nonlocal passes
        assert key not in running
        running.add(key)
        passes += 1
        if passes == 1:
            queue.add(A)  # arrives while the first pass runs
        await asyncio.sleep(0.05)
        running.discard(key)

    queue = WorkQueue(handler, workers=4, backoff_initial=0.01, backoff_max=0.1)
    queue.add(A)
    await _run_until_idle(queue)
    assert passes == 2


async def test_changes_go_before_resyncs() -> None:
    order: list[Key] = []

    async def handler(key: Key) -> None:
        order.append(key)

    queue = WorkQueue(handler, workers=1, backoff_initial=0.01, backoff_max=0.1)
    queue.add(A, priority=Priority.RESYNC)
    queue.add(B, priority=Priority.RESYNC)
    queue.add(C)
    queue.add(B)  # raised from resync to change
    await _run_until_idle(queue)
    assert order == [C, B, A]


async def test_failures_back_off_and_success_resets() -> None:
    attempts: list[float] = []
    loop = asyncio.get_running_loop()

    async def handler(key: Key) -> None:
        attempts.append(loop.time())
        if len(attempts) < 3:
            raise RuntimeError("API server unavailable")

    queue = WorkQueue(handler, workers=1, backoff_initial=0.05, backoff_max=1.0)
    queue.add(A)
    await _run_until_idle(queue, 0.5)
    assert len(attempts) == 3
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.05
    assert gaps[1] >= 0.1
