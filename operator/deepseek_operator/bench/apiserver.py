"""``run_apiserver_bench``: how fast the test API server turns writes into watch events.

Two numbers matter for tests that drive an operator through it: watch latency (a write returns,
how long until a watcher has the event) and throughput (objects created per second by concurrent
clients, events per second one watcher receives). The server runs in a subprocess by default so
the load generator does not share its GIL; ``in_process=True`` measures the thread the fixtures use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp

from deepseek_operator.testing.server import ApiServer

__all__ = ["run_apiserver_bench"]

NAMESPACE = "bench"


@contextlib.contextmanager
def _server(in_process: bool) -> Iterator[str]:
    if in_process:
        with ApiServer() as server:
            yield server.url
        return
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "deepseek_operator.testing", "up", "--no-kuberay-crds"]
        command += ["--kubeconfig", str(Path(tmp) / "kubeconfig")]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        try:
            assert process.stdout is not None
            url = ""
            for line in process.stdout:
                found = re.match(r"API server: (\S+)", line)
                if found:
                    url = found.group(1)
                    break
            if not url:
                raise RuntimeError("the API server subprocess did not start")
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _configmap(name: str, payload_bytes: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"payload": "x" * payload_bytes},
    }


async def _watch(session: aiohttp.ClientSession, url: str, rv: str) -> AsyncIterator[tuple[str, float]]:
    params = {"watch": "true", "resourceVersion": rv, "timeoutSeconds": "600"}
    async with session.get(f"{url}/api/v1/namespaces/{NAMESPACE}/configmaps", params=params) as response:
        async for line in response.content:
            if line.strip():
                event = json.loads(line)
                yield event["object"]["metadata"]["name"], time.perf_counter()


async def _bench(
    url: str, latency_samples: int, objects: int, concurrency: int, payload_bytes: int
) -> dict[str, Any]:
    base = f"{url}/api/v1/namespaces/{NAMESPACE}/configmaps"
    connector = aiohttp.TCPConnector(limit=concurrency + 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(
            f"{url}/api/v1/namespaces", json={"metadata": {"name": NAMESPACE}}
        ) as response:
            response.raise_for_status()
        async with session.get(base) as response:
            rv = (await response.json())["metadata"]["resourceVersion"]
        received: dict[str, float] = {}
        arrived = asyncio.Event()

        async def watcher() -> None:
            async for name, at in _watch(session, url, rv):
                received[name] = at
                arrived.set()

        watch_task = asyncio.create_task(watcher())
        # Phase 1: one write at a time, each waiting for its event (latency).
        latencies_ms: list[float] = []
        for i in range(latency_samples):
            name = f"lat-{i}"
            start = time.perf_counter()
            async with session.post(base, json=_configmap(name, payload_bytes)) as response:
                response.raise_for_status()
            while name not in received:
                arrived.clear()
                await asyncio.wait_for(arrived.wait(), timeout=10)
            latencies_ms.append((received[name] - start) * 1000)
        # Phase 2: concurrent creators (throughput), the same watcher counting events.
        names = [f"tp-{i}" for i in range(objects)]
        queue: asyncio.Queue[str] = asyncio.Queue()
        for name in names:
            queue.put_nowait(name)

        async def creator() -> None:
            while not queue.empty():
                name = queue.get_nowait()
                async with session.post(base, json=_configmap(name, payload_bytes)) as response:
                    response.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(creator() for _ in range(concurrency)))
        created_s = time.perf_counter() - start
        while not all(n in received for n in names):
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), timeout=30)
        watched_s = max(received[n] for n in names) - start
        watch_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch_task
    return {
        "watch_latency_ms": {
            "p50": round(statistics.median(latencies_ms), 3),
            "p99": round(_percentile(latencies_ms, 0.99), 3),
            "max": round(max(latencies_ms), 3),
            "samples": latency_samples,
        },
        "create_per_s": round(objects / created_s, 1),
        "watched_events_per_s": round(objects / watched_s, 1),
        "objects": objects,
        "concurrency": concurrency,
        "payload_bytes": payload_bytes,
    }


def run_apiserver_bench(
    *,
    latency_samples: int = 500,
    objects: int = 2000,
    concurrency: int = 8,
    payload_bytes: int = 256,
    in_process: bool = False,
) -> dict[str, Any]:
    """Measure the test API server; returns a JSON-ready dict.

    Parameters:
        latency_samples: sequential writes, each timed until the watch delivers it (ms).
        objects: ConfigMaps created by ``concurrency`` clients for the throughput phase.
        payload_bytes: size of each ConfigMap's data.
        in_process: run the server on a thread of this process instead of a subprocess.
    Returns:
        ``watch_latency_ms`` {p50, p99, max, samples}, ``create_per_s``, ``watched_events_per_s``
        and the parameters, plus ``server`` ("subprocess" or "thread").
    """
    with _server(in_process) as url:
        result = asyncio.run(_bench(url, latency_samples, objects, concurrency, payload_bytes))
    return {"server": "thread" if in_process else "subprocess", **result}
