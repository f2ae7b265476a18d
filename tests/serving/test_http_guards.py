"""ServingGuard and VersionHeaders in front of a stand-in ASGI app: API key, max_tokens cap,
deadline, body replay, the version headers on every response, test-only fault injection."""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from deepseek_serving.config import FaultInjection
from deepseek_serving.http_guards import (
    DEPLOYMENT_HEADER,
    FAULT_INJECTION_ERROR_TYPE,
    VERSION_HEADER,
    ServingGuard,
    VersionHeaders,
    excess_max_tokens,
    wrap_middleware_stack,
)

KEY = "sk-test"


class RecordingApp:
    """Downstream app: echoes the body it received; optionally slow, optionally streaming."""

    def __init__(self, *, delay_s: float = 0.0, stream_chunks: int = 0) -> None:
        self.delay_s = delay_s
        self.stream_chunks = stream_chunks
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        self.bodies.append(message.get("body", b""))
        headers = [(b"content-type", b"text/event-stream" if self.stream_chunks else b"application/json")]
        if self.stream_chunks:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            for index in range(self.stream_chunks):
                await send(
                    {"type": "http.response.body", "body": f"data: {index}\n\n".encode(), "more_body": True}
                )
                await asyncio.sleep(self.delay_s)
            await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})
            return
        await asyncio.sleep(self.delay_s)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.bodies[-1], "more_body": False})


def client(
    app: RecordingApp,
    *,
    api_key: str | None = KEY,
    timeout_s: float = 5.0,
    faults: FaultInjection | None = None,
    seed: int = 0,
) -> httpx.AsyncClient:
    """The app as server.py stacks it: VersionHeaders outside ServingGuard."""
    guard = ServingGuard(
        app,
        api_key=api_key,
        max_tokens=100,
        request_timeout_s=timeout_s,
        fault_injection=faults,
        rng=random.Random(seed),
    )
    return asgi_client(VersionHeaders(guard, deployment="chat", version="chat-v2"))


def asgi_client(app: ASGIApp) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def bearer(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({}, 401, id="missing"),
        pytest.param(bearer("wrong"), 401, id="wrong"),
        pytest.param({"Authorization": KEY}, 401, id="no-scheme"),
        pytest.param(bearer(), 200, id="right"),
    ],
)
async def test_v1_needs_the_api_key(headers: dict[str, str], status: int) -> None:
    async with client(RecordingApp()) as http:
        response = await http.get("/v1/models", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.json()["error"] == {
            "message": "Invalid or missing API key.",
            "type": "invalid_request_error",
            "param": None,
            "code": 401,
        }


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics"])
async def test_probes_stay_open(path: str) -> None:
    async with client(RecordingApp()) as http:
        assert (await http.get(path)).status_code == 200


async def test_no_key_configured_means_open() -> None:
    async with client(RecordingApp(), api_key=None) as http:
        assert (await http.get("/v1/models")).status_code == 200


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
async def test_max_tokens_above_the_limit_is_refused(path: str, field: str) -> None:
    app = RecordingApp()
    async with client(app) as http:
        response = await http.post(path, json={field: 101}, headers=bearer())
    assert response.status_code == 400
    assert response.json()["error"]["param"] == field
    assert "limit of 100" in response.json()["error"]["message"]
    assert app.bodies == []


async def test_accepted_bodies_reach_the_app_unchanged() -> None:
    app = RecordingApp()
    payload = {"model": "m", "prompt": "hi", "max_tokens": 100}
    async with client(app) as http:
        response = await http.post("/v1/completions", json=payload, headers=bearer())
    assert response.status_code == 200
    assert json.loads(app.bodies[0]) == payload


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param({"max_tokens": 101}, ("max_tokens", 101), id="over"),
        pytest.param({"max_tokens": 100}, None, id="at-limit"),
        pytest.param({"max_completion_tokens": 500}, ("max_completion_tokens", 500), id="chat-field"),
        pytest.param({"max_tokens": "lots"}, None, id="not-an-int-left-to-vllm"),
        pytest.param({"max_tokens": True}, None, id="bool"),
        pytest.param(["max_tokens"], None, id="not-an-object"),
    ],
)
def test_excess_max_tokens(payload: Any, expected: tuple[str, int] | None) -> None:
    assert excess_max_tokens(payload, 100) == expected


async def test_deadline_before_the_response_gives_408() -> None:
    async with client(RecordingApp(delay_s=1.0), timeout_s=0.1) as http:
        response = await http.post("/v1/completions", json={}, headers=bearer())
    assert response.status_code == 408
    assert response.json()["error"]["type"] == "timeout_error"


async def test_deadline_mid_stream_ends_with_an_error_event() -> None:
    async with client(RecordingApp(delay_s=0.2, stream_chunks=10), timeout_s=0.3) as http:
        response = await http.post("/v1/completions", json={"stream": True}, headers=bearer())
    assert response.status_code == 200
    events = [line for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[0] == "data: 0"
    assert json.loads(events[-1].removeprefix("data: "))["error"]["code"] == 408
    assert "data: [DONE]" not in events


# --- which version answered ------------------------------------------------------------------------


def assert_version_headers(response: httpx.Response) -> None:
    assert response.headers[DEPLOYMENT_HEADER] == "chat"
    assert response.headers[VERSION_HEADER] == "chat-v2"


@pytest.mark.parametrize(
    ("app", "method", "path", "kwargs", "status"),
    [
        pytest.param(RecordingApp(), "GET", "/v1/models", {"headers": bearer()}, 200, id="success"),
        pytest.param(RecordingApp(), "GET", "/health", {}, 200, id="probe"),
        pytest.param(RecordingApp(), "GET", "/v1/models", {}, 401, id="guard-401"),
        pytest.param(
            RecordingApp(),
            "POST",
            "/v1/completions",
            {"json": {"max_tokens": 101}, "headers": bearer()},
            400,
            id="guard-400",
        ),
        pytest.param(
            RecordingApp(stream_chunks=3),
            "POST",
            "/v1/completions",
            {"json": {}, "headers": bearer()},
            200,
            id="streaming",
        ),
    ],
)
async def test_every_response_names_the_version(
    app: RecordingApp, method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    async with client(app) as http:
        response = await http.request(method, path, **kwargs)
    assert response.status_code == status
    assert_version_headers(response)


async def test_the_deadline_408_names_the_version() -> None:
    async with client(RecordingApp(delay_s=1.0), timeout_s=0.1) as http:
        response = await http.post("/v1/completions", json={}, headers=bearer())
    assert response.status_code == 408
    assert_version_headers(response)


async def test_headers_are_sent_once_and_keep_the_apps_own() -> None:
    async with client(RecordingApp()) as http:
        response = await http.get("/v1/models", headers=bearer())
    assert response.headers["content-type"] == "application/json"
    assert response.headers.get_list(VERSION_HEADER) == ["chat-v2"]


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/v1/models")
    async def models() -> dict[str, str]:
        return {"object": "list"}

    @app.get("/v1/crash")
    async def crash() -> None:
        raise RuntimeError("boom")

    return app


class Overloaded(Exception):
    """Stands for Ray Serve's BackPressureError, whose handler Serve adds after the app is built."""


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        pytest.param("/v1/models", bearer(), 200, id="success"),
        pytest.param("/v1/models", {}, 401, id="guard"),
        pytest.param("/v1/crash", bearer(), 500, id="unhandled-exception"),
        pytest.param("/v1/busy", bearer(), 503, id="handler-added-later"),
        pytest.param("/nowhere", bearer(), 404, id="no-route"),
    ],
)
async def test_wrapped_stack_names_the_version_even_on_unhandled_errors(
    path: str, headers: dict[str, str], status: int
) -> None:
    """server.py's layout: the guard added as middleware, the headers around the whole stack
    (outside Starlette's ServerErrorMiddleware), handlers added afterwards still in force."""
    app = fastapi_app()

    @app.get("/v1/busy")
    async def busy() -> None:
        raise Overloaded

    app.add_middleware(ServingGuard, api_key=KEY, max_tokens=100, request_timeout_s=5.0)
    wrap_middleware_stack(app, lambda inner: VersionHeaders(inner, deployment="chat", version="chat-v2"))
    app.add_exception_handler(Overloaded, lambda request, error: JSONResponse({}, status_code=503))
    async with asgi_client(app) as http:
        response = await http.get(path, headers=headers)
    assert response.status_code == status
    assert_version_headers(response)


# --- fault injection (test only) -------------------------------------------------------------------

GENERATION = ("/v1/completions", "/v1/chat/completions")


@pytest.mark.parametrize("error_percent", [0.0, 7.5, 30.0, 100.0])
async def test_fault_injection_fails_the_configured_share(error_percent: float) -> None:
    """Over n requests the failures are Binomial(n, p): the share is within 4 standard deviations
    of p (a chance of 6e-5 to fail for a fair draw; the seeded draw makes it deterministic)."""
    n = 1200
    app = RecordingApp()
    statuses: list[int] = []
    async with client(app, faults=FaultInjection(error_percent=error_percent), seed=1234) as http:
        for index in range(n):
            response = await http.post(GENERATION[index % 2], json={"prompt": "hi"}, headers=bearer())
            statuses.append(response.status_code)
            if response.status_code == 500:
                assert response.json()["error"] == {
                    "message": "Injected fault: this test version fails a share of its generation requests.",
                    "type": FAULT_INJECTION_ERROR_TYPE,
                    "param": None,
                    "code": 500,
                }
                assert_version_headers(response)
    assert set(statuses) <= {200, 500}
    p = error_percent / 100
    tolerance = 4 * math.sqrt(p * (1 - p) / n)
    share = statuses.count(500) / n
    assert abs(share - p) <= tolerance, (share, p, tolerance)
    assert len(app.bodies) == statuses.count(200)  # failed requests never reached the engine


async def test_fault_injection_spares_everything_but_valid_generation_requests() -> None:
    app = RecordingApp()
    async with client(app, faults=FaultInjection(error_percent=100.0)) as http:
        assert (await http.get("/v1/models", headers=bearer())).status_code == 200
        assert (await http.get("/health")).status_code == 200
        assert (await http.post("/v1/embeddings", json={}, headers=bearer())).status_code == 200
        assert (await http.post("/v1/completions", json={})).status_code == 401
        too_long = await http.post("/v1/completions", json={"max_tokens": 101}, headers=bearer())
        assert too_long.status_code == 400
        assert (await http.post("/v1/completions", json={}, headers=bearer())).status_code == 500


@pytest.mark.parametrize("path", GENERATION)
async def test_fault_injection_delays_generation_requests(path: str) -> None:
    async with client(RecordingApp(), faults=FaultInjection(delay_s=0.3)) as http:
        started = time.monotonic()
        assert (await http.get("/v1/models", headers=bearer())).status_code == 200
        undelayed_s = time.monotonic() - started
        started = time.monotonic()
        response = await http.post(path, json={"prompt": "hi"}, headers=bearer())
        delayed_s = time.monotonic() - started
    assert response.status_code == 200
    assert delayed_s >= 0.3
    assert undelayed_s < 0.3


async def test_fault_injection_delay_counts_against_the_deadline() -> None:
    app = RecordingApp()
    async with client(app, timeout_s=0.1, faults=FaultInjection(delay_s=1.0)) as http:
        response = await http.post("/v1/completions", json={}, headers=bearer())
    assert response.status_code == 408
    assert app.bodies == []
