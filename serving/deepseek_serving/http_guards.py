"""Admission guards in front of vLLM's OpenAI app: API key, max_tokens cap, request deadline.

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
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any, Final

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["GENERATION_PATHS", "ServingGuard", "excess_max_tokens", "openai_error", "openai_error_body"]

GENERATION_PATHS: Final[frozenset[str]] = frozenset({"/v1/completions", "/v1/chat/completions"})
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


class ServingGuard:
    """Pure ASGI middleware enforcing the API key, the ``max_tokens`` cap and the request deadline."""

    def __init__(
        self, app: ASGIApp, *, api_key: str | None, max_tokens: int, request_timeout_s: float
    ) -> None:
        self.app = app
        self._api_key_digest = hashlib.sha256(api_key.encode()).digest() if api_key else None
        self._max_tokens = max_tokens
        self._request_timeout_s = request_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"].removeprefix(scope.get("root_path", ""))
        if path.startswith("/v1") and scope["method"] != "OPTIONS" and not self._is_authorized(scope):
            await _respond(send, 401, "Invalid or missing API key.", error_type="invalid_request_error")
            return
        if scope["method"] == "POST" and path in GENERATION_PATHS:
            body = await _read_body(receive)
            excess = excess_max_tokens(_parse_json(body), self._max_tokens)
            if excess is not None:
                field, value = excess
                message = f"{field} ({value}) exceeds this deployment's limit of {self._max_tokens} tokens."
                await _respond(send, 400, message, error_type="invalid_request_error", param=field)
                return
            receive = _replay(body, receive)
        await self._call_with_deadline(scope, receive, send)

    def _is_authorized(self, scope: Scope) -> bool:
        if self._api_key_digest is None:
            return True
        scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
        token_digest = hashlib.sha256(token.encode()).digest()
        return scheme.lower() == "bearer" and hmac.compare_digest(token_digest, self._api_key_digest)

    async def _call_with_deadline(self, scope: Scope, receive: Receive, send: Send) -> None:
        response_started = False

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            async with asyncio.timeout(self._request_timeout_s):
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
