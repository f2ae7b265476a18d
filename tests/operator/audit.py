"""An audit log for the test API server: every request as RBAC sees it (verb, group, resource, name).

kube-apiserver derives these attributes from the URL and method (`RequestInfoFactory`) before it
authorizes a request; `request_attributes` does the same, independently of the test server's own
routing. `AuditLog.install(server)` wraps the server's request handler before it starts (the
test API server has no audit log of its own; this wraps it from outside instead of changing it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from deepseek_operator.testing.server import ApiServer

APPLY = "application/apply-patch+yaml"


@dataclass(frozen=True)
class Attributes:
    """What RBAC authorizes: a verb on a (group, resource[/subresource]), maybe by name."""

    verb: str
    group: str
    resource: str
    name: str
    namespace: str
    user_agent: str


def request_attributes(method: str, path: str, query: dict[str, str], user_agent: str) -> Attributes | None:
    """The RBAC attributes of a resource request; None for discovery and other non-resource URLs."""
    parts = [part for part in path.split("/") if part]
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, rest = parts[1], parts[3:]
    else:
        return None
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    resource, name = rest[0], rest[1] if len(rest) > 1 else ""
    if len(rest) > 2:
        resource = f"{resource}/{rest[2]}"
    watch = query.get("watch", "").lower() in ("true", "1")
    verb = {
        ("GET", True): "get",
        ("GET", False): "watch" if watch else "list",
        ("POST", False): "create",
        ("PUT", True): "update",
        ("PATCH", True): "patch",
        ("DELETE", True): "delete",
        ("DELETE", False): "deletecollection",
    }[(method, bool(name))]
    return Attributes(verb, group, resource, name, namespace, user_agent)


class AuditLog:
    """Requests of the clients whose User-Agent starts with one of `agents`."""

    def __init__(self, *agents: str) -> None:
        self.agents = agents
        self.requests: list[Attributes] = []

    def install(self, server: ApiServer) -> None:
        """Wrap the server's handler; call before `server.start()`."""
        handle: Callable[[web.Request], Awaitable[web.StreamResponse]] = server.api.handle

        async def audited(request: web.Request) -> web.StreamResponse:
            agent = request.headers.get("User-Agent", "")
            attributes = request_attributes(request.method, request.path, dict(request.query), agent)
            if attributes is None or not agent.startswith(self.agents):
                return await handle(request)
            self.requests.append(attributes)  # before: a watch answers only when it ends
            response = await handle(request)
            if request.content_type == APPLY and response.status == 201:
                # An apply that creates the object is authorized as `create` too.
                self.requests.append(
                    Attributes(
                        "create", attributes.group, attributes.resource, "", attributes.namespace, agent
                    )
                )
            return response

        server.api.handle = audited  # type: ignore[method-assign]
