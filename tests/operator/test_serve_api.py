"""`ServeObserver` against a dashboard over real HTTP: what it reads, and how often."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from deepseek_operator.k8s.serve_api import LOG_FILE_PATH, SERVE_DETAILS_PATH, ServeObserver
from deepseek_serving.autoscaling import DECISION_LOG_PREFIX

DECISION = {"version": "v1", "from_groups": 1, "to_groups": 2, "rule": "ScaleUp", "reason": "burst"}


class Dashboard:
    """Ray's dashboard for one RayService: the Serve applications and the controller's log."""

    def __init__(self) -> None:
        self.reads: Counter[str] = Counter()
        self.log = [f"INFO controller 1 -- {DECISION_LOG_PREFIX}{json.dumps(DECISION)}"]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(SERVE_DETAILS_PATH, self._details)
        app.router.add_get(LOG_FILE_PATH, self._log)
        return app

    async def _details(self, request: web.Request) -> web.Response:
        self.reads["details"] += 1
        controller = {"node_id": "head", "log_file_path": "/serve/controller_1.log"}
        return web.json_response({"controller_info": controller, "applications": {}})

    async def _log(self, request: web.Request) -> web.Response:
        self.reads["log"] += 1
        assert request.query["filename"] == "serve/controller_1.log"  # relative to Ray's log dir
        return web.Response(text="\n".join(self.log[-int(request.query["lines"]) :]))


@pytest.fixture
async def dashboard() -> AsyncIterator[tuple[Dashboard, str]]:
    backend = Dashboard()
    runner = web.AppRunner(backend.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield backend, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _ray_service(resource_version: str) -> dict[str, object]:
    metadata = {"namespace": "llm", "name": "r1-v1", "uid": "u", "resourceVersion": resource_version}
    return {"metadata": metadata}


async def test_the_log_is_read_once_per_read_of_the_applications(dashboard: tuple[Dashboard, str]) -> None:
    """A pass that applies observes twice: the second observation reads neither again."""
    backend, url = dashboard
    observer = ServeObserver(url, ttl_seconds=60)
    try:
        for _ in range(2):
            details = await observer.details(_ray_service("1"))
            assert details is not None
            assert await observer.scaling_decisions(_ray_service("1"), details) == [DECISION]
        assert backend.reads == {"details": 1, "log": 1}
        # The RayService changed: Serve's view and the log are news again.
        backend.log.append(backend.log[0].replace('"to_groups": 2', '"to_groups": 3'))
        details = await observer.details(_ray_service("2"))
        assert details is not None
        decisions = await observer.scaling_decisions(_ray_service("2"), details)
        assert [d["to_groups"] for d in decisions or []] == [2, 3]
        assert backend.reads == {"details": 2, "log": 2}
    finally:
        await observer.close()
