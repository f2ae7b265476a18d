"""Watch fan-out: a bounded event history and one queue per open watch.

The history is what makes ``resourceVersion`` resumable: a watch from version N replays the
events after N, and one from a version older than the history answers ``410 Gone`` (``Expired``),
as an etcd-backed server does after compaction. Label and field selectors are applied to both
the old and the new state, so an object that stops matching is seen as DELETED and one that
starts matching as ADDED (the watch cache's semantics).
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field
from typing import Any

from deepseek_operator.testing.apierrors import ApiError
from deepseek_operator.testing.selectors import FieldSelector, LabelSelector
from deepseek_operator.testing.store import WatchEvent

__all__ = ["WatchHub", "Watcher"]


@dataclass(eq=False)
class Watcher:
    """One open watch: what it selects, and the events waiting to be written to it."""

    key: str
    namespace: str
    labels: LabelSelector
    fields: FieldSelector
    queue: asyncio.Queue[tuple[str, dict[str, Any], int]] = field(default_factory=asyncio.Queue)

    def _selects(self, obj: dict[str, Any] | None) -> bool:
        return (
            obj is not None
            and self.labels.matches(obj["metadata"].get("labels"))
            and self.fields.matches(obj)
        )

    def offer(self, event: WatchEvent) -> None:
        if event.key != self.key or (self.namespace and event.namespace != self.namespace):
            return
        was, now = self._selects(event.old), self._selects(event.obj)
        if event.type == "DELETED":
            kind = "DELETED" if was or now else ""
        elif was and now:
            kind = "MODIFIED"
        elif now:
            kind = "ADDED"
        elif was:
            kind = "DELETED"
        else:
            kind = ""
        if kind:
            self.queue.put_nowait((kind, event.obj, event.rv))


class WatchHub:
    """Receives every committed event; keeps the last ``history`` of them for resuming watches."""

    def __init__(self, history: int = 100_000) -> None:
        self._events: collections.deque[WatchEvent] = collections.deque()
        self._limit = history
        self.compacted_rv = 0  # events at or below this version are gone
        self._watchers: set[Watcher] = set()

    def publish(self, event: WatchEvent) -> None:
        self._events.append(event)
        while len(self._events) > self._limit:
            self.compacted_rv = self._events.popleft().rv
        for watcher in list(self._watchers):
            watcher.offer(event)

    def compact(self, rv: int) -> None:
        """Forget events up to ``rv``, as etcd compaction does (tests use it to provoke 410)."""
        while self._events and self._events[0].rv <= rv:
            self._events.popleft()
        self.compacted_rv = max(self.compacted_rv, rv)

    def subscribe(self, watcher: Watcher, since: int | None) -> Watcher:
        """Register ``watcher``; with ``since``, first queue the retained events after it."""
        if since is not None:
            if since < self.compacted_rv:
                raise ApiError.gone(f"too old resource version: {since} ({self.compacted_rv + 1})")
            for event in self._events:
                if event.rv > since:
                    watcher.offer(event)
        self._watchers.add(watcher)
        return watcher

    def unsubscribe(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)
