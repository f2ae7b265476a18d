"""A trivial ingress deployment scaled by our policy on a real Ray Serve, and the probes that drive it.

No vLLM: each replica reports the load it is told to (``GET /load?running=N``) as a rank reports
its engine's, and its constructor sleeps to stand for a model load. Run as a script,
``python -m tests.serving.autoscaling_app <probe> <cold_start_s>``, it starts its own local Ray
with Ray Serve's HAProxy ingress (``RAY_SERVE_ENABLE_HA_PROXY=1``: the replicas are the ingress,
our layout), runs the probe and prints one JSON object:

- ``scale-up``: one group of 8 slots is told it runs 20 requests; the policy must add the second
  (its maximum) with Serve's delays at 0, as ``llm_config`` renders them, and the controller's log
  must carry the decision with its reason;
- ``scale-to-zero``: with ``minGroups 0``/``scaleToZero`` the idle policy removes the only replica;
  requests sent to the application at zero replicas must wait for a new one and be answered.
"""

from __future__ import annotations

import glob
import json
import os
import socket
import sys
import threading
import time
import urllib.request
from typing import Any

from fastapi import FastAPI
from ray import serve

from deepseek_serving.autoscaling import decisions_in_log

app = FastAPI()


def build(args: dict[str, Any]) -> serve.Application:
    """One replica per group (data_parallel_size 1), with the autoscaling settings of ``args``."""
    autoscaling = args["autoscaling"]
    autoscaling_config = {
        "min_replicas": autoscaling["min_groups"],
        "initial_replicas": 1,
        "max_replicas": autoscaling["max_groups"],
        # As llm_config renders them: the policy holds the delays.
        "upscale_delay_s": 0,
        "downscale_delay_s": 0,
        "downscale_to_zero_delay_s": 0,
        "metrics_interval_s": 0.5,
        "look_back_period_s": 2,
        "policy": {
            "policy_function": "deepseek_serving.autoscaling:QueueDepthPolicy",
            "policy_kwargs": {
                "data_parallel_size": 1,
                "deployment": "probe",
                "version": "v1",
                "autoscaling": autoscaling,
            },
        },
    }

    @serve.deployment(ray_actor_options={"num_cpus": 0}, autoscaling_config=autoscaling_config)
    @serve.ingress(app)
    class Rank:
        def __init__(self, cold_start_s: float) -> None:
            time.sleep(cold_start_s)
            self.pid = os.getpid()
            self.running = 0.0

        @app.get("/")
        async def root(self) -> dict[str, int]:
            return {"pid": self.pid}

        @app.get("/load")
        async def load(self, running: float) -> dict[str, float]:
            self.running = running
            return {"running": running}

        async def record_autoscaling_stats(self) -> dict[str, float]:
            return {"running/g": self.running, "waiting/g": 0.0, "slots/g": 8.0, "arrivals/g": 0.0}

    return Rank.bind(float(args["cold_start_s"]))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Probe:
    """A local Ray with HAProxy serving ``build(args)`` as the application ``probe``."""

    def __init__(self, args: dict[str, Any]) -> None:
        os.environ.update(
            {
                "RAY_AUTH_MODE": "disabled",
                "RAY_SERVE_ENABLE_HA_PROXY": "1",
                "RAY_worker_niceness": "0",
                "RAY_SERVE_HAPROXY_METRICS_PORT": str(_free_port()),
                "RAY_SERVE_HAPROXY_STATS_PORT": str(_free_port()),
                "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "1",
            }
        )
        import ray

        self.port = _free_port()
        self.cold_start_s = float(args["cold_start_s"])
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        self.session_dir = ray._private.worker._global_node.get_session_dir_path()
        serve.start(http_options={"host": "127.0.0.1", "port": self.port})
        serve.run(build(args), name="probe", route_prefix="/", blocking=False)

    def replicas(self) -> dict[str, int]:
        status = serve.status().applications["probe"].deployments["Rank"]
        return {str(state): count for state, count in status.replica_states.items() if count}

    def get(self, path: str = "/") -> tuple[int | None, float]:
        started = time.monotonic()
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=self.cold_start_s + 120) as answer:
                return answer.status, time.monotonic() - started
        except Exception as error:  # an HTTP error or a timeout is a finding, not a crash
            return getattr(error, "code", None), time.monotonic() - started

    def wait_for(self, predicate: Any, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self.replicas()):
                return True
            time.sleep(0.5)
        return False

    def decisions(self) -> list[dict[str, Any]]:
        lines: list[str] = []
        for path in glob.glob(os.path.join(self.session_dir, "logs", "serve", "controller_*.log")):
            with open(path, encoding="utf-8", errors="replace") as log:
                lines += log.readlines()
        return decisions_in_log(lines)

    def close(self) -> None:
        import ray

        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()


def scale_up(cold_start_s: float) -> dict[str, Any]:
    autoscaling = {"min_groups": 1, "max_groups": 2, "upscale_delay_s": 0, "cold_start_s": cold_start_s}
    probe = Probe({"cold_start_s": cold_start_s, "autoscaling": autoscaling})
    try:
        started = probe.wait_for(lambda r: r.get("RUNNING") == 1, cold_start_s + 120)
        loaded = probe.get("/load?running=20")
        scaled = probe.wait_for(lambda r: r.get("RUNNING") == 2, cold_start_s + 60)
        return {
            "started": started,
            "load_status": loaded[0],
            "scaled": scaled,
            "decisions": probe.decisions(),
        }
    finally:
        probe.close()


def scale_to_zero(cold_start_s: float, requests: int = 3) -> dict[str, Any]:
    autoscaling = {
        "min_groups": 0,
        "max_groups": 1,
        "scale_to_zero": True,
        "downscale_delay_s": 2,
        "upscale_delay_s": 0,
        "cold_start_s": cold_start_s,
    }
    probe = Probe({"cold_start_s": cold_start_s, "autoscaling": autoscaling})
    try:
        seen: dict[str, bool] = {"running": False}

        def idle_at_zero(replicas: dict[str, int]) -> bool:
            seen["running"] = seen["running"] or "RUNNING" in replicas
            return seen["running"] and not replicas

        reached_zero = probe.wait_for(idle_at_zero, cold_start_s + 180)
        time.sleep(2)
        results: list[tuple[int | None, float]] = []
        threads = [threading.Thread(target=lambda: results.append(probe.get())) for _ in range(requests)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return {
            "reached_zero": reached_zero,
            "statuses": sorted(status for status, _ in results),
            "waited_s": sorted(round(waited, 1) for _, waited in results),
            "replicas_after": probe.replicas(),
            "decisions": probe.decisions(),
        }
    finally:
        probe.close()


if __name__ == "__main__":
    probes = {"scale-up": scale_up, "scale-to-zero": scale_to_zero}
    print(json.dumps(probes[sys.argv[1]](float(sys.argv[2]))), flush=True)
