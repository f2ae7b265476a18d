"""``metav1.Status`` failures as the API server words them (``k8s.io/apimachinery/pkg/api/errors``)."""

from __future__ import annotations

from typing import Any

from deepseek_operator.testing.fielderrors import FieldError, aggregate
from deepseek_operator.testing.resources import ResourceType

__all__ = ["ApiError"]


class ApiError(Exception):
    """A failed request: HTTP ``code``, machine ``reason`` and the Status ``details``."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if not self.reason:  # metav1.StatusReasonUnknown is "", which JSON leaves out
            del status["reason"]
        if self.details is not None:
            status["details"] = self.details
        return status

    @staticmethod
    def _details(rt: ResourceType, name: str, **extra: Any) -> dict[str, Any]:
        details: dict[str, Any] = {"name": name, "kind": rt.plural, **extra}
        if rt.group:
            details["group"] = rt.group
        return details

    @classmethod
    def not_found(cls, rt: ResourceType, name: str) -> ApiError:
        return cls(404, "NotFound", f'{rt.qualified_resource} "{name}" not found', cls._details(rt, name))

    @classmethod
    def namespace_not_found(cls, namespace: str) -> ApiError:
        return cls(
            404, "NotFound", f'namespaces "{namespace}" not found', {"name": namespace, "kind": "namespaces"}
        )

    @classmethod
    def already_exists(cls, rt: ResourceType, name: str) -> ApiError:
        return cls(
            409, "AlreadyExists", f'{rt.qualified_resource} "{name}" already exists', cls._details(rt, name)
        )

    @classmethod
    def conflict(cls, rt: ResourceType, name: str, why: str) -> ApiError:
        return cls(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {rt.qualified_resource} "{name}": {why}',
            cls._details(rt, name),
        )

    @classmethod
    def stale(cls, rt: ResourceType, name: str) -> ApiError:
        return cls.conflict(
            rt,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )

    @classmethod
    def invalid(cls, rt: ResourceType, name: str, errors: list[FieldError]) -> ApiError:
        details: dict[str, Any] = {"name": name, "kind": rt.kind, "causes": [e.cause() for e in errors]}
        if rt.group:
            details["group"] = rt.group
        return cls(422, "Invalid", f'{rt.qualified_kind} "{name}" is invalid: {aggregate(errors)}', details)

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        return cls(400, "BadRequest", message)

    @classmethod
    def forbidden(cls, rt: ResourceType, name: str, why: str) -> ApiError:
        return cls(
            403, "Forbidden", f'{rt.qualified_resource} "{name}" is forbidden: {why}', cls._details(rt, name)
        )

    @classmethod
    def gone(cls, message: str) -> ApiError:
        return cls(410, "Expired", message)

    @classmethod
    def method_not_allowed(cls) -> ApiError:
        return cls(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    @classmethod
    def request_entity_too_large(cls, limit: int) -> ApiError:
        """A request body over the server's `MaxRequestBodyBytes`, refused before it is decoded
        (`handlers.limitedReadBody`)."""
        return cls(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")

    @classmethod
    def etcd_request_too_large(cls) -> ApiError:
        """etcd refused the write for its size; the API server passes etcd's error on as an
        internal error of unknown reason (`responsewriters.ErrorToAPIStatus`)."""
        return cls(500, "", "etcdserver: request is too large")

    @classmethod
    def unsupported_media_type(cls, content_type: str, accepted: list[str]) -> ApiError:
        return cls(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: "
            + ", ".join(accepted),
        )
