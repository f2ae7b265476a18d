"""The request counter behind `errorRate`: every /v1/ request once, by the status it was answered."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from deepseek_serving.request_metrics import RequestCounter


class Recorder:
    def __init__(self) -> None:
        self.counts: dict[str, float] = {}
        self.durations: list[float] = []

    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        code = (tags or {})["code"]
        self.counts[code] = self.counts.get(code, 0.0) + value

    def observe(self, value: float, tags: dict[str, str] | None = None) -> None:
        self.durations.append(value)


def _app() -> Starlette:
    async def ok(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def refused(request: Request) -> JSONResponse:
        return JSONResponse({"error": "no"}, status_code=400)

    async def broken(request: Request) -> JSONResponse:
        raise RuntimeError("boom")

    async def probe(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ready")

    return Starlette(
        routes=[
            Route("/v1/ok", ok),
            Route("/v1/refused", refused),
            Route("/v1/broken", broken),
            Route("/ready", probe),
        ]
    )


@pytest.mark.asyncio
async def test_requests_are_counted_by_status_and_probes_are_not() -> None:
    recorder = Recorder()
    ticks = iter(range(100))
    app = RequestCounter(_app(), counter=recorder, duration=recorder, clock=lambda: float(next(ticks)))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for path in ("/v1/ok", "/v1/ok", "/v1/refused", "/v1/broken", "/ready", "/v1/missing"):
            await client.get(path)
    assert recorder.counts == {"200": 2.0, "400": 1.0, "500": 1.0, "404": 1.0}
    assert recorder.durations == [1.0] * 5  # one clock tick per request
