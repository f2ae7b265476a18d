"""Requests answered, by HTTP status and time taken: the serving application's own view (ASGI).

Why: vLLM counts what its engine finished and times it from when the engine got it; a canary that
answers 500s (a crash in the app, an injected fault, a timeout) or is slow before the engine must
show in its error rate and latency as clients see them. Two metrics (``ray_`` prefixed once Ray
exports them), with the serving labels:

- ``deepseek_serving_requests_total{code}``: requests answered, by status (``200``, ``408``, …);
- ``deepseek_serving_request_duration_seconds``: from the request's arrival at the replica to the
  end of its response (streams included), a histogram.

They count the OpenAI API's requests (``/v1/…``); probes (``/ready``, ``/health``) are not traffic.
An exception that escapes the application counts as a 500, as Starlette answers it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deepseek_serving.metrics import ServingLabels

__all__ = [
    "DURATION_BUCKETS_S",
    "REQUESTS_METRIC",
    "REQUEST_DURATION_METRIC",
    "Counter",
    "Histogram",
    "RequestCounter",
    "ray_request_metrics",
]

REQUESTS_METRIC: Final = "deepseek_serving_requests_total"
"""Ray exports it as ``ray_deepseek_serving_requests_total``."""
REQUEST_DURATION_METRIC: Final = "deepseek_serving_request_duration_seconds"
"""Ray exports it as ``ray_deepseek_serving_request_duration_seconds_bucket`` etc."""
DURATION_BUCKETS_S: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
"""Chat completions take from tens of milliseconds to minutes."""


class Counter(Protocol):
    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None: ...


class Histogram(Protocol):
    def observe(self, value: float, tags: dict[str, str] | None = None) -> None: ...


def ray_request_metrics(labels: ServingLabels) -> tuple[Counter, Histogram]:
    """The counter and the duration histogram as Ray metrics, with the serving labels."""
    from ray.util.metrics import Counter as RayCounter
    from ray.util.metrics import Histogram as RayHistogram

    counter: Any = RayCounter(
        REQUESTS_METRIC.removesuffix("_total"),
        description="OpenAI API requests answered, by HTTP status code.",
        tag_keys=(*labels.as_tags(), "code"),
    )
    counter.set_default_tags(labels.as_tags())
    duration: Any = RayHistogram(
        REQUEST_DURATION_METRIC,
        description="OpenAI API requests, from arrival at the replica to the end of the response.",
        boundaries=list(DURATION_BUCKETS_S),
        tag_keys=tuple(labels.as_tags()),
    )
    duration.set_default_tags(labels.as_tags())
    return counter, duration


class RequestCounter:
    """Pure ASGI middleware counting and timing every ``/v1/`` request once, by its answer's status."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        counter: Counter,
        duration: Histogram,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self._counter = counter
        self._duration = duration
        self._clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "").removeprefix(scope.get("root_path", ""))
        if scope["type"] != "http" or not path.startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        status, started = 500, self._clock()

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            self._counter.inc(1.0, tags={"code": str(status)})
            self._duration.observe(self._clock() - started)
