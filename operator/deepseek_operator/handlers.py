"""kopf wiring only (STYLE.md rule 13): watch streams feed the cache and the work queue.

Every change of a DeepSeekDeployment, of an object it owns (RayService, Service, HTTPRoute), of
a ConfigMap it names, and a periodic resync all end in `queue.add(key)`; `reconcile.Reconciler` does the
work. Raw watch events are used on purpose instead of kopf's create/update handlers: those store
kopf's diff base and progress on the object, extra writes per pass, where our reconcile is
level-based and needs none (the deployment's own status says what was done).

With `DSD_WEBHOOK__ENABLED`, `webhook.validate` also answers the API server's admission reviews.
Replicas share a kopf peering object: one works, the others pause until it is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from datetime import UTC, datetime
from typing import Any

import httpx
import kopf
from prometheus_client import start_http_server

from deepseek_operator import webhook
from deepseek_operator.api import constants
from deepseek_operator.k8s.cache import ObjectCache
from deepseek_operator.k8s.client import KubeClient
from deepseek_operator.k8s.connect import connect
from deepseek_operator.k8s.serve_api import ServeObserver
from deepseek_operator.metrics import RECONCILE_SECONDS, RECONCILES
from deepseek_operator.reconcile import Reconciler
from deepseek_operator.render import RenderConfig
from deepseek_operator.settings import OperatorSettings
from deepseek_operator.workqueue import Key, Priority, WorkQueue

SETTINGS = OperatorSettings()
"""Read once at import: kopf's decorators need the resync interval before the operator starts."""

MANAGED = {constants.LABEL_MANAGED_BY: constants.MANAGED_BY}
CHILD_RESOURCES = (
    ("ray.io", "v1", "rayservices"),
    ("v1", "services"),
    ("gateway.networking.k8s.io", "v1", "httproutes"),
)
"""Watched with a server-side label selector: only what the operator manages. ConfigMaps are
watched whole: the ones a deployment names in its spec are the user's, not labelled by us."""


def _now() -> datetime:
    return datetime.now(UTC)  # noqa: TID251 - the I/O shell owns the clock and hands it to the core


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.posting.enabled = False  # our Events are decisions, posted by the reconciler
    settings.peering.name = SETTINGS.peering.name
    settings.peering.mandatory = SETTINGS.peering.mandatory
    settings.peering.lifetime = SETTINGS.peering.lifetime_seconds
    # The oldest replica has the highest priority: it stays active while newer ones wait.
    settings.peering.priority = (
        SETTINGS.peering.priority
        if SETTINGS.peering.priority is not None
        else -int(_now().timestamp() * 1000)
    )
    if SETTINGS.webhook.enabled:
        webhook.configure(settings, SETTINGS.webhook)
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # Watch only our children, filtered by the API server rather than by us.
    for resource in CHILD_RESOURCES:
        settings.watching.label_selectors[resource] = f"{constants.LABEL_MANAGED_BY}={constants.MANAGED_BY}"

    api_client = await connect()
    client = KubeClient(api_client, SETTINGS.kubernetes)
    reconciler = Reconciler(
        client=client,
        cache=ObjectCache(),
        render_config=RenderConfig(**SETTINGS.render.model_dump()),
        now=_now,
        serve=ServeObserver(SETTINGS.ray.dashboard_url_template, ttl_seconds=SETTINGS.ray.serve_ttl_seconds),
        prometheus=httpx.AsyncClient(timeout=SETTINGS.analysis.timeout_seconds),
        namespace_label=SETTINGS.analysis.namespace_label,
        settle_seconds=SETTINGS.reconcile.settle_seconds,
    )

    async def timed_reconcile(key: Key) -> float | None:
        with RECONCILE_SECONDS.time():
            try:
                requeue = await reconciler.reconcile(key)
            except Exception:
                RECONCILES.labels(result="error").inc()
                raise
        RECONCILES.labels(result="ok").inc()
        return requeue

    queue = WorkQueue(
        timed_reconcile,
        workers=SETTINGS.reconcile.workers,
        backoff_initial=SETTINGS.reconcile.backoff_initial_seconds,
        backoff_max=SETTINGS.reconcile.backoff_max_seconds,
    )
    memo.api_client, memo.client, memo.cache, memo.queue = api_client, client, reconciler.cache, queue
    memo.reconciler = reconciler
    memo.queue_task = asyncio.create_task(queue.run(), name="deepseek-reconcile-queue")
    if SETTINGS.server.metrics_port:
        start_http_server(SETTINGS.server.metrics_port)


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    memo.queue_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await memo.queue_task
    await memo.reconciler.serve.close()
    await memo.reconciler.prometheus.aclose()
    await memo.api_client.close()


@kopf.on.event(constants.GROUP, constants.VERSION, constants.PLURAL)
async def deployment_changed(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if event["type"] == "DELETED":
        key = memo.cache.drop_deployment(body)
        memo.queue.forget(key)
        memo.reconciler.forget(key)
    else:
        memo.queue.add(memo.cache.put_deployment(body))


@kopf.on.event("ray.io", "v1", "rayservices", labels=MANAGED)
@kopf.on.event("v1", "services", labels=MANAGED)
@kopf.on.event("gateway.networking.k8s.io", "v1", "httproutes", labels=MANAGED)
async def child_changed(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    owner = memo.cache.drop_child(body) if event["type"] == "DELETED" else memo.cache.put_child(body)
    if owner is not None:
        memo.queue.add(owner)


@kopf.on.event("v1", "configmaps")
async def config_map_changed(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A ConfigMap a deployment names (architecture, expert load) is its input: reconcile it at once."""
    deleted = event["type"] == "DELETED"
    referencing = memo.cache.drop_config_map(body) if deleted else memo.cache.put_config_map(body)
    for key in referencing:
        memo.queue.add(key)


@kopf.timer(constants.GROUP, constants.VERSION, constants.PLURAL, interval=SETTINGS.reconcile.resync_seconds)
async def resync(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.queue.add(ObjectCache.key_of(body), priority=Priority.RESYNC)


def _without_finalizer(timer_id: str) -> None:
    """Let the resync timer run without kopf's finalizer on every deployment.

    kopf marks every object with a timer by a finalizer, to stop the timer before the object goes;
    ours only enqueues a key, so there is nothing to stop, and the finalizer would cost one more
    write per deployment and block deletion while no operator runs. kopf has no option for this:
    the registered handler is swapped for a copy without the requirement (a test checks that
    deployments get no finalizer, so a kopf upgrade that changes this is caught).
    """
    spawning: Any = kopf.get_default_registry()._spawning
    spawning._handlers = [
        dataclasses.replace(handler, requires_finalizer=False) if handler.id == timer_id else handler
        for handler in spawning._handlers
    ]


_without_finalizer("resync")


if SETTINGS.webhook.enabled:
    kopf.on.validate(
        constants.GROUP,
        constants.VERSION,
        constants.PLURAL,
        id=webhook.HANDLER_ID,
        operations=["CREATE", "UPDATE"],
        # Kept in the configuration when a replica stops: the others still serve it.
        persistent=True,
    )(webhook.validate)


@kopf.on.probe(id="queue_depth")
async def queue_depth(memo: kopf.Memo, **_: Any) -> int:
    """Liveness/readiness detail for `kopf run --liveness`: the queue exists and its depth."""
    return int(memo.queue.depth)
