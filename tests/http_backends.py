"""Tiny HTTP backends and clients for proxy tests (the weighted proxy, the Gateway stand-in).

``NamedBackend`` answers every GET with its name and the path it received; a path ending in
``/stream`` sends server-sent events slowly, like a streamed completion. ``Load`` keeps
concurrent clients busy and records every outcome, so a test counts failed requests exactly.
"""

from __future__ import annotations

import http.client
import http.server
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

BACKEND_HEADER = "X-Backend"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        with self.server.lock:
            self.server.paths.append(self.path)
        if parts.path.endswith("/stream"):
            self._stream(parse_qs(parts.query))
            return
        body = f"{self.server.name} {self.path}".encode()
        self.send_response(200)
        self.send_header(BACKEND_HEADER, self.server.name)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, query: dict[str, list[str]]) -> None:
        events = int(query.get("events", ["10"])[0])
        interval_s = float(query.get("interval", ["0.1"])[0])
        self.send_response(200)
        self.send_header(BACKEND_HEADER, self.server.name)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(events):
            data = f"data: {self.server.name} {i}\n\n".encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
            time.sleep(interval_s)  # the pace of a slow token stream
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    name = ""
    lock: threading.Lock
    paths: list[str]


class NamedBackend:
    """An HTTP server on 127.0.0.1 (a free port) that answers with its name."""

    def __init__(self, name: str) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.name = name
        self._server.lock = threading.Lock()
        self._server.paths = []
        self.name = name
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name=f"backend-{name}", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def paths(self) -> list[str]:
        """Request paths received so far (what the proxy rewrote them to)."""
        with self._server.lock:
            return list(self._server.paths)

    def __enter__(self) -> NamedBackend:
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()


def get(
    base_url: str, path: str = "/", *, host: str | None = None, timeout_s: float = 30.0
) -> tuple[int, str, str]:
    """One GET on a fresh connection: (status, backend name or "", body)."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout_s)
    try:
        conn.request("GET", path, headers={"Host": host} if host else {})
        response = conn.getresponse()
        body = response.read().decode(errors="replace")
        return response.status, response.getheader(BACKEND_HEADER) or "", body
    finally:
        conn.close()


def split(base_url: str, requests: int, *, path: str = "/", concurrency: int = 4) -> Counter[str]:
    """How ``requests`` GETs spread over backends (failures count under ``"<status>"``)."""

    def one(_: int) -> str:
        status, name, _body = get(base_url, path)
        return name if status == 200 else str(status)

    with ThreadPoolExecutor(concurrency) as pool:
        return Counter(pool.map(one, range(requests)))


def stream(base_url: str, path: str, *, timeout_s: float = 60.0) -> tuple[str, list[str]]:
    """A streamed GET read to its end: (backend name, the ``data:`` lines received)."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        assert response.status == 200, response.read()
        events = [line.decode().strip() for line in response if line.startswith(b"data:")]
        return response.getheader(BACKEND_HEADER) or "", events
    finally:
        conn.close()


@dataclass
class Load:
    """Concurrent clients sending GETs until stopped: half on a fresh connection per request (a
    refused connection shows up), half on keep-alive connections (a reset one shows up)."""

    base_url: str
    path: str = "/"
    clients: int = 6
    served: Counter[str] = field(default_factory=Counter)
    """Backend name -> requests it answered."""
    failures: list[str] = field(default_factory=list)
    """One line per failed request: an exception or a status other than 200."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    @property
    def completed(self) -> int:
        with self._lock:
            return sum(self.served.values()) + len(self.failures)

    def wait_for(self, requests: int, *, timeout_s: float = 30.0) -> None:
        """Until ``requests`` more requests completed (a real condition, not a sleep)."""
        target = self.completed + requests
        wait_until(lambda: self.completed >= target, timeout_s=timeout_s)

    def _client(self, keep_alive: bool) -> None:
        parts = urlsplit(self.base_url)
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            if conn is None or not keep_alive:
                conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
            try:
                conn.request("GET", self.path)
                response = conn.getresponse()
                response.read()
                outcome = response.getheader(BACKEND_HEADER) if response.status == 200 else None
                failure = None if outcome else f"status {response.status}"
            except (OSError, http.client.HTTPException) as err:
                outcome, failure = None, f"{type(err).__name__}: {err}"
                conn.close()
                conn = None
            with self._lock:
                if outcome:
                    self.served[outcome] += 1
                else:
                    self.failures.append(failure or "no backend header")
            if conn is not None and not keep_alive:
                conn.close()
        if conn is not None:
            conn.close()

    def __enter__(self) -> Load:
        for i in range(self.clients):
            thread = threading.Thread(target=self._client, args=(i % 2 == 1,), name=f"load-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


def wait_until(check: Callable[[], Any], *, timeout_s: float = 30.0, interval_s: float = 0.02) -> Any:
    """Poll ``check`` until it returns something truthy; that value, or AssertionError on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(interval_s)
