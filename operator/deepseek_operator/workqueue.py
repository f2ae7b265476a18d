"""A work queue of deployment keys, as client-go's: deduplicated, one worker per key, backoff.

Watch events, the periodic resync and RayService changes all `add` the deployment's key; however
many arrive while it waits, it is reconciled once, and never by two workers at once (an add while
it is being reconciled schedules one more pass after). A failed pass is retried after a delay
that doubles per consecutive failure; a pass may ask to be requeued after a delay (waiting on
KubeRay) without counting as a failure.

Two priorities: a change someone made (a watch event) goes before the periodic resync, so a
thousand resyncing deployments never delay the one a user just edited.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from enum import IntEnum

from deepseek_operator.metrics import QUEUE_DEPTH, QUEUE_WAIT_SECONDS

__all__ = ["Key", "Priority", "WorkQueue"]

Key = tuple[str, str]
"""(namespace, name) of a DeepSeekDeployment."""

logger = logging.getLogger(__name__)


class Priority(IntEnum):
    """Lower goes first."""

    CHANGE = 0
    """Something changed: a watch event, a retry, a requested requeue."""
    RESYNC = 1
    """The periodic pass that checks nothing drifted."""


class WorkQueue:
    def __init__(
        self,
        handler: Callable[[Key], Awaitable[float | None]],
        *,
        workers: int,
        backoff_initial: float,
        backoff_max: float,
    ) -> None:
        """`handler(key)` reconciles one key and returns seconds until it wants another pass, or None."""
        self._handler = handler
        self._workers = workers
        self._backoff_initial, self._backoff_max = backoff_initial, backoff_max
        self._queue: asyncio.PriorityQueue[tuple[Priority, int, Key]] = asyncio.PriorityQueue()
        self._order = itertools.count()
        self._waiting: dict[Key, Priority] = {}
        self._active: set[Key] = set()
        self._again: set[Key] = set()
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._failures: dict[Key, int] = {}
        self._queued_at: dict[Key, float] = {}

    def add(self, key: Key, *, after: float = 0.0, priority: Priority = Priority.CHANGE) -> None:
        """Schedule a pass of `key` now or `after` seconds (an earlier schedule wins)."""
        if after > 0:
            loop = asyncio.get_running_loop()
            timer = self._timers.get(key)
            due = loop.time() + after
            if timer is not None and timer.when() <= due:
                return
            if timer is not None:
                timer.cancel()
            self._timers[key] = loop.call_at(due, self._fire, key)
            return
        if key in self._active:
            self._again.add(key)
            return
        waiting = self._waiting.get(key)
        if waiting is not None and waiting <= priority:
            return
        # New, or raised from resync to change: the older, lower entry is skipped when popped.
        self._waiting[key] = priority
        self._queued_at.setdefault(key, asyncio.get_running_loop().time())
        self._queue.put_nowait((priority, next(self._order), key))
        QUEUE_DEPTH.set(len(self._waiting))

    @property
    def depth(self) -> int:
        """Keys waiting for a worker."""
        return len(self._waiting)

    def forget(self, key: Key) -> None:
        """Drop scheduled retries of a deleted deployment."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._failures.pop(key, None)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def run(self) -> None:
        """Process keys until cancelled."""
        await asyncio.gather(*(self._work() for _ in range(self._workers)))

    async def _next(self) -> Key:
        while True:
            priority, _, key = await self._queue.get()
            self._queue.task_done()
            if self._waiting.get(key) == priority:
                del self._waiting[key]
                QUEUE_DEPTH.set(len(self._waiting))
                QUEUE_WAIT_SECONDS.observe(asyncio.get_running_loop().time() - self._queued_at.pop(key))
                return key

    async def _work(self) -> None:
        while True:
            key = await self._next()
            self._active.add(key)
            try:
                requeue = await self._handler(key)
            except asyncio.CancelledError:
                raise
            except Exception:
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                delay = min(self._backoff_max, self._backoff_initial * 2 ** (failures - 1))
                logger.exception(
                    "reconcile of %s/%s failed (%d in a row); retrying in %.1fs", *key, failures, delay
                )
                requeue = delay
            else:
                self._failures.pop(key, None)
            finally:
                self._active.discard(key)
            if key in self._again:
                self._again.discard(key)
                self.add(key)
            elif requeue is not None:
                self.add(key, after=requeue)
