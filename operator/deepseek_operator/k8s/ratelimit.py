"""A token bucket for the operator's API client: `qps` sustained, `burst` at once.

client-go limits every controller's client (5 qps, burst 10 by default); kopf limits nothing. An
operator that reconciles thousands of resources after a restart must not flood the API server,
so every request of ours waits for a token first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """Tokens refill continuously at `qps` per second up to `burst`; each request takes one."""

    def __init__(self, qps: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError(f"qps must be > 0 and burst >= 1, got qps={qps}, burst={burst}")
        self.qps, self.burst = qps, burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.qps)
        self._updated = now

    async def acquire(self) -> None:
        """Wait until a token is free, then take it (callers are served in arrival order)."""
        async with self._lock:
            self._refill()
            if self._tokens < 1:
                await asyncio.sleep((1 - self._tokens) / self.qps)
                self._refill()
            self._tokens -= 1
