"""`dsd bench reconcile`: the operator at scale against the test API server, with a named floor.

Phases, one run:
0. floor: one client creates N DeepSeekDeployments and watches them arrive (the server's own
   speed for this workload);
1. convergence: `dsd operator` (its own process, client limited to `qps`/`burst`) reconciles all
   N until each has `status.observedGeneration == metadata.generation` and its RayService;
   requests are counted at the server by User-Agent (ours and kopf's), so nothing the operator
   does goes uncounted;
2. steady state: a window spanning a full resync, requests and writes per resource;
3. latency: spec changes at `events_per_s`, each timed from the write's response to the status
   write that carries its generation (an upper bound of event-to-reconcile-start);
4. drift: hand edits of a field the operator manages (a RayService's `rayVersion`, as a person
   with kubectl would make them), each timed from sending the edit to the watch event of the
   operator's revert;
5. the operator's resident memory (VmRSS, and VmHWM, the peak).
There is no KubeRay here: RayServices are applied but never become ready, which is the part of
the work the operator does; readiness costs one more status write per deployment later.
"""

from __future__ import annotations

import copy
import statistics
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from aiohttp import web

from deepseek_operator.api import constants
from deepseek_operator.testing.kuberay import find_kuberay_crds
from deepseek_operator.testing.process import OperatorProcess, free_port
from deepseek_operator.testing.server import ApiServer

__all__ = ["run_reconcile_bench"]

ROOT = Path(__file__).resolve().parents[3]
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
OPERATOR_AGENTS = ("deepseek-operator/", "kopf/")
CONVERGENCE_TIMEOUT_S = 1800.0
"""A bench that cannot converge says which deployments are missing instead of waiting forever."""


class RequestCounter:
    """HTTP requests to the server by the operator's clients, by method (watches included)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.by_resource: Counter[str] = Counter()
        """`METHOD resource[/subresource]`, e.g. `PATCH deepseekdeployments/status`."""
        self.first_request: float | None = None
        """`time.perf_counter()` of the operator's first request (its start-up ends there)."""
        self._lock = threading.Lock()

    def install(self, server: ApiServer) -> None:
        handle: Callable[[web.Request], Awaitable[web.StreamResponse]] = server.api.handle

        async def counted(request: web.Request) -> web.StreamResponse:
            if request.headers.get("User-Agent", "").startswith(OPERATOR_AGENTS):
                with self._lock:
                    self.counts[request.method] += 1
                    self.by_resource[f"{request.method} {_resource_of(request.path)}"] += 1
                    if self.first_request is None:
                        self.first_request = time.perf_counter()
            return await handle(request)

        server.api.handle = counted  # type: ignore[method-assign]

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.counts)

    def snapshot_by_resource(self) -> Counter[str]:
        with self._lock:
            return Counter(self.by_resource)


def _resource_of(path: str) -> str:
    """`/apis/g/v/namespaces/ns/things/name/status` -> `things/status` (`things` for a list)."""
    parts = [part for part in path.split("/") if part]
    if "namespaces" in parts and len(parts) > parts.index("namespaces") + 2:
        parts = parts[parts.index("namespaces") + 2 :]
    else:
        parts = parts[3:] if parts[:1] == ["apis"] else parts[2:]
    return "/".join(parts[:1] + parts[2:3])


def _deployment(index: int) -> dict[str, Any]:
    return {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "metadata": {"name": f"bench-{index:05d}", "namespace": "bench"},
        "spec": {
            "model": {"source": "hf://deepseek-ai/DeepSeek-R1", "maxModelLen": 65536},
            "versions": [{"name": "v1"}],
            "parallelism": {"tensorParallelSize": 8, "dataParallelSize": 2, "eplb": {}},
            "resources": {"gpuType": "H100", "gpusPerNode": 8},
            "serving": {"limits": {"maxTokens": 4096}},
        },
    }


def _watch(custom: Any, namespace: str) -> Iterator[dict[str, Any]]:
    """Watch events of the namespace's DeepSeekDeployments (the generated client is untyped)."""
    from kubernetes import watch

    watch_module: Any = watch
    watcher = watch_module.Watch()
    stream: Iterator[dict[str, Any]] = watcher.stream(
        custom.list_namespaced_custom_object, constants.GROUP, constants.VERSION, namespace, constants.PLURAL
    )
    return stream


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _queue_wait_buckets(metrics_url: str) -> dict[float, float]:
    """Cumulative counts of the operator's queue-wait histogram, by upper bound (seconds)."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(httpx.get(metrics_url, timeout=5).text):
        if family.name == "deepseek_operator_queue_wait_seconds":
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    buckets[float(sample.labels["le"])] = sample.value
    return buckets


def _histogram_quantile(buckets: dict[float, float], fraction: float) -> float:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket holding the rank."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    rank, lower, below = fraction * total, 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if bound == float("inf"):
                return lower
            inside = buckets[bound] - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, buckets[bound]
    return lower


def _memory_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def run_reconcile_bench(
    *,
    resources: int = 1000,
    qps: float = 20.0,
    burst: int = 30,
    events_per_s: float = 10.0,
    latency_events: int = 100,
    drift_edits: int = 50,
    resync_s: float = 20.0,
    workdir: Path,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Run the phases of the module docstring; returns a JSON-ready dict."""
    from kubernetes import client, config

    counter = RequestCounter()
    server = ApiServer()
    counter.install(server)
    with server:
        kubeconfig = server.write_kubeconfig(workdir / "kubeconfig")
        crds = find_kuberay_crds()
        server.install_crds(
            [
                *(sorted(crds.glob("*.yaml")) if crds else []),
                ROOT / "crds" / "deepseek.serving.dev_deepseekdeployments.yaml",
            ]
        )
        api = config.new_client_from_config(str(kubeconfig))  # type: ignore[no-untyped-call]
        custom: Any = client.CustomObjectsApi(api)
        core: Any = client.CoreV1Api(api)
        for namespace in ("bench", "floor"):
            core.create_namespace({"metadata": {"name": namespace}})

        # Phase 0: the floor, one client creating and watching N objects in another namespace.
        progress(f"floor: one client creates and watches {resources} DeepSeekDeployments")
        started = time.perf_counter()
        seen = threading.Event()

        def watch_floor() -> None:
            for count, _ in enumerate(_watch(custom, "floor"), start=1):
                if count == resources:
                    seen.set()
                    return

        threading.Thread(target=watch_floor, daemon=True).start()
        for index in range(resources):
            body = copy.deepcopy(_deployment(index))
            body["metadata"]["namespace"] = "floor"
            custom.create_namespaced_custom_object(
                constants.GROUP, constants.VERSION, "floor", constants.PLURAL, body
            )
        seen.wait(timeout=600)
        floor_s = time.perf_counter() - started
        # The operator watches all namespaces: the floor's objects must be gone before it starts.
        for index in range(resources):
            custom.delete_namespaced_custom_object(
                constants.GROUP, constants.VERSION, "floor", constants.PLURAL, f"bench-{index:05d}"
            )

        for index in range(resources):
            custom.create_namespaced_custom_object(
                constants.GROUP, constants.VERSION, "bench", constants.PLURAL, _deployment(index)
            )

        # Convergence is followed with a watch: listing every object in a loop would load the
        # API server (on this process) and slow the operator down.
        observed: set[str] = set()
        all_observed = threading.Event()

        def watch_convergence() -> None:
            for event in _watch(custom, "bench"):
                obj = event["object"]
                if _converged(obj):
                    observed.add(obj["metadata"]["name"])
                if len(observed) == resources:
                    all_observed.set()
                    return

        threading.Thread(target=watch_convergence, daemon=True).start()

        # Phase 1: convergence.
        progress(f"convergence: dsd operator (client {qps:g} qps, burst {burst}) reconciles {resources}")
        metrics_port = free_port()
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        operator = OperatorProcess(
            kubeconfig,
            workdir / "operator.log",
            standalone=True,
            env={
                "DSD_KUBERNETES__QPS": str(qps),
                "DSD_KUBERNETES__BURST": str(burst),
                "DSD_RECONCILE__RESYNC_SECONDS": str(resync_s),
                "DSD_SERVER__METRICS_PORT": str(metrics_port),
            },
        )
        before, before_by_resource = counter.snapshot(), counter.snapshot_by_resource()
        started = time.perf_counter()
        with operator:  # returns once the operator answers its health check
            while not all_observed.wait(timeout=0.5):
                if operator.exited:
                    raise RuntimeError(f"the operator exited; see {workdir / 'operator.log'}")
                if time.perf_counter() - started > CONVERGENCE_TIMEOUT_S:
                    missing = sorted({f"bench-{i:05d}" for i in range(resources)} - observed)
                    raise RuntimeError(
                        f"{len(missing)} deployments not converged in {CONVERGENCE_TIMEOUT_S:.0f} s "
                        f"(e.g. {', '.join(missing[:5])}); see {workdir / 'operator.log'}"
                    )
            finished = time.perf_counter()
            convergence_s = finished - started
            startup_s = (counter.first_request or started) - started
            spent = counter.snapshot() - before
            spent_by_resource = counter.snapshot_by_resource() - before_by_resource
            memory_after_convergence = _memory_kib(operator.pid)

            # Phase 2: steady state over a full resync.
            progress(f"steady state: {resync_s * 1.5:.0f} s, more than one resync of every deployment")
            time.sleep(2)
            before, before_by_resource = counter.snapshot(), counter.snapshot_by_resource()
            time.sleep(resync_s * 1.5)
            steady = counter.snapshot() - before
            steady_by_resource = counter.snapshot_by_resource() - before_by_resource

            # Phase 3: spec changes at a fixed rate, each timed to its status write.
            progress(f"latency: {latency_events} spec changes at {events_per_s:g}/s")
            waits_before = _queue_wait_buckets(metrics_url)
            latencies = _latencies(custom, resources, events_per_s, latency_events)
            time.sleep(1)
            waits_after = _queue_wait_buckets(metrics_url)
            waits = {bound: waits_after[bound] - waits_before.get(bound, 0.0) for bound in waits_after}

            # Phase 4: hand edits of a managed field, each timed until the operator reverts it.
            progress(f"drift: {drift_edits} hand edits of RayServices at {events_per_s:g}/s")
            drift = _drift_corrections(custom, events_per_s, drift_edits)
            memory = _memory_kib(operator.pid)

    writes = sum(count for method, count in spent.items() if method in WRITE_METHODS)
    requests = sum(spent.values())
    limiter_floor_s = requests / qps
    return {
        "resources": resources,
        "limiter": {"qps": qps, "burst": burst},
        "baseline_floor_s": floor_s,
        "baseline_floor_objects_per_s": resources / floor_s,
        "convergence_s": convergence_s,
        "operator_startup_s": startup_s,
        "convergence_after_startup_s": convergence_s - startup_s,
        "requests_per_resource": requests / resources,
        "writes_per_resource": writes / resources,
        "requests_by_resource": dict(spent_by_resource),
        "limiter_floor_s": limiter_floor_s,
        "convergence_over_limiter_floor": (convergence_s - startup_s) / limiter_floor_s,
        "convergence_over_server_floor": convergence_s / floor_s,
        "steady_window_s": resync_s * 1.5,
        "steady_reads_per_resource": sum(c for m, c in steady.items() if m == "GET") / resources,
        "steady_writes_per_resource": sum(c for m, c in steady.items() if m in WRITE_METHODS) / resources,
        "steady_requests_by_resource": dict(steady_by_resource),
        "event_to_status_ms": {
            "p50": statistics.median(latencies) * 1000,
            "p99": _percentile(latencies, 0.99) * 1000,
            "max": max(latencies) * 1000,
            "samples": len(latencies),
        },
        "event_to_reconcile_start_ms": {
            "p50": _histogram_quantile(waits, 0.5) * 1000,
            "p99": _histogram_quantile(waits, 0.99) * 1000,
            "reconciles": waits[float("inf")],
            "source": "deepseek_operator_queue_wait_seconds (enqueue on the watch event to reconcile start)",
        },
        "drift_corrected_ms": {
            "p50": statistics.median(drift) * 1000 if drift else None,
            "p99": _percentile(drift, 0.99) * 1000 if drift else None,
            "corrected": len(drift),
            "edits": drift_edits,
        },
        "operator_rss_mib": memory["VmRSS"] / 1024,
        "operator_peak_rss_mib": memory["VmHWM"] / 1024,
        "operator_rss_after_convergence_mib": memory_after_convergence["VmRSS"] / 1024,
    }


def _converged(deployment: dict[str, Any]) -> bool:
    """The operator did all it can without KubeRay: observed this generation and applied the
    version's RayService (a new one waits `settle_seconds` first, in a pass of its own)."""
    status = deployment.get("status") or {}
    return status.get("observedGeneration") == deployment["metadata"]["generation"] and any(
        entry.get("rayService") for entry in status.get("traffic") or []
    )


def _latencies(custom: Any, resources: int, events_per_s: float, count: int) -> list[float]:
    """Seconds from each spec write's response to the status write of its generation."""
    written: dict[str, tuple[int, float]] = {}
    generations: dict[str, int] = {}
    done: dict[str, float] = {}
    lock = threading.Lock()
    finished = threading.Event()

    def observe() -> None:
        for event in _watch(custom, "bench"):
            now = time.perf_counter()
            obj = event["object"]
            name = obj["metadata"]["name"]
            with lock:
                pending = written.get(name)
                if pending and (obj.get("status") or {}).get("observedGeneration", 0) >= pending[0]:
                    done.setdefault(f"{name}@{pending[0]}", now - pending[1])
                if len(done) >= count:
                    finished.set()
                    return

    threading.Thread(target=observe, daemon=True).start()
    time.sleep(1)
    for sample in range(count):
        name = f"bench-{(sample * 7919) % resources:05d}"
        # A change the operator must act on (a new generation to observe) that moves no rendered
        # object: one status write, no apply, no Event; what a 20 qps client can take at 10/s.
        patch = {"spec": {"rollout": {"historyLimit": 11 + sample % 89}}}
        started = time.perf_counter()
        # Every patch changes the spec, so it bumps the generation by one: record it before the
        # write, so a status that lands before the response is not missed.
        generations[name] = generations.get(name, 1) + 1
        with lock:
            written[name] = (generations[name], started)
        custom.patch_namespaced_custom_object(
            constants.GROUP, constants.VERSION, "bench", constants.PLURAL, name, patch
        )
        time.sleep(max(0.0, 1 / events_per_s - (time.perf_counter() - started)))
    finished.wait(timeout=120)
    return list(done.values())


def _drift_corrections(custom: Any, edits_per_s: float, count: int) -> list[float]:
    """Seconds from sending each hand edit to the RayService holding our value again."""
    from kubernetes import watch

    watch_module: Any = watch

    rendered: dict[str, str] = {}
    edits: dict[str, tuple[float, bool]] = {}
    """RayService -> (when the edit was sent, whether the watch showed the edited value yet)."""
    corrected: list[float] = []
    lock = threading.Lock()
    finished = threading.Event()
    stream = watch_module.Watch()

    def observe() -> None:
        for event in stream.stream(
            custom.list_namespaced_custom_object, "ray.io", "v1", "bench", "rayservices", timeout_seconds=300
        ):
            now = time.perf_counter()
            obj = event["object"]
            name, value = obj["metadata"]["name"], obj["spec"]["rayClusterConfig"]["rayVersion"]
            with lock:
                ours = rendered.setdefault(name, value)
                if name not in edits:
                    continue
                sent, edit_seen = edits[name]
                if value != ours:
                    edits[name] = (sent, True)
                elif edit_seen:  # our value after the edited one: reverted
                    corrected.append(now - edits.pop(name)[0])
                    if len(corrected) >= count:
                        finished.set()
                        return

    threading.Thread(target=observe, daemon=True).start()
    time.sleep(1)  # the watch's initial listing names every RayService with its rendered value
    with lock:
        names = sorted(rendered)
    edit = {"spec": {"rayClusterConfig": {"rayVersion": "0.0.0"}}}
    for sample in range(count):
        name = names[(sample * 7919) % len(names)]
        started = time.perf_counter()
        with lock:
            edits[name] = (started, False)
        custom.patch_namespaced_custom_object("ray.io", "v1", "bench", "rayservices", name, edit)
        time.sleep(max(0.0, 1 / edits_per_s - (time.perf_counter() - started)))
    finished.wait(timeout=120)
    stream.stop()
    return corrected
