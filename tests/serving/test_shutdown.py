"""Shutting a deployment down under load loses no accepted request (Ray Serve's graceful drain)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serving.conftest import API_KEY, MAX_TOKENS_LIMIT, MODEL_NAME, serving_args

pytestmark = pytest.mark.serving

IN_FLIGHT = 8
TOKENS = MAX_TOKENS_LIMIT


async def _stream(http: httpx.AsyncClient, index: int, first_token: asyncio.Event) -> tuple[int, bool]:
    """Stream one completion; return (completion tokens, saw [DONE])."""
    body = {
        "model": MODEL_NAME,
        "prompt": f"def drained_{index}(",
        "max_tokens": TOKENS,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    completion_tokens, done = 0, False
    async with http.stream("POST", "/v1/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            first_token.set()
            if line == "data: [DONE]":
                done = True
            elif usage := json.loads(line.removeprefix("data: ")).get("usage"):
                completion_tokens = usage["completion_tokens"]
    return completion_tokens, done


async def test_deleting_the_app_lets_in_flight_requests_finish(served: Any, tiny_model_dir: Path) -> None:
    from ray import serve

    from deepseek_serving.app import build_app

    args = serving_args(tiny_model_dir, version_name="drain", route_prefix="/drain")
    serve.run(build_app(args), name="drain", route_prefix="/drain", blocking=False)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=served.base_url + "/drain", headers=headers, timeout=120) as http:
        started = [asyncio.Event() for _ in range(IN_FLIGHT)]
        requests = [asyncio.create_task(_stream(http, index, started[index])) for index in range(IN_FLIGHT)]
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in started)), timeout=60)
        assert not any(request.done() for request in requests), "requests must still be in flight"

        deletion = asyncio.create_task(asyncio.to_thread(serve.delete, "drain"))
        results = await asyncio.gather(*requests)
        await deletion

    assert results == [(TOKENS, True)] * IN_FLIGHT
    assert "drain" not in serve.status().applications
