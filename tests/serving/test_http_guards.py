"""ServingGuard in front of a stand-in ASGI app: API key, max_tokens cap, deadline, body replay."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from deepseek_serving.http_guards import ServingGuard, excess_max_tokens

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


def client(app: RecordingApp, *, api_key: str | None = KEY, timeout_s: float = 5.0) -> httpx.AsyncClient:
    guard = ServingGuard(app, api_key=api_key, max_tokens=100, request_timeout_s=timeout_s)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=guard), base_url="http://test")


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
