"""Admission guards in front of vLLM's OpenAI app: API key, max_tokens cap, request deadline;
the version headers on every response; test-only fault injection.

Why an ASGI middleware of our own: vLLM's OpenAI app already answers bad requests (prompt too long,
invalid parameters) with OpenAI-format errors, but its ``--api-key`` check answers
``{"error": "Unauthorized"}`` and it has neither a per-deployment ``max_tokens`` cap nor a request
deadline. These three rules come from ``ServingArgs`` and answer in the same OpenAI error shape
vLLM uses (``{"error": {"message", "type", "param", "code"}}``), so clients see one error format.

- API key: every ``/v1/*`` request needs ``Authorization: Bearer <key>``; ``/health``, ``/ready``
  and ``/metrics`` stay open for probes. The key is read by the caller from the environment variable
  named in ``ServingArgs.apiKeyEnv`` and compared by hash in constant time.
- ``max_tokens``: a completion or chat request asking for more than ``limits.maxTokens`` is refused
  with 400 (``engine_kwargs`` makes the same limit the default when a request sets none).
- Deadline: a request running longer than ``limits.requestTimeoutS`` is cancelled (vLLM aborts the
  generation); before the response started the client gets 408, mid-stream an error event closes it.

Which version answered: ``VersionHeaders`` adds ``x-deepseek-deployment`` and ``x-deepseek-version``
(``ServingArgs.deploymentName``/``versionName``) to every HTTP response of the app (success,
error, streaming), so clients and e2e tests can count responses per version while a canary splits
traffic. ``wrap_middleware_stack`` installs it outside Starlette's own ``ServerErrorMiddleware``,
so even the 500 of an unhandled exception carries them; responses that never reach the replica
(a proxy's 404 for an unknown route, Ray Serve's 503 when its queue is full) do not.

Fault injection (TEST ONLY, ``ServingArgs.faultInjection``): so tests can build a bad canary,
``ServingGuard`` answers ``errorPercent`` percent of the generation requests that passed the API
key and the ``max_tokens`` cap with 500 (OpenAI error, ``type`` ``"fault_injection"``), and waits
``delayS`` before forwarding the others (inside the deadline). Neither reaches the engine.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
from collections.abc import Callable
from typing import Any, Final

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deepseek_serving.config import FaultInjection

__all__ = [
    "DEPLOYMENT_HEADER",
    "FAULT_INJECTION_ERROR_TYPE",
    "GENERATION_PATHS",
    "VERSION_HEADER",
    "ServingGuard",
    "VersionHeaders",
    "excess_max_tokens",
    "openai_error",
    "openai_error_body",
    "wrap_middleware_stack",
]

GENERATION_PATHS: Final[frozenset[str]] = frozenset({"/v1/completions", "/v1/chat/completions"})
DEPLOYMENT_HEADER: Final = "x-deepseek-deployment"
"""Response header naming the DeepSeekDeployment that answered (``ServingArgs.deploymentName``)."""
VERSION_HEADER: Final = "x-deepseek-version"
"""Response header naming the version (revision) that answered (``ServingArgs.versionName``)."""
FAULT_INJECTION_ERROR_TYPE: Final = "fault_injection"
"""OpenAI error ``type`` of the 500s that fault injection answers (test only)."""
_MAX_TOKEN_FIELDS: Final = ("max_tokens", "max_completion_tokens")


def openai_error(message: str, *, error_type: str, code: int, param: str | None = None) -> dict[str, Any]:
    """An OpenAI-format error document, shaped like vLLM's ``ErrorResponse``."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def openai_error_body(message: str, *, error_type: str, code: int, param: str | None = None) -> bytes:
    """``openai_error`` serialized as JSON bytes."""
    return json.dumps(openai_error(message, error_type=error_type, code=code, param=param)).encode()


def excess_max_tokens(payload: Any, limit: int) -> tuple[str, int] | None:
    """The first ``max_tokens``-like field of a request body above ``limit``, as ``(field, value)``."""
    if not isinstance(payload, dict):
        return None
    for field in _MAX_TOKEN_FIELDS:
        value = payload.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value > limit:
            return field, value
    return None


class VersionHeaders:
    """Pure ASGI middleware adding the deployment and version headers to every HTTP response."""

    def __init__(self, app: ASGIApp, *, deployment: str, version: str) -> None:
        self.app = app
        self._headers = [
            (DEPLOYMENT_HEADER.encode(), deployment.encode()),
            (VERSION_HEADER.encode(), version.encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *self._headers]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def wrap_middleware_stack(app: Starlette, wrap: Callable[[ASGIApp], ASGIApp]) -> None:
    """Put ``wrap`` around ``app``'s whole middleware stack, ``ServerErrorMiddleware`` included.

    ``add_middleware`` places middleware inside Starlette's ``ServerErrorMiddleware``, whose 500
    for an unhandled exception would then bypass it. The stack is still built lazily on the first
    request (``Starlette.__call__`` calls ``build_middleware_stack``), so middleware and exception
    handlers added later (Ray Serve adds its own) are kept.

    Starlette has no public way to put middleware outside ``ServerErrorMiddleware``; returning a
    wrapper ASGI app from ``__serve_build_asgi_app__`` instead would lose Ray Serve's FastAPI
    integration (its ``BackPressureError`` handler, ``docs_path``). This per-instance override of
    the public ``build_middleware_stack`` is checked by ``tests/serving/test_http_guards.py``
    (an unhandled exception's 500 and a handler added afterwards both carry the headers).
    """
    build = app.build_middleware_stack

    def build_wrapped() -> ASGIApp:
        return wrap(build())

    app.build_middleware_stack = build_wrapped  # type: ignore[method-assign]
    app.middleware_stack = None


class ServingGuard:
    """Pure ASGI middleware: API key, ``max_tokens`` cap, request deadline, test-only fault injection."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: str | None,
        max_tokens: int,
        request_timeout_s: float,
        fault_injection: FaultInjection | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """
        Parameters:
            app: the guarded app (vLLM's OpenAI app).
            api_key: the key ``/v1/*`` requests must bear (None: open).
            max_tokens: largest ``max_tokens``/``max_completion_tokens`` a generation request may ask for.
            request_timeout_s: wall-clock budget of one request.
            fault_injection: TEST ONLY: errors and delay injected into generation requests (None: off).
            rng: draws which requests fault injection fails (seed it in tests; default: unseeded).
        """
        self.app = app
        self._api_key_digest = hashlib.sha256(api_key.encode()).digest() if api_key else None
        self._max_tokens = max_tokens
        self._request_timeout_s = request_timeout_s
        self._faults = fault_injection
        self._rng = rng or random.Random()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"].removeprefix(scope.get("root_path", ""))
        if path.startswith("/v1") and scope["method"] != "OPTIONS" and not self._is_authorized(scope):
            await _respond(send, 401, "Invalid or missing API key.", error_type="invalid_request_error")
            return
        delay_s = 0.0
        if scope["method"] == "POST" and path in GENERATION_PATHS:
            body = await _read_body(receive)
            excess = excess_max_tokens(_parse_json(body), self._max_tokens)
            if excess is not None:
                field, value = excess
                message = f"{field} ({value}) exceeds this deployment's limit of {self._max_tokens} tokens."
                await _respond(send, 400, message, error_type="invalid_request_error", param=field)
                return
            receive = _replay(body, receive)
            if self._faults is not None:
                if self._rng.random() * 100.0 < self._faults.error_percent:
                    message = "Injected fault: this test version fails a share of its generation requests."
                    await _respond(send, 500, message, error_type=FAULT_INJECTION_ERROR_TYPE)
                    return
                delay_s = self._faults.delay_s
        await self._call_with_deadline(scope, receive, send, delay_s=delay_s)

    def _is_authorized(self, scope: Scope) -> bool:
        if self._api_key_digest is None:
            return True
        scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
        token_digest = hashlib.sha256(token.encode()).digest()
        return scheme.lower() == "bearer" and hmac.compare_digest(token_digest, self._api_key_digest)

    async def _call_with_deadline(
        self, scope: Scope, receive: Receive, send: Send, *, delay_s: float = 0.0
    ) -> None:
        response_started = False

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            async with asyncio.timeout(self._request_timeout_s):
                if delay_s > 0:
                    await asyncio.sleep(delay_s)
                await self.app(scope, receive, tracking_send)
        except TimeoutError:
            message = f"Request exceeded this deployment's {self._request_timeout_s:g} s timeout."
            if not response_started:
                await _respond(send, 408, message, error_type="timeout_error")
                return
            event = b"data: " + openai_error_body(message, error_type="timeout_error", code=408) + b"\n\n"
            await send({"type": "http.response.body", "body": event, "more_body": False})


async def _respond(
    send: Send, status: int, message: str, *, error_type: str, param: str | None = None
) -> None:
    body = openai_error_body(message, error_type=error_type, code=status, param=param)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None  # vLLM answers malformed JSON itself


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields the already-read body once, then defers to the real channel."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
