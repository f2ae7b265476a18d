"""The weighted proxy: the pure HAProxy renderer as tables, then a real HAProxy splitting,
rewriting and reloading under load."""

from __future__ import annotations

import hashlib
import http.client
import math
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from deepseek_serving.weighted_proxy import (
    Backend,
    HaproxyNotFound,
    Listener,
    ProxyError,
    Route,
    WeightedProxy,
    find_haproxy,
    haproxy_weights,
    render_haproxy_config,
    route_precedence,
)
from tests.http_backends import Load, NamedBackend, get, split, stream

RUN = "/run/dsd"


def target(url: str) -> str:
    """The renderer's name for a backend URL's inner listener (a hash: stable across generations)."""
    return "target_" + hashlib.sha256(url.encode()).hexdigest()[:12]


@pytest.fixture(scope="module")
def haproxy() -> str:
    try:
        return find_haproxy()
    except HaproxyNotFound as err:
        pytest.skip(str(err))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the pure renderer ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        pytest.param([80, 20], [80, 20], id="percentages-as-is"),
        pytest.param([], [], id="no-backends"),
        pytest.param([0, 0], [0, 0], id="all-zero"),
        pytest.param([256, 1], [256, 1], id="haproxy-range-as-is"),
        pytest.param([600, 300, 0], [256, 128, 0], id="scaled-proportionally"),
        pytest.param([1_000_000, 1], [256, 1], id="gateway-max-small-stays-nonzero"),
    ],
)
def test_haproxy_weights(weights: list[int], expected: list[int]) -> None:
    assert haproxy_weights(weights) == expected


def one_route(route: Route, port: int = 8080) -> list[Listener]:
    return [Listener(port, (route,))]


A = "http://127.0.0.1:9001"
CASES = [
    pytest.param(
        one_route(Route("/v1", (Backend(A),))),
        [
            "    acl path_0 path -m str /v1",
            "    acl path_0 path -m beg /v1/",
            "    use_backend route_0_0 if path_0",
        ],
        id="prefix-matches-whole-path-elements",
    ),
    pytest.param(
        one_route(Route("/v1/", (Backend(A),))),
        ["    acl path_0 path -m str /v1", "    acl path_0 path -m beg /v1/"],
        id="prefix-trailing-slash-ignored",
    ),
    pytest.param(
        one_route(Route("/", (Backend(A),))), ["    use_backend route_0_0"], id="root-prefix-matches-all"
    ),
    pytest.param(
        one_route(Route("/healthz", (Backend(A),), match="Exact")),
        ["    acl path_0 path -m str /healthz", "    use_backend route_0_0 if path_0"],
        id="exact-path",
    ),
    pytest.param(
        one_route(Route("/", (Backend(A),), hostname="API.example.com")),
        [
            "    acl host_0 req.hdr(host),field(1,:),lower -m str api.example.com",
            "    use_backend route_0_0 if host_0",
        ],
        id="exact-hostname-any-port-any-case",
    ),
    pytest.param(
        one_route(Route("/v1", (Backend(A),), hostname="*.example.com")),
        [
            "    acl host_0 req.hdr(host),field(1,:),lower -m end .example.com",
            "    use_backend route_0_0 if host_0 path_0",
        ],
        id="wildcard-hostname-and-path",
    ),
    pytest.param(
        one_route(Route("/", (Backend("http://127.0.0.1:8000/ns/name", 80), Backend(A, 20)))),
        [
            f"    server b0 unix@{RUN}/{target('http://127.0.0.1:8000/ns/name')}.sock weight 80",
            f"    server b1 unix@{RUN}/{target(A)}.sock weight 20",
            "    http-request set-path /ns/name%[path]",
            "    server backend 127.0.0.1:8000",
            "    server backend 127.0.0.1:9001",
        ],
        id="weighted-servers-and-per-backend-prefix",
    ),
    pytest.param(
        one_route(Route("/", (Backend("http://127.0.0.1:8000/a%20b/"),))),
        ["    http-request set-path /a%%20b%[path]"],
        id="prefix-percent-escaped-in-log-format",
    ),
    pytest.param(
        one_route(Route("/", (Backend("http://[::1]:8000"),))),
        ["    server backend ipv6@::1:8000"],
        id="ipv6-backend",
    ),
    pytest.param(
        one_route(Route("/", (Backend(None, 3), Backend(A, 1)))),
        [
            f"    server b0 unix@{RUN}/unresolved.sock weight 3",
            '    http-request return status 500 content-type text/plain string "backend not resolved\\n"',
        ],
        id="unresolved-share-gets-500",
    ),
    pytest.param(
        one_route(Route("/", (Backend(A, 0),))),
        ['    http-request return status 500 content-type text/plain string "no backend with a weight\\n"'],
        id="all-weights-zero-500",
    ),
    pytest.param(
        one_route(Route("/", ())),
        ['    http-request return status 500 content-type text/plain string "no backend with a weight\\n"'],
        id="no-backends-500",
    ),
    pytest.param(
        one_route(Route("/", (Backend(A, 999_000), Backend("http://127.0.0.1:9002", 1_000)))),
        [
            f"    server b0 unix@{RUN}/{target(A)}.sock weight 256",
            f"    server b1 unix@{RUN}/{target('http://127.0.0.1:9002')}.sock weight 1",
        ],
        id="gateway-weights-scaled",
    ),
    pytest.param(
        one_route(Route("/it's $x#1", (Backend(A),))),
        ["    acl path_0 path -m str /it\\'s\\ \\$x\\#1"],
        id="config-special-characters-escaped",
    ),
    pytest.param(
        [Listener(8080, (Route("/", (Backend(A),)),)), Listener(8081, host="0.0.0.0")],
        [
            "    bind 127.0.0.1:8080",
            "    bind 0.0.0.0:8081",
            "frontend listener_1",
            "    default_backend not_found",
        ],
        id="listeners-without-routes-answer-404",
    ),
]


@pytest.mark.parametrize(("listeners", "expected_lines"), CASES)
def test_render(listeners: list[Listener], expected_lines: list[str]) -> None:
    lines = render_haproxy_config(listeners, runtime_dir=RUN).splitlines()
    missing = [line for line in expected_lines if line not in lines]
    assert not missing, "\n".join(lines)


@pytest.mark.parametrize(("listeners", "expected_lines"), CASES)
def test_every_rendered_config_is_valid_haproxy(
    listeners: list[Listener], expected_lines: list[str], haproxy: str, tmp_path: Path
) -> None:
    config = tmp_path / "haproxy.cfg"
    config.write_text(render_haproxy_config(listeners, runtime_dir="/tmp/dsd-check"))
    checked = subprocess.run([haproxy, "-c", "-f", str(config)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_draining_backends_keep_their_target_listening() -> None:
    table = one_route(Route("/", (Backend(A),)))
    old = "http://127.0.0.1:9002/ns/old"
    lines = render_haproxy_config(table, runtime_dir=RUN, draining=[old]).splitlines()
    assert f"listen {target(old)}" in lines
    assert f"    bind unix@{RUN}/{target(old)}.sock mode 600" in lines
    assert not [line for line in lines if line.startswith("    server b") and target(old) in line]


def test_the_same_table_renders_the_same_text_and_targets_keep_their_names() -> None:
    """No-op reloads are skipped by comparing text; a target's socket means one URL in every generation."""
    before = one_route(Route("/", (Backend(A, 80), Backend("http://127.0.0.1:9002", 20))))
    after = one_route(Route("/", (Backend(A, 20), Backend("http://127.0.0.1:9002", 80))))
    assert render_haproxy_config(before, runtime_dir=RUN) == render_haproxy_config(
        list(before), runtime_dir=RUN
    )
    sockets = [
        {
            line.split()[2]
            for line in render_haproxy_config(t, runtime_dir=RUN).splitlines()
            if "    bind unix@" in line
        }
        for t in (before, after)
    ]
    assert sockets[0] == sockets[1]


@pytest.mark.parametrize(
    ("routes", "order"),
    [
        pytest.param(
            [Route("/"), Route("/v1"), Route("/v1/chat")], ["/v1/chat", "/v1", "/"], id="longest-prefix-first"
        ),
        pytest.param(
            [Route("/v1/chat/x"), Route("/v1/chat", match="Exact")],
            ["/v1/chat", "/v1/chat/x"],
            id="exact-first",
        ),
        pytest.param(
            [Route("/v1"), Route("/", hostname="*.example.com"), Route("/", hostname="a.example.com")],
            ["a.example.com/", "*.example.com/", "/v1"],
            id="hostnames-before-paths",
        ),
        pytest.param(
            [Route("/a", hostname="x.io"), Route("/b", hostname="x.io")],
            ["x.io/a", "x.io/b"],
            id="ties-keep-order",
        ),
    ],
)
def test_route_precedence(routes: list[Route], order: list[str]) -> None:
    assert [f"{r.hostname or ''}{r.path}" for r in sorted(routes, key=route_precedence)] == order


@pytest.mark.parametrize(
    ("build", "message"),
    [
        pytest.param(lambda: Backend(A, -1), "weight must be >= 0", id="negative-weight"),
        pytest.param(lambda: Backend("https://127.0.0.1:8000"), "must be http://", id="https-backend"),
        pytest.param(
            lambda: Backend("http://127.0.0.1:8000/x?y=1"), "must be http://", id="query-in-backend"
        ),
        pytest.param(lambda: Backend("127.0.0.1:8000"), "must be http://", id="no-scheme"),
        pytest.param(lambda: Route("v1"), "must be absolute", id="relative-path"),
        pytest.param(lambda: Route("/a\nb"), "printable ASCII", id="control-character"),
        pytest.param(
            lambda: render_haproxy_config([], runtime_dir="/" + "x" * 120),
            "too long",
            id="socket-path-too-long",
        ),
    ],
)
def test_invalid_tables_are_refused(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


# --- a real HAProxy ---------------------------------------------------------------------------------


@pytest.fixture
def backends() -> Iterator[tuple[NamedBackend, NamedBackend]]:
    with NamedBackend("a") as a, NamedBackend("b") as b:
        yield a, b


def split_table(
    port: int, a: NamedBackend, b: NamedBackend, weight_a: int | None, weight_b: int | None
) -> list[Listener]:
    """One route over a and b; a weight of None leaves that backend out of the table."""
    weighted = [(a, weight_a), (b, weight_b)]
    return [Listener(port, (Route("/", tuple(Backend(x.url, w) for x, w in weighted if w is not None)),))]


def test_routes_rewrite_and_answer_like_a_gateway(
    haproxy: str, backends: tuple[NamedBackend, NamedBackend]
) -> None:
    a, b = backends
    port = free_port()
    table = [
        Listener(
            port,
            (
                Route("/api", (Backend(f"{a.url}/ns/a"),)),
                Route("/only", (Backend(b.url),), match="Exact"),
                Route("/", (Backend(b.url),), hostname="b.example.com"),
                Route("/broken", (Backend(None),)),
                Route("/empty", ()),
            ),
        )
    ]
    base = f"http://127.0.0.1:{port}"
    with WeightedProxy(table, binary=haproxy):
        assert get(base, "/api/v1/x?q=1")[:2] == (200, "a")
        assert a.paths[-1] == "/ns/a/api/v1/x?q=1"
        assert get(base, "/apix")[0] == 404
        assert get(base, "/only")[:2] == (200, "b")
        assert get(base, "/only/x")[0] == 404
        assert get(base, "/z", host="B.example.com:80")[:2] == (200, "b")
        assert get(base, "/broken/x")[0] == 500
        assert get(base, "/empty")[0] == 500


def test_streamed_responses_pass_event_by_event(
    haproxy: str, backends: tuple[NamedBackend, NamedBackend]
) -> None:
    """Server-sent events reach the client as the backend sends them, not when the stream ends."""
    a, b = backends
    port = free_port()
    with WeightedProxy(split_table(port, a, b, 1, 0), binary=haproxy):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        started = time.monotonic()
        conn.request("GET", "/v1/stream?events=8&interval=0.25")
        arrivals = [time.monotonic() - started for line in conn.getresponse() if line.startswith(b"data:")]
        conn.close()
    assert len(arrivals) == 8
    assert arrivals[0] < arrivals[-1] - 1.0, arrivals  # the first event came well before the last


def binomial_tolerance(requests: int, share: float, sigmas: float = 4.0) -> int:
    """Requests a split may be off by: ``sigmas`` standard deviations of a binomial count.

    A splitter choosing at random with the right weights lands outside 4 standard deviations with probability
    ~6e-5, so the bound is loose enough never to flake and tight enough to catch wrong weights
    (80/20 vs 50/50 is 150 requests apart at n=500; 4 sd is 36). HAProxy's smooth weighted round
    robin is deterministic, exact over every cycle of sum(weights) requests: it should be off by
    less than one cycle's remainder.
    """
    return math.ceil(sigmas * math.sqrt(requests * share * (1 - share)))


def test_the_split_follows_the_weights(haproxy: str, backends: tuple[NamedBackend, NamedBackend]) -> None:
    a, b = backends
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    requests = 500
    tolerance = binomial_tolerance(requests, 0.8)
    with WeightedProxy(split_table(port, a, b, 80, 20), binary=haproxy) as proxy:
        first = split(base, requests)
        proxy.apply(split_table(port, a, b, 20, 80))
        second = split(base, requests)
    print(f"80/20 -> {dict(first)}, 20/80 -> {dict(second)}, tolerance ±{tolerance} of {requests}")
    assert sum(first.values()) == sum(second.values()) == requests
    assert abs(first["a"] - 0.8 * requests) <= tolerance, first
    assert abs(second["b"] - 0.8 * requests) <= tolerance, second


# 20 tables, each different from the one before (apply() skips a reload for an unchanged table).
RELOAD_WEIGHTS = [
    (80, 20),
    (20, 80),
    (50, 50),
    (100, 0),
    (0, 100),
    (1, 1),
    (3, 1),
    (1, 3),
    (100, 1),
    (1, 100),
] * 2


def test_reloads_under_load_fail_no_request(
    haproxy: str, backends: tuple[NamedBackend, NamedBackend]
) -> None:
    """Concurrent clients (fresh and keep-alive connections) and two slow streams see no failure
    across 20 reloads that move the weights and remove backends; the streams finish on the
    workers they started on."""
    a, b = backends
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    events = 30
    with (
        WeightedProxy(split_table(port, a, b, 50, 50), binary=haproxy) as proxy,
        ThreadPoolExecutor(2) as pool,
        Load(base, clients=6) as load,
    ):

        def slow_stream() -> tuple[int, str, list[str], int]:
            started = proxy.reloads
            name, received = stream(base, f"/s/stream?events={events}&interval=0.1")
            return started, name, received, proxy.reloads

        streams = [pool.submit(slow_stream)]
        load.wait_for(25)
        for i, (weight_a, weight_b) in enumerate(RELOAD_WEIGHTS):
            assert proxy.apply(split_table(port, a, b, weight_a, weight_b))
            if i == 9:
                streams.append(pool.submit(slow_stream))
            load.wait_for(25)
        results = [future.result(timeout=60) for future in streams]
    print(f"{proxy.reloads} reloads, {load.completed} requests {dict(load.served)}, failures {load.failures}")
    assert proxy.reloads == len(RELOAD_WEIGHTS)
    assert load.failures == []
    assert load.completed >= 400
    for started, name, received, ended in results:
        assert received == [f"data: {name} {i}" for i in range(events)]
        assert ended - started >= 2, "the stream should span reloads"


def test_a_refused_table_leaves_the_old_one_serving(
    haproxy: str, backends: tuple[NamedBackend, NamedBackend]
) -> None:
    a, b = backends
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with socket.socket() as taken, WeightedProxy(split_table(port, a, b, 1, 0), binary=haproxy) as proxy:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        before = proxy.config
        with pytest.raises(ProxyError, match="could not load the new config"):
            proxy.apply([*split_table(port, a, b, 0, 1), Listener(taken.getsockname()[1])])
        assert proxy.config == before
        assert get(base)[:2] == (200, "a")
        assert proxy.apply(split_table(port, a, b, 0, 1))
        assert get(base)[:2] == (200, "b")
