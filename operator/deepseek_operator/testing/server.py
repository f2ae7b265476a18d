"""The test API server: wiring of registry, store, watch hub, admission, controllers and routes.

``ApiServer`` runs on 127.0.0.1 with a random port, either on the caller's event loop
(``await server.start_async()``) or on a thread of its own (``with ApiServer() as server:``),
which is what synchronous clients and ``kopf.testing.KopfRunner`` need. ``write_kubeconfig``
makes it usable by every real client unchanged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import yaml
from aiohttp import web

from deepseek_operator.testing.admission import Admission
from deepseek_operator.testing.apierrors import ApiError
from deepseek_operator.testing.clock import system_clock
from deepseek_operator.testing.gc import Collector
from deepseek_operator.testing.handlers import MAX_REQUEST_BODY_BYTES, Api
from deepseek_operator.testing.kubeconfig import write_kubeconfig
from deepseek_operator.testing.resources import CRD_RESOURCE, Registry
from deepseek_operator.testing.store import Store, WatchEvent
from deepseek_operator.testing.watch import WatchHub

__all__ = ["DEFAULT_NAMESPACES", "ApiServer"]

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
T = TypeVar("T")


class ApiServer:
    """A stateful Kubernetes API server in memory, speaking HTTP to real clients."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], datetime] = system_clock,
        bookmark_interval_s: float = 1.0,
        history: int = 100_000,
        gc_delay_s: float = 0.01,
    ) -> None:
        """
        Parameters:
            port: 0 picks a free port.
            bookmark_interval_s: how often an idle watch with ``allowWatchBookmarks`` gets a
                BOOKMARK (a real server: about a minute; tests want it sooner).
            history: watch events kept for resuming; older ``resourceVersion``s get 410 Gone.
            gc_delay_s: how long garbage collection waits after the write that woke it.
        """
        self.host = host
        self.port = port
        self.registry = Registry()
        self.hub = WatchHub(history)
        self.store = Store(
            self.registry, clock, self._publish, Admission(lambda ns: self.store.namespace_state(ns))
        )
        self.collector = Collector(self.store, gc_delay_s)
        self.api = Api(self.registry, self.store, self.hub, clock, bookmark_interval_s=bookmark_interval_s)
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        for name in DEFAULT_NAMESPACES:
            self.store.create(self.registry.get("", "v1", "namespaces"), "", {"metadata": {"name": name}})  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- wiring ------------------------------------------------------------------------------

    def _publish(self, event: WatchEvent) -> None:
        self.hub.publish(event)
        self.collector.notice(event)
        if event.key == CRD_RESOURCE.key:
            self._follow_crd(event)

    def _follow_crd(self, event: WatchEvent) -> None:
        """Serve a CRD's versions as soon as it is stored; drop its objects when it is deleted."""
        if event.type != "DELETED":
            self.registry.apply_crd(event.obj)
            return
        served = self.registry.of_key(f"{event.obj['spec']['group']}/{event.obj['spec']['names']['plural']}")
        self.registry.remove_crd(event.obj["metadata"]["name"])
        for rt in served[:1]:
            for obj in list(self.store.items(rt.key)):
                meta = obj["metadata"]
                with contextlib.suppress(ApiError):
                    obj = {**obj, "metadata": {**meta, "finalizers": []}}
                    self.store.update(rt, meta.get("namespace", ""), meta["name"], obj)
                with contextlib.suppress(ApiError):
                    self.store.delete(rt, meta.get("namespace", ""), meta["name"])

    # --- lifecycle on the caller's loop ------------------------------------------------------

    async def start_async(self) -> None:
        app = web.Application(client_max_size=MAX_REQUEST_BODY_BYTES)
        app.router.add_route("*", "/{tail:.*}", self.api.handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._loop = asyncio.get_running_loop()
        self._tasks.append(asyncio.create_task(self.collector.run()))

    async def stop_async(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.api.close_watches()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- lifecycle on a thread of its own ----------------------------------------------------

    def start(self) -> ApiServer:
        """Run the server on a daemon thread with its own event loop; returns once it listens."""
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()

        def main() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as err:  # surface start failures to the caller
                ready.set_exception(err)
                return
            ready.set_result(None)
            loop.run_forever()
            loop.run_until_complete(self.stop_async())
            loop.close()

        self._thread = threading.Thread(target=main, name="deepseek-test-apiserver", daemon=True)
        self._thread.start()
        ready.result(timeout=30)
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the server's loop (the store is not thread-safe) and return its result."""
        if self._loop is None:
            raise RuntimeError("the server is not running")
        if self._thread is None:
            return fn(*args)

        async def run() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    # --- conveniences ------------------------------------------------------------------------

    def write_kubeconfig(self, path: Path, *, namespace: str = "default") -> Path:
        return write_kubeconfig(self.url, path, namespace=namespace)

    def install_crds(self, paths: Iterable[Path]) -> list[str]:
        """Create the CRDs in these YAML files (as ``kubectl apply -f`` would); returns their names."""
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # KubeRay's CRDs are large
        return self.install_crd_objects(
            doc for path in paths for doc in yaml.load_all(Path(path).read_text(), Loader=loader)
        )

    def install_crd_objects(self, documents: Iterable[Any]) -> list[str]:
        """Create the CustomResourceDefinitions among `documents`; returns their names."""
        names: list[str] = []
        for doc in documents:
            if doc and doc.get("kind") == "CustomResourceDefinition":
                self.call(self.store.create, CRD_RESOURCE, "", doc)
                names.append(doc["metadata"]["name"])
        return names

    def compact(self) -> int:
        """Forget all watch history (etcd compaction): older resourceVersions now get 410 Gone."""
        return self.call(self._compact)

    def _compact(self) -> int:
        self.hub.compact(self.store.rv)
        return self.store.rv
