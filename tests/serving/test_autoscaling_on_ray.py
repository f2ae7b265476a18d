"""Our policy on a real Ray Serve 2.60 with the HAProxy ingress (no vLLM): scale-up and scale to zero.

What the scale-to-zero probe proves: a request to an application whose ingress deployment has
zero replicas is not refused. HAProxy's backend for the application keeps Ray Serve's head-node
proxy as a ``backup`` server (``haproxy_templates.py``: "Fallback to head node's Serve proxy when
no ingress replicas are available"); that proxy queues the request on its handle, Serve's
cold-start fast path (``_get_cold_start_scale_up_replicas``: no running replica and requests
waiting) starts a replica, and the request is answered once it is up, a whole cold start later.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.serving

ROOT = Path(__file__).parents[2]
COLD_START_S = 6.0


def probe(name: str) -> dict[str, Any]:
    """Run ``tests.serving.autoscaling_app``'s probe in its own process (its own local Ray)."""
    pytest.importorskip("ray.serve")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "serving")])}
    command = [sys.executable, "-m", "tests.serving.autoscaling_app", name, str(COLD_START_S)]
    ran = subprocess.run(
        command,
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    result: dict[str, Any] = json.loads(ran.stdout.strip().splitlines()[-1])
    return result


def test_load_adds_a_group_at_once_and_the_controller_logs_why() -> None:
    result = probe("scale-up")
    assert result["started"], result
    assert result["load_status"] == 200, result
    assert result["scaled"], result
    up = [d for d in result["decisions"] if d["rule"] == "ScaleUp"]
    assert up, result["decisions"]
    assert (up[0]["from_groups"], up[0]["to_groups"], up[0]["deployment"]) == (1, 2, "probe")
    assert "scale up to 2" in up[0]["reason"]


def test_requests_to_an_application_at_zero_wait_for_its_cold_start() -> None:
    result = probe("scale-to-zero")
    assert result["reached_zero"], result
    assert result["statuses"] == [200, 200, 200], result
    assert all(waited >= COLD_START_S for waited in result["waited_s"]), result
    assert result["replicas_after"] == {"RUNNING": 1}, result
    assert any(d["rule"] == "ScaleDown" and d["to_groups"] == 0 for d in result["decisions"]), result
