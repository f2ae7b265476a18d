"""``dsd bench serving``: our Ray Serve application against bare vLLM, same engine, same load.

Why: the serving layer must not cost more than it gives. Both sides serve the tiny model on this
machine's CPU with the *same* vLLM engine arguments (``engine_kwargs`` of one ``ServingArgs``, plus
the ``distributed_executor_backend=mp`` that Ray Serve LLM sets on CPU), and receive the same
streaming completion requests at each concurrency: output tokens/s and time to first token
(p50/p95) through our application vs ``python -m vllm.entrypoints.openai.api_server``.

To prove the engines are configured alike, both run with ``VLLM_SERVER_DEV_MODE=1`` and the bench
reads each engine's effective configuration from vLLM's ``/server_info`` and prints the settings
that shape throughput side by side (``max_num_seqs`` above all). The two sides run one after the
other so that they never share the cores.

Goal: Serve throughput >= 0.9x bare and TTFT p50 <= bare + 20 ms at every concurrency.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from deepseek_serving.config import ServingArgs, engine_kwargs

__all__ = [
    "LevelStats",
    "compare_levels",
    "effective_engine_settings",
    "engine_cli_flags",
    "run_serving_bench",
    "summarize_level",
]

BENCH_ENGINE_ARGS: Final[dict[str, Any]] = {
    "enforce_eager": True,
    "max_num_seqs": 32,
    "kv_cache_memory_bytes": 1 << 30,
}
"""Engine arguments of the tiny-model bench (both sides get exactly these)."""

RAY_SERVE_LLM_CPU_ENGINE_ARGS: Final[dict[str, Any]] = {"distributed_executor_backend": "mp"}
"""What Ray Serve LLM adds to the engine arguments on CPU; the bare side gets it too."""

COMPARED_SETTINGS: Final[dict[str, tuple[str, ...]]] = {
    "scheduler_config": ("max_num_seqs", "max_num_batched_tokens", "async_scheduling"),
    "model_config": ("max_model_len", "dtype", "enforce_eager", "generation_config"),
    "cache_config": ("block_size", "kv_cache_memory_bytes", "enable_prefix_caching"),
    "parallel_config": (
        "tensor_parallel_size",
        "data_parallel_size",
        "enable_expert_parallel",
        "distributed_executor_backend",
    ),
}
"""Effective vLLM settings compared between the two sides (section -> keys of ``VllmConfig``)."""


@dataclass(frozen=True)
class LevelStats:
    """Load-test result of one side at one concurrency."""

    concurrency: int
    requests: int
    output_tokens_per_s: float
    ttft_p50_ms: float
    ttft_p95_ms: float


def summarize_level(
    concurrency: int, ttfts_s: Sequence[float], completion_tokens: int, wall_s: float
) -> LevelStats:
    """Aggregate per-request samples: total output tokens over wall time, TTFT quantiles in ms."""
    ordered = sorted(ttfts_s)
    p95_index = min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))
    return LevelStats(
        concurrency=concurrency,
        requests=len(ordered),
        output_tokens_per_s=completion_tokens / wall_s,
        ttft_p50_ms=1000 * statistics.median(ordered),
        ttft_p95_ms=1000 * ordered[p95_index],
    )


def compare_levels(bare: Sequence[LevelStats], served: Sequence[LevelStats]) -> list[dict[str, float]]:
    """One row per concurrency: both sides and the ratios the goal is stated in."""
    rows = []
    for bare_level, serve_level in zip(bare, served, strict=True):
        rows.append(
            {
                "concurrency": bare_level.concurrency,
                "requests": bare_level.requests,
                "bare_tokens_per_s": round(bare_level.output_tokens_per_s, 1),
                "serve_tokens_per_s": round(serve_level.output_tokens_per_s, 1),
                "throughput_ratio": round(
                    serve_level.output_tokens_per_s / bare_level.output_tokens_per_s, 3
                ),
                "bare_ttft_p50_ms": round(bare_level.ttft_p50_ms, 1),
                "serve_ttft_p50_ms": round(serve_level.ttft_p50_ms, 1),
                "ttft_p50_delta_ms": round(serve_level.ttft_p50_ms - bare_level.ttft_p50_ms, 1),
                "bare_ttft_p95_ms": round(bare_level.ttft_p95_ms, 1),
                "serve_ttft_p95_ms": round(serve_level.ttft_p95_ms, 1),
            }
        )
    return rows


def engine_cli_flags(kwargs: Mapping[str, Any]) -> list[str]:
    """vLLM CLI flags for engine keyword arguments (``--no-x`` for False, JSON for dicts)."""
    flags: list[str] = []
    for key, value in kwargs.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + key.replace("_", "-"))
        elif isinstance(value, dict | list):
            flags += [flag, json.dumps(value)]
        else:
            flags += [flag, str(value)]
    return flags


def effective_engine_settings(vllm_config: Mapping[str, Any]) -> dict[str, Any]:
    """The compared settings out of vLLM's ``/server_info?config_format=json`` ``vllm_config``."""
    return {
        f"{section}.{key}": vllm_config.get(section, {}).get(key)
        for section, keys in COMPARED_SETTINGS.items()
        for key in keys
    }


def run_serving_bench(
    *,
    concurrencies: Sequence[int] = (1, 8, 32),
    max_tokens: int = 128,
    requests_per_slot: int = 6,
    model_dir: Path | None = None,
    engine_args: Mapping[str, Any] | None = None,
    port: int | None = None,
    log: Callable[[str], None] = print,
) -> list[dict[str, float]]:
    """Measure bare vLLM, then our Serve application, on the tiny model; return one row per level.

    Parameters:
        concurrencies: in-flight streaming requests per level.
        max_tokens: completion length of every request (``ignore_eos``: always this many).
        requests_per_slot: requests per level = ``max(16, concurrency * requests_per_slot)``.
        model_dir: the model to serve (default: the cached tiny model).
        engine_args: vLLM engine arguments for both sides (default ``BENCH_ENGINE_ARGS``).
        port: HTTP port for the side under test (default: a free one).
        log: where progress, engine settings and the table go.

    Returns:
        ``compare_levels`` rows: tokens/s and TTFT p50/p95 of both sides, ratio and TTFT delta.
    """
    from deepseek_serving.local import free_port
    from deepseek_serving.tiny_model import build_tiny_model, default_tiny_model_dir

    model = model_dir or build_tiny_model(default_tiny_model_dir())
    args = ServingArgs(
        deployment_name="bench",
        version_name="serve",
        model_source=str(model),
        served_model_name="deepseek-tiny",
        max_model_len=1024,
        placement={"accelerator": "cpu", "bundles": [{"CPU": 1.0}]},
        engine_args=dict(engine_args if engine_args is not None else BENCH_ENGINE_ARGS),
        limits={"max_tokens": max_tokens},
    )
    bare_kwargs = engine_kwargs(args) | RAY_SERVE_LLM_CPU_ENGINE_ARGS
    os.environ["VLLM_SERVER_DEV_MODE"] = "1"  # /server_info on both sides
    http_port = port or free_port()
    load = _LoadPlan(args.served_model_name, concurrencies, max_tokens, requests_per_slot)

    log(f"engine arguments (both sides): {json.dumps(bare_kwargs, sort_keys=True)}")
    log("bare vLLM: starting the OpenAI server ...")
    bare_settings, bare_levels = _run_bare(model, args.served_model_name, bare_kwargs, http_port, load, log)
    log("Ray Serve application: starting ...")
    serve_settings, serve_levels = _run_serve(args, http_port, load, log)

    log(_settings_table(bare_settings, serve_settings))
    rows = compare_levels(bare_levels, serve_levels)
    log(_results_table(rows))
    return rows


@dataclass(frozen=True)
class _LoadPlan:
    model: str
    concurrencies: Sequence[int]
    max_tokens: int
    requests_per_slot: int

    async def run(self, base_url: str, log: Callable[[str], None]) -> list[LevelStats]:
        import aiohttp

        levels = []
        for concurrency in self.concurrencies:
            requests = max(16, concurrency * self.requests_per_slot)
            connector = aiohttp.TCPConnector(limit=concurrency + 4)
            timeout = aiohttp.ClientTimeout(total=600)
            async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as session:
                await self._level(session, concurrency, concurrency)  # warm-up, not measured
                started = time.perf_counter()
                samples = await self._level(session, concurrency, requests)
                wall_s = time.perf_counter() - started
            stats = summarize_level(
                concurrency, [ttft for ttft, _ in samples], sum(n for _, n in samples), wall_s
            )
            log(
                f"  concurrency {concurrency}: {stats.output_tokens_per_s:.1f} tok/s, TTFT p50 "
                f"{stats.ttft_p50_ms:.1f} ms, p95 {stats.ttft_p95_ms:.1f} ms "
                f"(load average {os.getloadavg()[0]:.1f}: other processes share these cores)"
            )
            levels.append(stats)
        return levels

    async def _level(self, session: Any, concurrency: int, requests: int) -> list[tuple[float, int]]:
        slots = asyncio.Semaphore(concurrency)

        async def one(index: int) -> tuple[float, int]:
            async with slots:
                return await self._stream(session, f"def function_{index}(x):")

        return list(await asyncio.gather(*(one(index) for index in range(requests))))

    async def _stream(self, session: Any, prompt: str) -> tuple[float, int]:
        """One streaming completion: (seconds to the first text chunk, completion tokens)."""
        body = {
            "model": self.model,
            "prompt": prompt,
            "max_tokens": self.max_tokens,
            "temperature": 0,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        started = time.perf_counter()
        ttft_s, last_event = 0.0, b""
        async with session.post("/v1/completions", json=body) as response:
            response.raise_for_status()
            async for line in response.content:
                if not line.startswith(b"data: "):
                    continue
                if not ttft_s and b'"text":"' in line and b'"text":""' not in line:
                    ttft_s = time.perf_counter() - started
                if line.startswith(b"data: [DONE]"):
                    break
                last_event = line
        return ttft_s, int(json.loads(last_event[len(b"data: ") :])["usage"]["completion_tokens"])


def _run_bare(
    model: Path,
    served_model_name: str,
    kwargs: Mapping[str, Any],
    port: int,
    load: _LoadPlan,
    log: Callable[[str], None],
) -> tuple[dict[str, Any], list[LevelStats]]:
    command = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model),
        "--served-model-name",
        served_model_name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *engine_cli_flags(kwargs),
    ]
    base_url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        log(f"  ready in {_wait_until_healthy(base_url, server):.1f} s")
        settings = _server_settings(base_url)
        return settings, asyncio.run(load.run(base_url, log))
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_until_healthy(base_url: str, server: subprocess.Popen[bytes], timeout_s: float = 300) -> float:
    """Poll ``/health`` until it answers 200; return the seconds waited."""
    import httpx

    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if server.poll() is not None:
            raise RuntimeError(f"bare vLLM server exited with {server.returncode}: {server.args!r}")
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(1)
    raise TimeoutError(f"bare vLLM server not healthy after {timeout_s:g} s")


def _run_serve(
    args: ServingArgs, port: int, load: _LoadPlan, log: Callable[[str], None]
) -> tuple[dict[str, Any], list[LevelStats]]:
    from deepseek_serving.local import serve_locally

    started = time.monotonic()
    with serve_locally(args, port=port) as served:
        log(f"  ready in {time.monotonic() - started:.1f} s (including Ray start)")
        settings = _server_settings(served.base_url)
        return settings, asyncio.run(load.run(served.base_url, log))


def _server_settings(base_url: str) -> dict[str, Any]:
    import httpx

    info = httpx.get(f"{base_url}/server_info", params={"config_format": "json"}, timeout=30).json()
    return effective_engine_settings(info["vllm_config"])


def _settings_table(bare: Mapping[str, Any], served: Mapping[str, Any]) -> str:
    lines = ["effective vLLM settings (from /server_info):", f"  {'setting':<46} {'bare':>18} {'serve':>18}"]
    for key in bare:
        marker = "" if bare[key] == served.get(key) else "   <-- differs"
        lines.append(f"  {key:<46} {bare[key]!s:>18} {served.get(key)!s:>18}{marker}")
    return "\n".join(lines)


def _results_table(rows: Sequence[Mapping[str, float]]) -> str:
    header = (
        f"{'conc':>4} {'reqs':>5} {'bare tok/s':>11} {'serve tok/s':>12} {'ratio':>6} "
        f"{'bare TTFT p50':>14} {'serve TTFT p50':>15} {'delta':>7} {'bare p95':>9} {'serve p95':>10}"
    )
    lines = [header]
    for row in rows:
        lines.append(
            f"{row['concurrency']:>4} {row['requests']:>5} {row['bare_tokens_per_s']:>11.1f} "
            f"{row['serve_tokens_per_s']:>12.1f} {row['throughput_ratio']:>6.3f} "
            f"{row['bare_ttft_p50_ms']:>11.1f} ms {row['serve_ttft_p50_ms']:>12.1f} ms "
            f"{row['ttft_p50_delta_ms']:>+7.1f} "
            f"{row['bare_ttft_p95_ms']:>9.1f} {row['serve_ttft_p95_ms']:>10.1f}"
        )
    return "\n".join(lines)
