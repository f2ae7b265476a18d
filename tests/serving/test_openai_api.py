"""The OpenAI-compatible API of the local Ray Serve deployment, through the `openai` client."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
import pytest

from tests.serving.conftest import API_KEY, MAX_MODEL_LEN, MAX_TOKENS_LIMIT, MODEL_NAME

openai = pytest.importorskip("openai")

pytestmark = pytest.mark.serving


@pytest.fixture(scope="module")
def client(served: Any) -> Any:
    return openai.OpenAI(base_url=f"{served.base_url}/v1", api_key=API_KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def async_client(served: Any) -> Any:
    return openai.AsyncOpenAI(base_url=f"{served.base_url}/v1", api_key=API_KEY, max_retries=0, timeout=60)


def test_models_lists_the_served_model(client: Any) -> None:
    models = client.models.list()
    assert [model.id for model in models.data] == [MODEL_NAME]


def test_completion_with_usage(client: Any) -> None:
    completion = client.completions.create(
        model=MODEL_NAME, prompt="def hello(", max_tokens=12, temperature=0
    )
    assert completion.id.startswith("cmpl-")
    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].text
    assert completion.usage.completion_tokens == 12
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 12


def test_greedy_completion_is_deterministic(client: Any) -> None:
    texts = {
        client.completions.create(model=MODEL_NAME, prompt="import os", max_tokens=16, temperature=0)
        .choices[0]
        .text
        for _ in range(2)
    }
    assert len(texts) == 1


def test_chat_completion_with_usage(client: Any) -> None:
    chat = client.chat.completions.create(
        model=MODEL_NAME,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello!"}],
        max_tokens=8,
        temperature=0,
    )
    assert chat.id.startswith("chatcmpl-")
    assert chat.choices[0].message.role == "assistant"
    assert chat.choices[0].message.content
    assert chat.usage.completion_tokens == 8


def test_chat_streaming_sends_deltas_then_usage(client: Any) -> None:
    stream = client.chat.completions.create(
        model=MODEL_NAME,
        messages=[{"role": "user", "content": "Count to three."}],
        max_tokens=10,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    content = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert content
    assert len({chunk.id for chunk in chunks}) == 1
    assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 10


def test_completion_streaming_matches_the_non_streaming_text(client: Any) -> None:
    kwargs: dict[str, Any] = {"model": MODEL_NAME, "prompt": "class Foo:", "max_tokens": 16, "temperature": 0}
    whole = client.completions.create(**kwargs).choices[0].text
    streamed = "".join(chunk.choices[0].text for chunk in client.completions.create(**kwargs, stream=True))
    assert streamed == whole


async def test_concurrent_requests_all_complete(async_client: Any) -> None:
    async def one(index: int) -> Any:
        return await async_client.completions.create(
            model=MODEL_NAME, prompt=f"def function_{index}(x):", max_tokens=24, temperature=0
        )

    started = time.perf_counter()
    completions = await asyncio.gather(*(one(index) for index in range(24)))
    assert [completion.usage.completion_tokens for completion in completions] == [24] * 24
    assert len({completion.id for completion in completions}) == 24
    assert time.perf_counter() - started < 60


def test_request_id_is_echoed(served: Any) -> None:
    response = httpx.post(
        f"{served.base_url}/v1/completions",
        json={"model": MODEL_NAME, "prompt": "x", "max_tokens": 1},
        headers={"Authorization": f"Bearer {API_KEY}", "X-Request-Id": "req-abc-123"},
        timeout=30,
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-abc-123"
    assert response.json()["id"] == "cmpl-req-abc-123"


def test_every_response_carries_a_request_id(served: Any) -> None:
    response = httpx.get(f"{served.base_url}/v1/models", headers={"Authorization": f"Bearer {API_KEY}"})
    assert re.fullmatch(r"[0-9a-f-]{16,}", response.headers["x-request-id"])


def test_a_wrong_api_key_is_refused(served: Any) -> None:
    intruder = openai.OpenAI(base_url=f"{served.base_url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        intruder.models.list()
    assert refused.value.status_code == 401


def test_prompt_longer_than_the_context_is_a_400(client: Any) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.completions.create(model=MODEL_NAME, prompt="word " * (2 * MAX_MODEL_LEN), max_tokens=4)
    assert "maximum context length" in refused.value.message
    assert refused.value.body["param"] == "input_tokens"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        pytest.param({"temperature": -1.0}, "temperature", id="negative-temperature"),
        pytest.param({"max_tokens": MAX_TOKENS_LIMIT + 1}, "max_tokens", id="over-the-deployment-limit"),
        pytest.param({"n": 0}, "n", id="zero-choices"),
    ],
)
def test_bad_parameters_are_400_with_the_parameter_named(
    client: Any, extra: dict[str, Any], param: str
) -> None:
    kwargs = {"model": MODEL_NAME, "prompt": "x", "max_tokens": 4} | extra
    with pytest.raises(openai.BadRequestError) as refused:
        client.completions.create(**kwargs)
    assert refused.value.status_code == 400
    assert param in str(refused.value.body)


def test_unknown_model_is_a_404(client: Any) -> None:
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="gpt-nonexistent", prompt="x", max_tokens=2)


def test_malformed_json_is_an_openai_style_400(served: Any) -> None:
    response = httpx.post(
        f"{served.base_url}/v1/chat/completions",
        content=b"{not json",
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert set(response.json()["error"]) >= {"message", "type", "code"}


def test_chat_without_max_tokens_stops_at_the_deployment_limit(client: Any) -> None:
    chat = client.chat.completions.create(
        model=MODEL_NAME,
        messages=[{"role": "user", "content": "Talk at length."}],
        temperature=0,
        extra_body={"ignore_eos": True},
    )
    assert chat.usage.completion_tokens == MAX_TOKENS_LIMIT
    assert chat.choices[0].finish_reason == "length"


def test_health_and_readiness_answer_without_a_key(served: Any) -> None:
    assert httpx.get(f"{served.base_url}/health", timeout=30).status_code == 200
    ready = httpx.get(f"{served.base_url}/ready", timeout=60)
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}


def test_vllm_metrics_carry_deployment_version_and_group(served: Any, client: Any) -> None:
    client.completions.create(model=MODEL_NAME, prompt="metrics", max_tokens=4)
    wanted = (
        "ray_vllm_num_requests_running",
        "ray_vllm_time_to_first_token_seconds_count",
        "ray_deepseek_serving_rank_queue_depth",
        "ray_deepseek_serving_group_queue_depth",
    )
    ours = ('deployment="tests"', 'version="v1"', 'group="')
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lines = httpx.get(served.metrics_url, timeout=10).text.splitlines()
        found = {
            name: [
                line for line in lines if line.startswith(name + "{") and all(label in line for label in ours)
            ]
            for name in wanted
        }
        if all(found.values()):
            break
        time.sleep(2)
    assert {name for name, series in found.items() if not series} == set()
